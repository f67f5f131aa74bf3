//! Risk events, alerts, the alert event log, webhooks and their deliveries.
//!
//! Every risk hit is kept as a `risk_events` row (suppressed ones too, for
//! audit and appeals). Hits that should reach a manager raise or repeat an
//! `alerts` row; every change to an alert appends one `alert_log` row whose
//! `seq` is the SSE event id, so a client that reconnects with
//! `Last-Event-ID` misses nothing. Writers of the log are serialised (see
//! [`crate::alerts::AlertHub`]) so `seq` order is commit order.
//!
//! This file holds the rows and the reads; `write` the writes made inside
//! the alert path's transaction.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db, DbError, DbResult};

mod write;

pub use write::*;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A risk event to store.
#[derive(Debug, Clone, Serialize)]
pub struct RiskEventRow {
    pub id: String,
    pub org_id: String,
    /// `chat` or `call`.
    pub source: String,
    pub conversation_id: Option<String>,
    pub message_id: Option<String>,
    pub call_id: Option<String>,
    pub segment_seq: Option<i64>,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub speaker: String,
    pub category: String,
    pub severity: String,
    pub action: String,
    pub detector: String,
    pub rule: String,
    pub confidence: f64,
    pub char_start: i64,
    pub char_end: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub snippet: String,
    pub negated: bool,
    /// Why no alert was raised: `negated`, `role`, `rate_limited`, …
    pub suppressed: Option<String>,
    pub alert_id: Option<String>,
    pub created_at: i64,
}

/// An alert as stored.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: String,
    pub org_id: String,
    pub team_id: Option<String>,
    pub rep_user_id: String,
    pub source: String,
    pub conversation_id: Option<String>,
    pub call_id: Option<String>,
    pub category: String,
    pub severity: String,
    pub first_event_id: String,
    pub snippet: String,
    pub occurrences: i64,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seen_at: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub note: Option<String>,
    /// `confirmed` or `false_positive`, once someone judged it.
    pub verdict: Option<String>,
    pub verdict_by: Option<String>,
    pub verdict_at: Option<i64>,
}

/// One row of the alert event log.
#[derive(Debug, Clone)]
pub struct AlertLogRow {
    pub seq: i64,
    pub org_id: String,
    pub team_id: Option<String>,
    pub alert_id: String,
    pub kind: String,
    pub payload: String,
    pub at: i64,
}

/// An outgoing webhook.
#[derive(Clone, Serialize)]
pub struct WebhookRow {
    pub id: String,
    pub org_id: String,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub team_id: Option<String>,
    pub min_severity: String,
    /// Event kinds it receives (`alert.created`, …).
    pub events: Vec<String>,
    pub description: Option<String>,
    pub active: bool,
    pub created_by: String,
    pub created_at: i64,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .finish()
    }
}

/// One delivery of one event to one webhook.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    pub id: String,
    pub org_id: String,
    pub webhook_id: String,
    pub alert_id: String,
    pub event_seq: i64,
    pub event: String,
    #[serde(skip)]
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub job_id: Option<i64>,
    pub created_at: i64,
    pub last_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
}

const ALERT_COLUMNS: &str = "id, org_id, team_id, rep_user_id, source, conversation_id, call_id, category, severity, \
     first_event_id, snippet, occurrences, status, created_at, updated_at, last_seen_at, acknowledged_by, \
     acknowledged_at, resolved_by, resolved_at, note, verdict, verdict_by, verdict_at";
const EVENT_COLUMNS: &str = "id, org_id, source, conversation_id, message_id, call_id, segment_seq, rep_user_id, team_id, \
     speaker, category, severity, action, detector, rule, confidence, char_start, char_end, start_ms, end_ms, snippet, \
     negated, suppressed, alert_id, created_at";
const WEBHOOK_COLUMNS: &str = "id, org_id, url, secret, team_id, min_severity, events, description, active, created_by, created_at";
const DELIVERY_COLUMNS: &str = "id, org_id, webhook_id, alert_id, event_seq, event, payload, status, attempts, last_status, \
     last_error, job_id, created_at, last_attempt_at, delivered_at";

fn alert_row(r: &AnyRow) -> DbResult<AlertRow> {
    Ok(AlertRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        team_id: r.try_get("team_id")?,
        rep_user_id: r.try_get("rep_user_id")?,
        source: r.try_get("source")?,
        conversation_id: r.try_get("conversation_id")?,
        call_id: r.try_get("call_id")?,
        category: r.try_get("category")?,
        severity: r.try_get("severity")?,
        first_event_id: r.try_get("first_event_id")?,
        snippet: r.try_get("snippet")?,
        occurrences: r.try_get("occurrences")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        acknowledged_by: r.try_get("acknowledged_by")?,
        acknowledged_at: r.try_get("acknowledged_at")?,
        resolved_by: r.try_get("resolved_by")?,
        resolved_at: r.try_get("resolved_at")?,
        note: r.try_get("note")?,
        verdict: r.try_get("verdict")?,
        verdict_by: r.try_get("verdict_by")?,
        verdict_at: r.try_get("verdict_at")?,
    })
}

