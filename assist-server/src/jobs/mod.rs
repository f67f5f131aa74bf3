//! The durable job queue and the runners that work it.
//!
//! Jobs live in the `jobs` table of the same database as everything else, so
//! they survive a crash (`kill -9`) and several `assist` nodes can share them
//! on PostgreSQL (`FOR UPDATE SKIP LOCKED`).
//!
//! Life of a job: `queued` → (lease) → `running` → `done`; a failure puts it
//! back to `queued` with exponential backoff, until `max_attempts`, after
//! which it is `dead` with its last error (the dead-letter state, visible to
//! operators and retryable by hand). A lease carries a random token; a runner
//! that stops heartbeating loses the job to the next runner once the lease
//! expires, and its late `complete` is refused (the token no longer matches).
//!
//! Exactly one effect: enqueue with an idempotency key (a retried request
//! finds the existing job), and write a job's effect in the same transaction
//! that completes it ([`JobQueue::complete_with`]), so a re-run after a crash
//! either sees no effect or sees the job already done.
//!
//! [`JobQueue`] (this file) stores, leases and completes jobs; `runner`
//! holds the [`JobHandler`] trait and the [`JobRunner`] that leases jobs for
//! a set of handlers and runs them with heartbeats.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio_util::sync::CancellationToken;

use crate::db::{Backend, Db, DbError, DbResult, is_unique_violation};
use crate::time::now_ms;

mod runner;

pub use runner::{JobFailure, JobFuture, JobHandler, JobOutcome, JobRunner};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> DbResult<Self> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "dead" => JobState::Dead,
            other => return Err(DbError::Invalid(format!("unknown job state `{other}`"))),
        })
    }
}

/// Queue timing.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long a lease lasts without a heartbeat.
    pub lease: Duration,
    /// Attempts before dead-lettering (per job unless overridden).
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, capped at `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lease: Duration::from_secs(60),
            max_attempts: 5,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
        }
    }
}

impl QueueConfig {
    pub fn from_config(c: &crate::config::JobsConfig) -> Self {
        QueueConfig {
            lease: Duration::from_secs(c.job_lease_secs.max(1)),
            max_attempts: c.job_max_attempts.max(1),
            retry_base: Duration::from_secs(c.job_retry_base_secs),
            retry_max: Duration::from_secs(3600),
        }
    }

    /// Delay before the retry that follows failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: i64) -> Duration {
        let exp = (attempt.max(1) - 1).min(20) as u32;
        let raw = self
            .retry_base
            .saturating_mul(1u32 << exp)
            .min(self.retry_max);
        // ±20 % jitter so retries of a burst do not arrive together.
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        raw.mul_f64(jitter)
    }
}

/// A job to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: String,
    /// The organisation whose work this is (operators see their own only).
    pub org_id: Option<String>,
    pub payload: Value,
    /// Same key on the same queue → the same job, created once.
    pub idempotency_key: Option<String>,
    pub max_attempts: Option<u32>,
    /// Earliest start (unix ms); default now.
    pub run_at: Option<i64>,
}

impl NewJob {
    pub fn new(queue: impl Into<String>, payload: Value) -> Self {
        NewJob {
            queue: queue.into(),
            org_id: None,
            payload,
            idempotency_key: None,
            max_attempts: None,
            run_at: None,
        }
    }

    pub fn org(mut self, org_id: impl Into<String>) -> Self {
        self.org_id = Some(org_id.into());
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
}

/// Result of [`JobQueue::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: i64,
    /// `false` when the idempotency key matched an existing job.
    pub created: bool,
}

/// A job this runner holds. Only the holder of the current token may
/// heartbeat, complete or fail it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub id: i64,
    pub queue: String,
    pub payload: Value,
    /// 1 on the first attempt.
    pub attempt: i64,
    pub max_attempts: i64,
    pub token: String,
    pub lease_until: i64,
}

/// A stored job, for operators and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub queue: String,
    pub org_id: Option<String>,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub idempotency_key: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<Value>,
    pub payload: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

