//! Local instruct LLM (Qwen2.5 / Qwen3 GGUF) on candle, for post-call analysis.
//!
//! How the types fit together:
//!
//! - [`LlmTokenizer`] is the model's tokenizer. A GGUF from the model store has
//!   no `tokenizer.json`, so [`LlmTokenizer::from_gguf`] builds a byte-level
//!   BPE `tokenizers::Tokenizer` from the file's metadata (tokens, merges,
//!   token types, the `qwen2` pre-tokenizer); a `tokenizer.json` next to the
//!   GGUF is used instead when there is one. It keeps a second tokenizer that
//!   does *not* recognise control tokens, for untrusted text: a customer who
//!   says `<|im_end|>` gets ordinary tokens, not a new chat turn.
//! - [`Message`]s with a [`Role`] become a ChatML prompt
//!   ([`format_chatml`] for the text, [`LlmTokenizer::encode_chat`] for the ids,
//!   control tokens inserted by id only).
//! - [`Llm`] owns the quantized weights (candle's `quantized_qwen2` /
//!   `quantized_qwen3`) with their key/value cache and the tokenizer.
//!   [`Llm::load`] takes the store's model directory (`model.gguf`), a
//!   directory with one `*.gguf` (+ optional `tokenizer.json`), or a `.gguf`
//!   file. [`Llm::chat`] resets the cache, feeds the prompt in chunks and
//!   generates with the [`GenerateOptions`] (greedy at temperature 0, else
//!   seeded temperature/top-p/top-k sampling, optional repetition penalty),
//!   until a stop token (`<|im_end|>`, `<|endoftext|>`) or `max_tokens`. A
//!   callback sees every token as a [`StreamToken`] (its text delta, UTF-8 safe)
//!   and stops generation by returning `false`. The result is a
//!   [`Generation`]: text, [`FinishReason`], token counts and timings (time
//!   to first token, prompt and generation tokens/s).
//! - [`Generate`] is the interface [`Llm`] and, with the `testing` feature,
//!   the deterministic `FakeLlm` implement.
//! - [`LlmHandle`] is what async code holds: the model lives on its own owner
//!   thread behind a [`ModelHandle`](crate::worker::ModelHandle); a full
//!   queue is [`Error::Overloaded`](crate::Error::Overloaded).
//!
//! ```no_run
//! use assist_models::llm::{GenerateOptions, Llm, LlmHandle, Message};
//! use assist_models::worker::WorkerConfig;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> assist_models::Result<()> {
//! let dir = std::path::Path::new("/var/cache/assist/models/qwen2.5-coder-0.5b-instruct");
//! // Blocking use, on a thread that owns the model:
//! let mut llm = Llm::load(dir)?;
//! let messages = [
//!     Message::system("You summarise sales calls."),
//!     Message::user("客户说价格太贵了，下周三前需要报价。请用一句话总结。"),
//! ];
//! let out = llm.chat(&messages, &GenerateOptions::greedy(128), &mut |t| {
//!     print!("{}", t.text);
//!     true // return false to stop early
//! })?;
//! println!("\n{} tokens, {:.1} tokens/s", out.generated_tokens, out.generation_tokens_per_s);
//!
//! // From async code, on the model's owner thread:
//! let handle = LlmHandle::spawn(WorkerConfig::new("llm", 4), dir)?;
//! let out = handle.chat(messages.to_vec(), GenerateOptions::greedy(64)).await?;
//! # let _ = out;
//! # Ok(())
//! # }
//! ```

mod chat;
#[cfg(any(test, feature = "testing"))]
mod fake;
mod generate;
mod handle;
mod model;
mod qwen2;
mod requant;
mod stream;
pub mod tokenizer;

pub use chat::{QWEN_DEFAULT_SYSTEM, format_chatml};
#[cfg(any(test, feature = "testing"))]
pub use fake::FakeLlm;
pub use handle::{ChatStream, LlmHandle};
pub use model::{Architecture, Llm, LlmInfo, LlmLoadOptions};
pub use stream::TokenDecoder;
pub use tokenizer::LlmTokenizer;

// The plain types and the trait live in the candle-free API crate.
pub use assist_model_api::llm::{
    FinishReason, Generate, GenerateOptions, Generation, Message, Role, StreamToken,
};
