//! The durable job queue on SQLite and (when configured) PostgreSQL: lease
//! expiry and retry, dead-lettering, idempotency, lost leases, the runner.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assist_server::db::testing;
use assist_server::jobs::{
    JobFailure, JobFuture, JobHandler, JobOutcome, JobQueue, JobRunner, JobState, Lease, NewJob,
    QueueConfig,
};
use std::future::Future;
use std::pin::Pin;

use assist_server::db::DbResult;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn fast() -> QueueConfig {
    QueueConfig {
        lease: Duration::from_millis(300),
        max_attempts: 3,
        retry_base: Duration::from_millis(0),
        retry_max: Duration::from_millis(0),
    }
}

#[tokio::test]
async fn idempotency_key_creates_one_job() {
    for t in testing::all("idempotency_key_creates_one_job").await {
        let q = JobQueue::new(t.db.clone(), fast());
        let a = q
            .enqueue(NewJob::new("asr", json!({"call": 1})).idempotency_key("call-1"))
            .await
            .unwrap();
        let b = q
            .enqueue(NewJob::new("asr", json!({"call": 1})).idempotency_key("call-1"))
            .await
            .unwrap();
        assert!(a.created);
        assert!(!b.created);
        assert_eq!(a.id, b.id);
        // Same key on another queue is another job; no key is always new.
        let c = q
            .enqueue(NewJob::new("llm", json!({})).idempotency_key("call-1"))
            .await
            .unwrap();
        assert_ne!(c.id, a.id);
        let d = q.enqueue(NewJob::new("asr", json!({}))).await.unwrap();
        let e = q.enqueue(NewJob::new("asr", json!({}))).await.unwrap();
        assert!(d.created && e.created && d.id != e.id);
        // Concurrent duplicates still give one job.
        let mut handles = Vec::new();
        for _ in 0..8 {
            let q = q.clone();
            handles.push(tokio::spawn(async move {
                q.enqueue(NewJob::new("asr", json!({})).idempotency_key("burst"))
                    .await
                    .unwrap()
            }));
        }
        let mut ids = Vec::new();
        let mut created = 0;
        for h in handles {
            let r = h.await.unwrap();
            ids.push(r.id);
            created += usize::from(r.created);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(created, 1);
    }
}

#[tokio::test]
async fn expired_lease_is_retried_and_the_old_holder_is_refused() {
    for t in testing::all("expired_lease_is_retried_and_the_old_holder_is_refused").await {
        let q = JobQueue::new(t.db.clone(), fast());
        let id = q
            .enqueue(NewJob::new("asr", json!({"x": 1})))
            .await
            .unwrap()
            .id;
        let first = q.lease("asr", "node-a").await.unwrap().expect("job leased");
        assert_eq!(first.id, id);
        assert_eq!(first.attempt, 1);
        assert_eq!(first.payload, json!({"x": 1}));
        // While the lease is live nobody else gets it.
        assert!(q.lease("asr", "node-b").await.unwrap().is_none());
        // node-a "crashes": no heartbeat. After expiry node-b takes over.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut second = q
            .lease("asr", "node-b")
            .await
            .unwrap()
            .expect("re-leased after expiry");
        assert_eq!(second.id, id);
        assert_eq!(second.attempt, 2);
        let row = q.get(id).await.unwrap();
        assert!(row.last_error.unwrap().contains("lease expired"));
        // The old holder can neither heartbeat nor complete.
        let mut stale = first.clone();
        assert!(!q.heartbeat(&mut stale).await.unwrap());
        let err = q.complete(&first, None).await.unwrap_err();
        assert!(err.to_string().contains("lost"), "{err}");
        // The new holder heartbeats and completes.
        assert!(q.heartbeat(&mut second).await.unwrap());
        q.complete(&second, Some(json!({"ok": true})))
            .await
            .unwrap();
        let row = q.get(id).await.unwrap();
        assert_eq!(row.state, JobState::Done);
        assert_eq!(row.result, Some(json!({"ok": true})));
        assert!(q.lease("asr", "node-c").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn failures_retry_with_backoff_then_dead_letter_with_the_reason() {
    for t in testing::all("failures_retry_with_backoff_then_dead_letter_with_the_reason").await {
        let mut cfg = fast();
        cfg.retry_base = Duration::from_millis(150);
        cfg.retry_max = Duration::from_secs(10);
        let q = JobQueue::new(t.db.clone(), cfg);
        let id = q
            .enqueue(NewJob::new("asr", json!({})).org("org_1"))
            .await
            .unwrap()
            .id;
        for attempt in 1..=3 {
            let lease = loop {
                if let Some(l) = q.lease("asr", "n").await.unwrap() {
                    break l;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(lease.attempt, attempt);
            let state = q
                .fail(&lease, &format!("decoder error #{attempt}"), false)
                .await
                .unwrap();
            if attempt < 3 {
                assert_eq!(state, JobState::Queued);
                // Backoff: not due immediately.
                assert!(q.lease("asr", "n").await.unwrap().is_none());
            } else {
                assert_eq!(state, JobState::Dead);
            }
        }
        let row = q.get(id).await.unwrap();
        assert_eq!(row.state, JobState::Dead);
        assert_eq!(row.last_error.as_deref(), Some("decoder error #3"));
        assert_eq!(row.attempts, 3);
        let dead = q.list("org_1", Some(JobState::Dead), 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert!(
            q.list("org_2", Some(JobState::Dead), 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Operators can put it back.
        assert!(q.retry_dead("org_2", id).await.is_err());
        let row = q.retry_dead("org_1", id).await.unwrap();
        assert_eq!(row.state, JobState::Queued);
        assert_eq!(row.attempts, 0);
        assert!(
            q.retry_dead("org_1", id).await.is_err(),
            "only dead jobs can be retried"
        );

        // A permanent failure dead-letters at once.
        let id2 = q.enqueue(NewJob::new("other", json!({}))).await.unwrap().id;
        let l = q.lease("other", "n").await.unwrap().unwrap();
        assert_eq!(
            q.fail(&l, "corrupt upload", true).await.unwrap(),
            JobState::Dead
        );
        assert_eq!(q.get(id2).await.unwrap().attempts, 1);
    }
}

#[tokio::test]
async fn a_lease_that_expires_on_the_last_attempt_is_dead_lettered() {
    for t in testing::all("a_lease_that_expires_on_the_last_attempt_is_dead_lettered").await {
        let q = JobQueue::new(t.db.clone(), fast());
        let id = q
            .enqueue(NewJob::new("asr", json!({})).max_attempts(1))
            .await
            .unwrap()
            .id;
        let _crashed = q.lease("asr", "a").await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(q.lease("asr", "b").await.unwrap().is_none());
        let row = q.get(id).await.unwrap();
        assert_eq!(row.state, JobState::Dead);
        assert!(row.last_error.unwrap().contains("last attempt"));
    }
}

#[tokio::test]
async fn complete_with_applies_the_effect_exactly_once() {
    for t in testing::all("complete_with_applies_the_effect_exactly_once").await {
        let db = t.db.clone();
        sqlx::query("CREATE TABLE effects (job_id BIGINT NOT NULL, note TEXT NOT NULL)")
            .execute(db.pool())
            .await
            .unwrap();
        let q = JobQueue::new(db.clone(), fast());
        q.enqueue(NewJob::new("asr", json!({}))).await.unwrap();
        let stale = q.lease("asr", "a").await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let fresh = q.lease("asr", "b").await.unwrap().unwrap();
        // The stale holder's effect is refused and not written.
        assert!(
            q.complete_with(&stale, None, insert_effect(stale.id, "stale"))
                .await
                .is_err()
        );
        q.complete_with(&fresh, None, insert_effect(fresh.id, "fresh"))
            .await
            .unwrap();
        // A second completion (a re-run) is refused too.
        assert!(
            q.complete_with(&fresh, None, insert_effect(fresh.id, "again"))
                .await
                .is_err()
        );
        let notes: Vec<String> = sqlx::query_scalar("SELECT note FROM effects")
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(notes, vec!["fresh".to_string()]);
    }
}

/// An effect written in the completing transaction.
fn insert_effect(
    id: i64,
    note: &'static str,
) -> impl for<'c> FnOnce(
    &'c mut sqlx::Transaction<'static, sqlx::Any>,
) -> Pin<Box<dyn Future<Output = DbResult<()>> + Send + 'c>> {
    move |tx| {
        Box::pin(async move {
            sqlx::query("INSERT INTO effects (job_id, note) VALUES ($1, $2)")
                .bind(id)
                .bind(note)
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }
}

struct Flaky {
    runs: Arc<AtomicUsize>,
    fail_first: usize,
}

impl JobHandler for Flaky {
    fn queue(&self) -> &str {
        "flaky"
    }
    fn run<'a>(
        &'a self,
        _q: &'a JobQueue,
        lease: &'a Lease,
        _cancel: CancellationToken,
    ) -> JobFuture<'a> {
        Box::pin(async move {
            let n = self.runs.fetch_add(1, Ordering::SeqCst);
            if lease.payload["panic"] == true {
                panic!("handler bug");
            }
            if n < self.fail_first {
                Err(JobFailure::retry(format!("transient failure {n}")))
            } else {
                Ok(JobOutcome::Done(Some(json!({"runs": n + 1}))))
            }
        })
    }
}

#[tokio::test]
async fn the_runner_retries_until_done_and_survives_a_panicking_handler() {
    for t in testing::all("the_runner_retries_until_done_and_survives_a_panicking_handler").await {
        let q = JobQueue::new(t.db.clone(), fast());
        let ok = q.enqueue(NewJob::new("flaky", json!({}))).await.unwrap().id;
        let bad = q
            .enqueue(NewJob::new("flaky", json!({"panic": true})))
            .await
            .unwrap()
            .id;
        let runs = Arc::new(AtomicUsize::new(0));
        let handler: Arc<dyn JobHandler> = Arc::new(Flaky {
            runs: runs.clone(),
            fail_first: 1,
        });
        let shutdown = CancellationToken::new();
        let runner = JobRunner::new(q.clone(), vec![handler], Duration::from_millis(20));
        let tasks = runner.spawn(2, shutdown.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let a = q.get(ok).await.unwrap().state;
            let b = q.get(bad).await.unwrap().state;
            if a == JobState::Done && b == JobState::Dead {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "jobs stuck: {a:?} {b:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(
            q.get(bad)
                .await
                .unwrap()
                .last_error
                .unwrap()
                .contains("panicked")
        );
        assert!(q.get(ok).await.unwrap().result.is_some());
    }
}

struct Slow;

impl JobHandler for Slow {
    fn queue(&self) -> &str {
        "slow"
    }
    fn run<'a>(
        &'a self,
        _q: &'a JobQueue,
        _lease: &'a Lease,
        _cancel: CancellationToken,
    ) -> JobFuture<'a> {
        Box::pin(async move {
            // Longer than the lease: only heartbeats keep it.
            tokio::time::sleep(Duration::from_millis(900)).await;
            Ok(JobOutcome::Done(None))
        })
    }
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_leased_and_shutdown_lets_it_finish() {
    for t in testing::all("heartbeats_keep_a_long_job_leased_and_shutdown_lets_it_finish").await {
        let q = JobQueue::new(t.db.clone(), fast());
        let id = q.enqueue(NewJob::new("slow", json!({}))).await.unwrap().id;
        let shutdown = CancellationToken::new();
        let runner = JobRunner::new(q.clone(), vec![Arc::new(Slow)], Duration::from_millis(10));
        let tasks = runner.spawn(1, shutdown.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Past the 300 ms lease, still held: nobody else can take it.
        assert!(q.lease("slow", "intruder").await.unwrap().is_none());
        shutdown.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        let row = q.get(id).await.unwrap();
        assert_eq!(row.state, JobState::Done);
        assert_eq!(row.attempts, 1);
    }
}
