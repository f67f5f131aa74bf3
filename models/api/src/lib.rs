//! The interface of the local models, usable without candle.
//!
//! Code that *uses* a model — the risk engine, post-call analysis, the
//! server's routes, tests with fake models — needs the traits, the plain
//! data they exchange, the error type and the worker, but not the inference
//! engine. This crate holds exactly those; `assist-models` implements the
//! traits on candle and re-exports everything here at its old paths
//! (`assist_models::speech::Transcribe`, `assist_models::worker::ModelHandle`,
//! `assist_models::Error`, ...), so either crate can be named.
//!
//! How the pieces fit together:
//!
//! - [`speech::Transcribe`] turns 16 kHz samples into a [`speech::Transcript`];
//!   [`llm::Generate`] answers chat [`llm::Message`]s with a
//!   [`llm::Generation`], streaming [`llm::StreamToken`]s;
//!   [`embed::Embed`] turns texts into vectors.
//! - A model's forward pass takes `&mut self` and may run for seconds, so a
//!   model lives on one owner thread: [`worker::ModelHandle`] is the cheap,
//!   cloneable handle async code holds, sending jobs over a bounded channel.
//!   A full queue is [`Error::Overloaded`] at once, never an unbounded wait.
//! - [`Error`] is the one error type of the models, shared with
//!   `assist-models` (whose model store reports through it as well).
//!
//! ```
//! use assist_model_api::embed::{Embed, EmbedKind};
//! use assist_model_api::worker::{ModelHandle, WorkerConfig};
//!
//! /// A stand-in embedder: one dimension, the text's length.
//! struct Lengths;
//! impl Embed for Lengths {
//!     fn embed(&mut self, texts: &[&str], _: EmbedKind) -> assist_model_api::Result<Vec<Vec<f32>>> {
//!         Ok(texts.iter().map(|t| vec![t.chars().count() as f32]).collect())
//!     }
//!     fn dim(&self) -> usize {
//!         1
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> assist_model_api::Result<()> {
//! let handle = ModelHandle::spawn(WorkerConfig::new("lengths", 4), || Ok(Lengths))?;
//! let v = handle
//!     .run(|m: &mut Lengths| m.embed(&["价格太贵了"], EmbedKind::Query))
//!     .await?;
//! assert_eq!(v, vec![vec![5.0]]);
//! handle.shutdown();
//! # Ok(())
//! # }
//! ```

pub mod embed;
pub mod error;
pub mod llm;
pub mod speech;
pub mod worker;

pub use error::{Error, Result};