fn event_row(r: &AnyRow) -> DbResult<RiskEventRow> {
    Ok(RiskEventRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        source: r.try_get("source")?,
        conversation_id: r.try_get("conversation_id")?,
        message_id: r.try_get("message_id")?,
        call_id: r.try_get("call_id")?,
        segment_seq: r.try_get("segment_seq")?,
        rep_user_id: r.try_get("rep_user_id")?,
        team_id: r.try_get("team_id")?,
        speaker: r.try_get("speaker")?,
        category: r.try_get("category")?,
        severity: r.try_get("severity")?,
        action: r.try_get("action")?,
        detector: r.try_get("detector")?,
        rule: r.try_get("rule")?,
        confidence: r.try_get("confidence")?,
        char_start: r.try_get("char_start")?,
        char_end: r.try_get("char_end")?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        snippet: r.try_get("snippet")?,
        negated: r.try_get::<i64, _>("negated")? != 0,
        suppressed: r.try_get("suppressed")?,
        alert_id: r.try_get("alert_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A webhook as stored; its secret is opened with `db`'s key, or left empty
/// without one (routing an alert to webhooks needs no secret).
fn webhook_row(db: Option<&Db>, r: &AnyRow) -> DbResult<WebhookRow> {
    let id: String = r.try_get("id")?;
    let secret = match db {
        Some(db) => {
            let stored: String = r.try_get("secret")?;
            db.open_secret(&super::secrets::webhook_owner(&id), &stored)?
        }
        None => Vec::new(),
    };
    let events: String = r.try_get("events")?;
    Ok(WebhookRow {
        org_id: r.try_get("org_id")?,
        url: r.try_get("url")?,
        secret: String::from_utf8(secret)
            .map_err(|_| DbError::Invalid(format!("webhook `{id}` has an unreadable secret")))?,
        id,
        team_id: r.try_get("team_id")?,
        min_severity: r.try_get("min_severity")?,
        events: events
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        description: r.try_get("description")?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn delivery_row(r: &AnyRow) -> DbResult<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        webhook_id: r.try_get("webhook_id")?,
        alert_id: r.try_get("alert_id")?,
        event_seq: r.try_get("event_seq")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        job_id: r.try_get("job_id")?,
        created_at: r.try_get("created_at")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

/// Filters for listing alerts.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub team_id: Option<String>,
    pub status: Option<String>,
    pub conversation_id: Option<String>,
    pub call_id: Option<String>,
    pub severity: Option<String>,
    pub category: Option<String>,
    pub rep_user_id: Option<String>,
    pub limit: i64,
}

impl Db {
    pub async fn get_alert(&self, id: &str) -> DbResult<AlertRow> {
        let r = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no alert `{id}`")))?;
        alert_row(&r)
    }

    pub async fn list_alerts(&self, org_id: &str, f: &AlertFilter) -> DbResult<Vec<AlertRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE org_id = $1 AND ($2 = '' OR team_id = $2) \
             AND ($3 = '' OR status = $3) AND ($4 = '' OR conversation_id = $4) AND ($5 = '' OR call_id = $5) \
             AND ($7 = '' OR severity = $7) AND ($8 = '' OR category = $8) AND ($9 = '' OR rep_user_id = $9) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        ))
        .bind(org_id)
        .bind(f.team_id.as_deref().unwrap_or(""))
        .bind(f.status.as_deref().unwrap_or(""))
        .bind(f.conversation_id.as_deref().unwrap_or(""))
        .bind(f.call_id.as_deref().unwrap_or(""))
        .bind(f.limit.clamp(1, 1000))
        .bind(f.severity.as_deref().unwrap_or(""))
        .bind(f.category.as_deref().unwrap_or(""))
        .bind(f.rep_user_id.as_deref().unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(alert_row).collect()
    }

    /// How many alerts of the organisation (or one team) have `status`:
    /// a number, no content, for home pages.
    pub async fn count_alerts(
        &self,
        org_id: &str,
        team_id: Option<&str>,
        status: &str,
    ) -> DbResult<i64> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM alerts WHERE org_id = $1 AND ($2 = '' OR team_id = $2) AND status = $3",
        )
        .bind(org_id)
        .bind(team_id.unwrap_or(""))
        .bind(status)
        .fetch_one(self.pool())
        .await?;
        Ok(r.try_get("n")?)
    }

    /// Record a person's verdict on an alert (and replace its note if one
    /// is given).
    pub async fn set_alert_verdict(
        &self,
        id: &str,
        verdict: &str,
        user_id: &str,
        note: Option<&str>,
        at: i64,
    ) -> DbResult<()> {
        let done = sqlx::query(
            "UPDATE alerts SET verdict = $1, verdict_by = $2, verdict_at = $3, note = COALESCE($4, note) \
             WHERE id = $5",
        )
        .bind(verdict)
        .bind(user_id)
        .bind(at)
        .bind(note)
        .bind(id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("no alert `{id}`")));
        }
        Ok(())
    }

    /// Risk events of an alert, or of a conversation or call.
    pub async fn risk_events(
        &self,
        org_id: &str,
        alert_id: Option<&str>,
        conversation_id: Option<&str>,
        call_id: Option<&str>,
    ) -> DbResult<Vec<RiskEventRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM risk_events WHERE org_id = $1 AND ($2 = '' OR alert_id = $2) \
             AND ($3 = '' OR conversation_id = $3) AND ($4 = '' OR call_id = $4) ORDER BY created_at, id LIMIT 5000"
        ))
        .bind(org_id)
        .bind(alert_id.unwrap_or(""))
        .bind(conversation_id.unwrap_or(""))
        .bind(call_id.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_row).collect()
    }

    /// Log rows after `after`, oldest first, optionally one team's only.
    pub async fn alert_log_after(
        &self,
        org_id: &str,
        team_id: Option<&str>,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<AlertLogRow>> {
        let rows = sqlx::query(
            "SELECT seq, org_id, team_id, alert_id, kind, payload, at FROM alert_log \
             WHERE org_id = $1 AND seq > $2 AND ($3 = '' OR team_id = $3) ORDER BY seq LIMIT $4",
        )
        .bind(org_id)
        .bind(after)
        .bind(team_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertLogRow {
                    seq: r.try_get("seq")?,
                    org_id: r.try_get("org_id")?,
                    team_id: r.try_get("team_id")?,
                    alert_id: r.try_get("alert_id")?,
                    kind: r.try_get("kind")?,
                    payload: r.try_get("payload")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// The newest log `seq` (0 when empty).
    pub async fn alert_log_head(&self) -> DbResult<i64> {
        let r = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS head FROM alert_log")
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get("head")?)
    }

    pub async fn create_webhook(&self, w: &WebhookRow) -> DbResult<()> {
        sqlx::query(&format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&w.id)
        .bind(&w.org_id)
        .bind(&w.url)
        .bind(self.seal_secret(&super::secrets::webhook_owner(&w.id), w.secret.as_bytes())?)
        .bind(&w.team_id)
        .bind(&w.min_severity)
        .bind(w.events.join(","))
        .bind(&w.description)
        .bind(i64::from(w.active))
        .bind(&w.created_by)
        .bind(w.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_webhook(&self, org_id: &str, id: &str) -> DbResult<WebhookRow> {
        let r = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no webhook `{id}`")))?;
        webhook_row(Some(self), &r)
    }

    pub async fn list_webhooks(&self, org_id: &str) -> DbResult<Vec<WebhookRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 ORDER BY created_at"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| webhook_row(Some(self), r)).collect()
    }

    /// Switch a webhook off (deliveries already queued still run and are logged).
    pub async fn deactivate_webhook(&self, org_id: &str, id: &str) -> DbResult<()> {
        let done = sqlx::query("UPDATE webhooks SET active = 0 WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("no webhook `{id}`")));
        }
        Ok(())
    }

    pub async fn get_delivery(&self, id: &str) -> DbResult<DeliveryRow> {
        let r = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no delivery `{id}`")))?;
        delivery_row(&r)
    }

    pub async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
    ) -> DbResult<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(webhook_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_row).collect()
    }

    /// Pending deliveries that have no job (the server stopped between the
    /// commit and the enqueue).
    pub async fn deliveries_without_job(&self) -> DbResult<Vec<DeliveryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'pending' AND job_id IS NULL"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_row).collect()
    }

    pub async fn set_delivery_job(&self, id: &str, job_id: i64) -> DbResult<()> {
        sqlx::query("UPDATE webhook_deliveries SET job_id = $1 WHERE id = $2")
            .bind(job_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Record one attempt: its HTTP status (if any), error, and the new state.
    pub async fn record_delivery_attempt(
        &self,
        id: &str,
        status: &str,
        http_status: Option<i64>,
        error: Option<&str>,
        at: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $1, last_status = $2, last_error = $3, \
             last_attempt_at = $4, delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END \
             WHERE id = $5",
        )
        .bind(status)
        .bind(http_status)
        .bind(error)
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