fn job_row(r: &AnyRow) -> DbResult<JobRow> {
    let state: String = r.try_get("state")?;
    let payload: String = r.try_get("payload")?;
    let result: Option<String> = r.try_get("result")?;
    Ok(JobRow {
        id: r.try_get("id")?,
        queue: r.try_get("queue")?,
        org_id: r.try_get("org_id")?,
        state: JobState::parse(&state)?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        run_at: r.try_get("run_at")?,
        idempotency_key: r.try_get("idempotency_key")?,
        last_error: r.try_get("last_error")?,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const JOB_COLUMNS: &str = "id, queue, org_id, state, attempts, max_attempts, run_at, idempotency_key, last_error, result, payload, created_at, updated_at";

fn lease_lost(lease: &Lease) -> DbError {
    DbError::Conflict(format!(
        "lease on job {} (attempt {}) was lost: it expired and another runner took the job",
        lease.id, lease.attempt
    ))
}

/// The queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobQueue {
    db: Db,
    config: QueueConfig,
    /// The node whose runners lease through this queue, if known.
    node: Option<String>,
}

impl JobQueue {
    pub fn new(db: Db, config: QueueConfig) -> Self {
        JobQueue {
            db,
            config,
            node: None,
        }
    }

    /// This queue as used by node `node` (a stable id of its data
    /// directory): its runners' leases carry it, so after a crash the
    /// restarted node can take its own jobs back ([`JobQueue::reclaim_node`]).
    pub fn on_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// The node this queue's runners lease for, if known.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// At start, before any runner of this node exists: every job still
    /// leased by this node belonged to the process that died, so its lease is
    /// expired now instead of after `job_lease_secs` (the next lease takes it
    /// over, or dead-letters it if that was its last attempt). Returns how many.
    pub async fn reclaim_node(&self) -> DbResult<u64> {
        let Some(node) = &self.node else {
            return Ok(0);
        };
        let n = sqlx::query(
            "UPDATE jobs SET lease_until = 0 WHERE state = 'running' AND lease_owner LIKE $1",
        )
        .bind(format!("{node}:%"))
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(n)
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Add a job. With an idempotency key that already exists on this queue,
    /// nothing is added and the existing job's id is returned.
    pub async fn enqueue(&self, job: NewJob) -> DbResult<Enqueued> {
        if job.queue.trim().is_empty() {
            return Err(DbError::Invalid("job queue name must not be empty".into()));
        }
        let now = now_ms();
        let max_attempts = i64::from(job.max_attempts.unwrap_or(self.config.max_attempts).max(1));
        let inserted = sqlx::query(
            "INSERT INTO jobs (queue, payload, idempotency_key, state, attempts, max_attempts, run_at, created_at, updated_at, org_id) \
             VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $6, $7) \
             ON CONFLICT (queue, idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(&job.queue)
        .bind(job.payload.to_string())
        .bind(job.idempotency_key.as_deref())
        .bind(max_attempts)
        .bind(job.run_at.unwrap_or(now))
        .bind(now)
        .bind(job.org_id.as_deref())
        .fetch_optional(self.db.pool())
        .await;
        let inserted = match inserted {
            Ok(row) => row,
            // A concurrent insert of the same key can still surface as a violation.
            Err(e) if is_unique_violation(&e) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(row) = inserted {
            metrics::counter!("assist_jobs_enqueued_total", "queue" => job.queue.clone())
                .increment(1);
            return Ok(Enqueued {
                id: row.try_get("id")?,
                created: true,
            });
        }
        let key = job.idempotency_key.as_deref().unwrap_or_default();
        let row = sqlx::query("SELECT id FROM jobs WHERE queue = $1 AND idempotency_key = $2")
            .bind(&job.queue)
            .bind(key)
            .fetch_one(self.db.pool())
            .await?;
        Ok(Enqueued {
            id: row.try_get("id")?,
            created: false,
        })
    }

    /// Take the next due job of `queue`, if any. A job whose previous lease
    /// expired is taken over (counting as a new attempt); one that expired on
    /// its last attempt is dead-lettered instead.
    pub async fn lease(&self, queue: &str, owner: &str) -> DbResult<Option<Lease>> {
        let now = now_ms();
        let dead = sqlx::query(
            "UPDATE jobs SET state = 'dead', lease_token = NULL, lease_until = NULL, updated_at = $1, \
                 last_error = 'lease expired on the last attempt: the worker stopped or hung without finishing' \
             WHERE queue = $2 AND state = 'running' AND lease_until < $1 AND attempts >= max_attempts",
        )
        .bind(now)
        .bind(queue)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if dead > 0 {
            metrics::counter!("assist_jobs_dead_total", "queue" => queue.to_string())
                .increment(dead);
            tracing::warn!(
                queue,
                count = dead,
                "jobs dead-lettered after their last lease expired"
            );
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let until = now + self.config.lease.as_millis() as i64;
        let lock = match self.db.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite has one writer; the single UPDATE statement is atomic.
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = $1, lease_owner = $2, \
                 lease_until = $3, updated_at = $4, \
                 last_error = CASE WHEN state = 'running' \
                     THEN 'lease expired: the previous worker stopped without finishing' ELSE last_error END \
             WHERE id = (SELECT id FROM jobs WHERE queue = $5 \
                           AND ((state = 'queued' AND run_at <= $4) OR (state = 'running' AND lease_until < $4)) \
                         ORDER BY run_at, id LIMIT 1 {lock}) \
             RETURNING id, queue, payload, attempts, max_attempts, lease_until"
        );
        let row = sqlx::query(&sql)
            .bind(&token)
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(queue)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let payload: String = row.try_get("payload")?;
        Ok(Some(Lease {
            id: row.try_get("id")?,
            queue: row.try_get("queue")?,
            payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
            attempt: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            token,
            lease_until: row.try_get("lease_until")?,
        }))
    }

    /// Extend the lease. `Ok(false)` means it was lost: stop working on the job.
    pub async fn heartbeat(&self, lease: &mut Lease) -> DbResult<bool> {
        let until = now_ms() + self.config.lease.as_millis() as i64;
        let n = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_token = $3 AND state = 'running'",
        )
        .bind(until)
        .bind(lease.id)
        .bind(&lease.token)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if n == 1 {
            lease.lease_until = until;
        }
        Ok(n == 1)
    }

    /// Mark the job done, with an optional result. Fails with a conflict if
    /// the lease was lost.
    pub async fn complete(&self, lease: &Lease, result: Option<Value>) -> DbResult<()> {
        self.complete_with(lease, result, |_tx| Box::pin(async { Ok(()) }))
            .await
    }

    /// Mark the job done and apply `effect` in the same transaction: either
    /// both happen or neither does. The completion is written first, so on
    /// SQLite the transaction takes the write lock at once.
    pub async fn complete_with<F>(
        &self,
        lease: &Lease,
        result: Option<Value>,
        effect: F,
    ) -> DbResult<()>
    where
        F: for<'c> FnOnce(
            &'c mut sqlx::Transaction<'static, sqlx::Any>,
        ) -> Pin<Box<dyn Future<Output = DbResult<()>> + Send + 'c>>,
    {
        let mut tx = self.db.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'done', result = $1, lease_token = NULL, lease_until = NULL, updated_at = $2 \
             WHERE id = $3 AND lease_token = $4 AND state = 'running'",
        )
        .bind(result.map(|v| v.to_string()))
        .bind(now_ms())
        .bind(lease.id)
        .bind(&lease.token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Err(lease_lost(lease));
        }
        effect(&mut tx).await?;
        tx.commit().await?;
        metrics::counter!("assist_jobs_done_total", "queue" => lease.queue.clone()).increment(1);
        Ok(())
    }

    /// Record a failed attempt: back to `queued` after a backoff, or `dead`
    /// when attempts are used up (or `permanent`). Returns the new state.
    pub async fn fail(&self, lease: &Lease, error: &str, permanent: bool) -> DbResult<JobState> {
        let now = now_ms();
        let next = now + self.config.backoff(lease.attempt).as_millis() as i64;
        let dead = permanent || lease.attempt >= lease.max_attempts;
        let state = if dead {
            JobState::Dead
        } else {
            JobState::Queued
        };
        let error = truncate(error, 4000);
        let n = sqlx::query(
            "UPDATE jobs SET state = $1, run_at = $2, last_error = $3, lease_token = NULL, lease_until = NULL, updated_at = $4 \
             WHERE id = $5 AND lease_token = $6 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(next)
        .bind(&error)
        .bind(now)
        .bind(lease.id)
        .bind(&lease.token)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if n != 1 {
            return Err(lease_lost(lease));
        }
        if dead {
            metrics::counter!("assist_jobs_dead_total", "queue" => lease.queue.clone())
                .increment(1);
            tracing::warn!(job = lease.id, queue = %lease.queue, attempt = lease.attempt, %error, "job dead-lettered");
        } else {
            metrics::counter!("assist_jobs_retried_total", "queue" => lease.queue.clone())
                .increment(1);
        }
        Ok(state)
    }

    pub async fn get(&self, id: i64) -> DbResult<JobRow> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no job {id}")))?;
        job_row(&row)
    }

    /// Jobs of an organisation by state (all states when `None`), newest first.
    pub async fn list(
        &self,
        org_id: &str,
        state: Option<JobState>,
        limit: i64,
    ) -> DbResult<Vec<JobRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = $1 AND ($2 = '' OR state = $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(org_id)
        .bind(state.map(JobState::as_str).unwrap_or(""))
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(job_row).collect()
    }

    /// Put a dead job of `org_id` back in the queue with fresh attempts.
    pub async fn retry_dead(&self, org_id: &str, id: i64) -> DbResult<JobRow> {
        let job = self.get(id).await?;
        if job.org_id.as_deref() != Some(org_id) {
            return Err(DbError::NotFound(format!(
                "no job {id} in this organisation"
            )));
        }
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1 WHERE id = $2 AND state = 'dead'",
        )
        .bind(now)
        .bind(id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        let job = self.get(id).await?;
        if n == 0 {
            return Err(DbError::Conflict(format!(
                "job {id} is {}, only dead jobs can be retried",
                job.state.as_str()
            )));
        }
        Ok(job)
    }

    /// Number of jobs per state.
    pub async fn counts(&self) -> DbResult<Vec<(JobState, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("state")?;
                Ok((JobState::parse(&s)?, r.try_get::<i64, _>("n")?))
            })
            .collect()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
