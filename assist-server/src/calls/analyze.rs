//! The `analyze` job: a transcribed call → its analysis document, follow-up
//! tasks and coaching metrics, stored in one transaction.
//!
//! The document merges three sources: the LLM ([`assist_analysis::llm`]: summary,
//! needs, objections, tasks, risk tags, sentiment, next action — quotes
//! verified verbatim), the deterministic extractors
//! ([`assist_analysis::rules`]: commitments and due dates, coaching metrics), and
//! the risk engine's events already stored for the call. Tasks found by both
//! the LLM and the rules are kept once (`origin: both`). Without an LLM (not
//! configured, not fetched, or its answer unusable) the document still
//! carries the deterministic parts and says why in `llm.status`.

use std::sync::Arc;

use assist_protocol::analysis::AnalysisDocument;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Db;
use crate::db::alerts::RiskEventRow;
use crate::db::analysis::{AnalysisRow, TaskRow, store_analysis};
use crate::db::calls::{CallRow, CallSegment};
use crate::jobs::{JobFailure, JobFuture, JobHandler, JobOutcome, JobQueue, Lease, NewJob};
use crate::time::{now_ms, rfc3339};
use assist_analysis::llm::{self, LlmAnalysis, LlmRun, Transcript, Turn};
use assist_analysis::merge::{DocumentTask, MergedTask, RiskTag, merge_risk_tags, merge_tasks};

/// The job queue analyses run on.
pub const ANALYZE_QUEUE: &str = "analyze";

/// Queue the analysis of a transcribed call (idempotent per call).
pub async fn enqueue(jobs: &JobQueue, call: &CallRow) -> crate::db::DbResult<i64> {
    let job = jobs
        .enqueue(
            NewJob::new(ANALYZE_QUEUE, json!({ "call_id": call.id }))
                .org(call.org_id.clone())
                .idempotency_key(format!("analyze:{}", call.id)),
        )
        .await?;
    Ok(job.id)
}

/// Queue analyses for transcribed calls that have none (after a crash or
/// an upgrade). Idempotency keys make this safe to repeat.
pub async fn requeue_missing(db: &Db, jobs: &JobQueue) -> crate::db::DbResult<usize> {
    let ids = db.calls_without_analysis().await?;
    for id in &ids {
        let call = db.get_call(id).await?;
        enqueue(jobs, &call).await?;
    }
    Ok(ids.len())
}

/// Runs analyses (the `analyze` queue).
#[derive(Clone)]
pub struct AnalyzeCalls {
    pub config: Arc<Config>,
    pub llm: Option<assist_models::llm::LlmHandle>,
}

impl std::fmt::Debug for AnalyzeCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyzeCalls")
            .field("llm", &self.llm.is_some())
            .finish()
    }
}

impl AnalyzeCalls {
    async fn work(&self, queue: &JobQueue, lease: &Lease) -> Result<JobOutcome, JobFailure> {
        let db = queue.db();
        let call_id = lease
            .payload
            .get("call_id")
            .and_then(Value::as_str)
            .ok_or_else(|| JobFailure::permanent("the job has no call_id"))?
            .to_string();
        let call = match db.get_call(&call_id).await {
            Ok(c) => c,
            Err(crate::db::DbError::NotFound(m)) => return Err(JobFailure::permanent(m)),
            Err(e) => return Err(JobFailure::retry(e.to_string())),
        };
        let retry = |e: crate::db::DbError| JobFailure::retry(e.to_string());
        let segments = db.call_segments(&call_id).await.map_err(retry)?;
        let events = db
            .risk_events(&call.org_id, None, None, Some(&call_id))
            .await
            .map_err(retry)?;
        let time_zone = &self.config.analysis.analysis_time_zone;
        let started_ms = call.started_at.unwrap_or(call.created_at);
        let transcript = transcript_of(&call, &segments, time_zone);
        let (llm, run) = self.run_llm(&transcript).await?;

        // Deterministic extractors, then the merge.
        let rules = assist_analysis::rules::extract_tasks(&transcript.turns, started_ms, time_zone);
        let metrics = assist_analysis::rules::coaching_metrics(&transcript.turns, events.len());
        let now = now_ms();
        let merged = merge_tasks(rules, &llm.tasks, started_ms, time_zone);
        let tasks = task_rows(&call, merged, now);
        let risk_tags = merge_risk_tags(
            engine_tags(&events, &segments),
            &llm.risk_tags,
            self.config.analysis.llm_risk_tags(),
        );
        let document = AnalysisDocument {
            call_id: call.id.clone(),
            language: transcript.language.clone(),
            summary: llm.summary,
            customer_needs: llm.customer_needs,
            objections: llm.objections,
            tasks: tasks.iter().map(document_task).collect(),
            risk_tags,
            sentiment: Some(llm.sentiment).filter(|s| !s.is_empty()),
            next_best_action: llm.next_best_action,
            llm: run,
        };
        let run = &document.llm;
        let summary = json!({
            "tasks": tasks.len(),
            "risk_tags": document.risk_tags.len(),
            "llm": run.status,
            "llm_ms": run.ms,
        });
        let row = AnalysisRow {
            id: format!("ana_{}", uuid::Uuid::now_v7().simple()),
            org_id: call.org_id.clone(),
            call_id: call.id.clone(),
            rep_user_id: call.rep_user_id.clone(),
            team_id: call.team_id.clone(),
            document: serde_json::to_string(&document)
                .map_err(|e| JobFailure::permanent(e.to_string()))?,
            metrics: metrics.to_string(),
            llm_status: run.status.clone(),
            model: (!run.model.is_empty()).then(|| run.model.clone()),
            call_started_at: started_ms,
            created_at: now,
        };
        let (status, seconds) = (run.status.clone(), run.ms / 1000.0);
        queue
            .complete_with(lease, Some(summary), move |tx| {
                Box::pin(async move { store_analysis(tx, &row, &tasks).await })
            })
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        metrics::histogram!("assist_analysis_seconds", "llm" => status).record(seconds);
        Ok(JobOutcome::AlreadyCompleted)
    }

