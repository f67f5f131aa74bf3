//! Webhook deliveries: queued after an alert write commits, posted signed
//! (HMAC-SHA256), retried by the job queue, every attempt recorded.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::config::AlertsConfig;
use crate::db::alerts::DeliveryRow;
use crate::db::{Db, DbResult};
use crate::jobs::{JobFailure, JobFuture, JobHandler, JobOutcome, JobQueue, Lease, NewJob};
use crate::time::now_ms;

/// The job queue webhook deliveries run on.
pub const WEBHOOK_QUEUE: &str = "webhook";

pub(crate) async fn enqueue_delivery(
    jobs: &JobQueue,
    d: &DeliveryRow,
    max_attempts: u32,
) -> DbResult<()> {
    let job = jobs
        .enqueue(
            NewJob::new(WEBHOOK_QUEUE, json!({ "delivery_id": d.id }))
                .org(d.org_id.clone())
                .idempotency_key(format!("webhook:{}", d.id))
                .max_attempts(max_attempts.max(1)),
        )
        .await?;
    jobs.db().set_delivery_job(&d.id, job.id).await
}

/// Queue pending deliveries that never got a job (a crash between commit and enqueue).
pub async fn requeue_deliveries(db: &Db, jobs: &JobQueue, max_attempts: u32) -> DbResult<usize> {
    let pending = db.deliveries_without_job().await?;
    for d in &pending {
        enqueue_delivery(jobs, d, max_attempts).await?;
    }
    Ok(pending.len())
}

/// A new webhook signing secret (`whsec_` and 64 hex digits).
pub fn new_webhook_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the
/// `X-Assist-Signature` header. Receivers recompute it and reject old `t`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Posts webhook deliveries (the `webhook` queue).
#[derive(Debug, Clone)]
pub struct WebhookSender {
    pub db: Db,
    pub http: reqwest::Client,
    /// Where deliveries may go (see [`crate::webhook_target`]).
    pub policy: crate::webhook_target::TargetPolicy,
}

impl WebhookSender {
    pub fn new(db: Db, config: &AlertsConfig) -> anyhow::Result<Self> {
        let policy = crate::webhook_target::TargetPolicy::from_config(config);
        let http = crate::webhook_target::guard_client(reqwest::Client::builder(), policy)
            .timeout(Duration::from_secs(config.webhook_timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(
                config.webhook_timeout_secs.clamp(1, 10),
            ))
            // A webhook that redirects is misconfigured; following it could
            // send alert evidence somewhere nobody approved.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("assist-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebhookSender { db, http, policy })
    }

    async fn deliver(&self, lease: &Lease) -> Result<JobOutcome, JobFailure> {
        let id = lease
            .payload
            .get("delivery_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| JobFailure::permanent("job payload has no delivery_id"))?;
        let d = self
            .db
            .get_delivery(id)
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        if d.status != "pending" {
            return Ok(JobOutcome::Done(None));
        }
        let hook = self
            .db
            .get_webhook(&d.org_id, &d.webhook_id)
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        // Registered before the policy was tightened, or the operator changed
        // it since: refused for good, and the log says why.
        if let Err(e) = crate::webhook_target::check_url(&hook.url, self.policy) {
            let error = format!("refused: {e}");
            self.db
                .record_delivery_attempt(&d.id, "failed", None, Some(error.as_str()), now_ms())
                .await
                .map_err(|e| JobFailure::retry(e.to_string()))?;
            return Err(JobFailure::permanent(error));
        }
        let last = lease.attempt >= lease.max_attempts;
        let ts = now_ms() / 1000;
        let sent = self
            .http
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Assist-Event", &d.event)
            .header("X-Assist-Delivery", &d.id)
            .header(
                "X-Assist-Signature",
                signature(&hook.secret, ts, &d.payload),
            )
            .body(d.payload.clone())
            .send()
            .await;
        let (http_status, error) = match sent {
            Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
            Ok(resp) => (
                Some(resp.status().as_u16()),
                Some(format!("the endpoint answered {}", resp.status())),
            ),
            Err(e) if e.is_timeout() => (None, Some("the endpoint did not answer in time".into())),
            Err(e) => (None, Some(format!("could not reach the endpoint: {e}"))),
        };
        let status = match (&error, last) {
            (None, _) => "delivered",
            (Some(_), true) => "failed",
            (Some(_), false) => "pending",
        };
        self.db
            .record_delivery_attempt(
                &d.id,
                status,
                http_status.map(i64::from),
                error.as_deref(),
                now_ms(),
            )
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        metrics::counter!("assist_webhook_attempts_total", "outcome" => status).increment(1);
        match error {
            None => Ok(JobOutcome::Done(
                http_status.map(|s| json!({ "status": s })),
            )),
            Some(e) if last => Err(JobFailure::permanent(e)),
            Some(e) => Err(JobFailure::retry(e)),
        }
    }
}

impl JobHandler for WebhookSender {
    fn queue(&self) -> &str {
        WEBHOOK_QUEUE
    }

    fn run<'a>(
        &'a self,
        _queue: &'a JobQueue,
        lease: &'a Lease,
        _cancel: CancellationToken,
    ) -> JobFuture<'a> {
        Box::pin(self.deliver(lease))
    }
}
