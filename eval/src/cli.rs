//! The `assist-eval` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks and quality reports for the assist service. Every figure is
/// printed beside the same figure for a named peer measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "assist-eval", version)]
pub struct Cli {
    /// Where reports (JSON + Markdown) are written.
    #[arg(long, global = true, default_value = "eval/reports")]
    pub out: PathBuf,
    /// Model cache (as for `assist`).
    #[arg(long, env = "ASSIST_MODEL_DIR", global = true)]
    pub model_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Model verification throughput vs coreutils sha256sum.
    VerifyBench {
        /// Model id or role.
        #[arg(long, default_value = "asr")]
        model: String,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let model_dir = cli
        .model_dir
        .clone()
        .unwrap_or_else(assist_server::config::default_model_dir);
    let result = match cli.command {
        Command::VerifyBench { model, rounds } => {
            crate::verify_bench::run(model_dir, &model, rounds, &cli.out).map(|_| ())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
