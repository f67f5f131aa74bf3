//! Post-conversation analysis: the local LLM's answer and the deterministic
//! pieces that sit beside it, merged into one document.
//!
//! Everything here is library code without a database, HTTP or a clock: the
//! server's `analyze` job feeds it a transcript and stores what comes out,
//! and `assist-eval` scores it on labelled transcripts without a server.
//!
//! - [`llm`] builds the prompt, runs the model (chunks for long calls, a
//!   guard against looping answers, one repair turn), repairs and reads its
//!   JSON answer leniently and keeps only verbatim quotes.
//! - [`rules`] runs the deterministic extractors below over transcript
//!   turns: tasks with resolved due times, coaching metrics.
//! - [`merge`] joins the rules' tasks with the model's and the risk
//!   engine's tags with the model's, each kept once with its origin.
//!
//! - [`dates`] finds due-date expressions in Chinese and English ("下周三前",
//!   "明天下午三点", "月底", "by Friday EOD", "in 3 days", "ASAP") and resolves
//!   them against a reference time (the call's start in the org's time zone,
//!   Asia/Shanghai by default). Its module docs list the conventions.
//! - [`commitments`] finds promised actions ("我明天把报价发您", "I'll send you
//!   the contract by Friday") and requests that imply a task ("你把资料发我邮箱")
//!   in transcript [`Segment`]s and returns [`commitments::TaskCandidate`]s
//!   with an owner, a due date from [`dates`] and a verbatim source quote.
//!   Pattern and lexicon based, with negation and question handling.
//! - [`coaching`] computes per-call metrics from speaker-labelled segments
//!   (talk/listen ratio, longest monologue, questions, interruptions, speech
//!   rate, silence, customer sentiment trend) and aggregates them per rep or
//!   team over a period.
//! - [`text`] holds the shared helpers (script detection, sentence and clause
//!   splitting with offsets).
//!
//! Offsets are always *character* (not byte) offsets into the text as given,
//! like the risk engine's.
//!
//! ```
//! use assist_analysis::{Segment, Speaker, commitments::{find_tasks, Owner}, dates};
//!
//! let tz = dates::org_time_zone(None)?;
//! let start = dates::reference_time("2025-03-12T09:30:00+08:00", &tz)?; // a Wednesday
//! let segments = [
//!     Segment { start_ms: 0, end_ms: 2_000, speaker: Speaker::Customer, text: "你把资料发我邮箱吧" },
//!     Segment { start_ms: 2_500, end_ms: 5_000, speaker: Speaker::Rep, text: "好的，我明天上午把报价发您" },
//! ];
//! let tasks = find_tasks(&segments, &start);
//! assert_eq!(tasks.len(), 2);
//! assert_eq!(tasks[1].owner, Owner::Rep);
//! assert_eq!(tasks[1].title, "发报价");
//! assert_eq!(tasks[1].due.as_ref().unwrap().resolved().unwrap().date.to_string(), "2025-03-13");
//!
//! let metrics = assist_analysis::coaching::analyze_call(&segments, &Default::default());
//! assert_eq!(metrics.rep_talk_ms, 2_500);
//! # Ok::<(), assist_analysis::AnalysisError>(())
//! ```

pub mod coaching;
pub mod commitments;
pub mod dates;
pub mod llm;
pub mod merge;
pub mod rules;
pub mod text;

use serde::Serialize;

pub use assist_protocol::Speaker;

/// Errors a caller of this module can act on.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The org's time zone name is not in the time zone database.
    #[error("unknown time zone `{name}`")]
    UnknownTimeZone { name: String },
    /// The reference time is not an RFC 3339 instant.
    #[error("invalid reference time `{text}`: {message}")]
    InvalidReferenceTime { text: String, message: String },
}

/// One transcript segment as the analysis sees it: who spoke, when (in
/// milliseconds from the start of the call) and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment<'a> {
    pub start_ms: i64,
    pub end_ms: i64,
    pub speaker: Speaker,
    pub text: &'a str,
}
