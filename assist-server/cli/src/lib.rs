//! The `assist` command line: `serve`, `models`, `admin`, `kb`,
//! `transcribe`, `config` and `demo`.
//!
//! [`main`] parses the command line with [`Cli`] (the server's
//! [`Config`] flattened in, so every setting has a flag, an `ASSIST_*`
//! variable and a TOML key) and runs one command. The commands are thin:
//! each opens what it needs from `assist_server` (the database, the model
//! store, the service) and prints what it did. The demo drives a real
//! server through the phone SDK, which is why it lives in this crate and
//! not in the server library.

mod admin;
mod context;
mod demo;
mod help;
mod kb;
mod models;
mod transcribe;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use assist_server::config::{Config, config_path_from, file_defaults};
use assist_server::telemetry::init_logging;

pub use admin::{AdminCommand, admin_with};
pub use context::{model_store, open_db};
pub use demo::DemoArgs;
pub use models::ModelsCommand;

/// Conversation assist for company work phones: transcription, in-call
/// suggestions, risk alerts and post-call analysis with local models.
#[derive(Debug, Parser)]
#[command(name = "assist", version, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file (`assist config` prints one with every setting).
    #[arg(long, env = "ASSIST_CONFIG", global = true)]
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub settings: Config,
    #[command(subcommand)]
    pub command: Command,
    /// Whether the log filter was set by flag, environment or file (else the
    /// one-shot commands log warnings only, so their own output stays readable).
    #[arg(skip)]
    pub log_level_explicit: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service until SIGINT/SIGTERM.
    #[command(after_help = "Examples:\n  \
        assist serve\n  \
        assist serve --listen 0.0.0.0:8080 --data-dir /var/lib/assist\n  \
        assist --config /etc/assist.toml serve")]
    Serve,
    /// Fetch, list and verify the local models.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        assist models fetch\n  \
        assist models fetch --only asr,embedder\n  \
        assist models list --json"
    )]
    Models(ModelsCommand),
    /// Create organisations, teams, users, devices and tokens.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        assist admin create-org \"Acme 销售\"\n  \
        assist admin create-user --org \"Acme 销售\" --role admin 王敏\n  \
        assist admin create-token --org \"Acme 销售\" --user 王敏"
    )]
    Admin(AdminCommand),
    /// Import, export, list and review scripts and the risk lexicon.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        assist kb import scripts.csv --org \"Acme 销售\" --as 李培训\n  \
        assist kb list --org \"Acme 销售\" --kind lexicon\n  \
        assist kb reindex"
    )]
    Kb(crate::kb::KbCommand),
    /// Transcribe recordings on this machine (no server needed), with a
    /// progress bar per file.
    #[command(after_help = "Examples:\n  \
        assist transcribe call.m4a other.amr --format srt --out subs/\n  \
        assist transcribe stereo-call.wav --channels rep_left")]
    Transcribe(crate::transcribe::TranscribeArgs),
    /// Fetch models if needed, start the service on a scratch data directory,
    /// and walk through it with real requests.
    #[command(after_help = "Examples:\n  \
        assist demo\n  \
        assist demo --keep-serving --listen 127.0.0.1:8080")]
    Demo(DemoArgs),
    /// Print the effective settings as a TOML file for `--config` (secrets
    /// hidden).
    #[command(after_help = "Examples:\n  \
        assist config > assist.toml\n  \
        assist --config assist.toml config")]
    Config,
}

/// Parse arguments with the TOML file's values installed as defaults.
pub fn parse_from(args: Vec<OsString>) -> Result<Cli, anyhow::Error> {
    let mut cmd = Cli::command();
    let mut file_sets_log_level = false;
    if let Some(path) = config_path_from(&args) {
        let defaults = file_defaults(&path)?;
        for (id, values) in defaults {
            file_sets_log_level |= id == "log_level";
            cmd = cmd.mut_arg(id.as_str(), |a| a.default_values(values));
        }
    }
    let cmd = help::settings_per_command(cmd);
    let matches = match cmd.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            // clap prints help/version/usage itself and picks the exit code.
            e.exit();
        }
    };
    let mut cli = Cli::from_arg_matches(&matches)?;
    if cli.settings.storage.secret_key_file.is_none() {
        cli.settings.storage.secret_key_file = Some(assist_server::secrets::default_key_file(
            cli.config.as_deref(),
            &cli.settings.storage.data_dir,
        ));
    }
    cli.log_level_explicit = !matches!(
        matches.value_source("log_level"),
        None | Some(clap::parser::ValueSource::DefaultValue)
    ) || file_sets_log_level;
    Ok(cli)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Everything this process writes (database, recordings, key file) is
    // for its own user only.
    assist_server::private_files::private_umask();
    let cli = match parse_from(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let mut log = cli.settings.log.clone();
    if !cli.log_level_explicit && !matches!(cli.command, Command::Serve) {
        log.log_level = "warn,qdrant_edge=error".into();
    }
    init_logging(&log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.settings;
    match cli.command {
        Command::Serve => assist_server::serve::serve(config).await,
        Command::Models(cmd) => models::run(&config, cmd).await,
        Command::Admin(cmd) => admin::run(&config, cmd).await,
        Command::Kb(cmd) => {
            let db = open_db(&config).await?;
            let policy = assist_knowledge_base::ReviewPolicy {
                allow_self_approval: config.kb.kb_allow_self_approval,
            };
            let out = match cmd {
                crate::kb::KbCommand::Reindex => crate::kb::reindex(&config, &db).await,
                cmd => crate::kb::run(&db, cmd, policy).await,
            };
            db.close().await;
            out
        }
        Command::Transcribe(args) => crate::transcribe::run(&config, args).await,
        Command::Demo(args) => crate::demo::run(config, args).await,
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(())
        }
    }
}
