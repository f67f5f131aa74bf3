//! Measurement for the assist service.
//!
//! The convention every benchmark follows: measure our figure and the same
//! figure for a named peer **in the same run** (same machine, same input, same
//! threads), print both with their ratio, and write a JSON and a Markdown
//! report ([`report::Report`]). Benchmarks are programs, never test asserts.
//!
//! How the modules fit together: [`cli`] maps each `assist-eval` subcommand
//! to one module's `run` (`asr`, `asr_bench`, `asr_stream`, `analysis`,
//! `risk`, `retrieval`, `retrieval_bench`, `llm_bench`, `alert_latency`, `chat_batch`,
//! `live_latency`, `vad_agree`, `verify_bench`). What several of them share sits in
//! modules of its own that depend on no subcommand, so the arrows run one
//! way: [`setup`] (cache directory, ready models, Python venvs, external
//! tools, reference inputs), [`audio`] (synthetic speech through a telephone
//! channel), [`asr_engines`] (ours and faster-whisper in child processes,
//! same JSON) and [`error_rate`] (normalised WER and CER).
//!
//! ```
//! use assist_eval::report::{Better, Figure, Report};
//! let mut r = Report::new("example", "what was measured");
//! r.push(Figure::new("throughput", "MB/s", 500.0, Better::Higher).peer("sha256sum", 400.0));
//! assert!((r.figures[0].ratio.unwrap() - 1.25).abs() < 1e-9);
//! ```

pub mod alert_latency;
pub mod analysis;
pub mod asr;
pub mod asr_bench;
pub mod asr_engines;
pub mod asr_stream;
pub mod audio;
pub mod chat_batch;
pub mod cli;
pub mod endpoint;
pub mod error_rate;
pub mod live_asr;
pub mod live_latency;
pub mod llm_bench;
pub mod report;
pub mod retrieval;
pub mod retrieval_bench;
pub mod risk;
pub mod setup;
pub mod vad_agree;
pub mod verify_bench;
