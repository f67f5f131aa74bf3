//! Post-call analysis with the local LLM: one JSON document per conversation.
//!
//! How it works:
//!
//! - [`prompt`] turns a [`Transcript`] into ChatML messages: the fields and
//!   rules in the system message, two worked examples (one Chinese, one
//!   English) as earlier turns, then the numbered transcript inside
//!   `<transcript>` tags in the last user message, marked as data. All but
//!   the last message are the same for every call, so the model's cache
//!   keeps them. Customer text
//!   is tokenised without control tokens (see `assist_models::llm`), so a
//!   message like "ignore previous instructions…" stays text.
//! - The model's answer goes through [`parse_answer`]: the first JSON object
//!   is cut out (code fences and chatter around it ignored), trailing commas
//!   dropped, and a cut-off answer closed; each field is then read
//!   leniently into [`LlmAnalysis`] (unknown fields ignored, wrong types
//!   skipped). If nothing parses, one repair turn asks the model for the JSON
//!   alone; if that fails too the document says `llm.status =
//!   "invalid_output"` and carries only what the deterministic extractors
//!   found. Our output is always valid JSON because we build it.
//! - [`verify_quotes`]: every `source_quote` and `evidence_quote` must be a
//!   verbatim substring of the transcript. A quote that matches after
//!   ignoring spaces and punctuation is replaced by the transcript's exact
//!   words; anything else is dropped (risk tags without evidence are
//!   dropped, tasks keep their title with `source_quote: null`, and the merge
//!   keeps such a task only where a rule confirms it) and counted.
//! - Transcripts longer than the prompt budget are analysed in chunks of
//!   whole segments (map); lists are concatenated and de-duplicated and the
//!   chunk summaries are combined by one more short call (reduce).

use assist_models::llm::{GenerateOptions, LlmHandle, Message};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod answer;
mod prompt;
mod quotes;
mod run;
#[cfg(test)]
mod tests;

pub use answer::*;
pub use prompt::*;
pub use quotes::*;
pub use run::*;

/// One segment of a transcript.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Turn {
    /// `rep`, `customer` or `unknown`.
    pub speaker: String,
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// What the analysis reads.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// `zh` or `en` (the summary's language).
    pub language: String,
    /// When the conversation started (RFC 3339), for relative due dates.
    pub started_at: String,
    pub turns: Vec<Turn>,
}

pub use assist_protocol::analysis::{LlmRun, Objection};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmTask {
    pub title: String,
    /// `rep` or `customer`.
    pub owner: String,
    /// The words that say when, as the model quoted them.
    pub due_text: Option<String>,
    pub source_quote: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmRiskTag {
    pub category: String,
    pub evidence_quote: String,
    pub confidence: f64,
}

/// What the model said, after lenient parsing and quote checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmAnalysis {
    pub summary: String,
    pub customer_needs: Vec<String>,
    pub objections: Vec<Objection>,
    pub tasks: Vec<LlmTask>,
    pub risk_tags: Vec<LlmRiskTag>,
    pub sentiment: String,
    pub next_best_action: String,
}

impl LlmAnalysis {
    /// Every quote offered as evidence: the tasks' source quotes, then the
    /// risk tags' evidence.
    pub fn quotes(&self) -> impl Iterator<Item = &str> {
        self.tasks
            .iter()
            .filter_map(|t| t.source_quote.as_deref())
            .chain(self.risk_tags.iter().map(|r| r.evidence_quote.as_str()))
    }
}

pub const RISK_CATEGORIES: [&str; 7] = [
    "side_deal",
    "kickback",
    "private_contact",
    "competitor",
    "abuse",
    "over_promising",
    "compliance_phrase",
];
/// Whether a model's risk tags are worth keeping by default. The 0.5B's
/// are not: on the labelled set they scored risk F1 0.04 alone and, merged
/// with the engine's, cut its precision from 0.94 to 0.375 (it tags
/// ordinary lines `side_deal` with the examples' confidence). The 1.5B's
/// raised the merged recall from 0.58 to 0.69 at precision 0.75.
pub fn trusts_risk_tags(model: &str) -> bool {
    !matches!(model, "llm-small" | "qwen2.5-coder-0.5b-instruct")
}

pub(crate) const SENTIMENTS: [&str; 5] =
    ["positive", "neutral", "negative", "improving", "worsening"];
