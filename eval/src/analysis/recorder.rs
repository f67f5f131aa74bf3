//! The model behind a recording [`Generate`] wrapper, so the raw answers
//! (before the product's parser, repair turn and verbatim filter) can be
//! checked for schema validity and verbatim quotes.

use std::sync::{Arc, Mutex};

use assist_analysis::llm::{LlmAnalysis, RISK_CATEGORIES, parse_answer};
use assist_models::llm::{
    FinishReason, Generate, GenerateOptions, Generation, Llm, Message, StreamToken,
};
use serde_json::Value;

use super::score;

/// One model call as the wrapper saw it.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) kind: CallKind,
    pub(super) text: String,
    pub(super) generation: Generation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallKind {
    /// The first answer for a chunk.
    Chunk,
    /// The repair turn after an unparseable answer.
    Repair,
    /// Combining chunk summaries.
    Reduce,
}

/// The model, recording every answer.
pub(super) struct Recorder {
    pub(super) inner: Llm,
    pub(super) log: Arc<Mutex<Vec<Call>>>,
}

impl Generate for Recorder {
    fn chat(
        &mut self,
        messages: &[Message],
        opts: &GenerateOptions,
        on_token: &mut dyn FnMut(StreamToken<'_>) -> bool,
    ) -> assist_models::Result<Generation> {
        let generation = self.inner.chat(messages, opts, on_token)?;
        let kind = if messages
            .first()
            .is_some_and(|m| m.content.starts_with("Combine partial summaries"))
        {
            CallKind::Reduce
        } else if messages
            .last()
            .is_some_and(|m| m.content == assist_analysis::llm::REPAIR_REQUEST)
        {
            CallKind::Repair
        } else {
            CallKind::Chunk
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(Call {
                kind,
                text: generation.text.clone(),
                generation: generation.clone(),
            });
        }
        Ok(generation)
    }

    fn count_chat_tokens(&self, messages: &[Message]) -> assist_models::Result<usize> {
        self.inner.count_chat_tokens(messages)
    }

    fn context_length(&self) -> usize {
        self.inner.context_length()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// Whether a raw answer is, as it stands, one JSON object with every field of
/// the output schema in the right type (no fences, no chatter, no repair).
pub(super) fn schema_valid(text: &str) -> bool {
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text.trim()) else {
        return false;
    };
    let is_str = |k: &str| o.get(k).is_some_and(Value::is_string);
    let objs = |k: &str, f: &dyn Fn(&serde_json::Map<String, Value>) -> bool| {
        o.get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().all(|v| v.as_object().is_some_and(f)))
    };
    let s = |m: &serde_json::Map<String, Value>, k: &str| m.get(k).is_some_and(Value::is_string);
    is_str("summary")
        && is_str("sentiment")
        && is_str("next_best_action")
        && o.get("customer_needs").is_some_and(Value::is_array)
        && objs("objections", &|m| s(m, "objection"))
        && objs("tasks", &|m| s(m, "title") && s(m, "owner"))
        && objs("risk_tags", &|m| {
            s(m, "evidence_quote")
                && m.get("category")
                    .and_then(Value::as_str)
                    .is_some_and(|c| RISK_CATEGORIES.contains(&c))
        })
}

/// What the raw answers of one transcript show.
#[derive(Debug, Default, Clone)]
pub(super) struct RawStats {
    /// Every chunk's first answer is schema-valid as it stands.
    pub(super) all_chunks_valid: bool,
    /// Quotes in the parsed answers before the verbatim filter: (verbatim, all).
    pub(super) quotes_verbatim: usize,
    pub(super) quotes: usize,
    pub(super) cut_off: usize,
    pub(super) max_prompt_plus_answer: usize,
    pub(super) prompt_tokens: usize,
    pub(super) prompt_ms: f64,
    pub(super) decode_tokens: usize,
    pub(super) decode_ms: f64,
}

pub(super) fn raw_stats(calls: &[Call], segments: &[&str]) -> RawStats {
    let mut s = RawStats {
        all_chunks_valid: true,
        ..RawStats::default()
    };
    let mut pending = false;
    let count = |a: &LlmAnalysis, s: &mut RawStats| {
        for q in a.quotes() {
            s.quotes += 1;
            s.quotes_verbatim += usize::from(score::verbatim(q, segments));
        }
    };
    for c in calls {
        s.cut_off += usize::from(c.generation.finish_reason == FinishReason::Length);
        s.max_prompt_plus_answer = s
            .max_prompt_plus_answer
            .max(c.generation.prompt_tokens + c.generation.generated_tokens);
        s.prompt_tokens += c.generation.prompt_tokens;
        s.prompt_ms += c.generation.prompt_ms;
        s.decode_tokens += c.generation.generated_tokens.saturating_sub(1);
        s.decode_ms += (c.generation.total_ms - c.generation.time_to_first_token_ms).max(0.0);
        match c.kind {
            CallKind::Chunk => {
                s.all_chunks_valid &= schema_valid(&c.text);
                match parse_answer(&c.text) {
                    Some((a, _)) => {
                        count(&a, &mut s);
                        pending = false;
                    }
                    None => pending = true,
                }
            }
            CallKind::Repair if pending => {
                if let Some((a, _)) = parse_answer(&c.text) {
                    count(&a, &mut s);
                }
                pending = false;
            }
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_answers_must_have_every_field_to_be_valid() {
        let ok = r#"{"summary": "s", "customer_needs": [], "objections": [{"objection": "贵", "answer": null}],
            "tasks": [{"title": "发报价", "owner": "rep", "due_text": null, "source_quote": "x"}],
            "risk_tags": [{"category": "kickback", "evidence_quote": "返点", "confidence": 0.9}],
            "sentiment": "neutral", "next_best_action": "n"}"#;
        assert!(schema_valid(ok));
        assert!(!schema_valid(&format!("```json\n{ok}\n```")));
        assert!(!schema_valid(&ok.replace("kickback", "bribery")));
        assert!(!schema_valid(r#"{"summary": "s"}"#));
    }
}
