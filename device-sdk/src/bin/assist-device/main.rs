//! `assist-device`: a work phone on the command line — live calls from an
//! audio file, chats through the local guard, the outbox, the guard rules and
//! the privacy list. See device-sdk/README.md.
//!
//! This file holds the global options, the data directory and the dispatch;
//! each subcommand lives in its own module with its arguments:
//! `call.rs` (stream a recording live, then queue it for upload; `audio.rs`
//! decodes and resamples it), `chat.rs` (guard, privacy list, queue, send),
//! `outbox.rs` (status, flush, dead items; also prints a flush report for
//! the others), `guard.rs` (check a text, update the rules) and
//! `privacy.rs` (the personal-contact list).

mod audio;
mod call;
mod chat;
mod guard;
mod outbox;
mod privacy;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use assist_device_sdk::{Client, ClientConfig, Outbox, OutboxConfig};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "assist-device",
    version,
    about = "A work phone of the assist service, on the command line"
)]
struct Cli {
    /// The assist server, e.g. https://assist.example.com
    #[arg(long, env = "ASSIST_SERVER", global = true)]
    server: Option<String>,
    /// The phone's device token (a rep's device token).
    #[arg(
        long,
        env = "ASSIST_DEVICE_TOKEN",
        global = true,
        hide_env_values = true
    )]
    token: Option<String>,
    /// Where the outbox, the guard rules and the privacy list live.
    #[arg(long, env = "ASSIST_DEVICE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream a recording as a live call, print what the server says, then upload it.
    Call(call::CallArgs),
    /// Chats.
    #[command(subcommand)]
    Chat(chat::ChatCommand),
    /// The outbox of items waiting for the server.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// The local guard (signed block rules).
    #[command(subcommand)]
    Guard(guard::GuardCommand),
    /// The personal-contact exclusion list.
    #[command(subcommand)]
    Privacy(privacy::PrivacyCommand),
}

/// What every subcommand gets: the opened outbox, and the server and token
/// for those that need the network.
struct Ctx {
    cli_server: Option<String>,
    cli_token: Option<String>,
    outbox: Outbox,
}

impl Ctx {
    fn client(&self) -> Result<Client> {
        let server = self
            .cli_server
            .clone()
            .ok_or_else(|| anyhow!("no server: pass --server URL or set ASSIST_SERVER"))?;
        let token = self
            .cli_token
            .clone()
            .ok_or_else(|| anyhow!("no device token: pass --token or set ASSIST_DEVICE_TOKEN"))?;
        Ok(Client::new(
            ClientConfig::new(server, token),
            self.outbox.clone(),
        )?)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASSIST_LOG")
                .unwrap_or_else(|_| "warn,symphonia=off,symphonia_core=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn data_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d);
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set: pass --data-dir"))?;
    Ok(PathBuf::from(home).join(".local/share/assist-device"))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let dir = data_dir(cli.data_dir)?;
    let outbox = Outbox::open(&dir, OutboxConfig::default())
        .with_context(|| format!("cannot open the outbox in {}", dir.display()))?;
    let ctx = Ctx {
        cli_server: cli.server,
        cli_token: cli.token,
        outbox,
    };
    match cli.command {
        Command::Call(args) => call::run(&ctx, args).await,
        Command::Chat(c) => chat::run(&ctx, c).await,
        Command::Outbox(c) => outbox::run(&ctx, c).await,
        Command::Guard(c) => guard::run(&ctx, c).await,
        Command::Privacy(c) => privacy::run(&ctx, c),
    }
}
