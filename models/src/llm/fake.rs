//! A deterministic stand-in LLM for tests of crates that use models
//! (feature `testing`): no weights, instant, same interface.

use std::time::Instant;

use super::{FinishReason, Generate, GenerateOptions, Generation, Message, Role, StreamToken};
use crate::Result;

type Responder = Box<dyn Fn(&[Message]) -> String + Send>;

/// Answers with a text chosen by a function of the messages (by default
/// `echo: <last user message>`), streamed as one "token" per
/// whitespace-separated piece (the spaces travel with the pieces). Token
/// counts are character counts / 4, rounded up. Honours `max_tokens` and
/// cancellation like the real model.
pub struct FakeLlm {
    respond: Responder,
    context_length: usize,
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm")
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}

impl FakeLlm {
    /// Echo the last user message.
    pub fn echo() -> Self {
        Self::new(|messages: &[Message]| {
            let last = messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.as_str())
                .unwrap_or("");
            format!("echo: {last}")
        })
    }

    /// Answer with `respond(messages)` (for scripted JSON answers in tests).
    pub fn new(respond: impl Fn(&[Message]) -> String + Send + 'static) -> Self {
        FakeLlm {
            respond: Box::new(respond),
            context_length: 32_768,
        }
    }

    /// The pieces [`Generate::chat`] streams for `text`.
    pub fn pieces(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if c.is_whitespace() && i > start && !text[start..i].trim().is_empty() {
                out.push(&text[start..i]);
                start = i;
            }
        }
        if start < text.len() {
            out.push(&text[start..]);
        }
        out
    }
}

fn fake_tokens(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|m| m.content.chars().count().div_ceil(4) + 4)
        .sum::<usize>()
        + 3
}

impl Generate for FakeLlm {
    fn chat(
        &mut self,
        messages: &[Message],
        opts: &GenerateOptions,
        on_token: &mut dyn FnMut(StreamToken<'_>) -> bool,
    ) -> Result<Generation> {
        let started = Instant::now();
        let reply = (self.respond)(messages);
        let mut text = String::new();
        let mut finish = FinishReason::Stop;
        let mut emitted = 0;
        for (index, piece) in Self::pieces(&reply).into_iter().enumerate() {
            if index >= opts.max_tokens {
                finish = FinishReason::Length;
                break;
            }
            text.push_str(piece);
            emitted += 1;
            let go_on = on_token(StreamToken {
                id: index as u32,
                index,
                text: piece,
            });
            if !go_on {
                finish = FinishReason::Cancelled;
                break;
            }
        }
        let ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(Generation {
            generated_tokens: emitted,
            text,
            finish_reason: finish,
            prompt_tokens: fake_tokens(messages),
            cached_prompt_tokens: 0,
            prompt_ms: 0.0,
            time_to_first_token_ms: ms,
            total_ms: ms,
            prompt_tokens_per_s: 0.0,
            generation_tokens_per_s: 0.0,
        })
    }

    fn count_chat_tokens(&self, messages: &[Message]) -> Result<usize> {
        Ok(fake_tokens(messages))
    }

    fn context_length(&self) -> usize {
        self.context_length
    }

    fn name(&self) -> &str {
        "fake-llm"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_streams_and_honours_limits() {
        let mut llm = FakeLlm::echo();
        let mut seen = Vec::new();
        let out = llm
            .chat(
                &[Message::user("one two three")],
                &GenerateOptions::greedy(100),
                &mut |t| {
                    seen.push(t.text.to_string());
                    true
                },
            )
            .unwrap();
        assert_eq!(out.text, "echo: one two three");
        assert_eq!(seen.concat(), out.text);
        assert_eq!(seen.len(), 4);
        assert_eq!(out.finish_reason, FinishReason::Stop);

        let cut = llm
            .chat(
                &[Message::user("one two three")],
                &GenerateOptions::greedy(2),
                &mut |_| true,
            )
            .unwrap();
        assert_eq!(cut.text, "echo: one");
        assert_eq!(cut.finish_reason, FinishReason::Length);

        let stopped = llm
            .chat(
                &[Message::user("one two three")],
                &GenerateOptions::greedy(100),
                &mut |t| t.index < 1,
            )
            .unwrap();
        assert_eq!(stopped.text, "echo: one");
        assert_eq!(stopped.finish_reason, FinishReason::Cancelled);
    }
}
