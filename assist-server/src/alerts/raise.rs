//! Writing hits and status changes to the alert tables, inside the caller's
//! transaction: risk events, new or repeated alerts (dedup window, rate
//! limit), the alert log and webhook deliveries.

use assist_knowledge_base::Severity;
use assist_protocol::Speaker;
use assist_risk::RiskHit;
use serde_json::json;

use super::hub::AlertHub;
use super::views::{AlertView, EvidenceView};
use super::webhook::enqueue_delivery;
use super::{ALERT_CREATED, ALERT_REPEATED};
use crate::config::AlertsConfig;
use crate::db::alerts::{self as store, AlertRow, DeliveryRow, RiskEventRow};
use crate::db::{Db, DbResult};
use crate::jobs::JobQueue;
use crate::time::{now_ms, rfc3339};

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
    pub speaker: Speaker,
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

/// The risk event row of one hit, not yet tied to an alert.
fn event_row(h: &HitInContext, org_id: &str, now: i64) -> RiskEventRow {
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
    RiskEventRow {
        id: new_id("risk"),
        org_id: org_id.to_string(),
        source: source.to_string(),
        conversation_id,
        message_id,
        call_id,
        segment_seq,
        rep_user_id: h.rep_user_id.clone(),
        team_id: h.team_id.clone(),
        speaker: h.speaker.as_str().to_string(),
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
        let mut event = event_row(&h, org_id, now);
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
            let window = Window {
                start: window_start,
                max_alerts: config.alert_max_per_conversation,
            };
            let (alert, kind) = match open_or_repeat(tx, org_id, &mut event, now, window).await? {
                Some((a, kind)) => (Some(a), kind),
                None => (None, ""),
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

/// The dedup window and the rate limit of one write.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    max_alerts: u32,
}

/// Repeat the open alert of the event's conversation (or call) and category
/// within the window, or open a new one unless the conversation reached its
/// limit (the event is then marked `rate_limited`). Returns the alert and
/// the log event kind, or `None` when rate limited.
async fn open_or_repeat(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org_id: &str,
    event: &mut RiskEventRow,
    now: i64,
    window: Window,
) -> DbResult<Option<(AlertRow, &'static str)>> {
    let conv = event.conversation_id.as_deref();
    let call = event.call_id.as_deref();
    let open = store::open_alert_for(tx, org_id, conv, call, &event.category, window.start).await?;
    Ok(match open {
        Some(mut a) => {
            a.occurrences += 1;
            a.last_seen_at = now;
            a.updated_at = now;
            if severity_rank(&event.severity) > severity_rank(&a.severity) {
                a.severity = event.severity.clone();
            }
            store::bump_alert(tx, &a).await?;
            Some((a, ALERT_REPEATED))
        }
        None => {
            let recent = store::alerts_raised_since(tx, org_id, conv, call, window.start).await?;
            if recent >= i64::from(window.max_alerts) {
                event.suppressed = Some("rate_limited".into());
                None
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
                    verdict: None,
                    verdict_by: None,
                    verdict_at: None,
                };
                store::insert_alert(tx, &a).await?;
                Some((a, ALERT_CREATED))
            }
        }
    })
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
