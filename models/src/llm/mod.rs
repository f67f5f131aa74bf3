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

use serde::{Deserialize, Serialize};

pub use chat::{QWEN_DEFAULT_SYSTEM, format_chatml};
#[cfg(any(test, feature = "testing"))]
pub use fake::FakeLlm;
pub use handle::{ChatStream, LlmHandle};
pub use model::{Architecture, Llm, LlmInfo, LlmLoadOptions};
pub use stream::TokenDecoder;
pub use tokenizer::LlmTokenizer;

use crate::Result;

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The role's name in a ChatML prompt.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Message::new(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Message::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Message::new(Role::Assistant, content)
    }
}

/// How to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateOptions {
    /// Most tokens to generate (stop tokens not counted). Also capped by
    /// what is left of the model's context after the prompt.
    pub max_tokens: usize,
    /// 0 = greedy (argmax, deterministic); above 0 = sampling.
    pub temperature: f64,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    pub top_p: Option<f64>,
    /// Keep only the `k` most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Seed of the sampler: the same seed, prompt and options give the same text.
    pub seed: u64,
    /// Divide (positive) / multiply (negative) the logits of tokens already
    /// generated by this; 1.0 = off. Only generated tokens are penalised, so
    /// quoting the prompt verbatim stays cheap.
    pub repeat_penalty: f32,
    /// How many of the last generated tokens the penalty looks at.
    pub repeat_last_n: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 512,
            temperature: 0.0,
            top_p: None,
            top_k: None,
            seed: 42,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
        }
    }
}

impl GenerateOptions {
    /// Deterministic argmax decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        GenerateOptions {
            max_tokens,
            ..GenerateOptions::default()
        }
    }

    /// Seeded sampling at `temperature` with nucleus `top_p`.
    pub fn sampled(max_tokens: usize, temperature: f64, top_p: f64, seed: u64) -> Self {
        GenerateOptions {
            max_tokens,
            temperature,
            top_p: Some(top_p),
            seed,
            ..GenerateOptions::default()
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced a stop token (`<|im_end|>`, `<|endoftext|>`).
    Stop,
    /// `max_tokens` (or the end of the context window) was reached: the text may be cut off.
    Length,
    /// The token callback returned `false` (caller cancelled, client gone).
    Cancelled,
}

/// One generated token, as the streaming callback sees it.
#[derive(Debug, Clone, Copy)]
pub struct StreamToken<'a> {
    /// Token id.
    pub id: u32,
    /// 0 for the first generated token.
    pub index: usize,
    /// New text this token completes. Empty while a multi-byte character is
    /// still incomplete (its bytes come with the next token); the deltas of all
    /// tokens concatenate to [`Generation::text`].
    pub text: &'a str,
}

/// What a generation produced, with its measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The generated text, stop token excluded.
    pub text: String,
    pub finish_reason: FinishReason,
    /// Tokens in the prompt (chat template included).
    pub prompt_tokens: usize,
    /// Of those, tokens whose keys and values were reused from the previous
    /// call (a shared prefix such as the system prompt), not computed.
    #[serde(default)]
    pub cached_prompt_tokens: usize,
    /// Tokens generated (stop token excluded).
    pub generated_tokens: usize,
    /// Reading the prompt (all forward passes over it), milliseconds.
    pub prompt_ms: f64,
    /// From the start of the call to the first generated token, milliseconds.
    pub time_to_first_token_ms: f64,
    /// The whole call, milliseconds.
    pub total_ms: f64,
    /// Computed (not reused) prompt tokens per second of `prompt_ms`.
    pub prompt_tokens_per_s: f64,
    /// Decoding speed: one-token forward passes per second after the prompt.
    pub generation_tokens_per_s: f64,
}

/// A chat model. Implemented by [`Llm`] and the test fake.
pub trait Generate: Send + 'static {
    /// Answer `messages` (ChatML), calling `on_token` for every generated
    /// token; generation stops when it returns `false`.
    fn chat(
        &mut self,
        messages: &[Message],
        opts: &GenerateOptions,
        on_token: &mut dyn FnMut(StreamToken<'_>) -> bool,
    ) -> Result<Generation>;

    /// Tokens in the ChatML prompt of `messages` (for context budgeting).
    fn count_chat_tokens(&self, messages: &[Message]) -> Result<usize>;

    /// Tokens the model can attend to: prompt plus generated text.
    fn context_length(&self) -> usize;

    /// The model's name, for logs.
    fn name(&self) -> &str;
}
