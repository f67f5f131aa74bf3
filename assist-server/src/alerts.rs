//! From risk hits to alerts: storing evidence, deduplication and rate
//! limits, the alert event log behind the SSE stream, and webhooks.
//!
//! How it fits together:
//!
//! - A caller (chat ingestion, call transcription) runs the risk engine,
//!   opens a transaction, takes [`AlertHub::writer`] and calls [`raise`] with
//!   every hit in context ([`HitInContext`]). `raise` stores each hit as a
//!   risk event, opens a new alert or counts a repeat on an open one
//!   (same conversation or call and category within `alert_dedup_secs`),
//!   applies the per-conversation rate limit, appends an `alert_log` row per
//!   change and a `webhook_deliveries` row per matching webhook — all in the
//!   caller's transaction, so an alert is never half-written.
//! - After the commit the caller calls [`Raised::publish`]: SSE subscribers
//!   wake up ([`AlertHub::subscribe`]) and each delivery becomes a job on
//!   the `webhook` queue (idempotent per delivery; deliveries left without a
//!   job by a crash are queued again at startup, [`requeue_deliveries`]).
//! - [`WebhookSender`] posts a delivery, signed with HMAC-SHA256 over
//!   `"{timestamp}.{body}"` ([`signature`]), retried with exponential backoff
//!   by the job queue; every attempt is recorded and the last one marks the
//!   delivery `failed`. The alert itself stays in the log either way.

use std::sync::Arc;
use std::time::Duration;

use assist_knowledge_base::Severity;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::config::AlertsConfig;
use crate::db::alerts::{self as store, AlertRow, DeliveryRow, RiskEventRow};
use crate::db::{Db, DbResult};
use crate::jobs::{JobFailure, JobFuture, JobHandler, JobOutcome, JobQueue, Lease, NewJob};
use crate::risk::RiskHit;
use crate::time::{now_ms, rfc3339};

/// The job queue webhook deliveries run on.
pub const WEBHOOK_QUEUE: &str = "webhook";

/// Event kinds in the alert log (SSE `event:` names, webhook `X-Assist-Event`).
pub const ALERT_CREATED: &str = "alert.created";
pub const ALERT_REPEATED: &str = "alert.repeated";
pub const ALERT_ACKNOWLEDGED: &str = "alert.acknowledged";
pub const ALERT_RESOLVED: &str = "alert.resolved";
pub const EVENT_KINDS: [&str; 4] = [
    ALERT_CREATED,
    ALERT_REPEATED,
    ALERT_ACKNOWLEDGED,
    ALERT_RESOLVED,
];

/// Wakes SSE streams when the alert log grows, and serialises log writers
/// within this process (across processes, see [`store::lock_alert_log`]).
#[derive(Debug, Clone)]
pub struct AlertHub {
    head: Arc<tokio::sync::watch::Sender<i64>>,
    write: Arc<tokio::sync::Mutex<()>>,
}

impl Default for AlertHub {
    fn default() -> Self {
        AlertHub {
            head: Arc::new(tokio::sync::watch::channel(0).0),
            write: Arc::default(),
        }
    }
}

impl AlertHub {
    /// Hold while writing to the alert log, until the transaction commits.
    pub async fn writer(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write.lock().await
    }

    /// A receiver that changes whenever new log rows are committed here.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.head.subscribe()
    }

    /// Say that log rows up to `seq` are committed.
    pub fn published(&self, seq: i64) {
        self.head.send_if_modified(|head| {
            if seq > *head {
                *head = seq;
                true
            } else {
                false
            }
        });
    }
}

/// Where a hit was found.
#[derive(Debug, Clone)]
pub enum Origin {
    Chat {
        conversation_id: String,
        message_id: String,
    },
    Call {
        call_id: String,
        segment_seq: i64,
        start_ms: i64,
        end_ms: i64,
    },
    /// A final of a live session: stored under the call id the session
    /// reserved, with `message_id` = `<session id>#<seq>` and no segment
    /// number (the recording's transcript numbers its own segments).
    Live {
        call_id: String,
        session_id: String,
        final_seq: i64,
        start_ms: i64,
        end_ms: i64,
    },
}

/// A risk hit with who said it and where.
#[derive(Debug, Clone)]
pub struct HitInContext {
    pub origin: Origin,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    /// `rep`, `customer` or `unknown`.
    pub speaker: String,
    pub hit: RiskHit,
}

/// What [`raise`] wrote.
#[derive(Debug, Default)]
pub struct Raised {
    pub events: Vec<RiskEventRow>,
    /// Alerts created or repeated, as they are after this write.
    pub alerts: Vec<AlertRow>,
    pub deliveries: Vec<DeliveryRow>,
    pub last_seq: i64,
}

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