    /// The LLM's part, when there is a model and the transcript has words.
    async fn run_llm(&self, transcript: &Transcript) -> Result<(LlmAnalysis, LlmRun), JobFailure> {
        let model = &self.config.analysis.analysis_model;
        match &self.llm {
            Some(handle) if !transcript.turns.is_empty() => {
                match llm::analyse(handle, model, transcript).await {
                    Ok(r) => Ok(r),
                    Err(e @ assist_models::Error::Overloaded { .. }) => {
                        Err(JobFailure::retry(format!("the LLM is busy: {e}")))
                    }
                    Err(e) => Err(JobFailure::retry(format!("the LLM failed: {e}"))),
                }
            }
            Some(_) => Ok((
                LlmAnalysis::default(),
                LlmRun {
                    status: "empty_transcript".into(),
                    model: model.clone(),
                    ..LlmRun::default()
                },
            )),
            None => Ok((
                LlmAnalysis::default(),
                LlmRun {
                    status: "off".into(),
                    ..LlmRun::default()
                },
            )),
        }
    }
}

/// The call's transcript as the analysis reads it.
fn transcript_of(call: &CallRow, segments: &[CallSegment], time_zone: &str) -> Transcript {
    let started_ms = call.started_at.unwrap_or(call.created_at);
    Transcript {
        language: call
            .detected_language
            .clone()
            .or(call.language.clone())
            .unwrap_or_else(|| "zh".into()),
        started_at: assist_analysis::rules::local_rfc3339(started_ms, time_zone),
        turns: segments
            .iter()
            .map(|s| Turn {
                speaker: s.speaker.as_str().to_string(),
                text: s.text.clone(),
                start_ms: s.start_ms,
                end_ms: s.end_ms,
            })
            .collect(),
    }
}

/// The merged tasks as rows of the call's rep.
fn task_rows(call: &CallRow, merged: Vec<MergedTask>, now: i64) -> Vec<TaskRow> {
    merged
        .into_iter()
        .map(|m| TaskRow {
            id: format!("task_{}", uuid::Uuid::now_v7().simple()),
            org_id: call.org_id.clone(),
            rep_user_id: call.rep_user_id.clone(),
            team_id: call.team_id.clone(),
            call_id: Some(call.id.clone()),
            title: m.title,
            owner: m.owner,
            due_at: m.due_at,
            due_text: m.due_text,
            source_quote: m.source_quote,
            origin: m.origin,
            status: "open".into(),
            created_at: now,
            updated_at: now,
            completed_at: None,
        })
        .collect()
}

fn document_task(t: &TaskRow) -> DocumentTask {
    DocumentTask {
        id: t.id.clone(),
        title: t.title.clone(),
        owner: t.owner.clone(),
        due: t.due_at.map(rfc3339),
        due_text: t.due_text.clone(),
        source_quote: t.source_quote.clone(),
        origin: t.origin.clone(),
    }
}

/// The risk engine's findings in the recording, each with its evidence span
/// verbatim (the event's snippet adds context and "…"). A live session's
/// events are alerts of their own: they carry no segment of this transcript.
fn engine_tags(events: &[RiskEventRow], segments: &[CallSegment]) -> Vec<RiskTag> {
    let verbatim = |e: &RiskEventRow| {
        segments
            .iter()
            .find(|s| Some(s.seq) == e.segment_seq)
            .map(|s| {
                s.text
                    .chars()
                    .skip(e.char_start.max(0) as usize)
                    .take((e.char_end - e.char_start).max(0) as usize)
                    .collect::<String>()
            })
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| e.snippet.clone())
    };
    events
        .iter()
        .filter(|e| e.suppressed.is_none() && e.segment_seq.is_some())
        .map(|e| RiskTag {
            category: e.category.clone(),
            evidence_quote: verbatim(e),
            confidence: e.confidence,
            origin: "engine".into(),
        })
        .collect()
}

impl JobHandler for AnalyzeCalls {
    fn queue(&self) -> &str {
        ANALYZE_QUEUE
    }

    fn run<'a>(
        &'a self,
        queue: &'a JobQueue,
        lease: &'a Lease,
        _cancel: CancellationToken,
    ) -> JobFuture<'a> {
        Box::pin(self.work(queue, lease))
    }
}
