//! The post-call analysis document: what `GET /v1/calls/{id}/analysis`
//! returns and what the server stores for each analysed call.
//!
//! It joins three sources, each item saying where it came from: the local
//! LLM (summary, needs, objections, sentiment, next action, tasks and risk
//! tags whose quotes were found verbatim in the transcript), the rule
//! extractors (tasks with resolved due times) and the risk engine (risk
//! tags). `llm` says how the model run went; without a model the document
//! carries the deterministic parts and `llm.status` says why.

use serde::{Deserialize, Serialize};

/// One analysed call. `T` is the task type: [`DocumentTask`] as stored;
/// the API shows each task as it is now (a rep may have completed it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisDocument<T = DocumentTask> {
    pub call_id: String,
    /// `zh` or `en`: the language of the summary.
    pub language: String,
    pub summary: String,
    #[serde(default)]
    pub customer_needs: Vec<String>,
    #[serde(default)]
    pub objections: Vec<Objection>,
    pub tasks: Vec<T>,
    #[serde(default)]
    pub risk_tags: Vec<RiskTag>,
    /// `positive`, `neutral`, `negative`, `improving` or `worsening`;
    /// `null` when the model gave none.
    pub sentiment: Option<String>,
    #[serde(default)]
    pub next_best_action: String,
    pub llm: LlmRun,
}

impl<T> AnalysisDocument<T> {
    /// The same document with its tasks replaced.
    pub fn with_tasks<U>(self, tasks: Vec<U>) -> AnalysisDocument<U> {
        AnalysisDocument {
            call_id: self.call_id,
            language: self.language,
            summary: self.summary,
            customer_needs: self.customer_needs,
            objections: self.objections,
            tasks,
            risk_tags: self.risk_tags,
            sentiment: self.sentiment,
            next_best_action: self.next_best_action,
            llm: self.llm,
        }
    }
}

/// A customer's concern and how the rep answered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Objection {
    pub objection: String,
    pub answer: Option<String>,
}

/// A follow-up task as the analysis stored it (the task row's id included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentTask {
    pub id: String,
    pub title: String,
    /// `rep` or `customer`.
    pub owner: String,
    /// The resolved due time (RFC 3339).
    pub due: Option<String>,
    /// The transcript's words saying when.
    pub due_text: Option<String>,
    /// The words of the promise, verbatim from the transcript.
    pub source_quote: Option<String>,
    /// `rule`, `llm` or `both`.
    pub origin: String,
}

/// A risk tag with its verbatim evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskTag {
    pub category: String,
    pub evidence_quote: String,
    pub confidence: f64,
    /// `engine` (the risk engine's event), `llm`, or `both`.
    pub origin: String,
}

/// How the model run went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmRun {
    pub model: String,
    /// `ok`, `repaired` (a second turn was needed), `invalid_output`, `off`,
    /// `empty_transcript`.
    pub status: String,
    #[serde(default)]
    pub chunks: usize,
    #[serde(default)]
    pub calls: usize,
    #[serde(default)]
    pub prompt_tokens: usize,
    /// Prompt tokens reused from the model's cache (the shared system prompt).
    #[serde(default)]
    pub cached_prompt_tokens: usize,
    #[serde(default)]
    pub generated_tokens: usize,
    #[serde(default)]
    pub ms: f64,
    /// Quotes that were not in the transcript and were dropped.
    #[serde(default)]
    pub dropped_quotes: usize,
    /// Answers cut off at the token limit (closed by the parser).
    #[serde(default)]
    pub truncated: usize,
    /// Answers stopped early because they started repeating themselves.
    #[serde(default)]
    pub stopped_repeating: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_document_reads_back_and_keeps_its_shape() {
        let json = r#"{"call_id":"call_1","language":"zh","summary":"客户要报价。",
            "customer_needs":["报价"],"objections":[{"objection":"太贵","answer":null}],
            "tasks":[{"id":"task_1","title":"发报价","owner":"rep","due":null,"due_text":"明天",
            "source_quote":"我明天把报价发您","origin":"rule"}],
            "risk_tags":[{"category":"kickback","evidence_quote":"返点私下给你","confidence":0.9,"origin":"engine"}],
            "sentiment":null,"next_best_action":"","llm":{"model":"","status":"off"}}"#;
        let doc: AnalysisDocument = serde_json::from_str(json).unwrap();
        assert_eq!(doc.tasks[0].origin, "rule");
        assert_eq!(doc.llm.status, "off");
        let back = serde_json::to_value(&doc).unwrap();
        assert_eq!(back["risk_tags"][0]["origin"], "engine");
        assert!(back["sentiment"].is_null());
        let titles = doc.with_tasks(vec!["发报价"]);
        assert_eq!(titles.tasks, ["发报价"]);
    }
}