fn new_id(kind: &str) -> String {
    format!("{kind}_{}", uuid::Uuid::now_v7().simple())
}

fn severity_rank(s: &str) -> u8 {
    match Severity::parse(s) {
        Some(Severity::Low) => 1,
        Some(Severity::Medium) => 2,
        Some(Severity::High) => 3,
        Some(Severity::Critical) => 4,
        None => 0,
    }
}

/// Store `hits` (one organisation's), raising or repeating alerts. Call
/// inside the caller's transaction while holding [`AlertHub::writer`].
pub async fn raise(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    db: &Db,
    config: &AlertsConfig,
    org_id: &str,
    hits: Vec<HitInContext>,
) -> DbResult<Raised> {
    let mut out = Raised::default();
    if hits.is_empty() {
        return Ok(out);
    }
    store::lock_alert_log(tx, db.backend()).await?;
    let now = now_ms();
    let window_start = now - (config.alert_dedup_secs as i64) * 1000;
    let mut webhooks: Option<Vec<store::WebhookRow>> = None;
    type OriginKey = (Option<String>, Option<String>, Option<i64>, String);
    let mut same_origin: std::collections::HashMap<OriginKey, String> =
        std::collections::HashMap::new();
    for h in hits {
        let (conversation_id, message_id, call_id, segment_seq, start_ms, end_ms, source) =
            match &h.origin {
                Origin::Chat {
                    conversation_id,
                    message_id,
                } => (
                    Some(conversation_id.clone()),
                    Some(message_id.clone()),
                    None,
                    None,
                    None,
                    None,
                    "chat",
                ),
                Origin::Call {
                    call_id,
                    segment_seq,
                    start_ms,
                    end_ms,
                } => (
                    None,
                    None,
                    Some(call_id.clone()),
                    Some(*segment_seq),
                    Some(*start_ms),
                    Some(*end_ms),
                    "call",
                ),
                Origin::Live {
                    call_id,
                    session_id,
                    final_seq,
                    start_ms,
                    end_ms,
                } => (
                    None,
                    Some(format!("{session_id}#{final_seq}")),
                    Some(call_id.clone()),
                    None,
                    Some(*start_ms),
                    Some(*end_ms),
                    "call",
                ),
            };
        let mut event = RiskEventRow {
            id: new_id("risk"),
            org_id: org_id.to_string(),
            source: source.to_string(),
            conversation_id,
            message_id,
            call_id,
            segment_seq,
            rep_user_id: h.rep_user_id.clone(),
            team_id: h.team_id.clone(),
            speaker: h.speaker.clone(),
            category: h.hit.category.as_str().to_string(),
            severity: h.hit.severity.as_str().to_string(),
            action: h.hit.action.as_str().to_string(),
            detector: serde_json::to_value(h.hit.detector)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            rule: h.hit.rule.clone(),
            confidence: f64::from(h.hit.confidence),
            char_start: h.hit.char_start as i64,
            char_end: h.hit.char_end as i64,
            start_ms,
            end_ms,
            snippet: h.hit.snippet.clone(),
            negated: h.hit.negated,
            suppressed: h.hit.suppressed.map(|s| {
                serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{s:?}"))
            }),
            alert_id: None,
            created_at: now,
        };
        // Several hits of one category in one message count once.
        let origin_key = (
            event.message_id.clone(),
            event.call_id.clone(),
            event.segment_seq,
            event.category.clone(),
        );
        if h.hit.is_alert()
            && let Some(alert_id) = same_origin.get(&origin_key)
        {
            event.alert_id = Some(alert_id.clone());
        } else if h.hit.is_alert() {
            let conv = event.conversation_id.as_deref();
            let call = event.call_id.as_deref();
            let open = store::open_alert_for(tx, org_id, conv, call, &event.category, window_start)
                .await?;
            let (alert, kind) = match open {
                Some(mut a) => {
                    a.occurrences += 1;
                    a.last_seen_at = now;
                    a.updated_at = now;
                    if severity_rank(&event.severity) > severity_rank(&a.severity) {
                        a.severity = event.severity.clone();
                    }
                    store::bump_alert(tx, &a).await?;
                    (Some(a), ALERT_REPEATED)
                }
                None => {
                    let recent =
                        store::alerts_raised_since(tx, org_id, conv, call, window_start).await?;
                    if recent >= i64::from(config.alert_max_per_conversation) {
                        event.suppressed = Some("rate_limited".into());
                        (None, "")
                    } else {
                        let a = AlertRow {
                            id: new_id("alert"),
                            org_id: org_id.to_string(),
                            team_id: event.team_id.clone(),
                            rep_user_id: event.rep_user_id.clone(),
                            source: event.source.clone(),
                            conversation_id: event.conversation_id.clone(),
                            call_id: event.call_id.clone(),
                            category: event.category.clone(),
                            severity: event.severity.clone(),
                            first_event_id: event.id.clone(),
                            snippet: event.snippet.clone(),
                            occurrences: 1,
                            status: "open".into(),
                            created_at: now,
                            updated_at: now,
                            last_seen_at: now,
                            acknowledged_by: None,
                            acknowledged_at: None,
                            resolved_by: None,
                            resolved_at: None,
                            note: None,
                        };
                        store::insert_alert(tx, &a).await?;
                        (Some(a), ALERT_CREATED)
                    }
                }
            };
            if let Some(alert) = alert {
                event.alert_id = Some(alert.id.clone());
                same_origin.insert(origin_key, alert.id.clone());
                let payload = json!({
                    "alert": AlertView::from(&alert),
                    "evidence": EvidenceView::from(&event),
                })
                .to_string();
                let seq = store::append_alert_log(
                    tx,
                    org_id,
                    alert.team_id.as_deref(),
                    &alert.id,
                    kind,
                    &payload,
                    now,
                )
                .await?;
                out.last_seq = out.last_seq.max(seq);
                if webhooks.is_none() {
                    webhooks = Some(store::active_webhooks(tx, org_id).await?);
                }
                for w in webhooks.iter().flatten() {
                    if wants(w, kind, &alert) {
                        let d = delivery(w, &alert, kind, seq, &payload, now);
                        store::insert_delivery(tx, &d).await?;
                        out.deliveries.push(d);
                    }
                }
                out.alerts.retain(|a| a.id != alert.id);
                out.alerts.push(alert);
            }
        }
        store::insert_risk_event(tx, &event).await?;
        out.events.push(event);
    }
    Ok(out)
}

