//! Writes to the alert tables inside the caller's transaction.

use super::*;

/// Serialise alert-log writers across server nodes sharing one PostgreSQL:
/// the lock is held until the transaction ends, so `seq` values commit in
/// order. On SQLite, take the write lock now: a transaction that reads
/// first and writes later cannot upgrade while another writer is active
/// ("database is locked"); one that starts by writing waits its turn.
pub async fn lock_alert_log(tx: &mut Tx, backend: Backend) -> DbResult<()> {
    match backend {
        Backend::Postgres => {
            sqlx::query("SELECT pg_advisory_xact_lock(7413062)")
                .execute(&mut **tx)
                .await?;
        }
        Backend::Sqlite => {
            sqlx::query("UPDATE alert_log SET seq = seq WHERE seq = -1")
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

pub async fn insert_risk_event(tx: &mut Tx, e: &RiskEventRow) -> DbResult<()> {
    sqlx::query(&format!(
        "INSERT INTO risk_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)"
    ))
    .bind(&e.id)
    .bind(&e.org_id)
    .bind(&e.source)
    .bind(&e.conversation_id)
    .bind(&e.message_id)
    .bind(&e.call_id)
    .bind(e.segment_seq)
    .bind(&e.rep_user_id)
    .bind(&e.team_id)
    .bind(&e.speaker)
    .bind(&e.category)
    .bind(&e.severity)
    .bind(&e.action)
    .bind(&e.detector)
    .bind(&e.rule)
    .bind(e.confidence)
    .bind(e.char_start)
    .bind(e.char_end)
    .bind(e.start_ms)
    .bind(e.end_ms)
    .bind(&e.snippet)
    .bind(i64::from(e.negated))
    .bind(&e.suppressed)
    .bind(&e.alert_id)
    .bind(e.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The unresolved alert of the same conversation (or call) and category
/// seen since `since`, if any: a repeat bumps it instead of raising another.
pub async fn open_alert_for(
    tx: &mut Tx,
    org_id: &str,
    conversation_id: Option<&str>,
    call_id: Option<&str>,
    category: &str,
    since: i64,
) -> DbResult<Option<AlertRow>> {
    let r = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE org_id = $1 AND category = $2 AND status <> 'resolved' \
         AND last_seen_at >= $3 AND COALESCE(conversation_id, '') = $4 AND COALESCE(call_id, '') = $5 \
         ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(category)
    .bind(since)
    .bind(conversation_id.unwrap_or(""))
    .bind(call_id.unwrap_or(""))
    .fetch_optional(&mut **tx)
    .await?;
    r.as_ref().map(alert_row).transpose()
}

/// Alerts raised for one conversation (or call) since `since`.
pub async fn alerts_raised_since(
    tx: &mut Tx,
    org_id: &str,
    conversation_id: Option<&str>,
    call_id: Option<&str>,
    since: i64,
) -> DbResult<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM alerts WHERE org_id = $1 AND created_at >= $2 \
         AND COALESCE(conversation_id, '') = $3 AND COALESCE(call_id, '') = $4",
    )
    .bind(org_id)
    .bind(since)
    .bind(conversation_id.unwrap_or(""))
    .bind(call_id.unwrap_or(""))
    .fetch_one(&mut **tx)
    .await?;
    Ok(r.try_get("n")?)
}

pub async fn insert_alert(tx: &mut Tx, a: &AlertRow) -> DbResult<()> {
    sqlx::query(&format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
    ))
    .bind(&a.id)
    .bind(&a.org_id)
    .bind(&a.team_id)
    .bind(&a.rep_user_id)
    .bind(&a.source)
    .bind(&a.conversation_id)
    .bind(&a.call_id)
    .bind(&a.category)
    .bind(&a.severity)
    .bind(&a.first_event_id)
    .bind(&a.snippet)
    .bind(a.occurrences)
    .bind(&a.status)
    .bind(a.created_at)
    .bind(a.updated_at)
    .bind(a.last_seen_at)
    .bind(&a.acknowledged_by)
    .bind(a.acknowledged_at)
    .bind(&a.resolved_by)
    .bind(a.resolved_at)
    .bind(&a.note)
    .bind(&a.verdict)
    .bind(&a.verdict_by)
    .bind(a.verdict_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Count one more occurrence (raising the severity if this one is higher).
pub async fn bump_alert(tx: &mut Tx, a: &AlertRow) -> DbResult<()> {
    sqlx::query(
        "UPDATE alerts SET occurrences = $1, severity = $2, last_seen_at = $3, updated_at = $3 WHERE id = $4",
    )
    .bind(a.occurrences)
    .bind(&a.severity)
    .bind(a.last_seen_at)
    .bind(&a.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Append to the alert log; returns the new `seq`.
pub async fn append_alert_log(
    tx: &mut Tx,
    org_id: &str,
    team_id: Option<&str>,
    alert_id: &str,
    kind: &str,
    payload: &str,
    at: i64,
) -> DbResult<i64> {
    let r = sqlx::query(
        "INSERT INTO alert_log (org_id, team_id, alert_id, kind, payload, at) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING seq",
    )
    .bind(org_id)
    .bind(team_id)
    .bind(alert_id)
    .bind(kind)
    .bind(payload)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(r.try_get("seq")?)
}

pub async fn insert_delivery(tx: &mut Tx, d: &DeliveryRow) -> DbResult<()> {
    sqlx::query(&format!(
        "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15)"
    ))
    .bind(&d.id)
    .bind(&d.org_id)
    .bind(&d.webhook_id)
    .bind(&d.alert_id)
    .bind(d.event_seq)
    .bind(&d.event)
    .bind(&d.payload)
    .bind(&d.status)
    .bind(d.attempts)
    .bind(d.last_status)
    .bind(&d.last_error)
    .bind(d.job_id)
    .bind(d.created_at)
    .bind(d.last_attempt_at)
    .bind(d.delivered_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn active_webhooks(tx: &mut Tx, org_id: &str) -> DbResult<Vec<WebhookRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 AND active = 1 ORDER BY created_at"
    ))
    .bind(org_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|r| webhook_row(None, r)).collect()
}

pub async fn get_alert_tx(tx: &mut Tx, id: &str) -> DbResult<AlertRow> {
    let r = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no alert `{id}`")))?;
    alert_row(&r)
}

/// Set an alert's status (acknowledge or resolve) with who and why.
pub async fn set_alert_status(
    tx: &mut Tx,
    id: &str,
    status: &str,
    user_id: &str,
    note: Option<&str>,
    at: i64,
) -> DbResult<()> {
    let sql = if status == "resolved" {
        "UPDATE alerts SET status = $1, resolved_by = $2, resolved_at = $3, updated_at = $3, \
         note = COALESCE($4, note) WHERE id = $5"
    } else {
        "UPDATE alerts SET status = $1, acknowledged_by = $2, acknowledged_at = $3, updated_at = $3, \
         note = COALESCE($4, note) WHERE id = $5"
    };
    sqlx::query(sql)
        .bind(status)
        .bind(user_id)
        .bind(at)
        .bind(note)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
