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
    /// Script-suggestion quality: BM25 only, vectors only and hybrid, side by side.
    Retrieval {
        /// Folder with scripts.jsonl and queries.jsonl.
        #[arg(long, default_value = "eval/data/retrieval")]
        data: PathBuf,
        /// Weight of the BM25 ranking in the fusion.
        #[arg(long, default_value_t = 1.0)]
        bm25_weight: f64,
        /// Weight of the vector ranking in the fusion (the service's default).
        #[arg(long, default_value_t = 1.5)]
        vector_weight: f64,
        /// RRF constant.
        #[arg(long, default_value_t = 60.0)]
        rrf_k: f64,
    },
    /// Risk-engine quality: precision / recall / F1 per category for lexicon
    /// only, + pattern detectors, + the semantic detector.
    Risk {
        /// Folder with lexicon.jsonl and conversations.jsonl.
        #[arg(long, default_value = "eval/data/risk")]
        data: PathBuf,
        /// Skip the semantic detector (no embedder needed).
        #[arg(long)]
        no_semantic: bool,
        /// Use this semantic threshold instead of calibrating one on the dev half.
        #[arg(long)]
        threshold: Option<f32>,
        /// Print every message the full mix gets wrong.
        #[arg(long)]
        show_errors: bool,
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
        Command::Retrieval {
            data,
            bm25_weight,
            vector_weight,
            rrf_k,
        } => crate::retrieval::run(
            model_dir,
            &data,
            &cli.out,
            assist_indexer::FusionWeights {
                bm25: bm25_weight,
                vector: vector_weight,
                k: rrf_k,
            },
        )
        .map(|_| ()),
        Command::Risk {
            data,
            no_semantic,
            threshold,
            show_errors,
        } => crate::risk::run(
            model_dir,
            &data,
            &cli.out,
            !no_semantic,
            threshold,
            show_errors,
        )
        .map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