/// Whether webhook `w` receives event `kind` of `alert`.
fn wants(w: &store::WebhookRow, kind: &str, alert: &AlertRow) -> bool {
    w.active
        && w.events.iter().any(|e| e == kind)
        && w.team_id
            .as_ref()
            .is_none_or(|t| alert.team_id.as_ref() == Some(t))
        && severity_rank(&alert.severity) >= severity_rank(&w.min_severity)
}

fn delivery(
    w: &store::WebhookRow,
    alert: &AlertRow,
    kind: &str,
    seq: i64,
    payload: &str,
    now: i64,
) -> DeliveryRow {
    let id = new_id("dlv");
    let data: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
    let body = json!({
        "id": id,
        "event": kind,
        "event_id": seq,
        "org_id": alert.org_id,
        "created_at": rfc3339(now),
        "data": data,
    })
    .to_string();
    DeliveryRow {
        id,
        org_id: alert.org_id.clone(),
        webhook_id: w.id.clone(),
        alert_id: alert.id.clone(),
        event_seq: seq,
        event: kind.to_string(),
        payload: body,
        status: "pending".into(),
        attempts: 0,
        last_status: None,
        last_error: None,
        job_id: None,
        created_at: now,
        last_attempt_at: None,
        delivered_at: None,
    }
}

/// Append a status change (acknowledged / resolved) to the log, with webhooks.
pub async fn log_change(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    db: &Db,
    alert: &AlertRow,
    kind: &str,
) -> DbResult<Raised> {
    store::lock_alert_log(tx, db.backend()).await?;
    let now = now_ms();
    let payload = json!({ "alert": AlertView::from(alert) }).to_string();
    let seq = store::append_alert_log(
        tx,
        &alert.org_id,
        alert.team_id.as_deref(),
        &alert.id,
        kind,
        &payload,
        now,
    )
    .await?;
    let mut out = Raised {
        last_seq: seq,
        ..Raised::default()
    };
    for w in store::active_webhooks(tx, &alert.org_id).await? {
        if wants(&w, kind, alert) {
            let d = delivery(&w, alert, kind, seq, &payload, now);
            store::insert_delivery(tx, &d).await?;
            out.deliveries.push(d);
        }
    }
    out.alerts.push(alert.clone());
    Ok(out)
}

impl Raised {
    /// After the commit: wake streams and queue the webhook deliveries.
    pub async fn publish(&self, hub: &AlertHub, jobs: &JobQueue, max_attempts: u32) {
        if self.last_seq > 0 {
            hub.published(self.last_seq);
        }
        for d in &self.deliveries {
            if let Err(err) = enqueue_delivery(jobs, d, max_attempts).await {
                // Startup requeues deliveries without a job; nothing is lost.
                tracing::warn!(error = %err, delivery = %d.id, "webhook delivery not queued yet");
            }
        }
        for a in &self.alerts {
            metrics::counter!("assist_alerts_total", "category" => a.category.clone(), "source" => a.source.clone())
                .increment(1);
        }
    }
}

async fn enqueue_delivery(jobs: &JobQueue, d: &DeliveryRow, max_attempts: u32) -> DbResult<()> {
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
