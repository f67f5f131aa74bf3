//! Alerts and their evidence as the API, the SSE stream and webhooks show them.

use serde::Serialize;

use crate::db::alerts::{AlertRow, RiskEventRow};
use crate::time::rfc3339;

/// The alert as the API, the stream and webhooks show it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub id: String,
    pub status: String,
    pub category: String,
    pub severity: String,
    pub source: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub conversation_id: Option<String>,
    pub call_id: Option<String>,
    pub snippet: String,
    pub occurrences: i64,
    pub created_at: String,
    pub updated_at: String,
    pub acknowledged_by: Option<String>,
    pub resolved_by: Option<String>,
    pub note: Option<String>,
    /// `confirmed` or `false_positive`, once someone judged it.
    pub verdict: Option<String>,
    pub verdict_by: Option<String>,
}

impl From<&AlertRow> for AlertView {
    fn from(a: &AlertRow) -> Self {
        AlertView {
            id: a.id.clone(),
            status: a.status.clone(),
            category: a.category.clone(),
            severity: a.severity.clone(),
            source: a.source.clone(),
            rep_user_id: a.rep_user_id.clone(),
            team_id: a.team_id.clone(),
            conversation_id: a.conversation_id.clone(),
            call_id: a.call_id.clone(),
            snippet: a.snippet.clone(),
            occurrences: a.occurrences,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
            acknowledged_by: a.acknowledged_by.clone(),
            resolved_by: a.resolved_by.clone(),
            note: a.note.clone(),
            verdict: a.verdict.clone(),
            verdict_by: a.verdict_by.clone(),
        }
    }
}

/// The evidence of one risk event, as the stream and webhooks show it.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceView {
    pub event_id: String,
    pub speaker: String,
    pub detector: String,
    pub rule: String,
    pub confidence: f64,
    pub message_id: Option<String>,
    pub segment_seq: Option<i64>,
    pub char_start: i64,
    pub char_end: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub snippet: String,
}

impl From<&RiskEventRow> for EvidenceView {
    fn from(e: &RiskEventRow) -> Self {
        EvidenceView {
            event_id: e.id.clone(),
            speaker: e.speaker.clone(),
            detector: e.detector.clone(),
            rule: e.rule.clone(),
            confidence: e.confidence,
            message_id: e.message_id.clone(),
            segment_seq: e.segment_seq,
            char_start: e.char_start,
            char_end: e.char_end,
            start_ms: e.start_ms,
            end_ms: e.end_ms,
            snippet: e.snippet.clone(),
        }
    }
}
