//! The audit log: who opened which content (or changed access), when, and why.

use assist_protocol::AuditEntry;
use sqlx::Row;

use super::{Db, DbResult};
use crate::time::{now_ms, rfc3339};

/// One thing to record.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    pub org_id: &'a str,
    pub actor_user_id: Option<&'a str>,
    /// What happened, e.g. `audit.read`, `token.create`, `call.read`.
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    /// The reason the caller gave (`X-Access-Reason`), if any.
    pub reason: Option<&'a str>,
}

/// Filters for reading the log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub actor_user_id: Option<String>,
    /// Return entries with an id below this (newest first paging).
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl Db {
    pub async fn audit(&self, rec: AuditRecord<'_>) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (org_id, actor_user_id, action, resource_type, resource_id, reason, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(rec.org_id)
        .bind(rec.actor_user_id)
        .bind(rec.action)
        .bind(rec.resource_type)
        .bind(rec.resource_id)
        .bind(rec.reason)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Newest first.
    pub async fn audit_entries(&self, org_id: &str, q: &AuditQuery) -> DbResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, org_id, actor_user_id, action, resource_type, resource_id, reason, at FROM audit_log \
             WHERE org_id = $1 AND at >= $2 AND at <= $3 AND id < $4 \
               AND ($5 = '' OR actor_user_id = $5) \
             ORDER BY id DESC LIMIT $6",
        )
        .bind(org_id)
        .bind(q.from_ms.unwrap_or(0))
        .bind(q.to_ms.unwrap_or(i64::MAX))
        .bind(q.before_id.unwrap_or(i64::MAX))
        .bind(q.actor_user_id.clone().unwrap_or_default())
        .bind(q.limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    actor_user_id: r.try_get("actor_user_id")?,
                    action: r.try_get("action")?,
                    resource_type: r.try_get("resource_type")?,
                    resource_id: r.try_get("resource_id")?,
                    reason: r.try_get("reason")?,
                    at: rfc3339(r.try_get("at")?),
                })
            })
            .collect()
    }
}
