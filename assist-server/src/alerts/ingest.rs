//! The one path from a risky line to an alert.
//!
//! Every source — a transcribed call's segments, a chat batch, a live
//! session's final — hands its lines to [`AlertIngest`] in two steps:
//!
//! 1. [`AlertIngest::check`] runs the organisation's risk engine on the lines
//!    (outside any transaction: the semantic detector embeds, which is the
//!    slow part) and returns the hits with where and by whom each was said.
//! 2. [`AlertIngest::commit`] writes: it takes the alert-log writer *first*
//!    (the lock order every writer keeps: the in-process writer, then the
//!    database transaction, so two writers never wait on each other's
//!    locks), opens the transaction the source asks for ([`Commit`]), runs
//!    the source's own writes in it ([`Written`] says which lines were new),
//!    raises alerts for the hits of new lines ([`raise`](super::raise)),
//!    commits, releases the writer and publishes (streams woken, webhooks
//!    queued).
//!
//! A new source needs only a [`Line`] per text and its own writes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use assist_protocol::Speaker;
use serde_json::Value;

use super::hub::AlertHub;
use super::raise::{HitInContext, Origin, Raised, raise};
use super::screening::Screening;
use crate::config::AlertsConfig;
use crate::db::{Db, DbError, DbResult};
use crate::error::ApiError;
use crate::jobs::{JobQueue, Lease};

/// A database transaction of the service.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// One line of a conversation to check: where it was said, by whom, what.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub origin: Origin,
    pub speaker: Speaker,
    pub text: &'a str,
}

/// Whose conversation the lines belong to.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub org_id: &'a str,
    pub rep_user_id: &'a str,
    pub team_id: Option<&'a str>,
}

/// The hits the risk engine found in some lines, not yet stored.
#[derive(Debug, Default)]
pub struct Checked {
    org_id: String,
    /// Each hit with the index of its line.
    hits: Vec<(usize, HitInContext)>,
}

impl Checked {
    /// No line had a hit.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }
}

/// What a source wrote in the transaction, and which of its lines are new
/// (a line already stored before — a retried chat message — raises nothing
/// again).
#[derive(Debug)]
pub struct Written<T> {
    pub value: T,
    /// `new_lines[i]` for line `i`; `None` when every line is new.
    pub new_lines: Option<Vec<bool>>,
}

impl<T> Written<T> {
    /// Every line was stored now.
    pub fn all(value: T) -> Self {
        Written {
            value,
            new_lines: None,
        }
    }
}

/// Which transaction the write runs in.
#[derive(Debug)]
pub enum Commit<'a> {
    /// A new transaction on the database.
    New,
    /// The transaction that completes a leased job (`result` is the job's
    /// result), so the effect and the completion land together.
    CompleteJob {
        queue: &'a JobQueue,
        lease: &'a Lease,
        result: Option<Value>,
    },
}

/// What [`AlertIngest::commit`] wrote.
#[derive(Debug)]
pub struct Ingested<T> {
    /// What the source's own writes returned.
    pub value: T,
    pub raised: Raised,
    /// For each of `raised.events`, the index of its line.
    pub event_lines: Vec<usize>,
}

/// The source's own writes, run inside the transaction.
pub type Writes<T> = Box<
    dyn for<'c> FnOnce(
            &'c mut Tx,
        ) -> Pin<Box<dyn Future<Output = DbResult<Written<T>>> + Send + 'c>>
        + Send,
>;

/// For a source whose rows are stored already (a live final): the write
/// holds the alerts only.
pub fn no_rows() -> Writes<()> {
    Box::new(|_tx| Box::pin(async { Ok(Written::all(())) }))
}

/// Everything the path needs, borrowed from the service's state (or a job
/// handler's fields).
#[derive(Debug, Clone, Copy)]
pub struct AlertIngest<'a> {
    pub db: &'a Db,
    pub screening: &'a Screening,
    pub hub: &'a AlertHub,
    pub jobs: &'a JobQueue,
    pub config: &'a AlertsConfig,
}

impl AlertIngest<'_> {
    /// Step 1: the risk engine on every line (no writes).
    pub async fn check(&self, owner: Owner<'_>, lines: &[Line<'_>]) -> Result<Checked, ApiError> {
        let texts: Vec<(&str, Speaker)> = lines.iter().map(|l| (l.text, l.speaker)).collect();
        let found = self
            .screening
            .check_all(self.db, owner.org_id, &texts)
            .await?;
        let mut hits = Vec::new();
        for (i, (line, line_hits)) in lines.iter().zip(found).enumerate() {
            for hit in line_hits {
                hits.push((
                    i,
                    HitInContext {
                        origin: line.origin.clone(),
                        rep_user_id: owner.rep_user_id.to_string(),
                        team_id: owner.team_id.map(str::to_string),
                        speaker: line.speaker,
                        hit,
                    },
                ));
            }
        }
        Ok(Checked {
            org_id: owner.org_id.to_string(),
            hits,
        })
    }

    /// Step 2: the source's writes and the alerts of its new lines in one
    /// transaction, then publish. See the module docs for the order.
    pub async fn commit<T: Send + 'static>(
        &self,
        checked: Checked,
        commit: Commit<'_>,
        writes: Writes<T>,
    ) -> DbResult<Ingested<T>> {
        let db = self.db.clone();
        let config = self.config.clone();
        let out: Arc<Mutex<Option<Ingested<T>>>> = Arc::default();
        let out_tx = out.clone();
        let effect = in_transaction(move |tx| {
            Box::pin(async move {
                let written = writes(tx).await?;
                let (lines, hits): (Vec<usize>, Vec<HitInContext>) = checked
                    .hits
                    .into_iter()
                    .filter(|(l, _)| written.new_lines.as_ref().is_none_or(|n| n[*l]))
                    .unzip();
                let raised = raise(tx, &db, &config, &checked.org_id, hits).await?;
                *out_tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(Ingested {
                    value: written.value,
                    raised,
                    event_lines: lines,
                });
                Ok(())
            })
        });
        let writer = self.hub.writer().await;
        match commit {
            Commit::New => {
                let mut tx = self.db.pool().begin().await?;
                effect(&mut tx).await?;
                tx.commit().await?;
            }
            Commit::CompleteJob {
                queue,
                lease,
                result,
            } => queue.complete_with(lease, result, effect).await?,
        }
        drop(writer);
        let ingested = out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| DbError::Invalid("the alert write returned nothing".into()))?;
        self.publish(&ingested.raised).await;
        Ok(ingested)
    }

    /// After a commit: wake the streams and queue the webhook deliveries.
    pub async fn publish(&self, raised: &Raised) {
        raised
            .publish(self.hub, self.jobs, self.config.webhook_max_attempts)
            .await;
    }
}

/// Pins a closure to the higher-ranked signature the job queue's
/// `complete_with` takes, so one closure serves both kinds of [`Commit`].
fn in_transaction<F>(f: F) -> F
where
    F: for<'c> FnOnce(&'c mut Tx) -> Pin<Box<dyn Future<Output = DbResult<()>> + Send + 'c>>,
{
    f
}
