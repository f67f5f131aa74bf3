//! The deterministic extractors of [`crate`] in the shape the
//! `analyze` job needs: transcript turns in, tasks with resolved due times,
//! coaching metrics as JSON out, all relative to the call's start in the
//! organisation's time zone.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::Speaker;
use crate::llm::Turn;
use crate::{Segment, coaching, commitments, dates};

/// A task the rules found.
#[derive(Debug, Clone)]
pub struct RuleTask {
    pub title: String,
    /// `rep` or `customer`.
    pub owner: String,
    pub due_at: Option<i64>,
    pub due_text: Option<String>,
    pub source_quote: String,
}

fn zone(name: &str) -> TimeZone {
    dates::org_time_zone(Some(name))
        .or_else(|_| dates::org_time_zone(None))
        .unwrap_or(TimeZone::UTC)
}

/// `ms` as RFC 3339 with the zone's offset ("2026-11-24T10:00:00+08:00").
pub fn local_rfc3339(ms: i64, time_zone: &str) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let offset = zone(time_zone).to_offset(ts);
    ts.display_with_offset(offset).to_string()
}

fn speaker(s: &str) -> Speaker {
    match s {
        "rep" => Speaker::Rep,
        "customer" => Speaker::Customer,
        _ => Speaker::Unknown,
    }
}

fn segments(turns: &[Turn]) -> Vec<Segment<'_>> {
    turns
        .iter()
        .map(|t| Segment {
            start_ms: t.start_ms,
            end_ms: t.end_ms,
            speaker: speaker(&t.speaker),
            text: &t.text,
        })
        .collect()
}

fn reference(started_ms: i64, time_zone: &str) -> Option<jiff::Zoned> {
    let tz = zone(time_zone);
    dates::reference_time(&local_rfc3339(started_ms, time_zone), &tz).ok()
}

/// Commitments and requests as tasks, due times resolved.
pub fn extract_tasks(turns: &[Turn], started_ms: i64, time_zone: &str) -> Vec<RuleTask> {
    let Some(start) = reference(started_ms, time_zone) else {
        return Vec::new();
    };
    commitments::find_tasks(&segments(turns), &start)
        .into_iter()
        .map(|c| RuleTask {
            title: c.title,
            owner: match c.owner {
                commitments::Owner::Customer => "customer".into(),
                _ => "rep".into(),
            },
            due_at: c
                .due
                .as_ref()
                .and_then(|d| d.at())
                .map(|t| t.as_millisecond()),
            due_text: c.due.as_ref().map(|d| d.text.clone()),
            source_quote: c.source_quote,
        })
        .collect()
}

/// The due time of a phrase such as "明天下午三点前", if it resolves.
pub fn resolve_due(text: &str, started_ms: i64, time_zone: &str) -> Option<i64> {
    let start = reference(started_ms, time_zone)?;
    dates::find_due_dates(text, &start)
        .iter()
        .find_map(|d| d.at())
        .map(|t| t.as_millisecond())
}

/// Coaching metrics of one call, with its count of risk events, as JSON.
pub fn coaching_metrics(turns: &[Turn], risk_events: usize) -> Value {
    let metrics = coaching::analyze_call(&segments(turns), &Default::default());
    let mut v = serde_json::to_value(metrics).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("risk_events".into(), Value::from(risk_events));
    }
    v
}
