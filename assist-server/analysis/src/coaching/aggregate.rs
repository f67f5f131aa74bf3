//! Coaching metrics of many calls: per rep and per team over a period.
//!
//! Totals add up; means are over the calls that have the value (a call
//! without customer talk has no talk/listen ratio and does not pull the mean
//! to zero); counts say how many calls went in.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{CallMetrics, TrendDirection};

/// One analysed call, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub rep_id: String,
    pub team_id: Option<String>,
    pub started_at: Timestamp,
    pub metrics: CallMetrics,
}

/// A half-open period `[from, to)`; an open end is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Period {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl Period {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }
}

/// Totals, means and counts over a set of calls.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AggregateMetrics {
    pub call_count: usize,
    pub total_duration_ms: i64,
    pub total_rep_talk_ms: i64,
    pub total_customer_talk_ms: i64,
    pub total_silence_ms: i64,
    pub total_turns: usize,
    pub total_rep_questions: usize,
    pub total_rep_interruptions: usize,
    pub total_customer_interruptions: usize,
    pub mean_duration_ms: Option<f64>,
    /// Mean of the calls' talk/listen ratios.
    pub mean_talk_listen_ratio: Option<f64>,
    /// Mean of the calls' rep talk shares.
    pub mean_rep_talk_share: Option<f64>,
    /// Total rep talk ÷ total rep and customer talk (long calls weigh more).
    pub overall_rep_talk_share: Option<f64>,
    pub mean_longest_rep_monologue_ms: Option<f64>,
    pub max_longest_rep_monologue_ms: i64,
    pub mean_rep_questions_per_call: Option<f64>,
    /// Rep questions per hour of call time.
    pub rep_questions_per_hour: Option<f64>,
    pub mean_rep_interruptions_per_call: Option<f64>,
    pub mean_rep_zh_chars_per_min: Option<f64>,
    pub mean_rep_en_words_per_min: Option<f64>,
    pub mean_silence_share: Option<f64>,
    pub max_longest_silence_ms: i64,
    /// Mean of the calls' mean customer sentiment.
    pub mean_customer_sentiment: Option<f64>,
    pub improving_calls: usize,
    pub steady_calls: usize,
    pub declining_calls: usize,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Aggregate any number of calls' metrics.
pub fn aggregate<'a>(calls: impl IntoIterator<Item = &'a CallMetrics>) -> AggregateMetrics {
    let calls: Vec<&CallMetrics> = calls.into_iter().collect();
    let mut a = AggregateMetrics {
        call_count: calls.len(),
        ..AggregateMetrics::default()
    };
    for c in &calls {
        a.total_duration_ms += c.duration_ms;
        a.total_rep_talk_ms += c.rep_talk_ms;
        a.total_customer_talk_ms += c.customer_talk_ms;
        a.total_silence_ms += c.silence_ms;
        a.total_turns += c.turn_count;
        a.total_rep_questions += c.rep_questions;
        a.total_rep_interruptions += c.rep_interruptions;
        a.total_customer_interruptions += c.customer_interruptions;
        a.max_longest_rep_monologue_ms = a
            .max_longest_rep_monologue_ms
            .max(c.longest_rep_monologue_ms);
        a.max_longest_silence_ms = a.max_longest_silence_ms.max(c.longest_silence_ms);
        match c.sentiment_trend.map(|t| t.direction) {
            Some(TrendDirection::Improving) => a.improving_calls += 1,
            Some(TrendDirection::Steady) => a.steady_calls += 1,
            Some(TrendDirection::Declining) => a.declining_calls += 1,
            None => {}
        }
    }
    let each = |f: fn(&CallMetrics) -> Option<f64>| mean(calls.iter().filter_map(|c| f(c)));
    a.mean_duration_ms = each(|c| Some(c.duration_ms as f64));
    a.mean_talk_listen_ratio = each(|c| c.talk_listen_ratio);
    a.mean_rep_talk_share = each(|c| c.rep_talk_share);
    let talk = a.total_rep_talk_ms + a.total_customer_talk_ms;
    a.overall_rep_talk_share = (talk > 0).then(|| a.total_rep_talk_ms as f64 / talk as f64);
    a.mean_longest_rep_monologue_ms = each(|c| Some(c.longest_rep_monologue_ms as f64));
    a.mean_rep_questions_per_call = each(|c| Some(c.rep_questions as f64));
    a.rep_questions_per_hour = (a.total_duration_ms > 0)
        .then(|| a.total_rep_questions as f64 * 3_600_000.0 / a.total_duration_ms as f64);
    a.mean_rep_interruptions_per_call = each(|c| Some(c.rep_interruptions as f64));
    a.mean_rep_zh_chars_per_min = each(|c| c.rep_zh_chars_per_min);
    a.mean_rep_en_words_per_min = each(|c| c.rep_en_words_per_min);
    a.mean_silence_share = each(|c| c.silence_share);
    a.mean_customer_sentiment = each(|c| c.customer_sentiment_mean);
    a
}

/// One rep's calls in a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepReport {
    pub rep_id: String,
    pub period: Period,
    pub metrics: AggregateMetrics,
}

/// One team's calls in a period, overall and per rep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamReport {
    pub team_id: String,
    pub period: Period,
    pub metrics: AggregateMetrics,
    /// Per rep, ordered by rep id.
    pub reps: Vec<RepReport>,
}

/// A report per rep with calls in `period`, ordered by rep id.
pub fn rep_reports(records: &[CallRecord], period: Period) -> Vec<RepReport> {
    let mut by_rep: BTreeMap<&str, Vec<&CallMetrics>> = BTreeMap::new();
    for r in records.iter().filter(|r| period.contains(r.started_at)) {
        by_rep.entry(&r.rep_id).or_default().push(&r.metrics);
    }
    by_rep
        .into_iter()
        .map(|(rep, calls)| RepReport {
            rep_id: rep.to_string(),
            period,
            metrics: aggregate(calls),
        })
        .collect()
}

/// A report per team with calls in `period`, ordered by team id. Calls
/// without a team are in no team report.
pub fn team_reports(records: &[CallRecord], period: Period) -> Vec<TeamReport> {
    let mut by_team: BTreeMap<&str, Vec<CallRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| period.contains(r.started_at)) {
        if let Some(team) = &r.team_id {
            by_team.entry(team).or_default().push(r.clone());
        }
    }
    by_team
        .into_iter()
        .map(|(team, calls)| TeamReport {
            team_id: team.to_string(),
            period,
            metrics: aggregate(calls.iter().map(|c| &c.metrics)),
            reps: rep_reports(&calls, period),
        })
        .collect()
}
