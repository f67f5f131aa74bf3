//! Who is calling, and may they do this?
//!
//! A [`Caller`] is an authenticated token's user (and work phone, for a
//! phone's token). Services take one to check the role
//! ([`Caller::require`]) and the organisation ([`Caller::same_org`]) of what
//! they touch, and to write the audit record of a read. How a caller is
//! taken from a request is HTTP's business (`http::auth`).

use assist_protocol::Role;

use crate::db::Db;
use crate::db::audit::AuditRecord;
use crate::db::identity::UserRow;
use crate::error::ApiError;
use crate::time::now_ms;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRow,
    pub token_id: String,
    /// Set when the token belongs to a work phone.
    pub device_id: Option<String>,
    /// Why the caller opens content (`X-Access-Reason`), for the audit log.
    pub reason: Option<String>,
}

impl Caller {
    pub fn org_id(&self) -> &str {
        &self.user.org_id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.user.role) {
            return Ok(());
        }
        let allowed = roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(ApiError::forbidden(format!(
            "this needs the role {allowed}; you are a {}",
            self.user.role
        )))
    }

    /// 403 unless `org_id` is the caller's organisation.
    pub fn same_org(&self, org_id: &str) -> Result<(), ApiError> {
        if org_id == self.user.org_id {
            Ok(())
        } else {
            Err(ApiError::forbidden("that belongs to another organisation"))
        }
    }

    /// An audit record for this caller.
    pub fn audit<'a>(
        &'a self,
        action: &'a str,
        resource_type: &'a str,
        resource_id: Option<&'a str>,
    ) -> AuditRecord<'a> {
        AuditRecord {
            org_id: &self.user.org_id,
            actor_user_id: Some(&self.user.id),
            action,
            resource_type,
            resource_id,
            reason: self.reason.as_deref(),
        }
    }
}

/// Touch `last_used_at` at most this often per token, to keep writes rare.
const TOUCH_EVERY_MS: i64 = 60_000;

impl Caller {
    /// Authenticate a token secret (from a header, or a WebSocket's query
    /// string where a browser or phone API cannot set headers).
    pub async fn from_secret(db: &Db, secret: &str) -> Result<Caller, ApiError> {
        let (token, user) = db
            .lookup_token(secret)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("unknown token".into()))?;
        let now = now_ms();
        if token.revoked_at.is_some() {
            return Err(ApiError::Unauthorized("this token has been revoked".into()));
        }
        if let Some(exp) = token.expires_at
            && exp <= now
        {
            return Err(ApiError::Unauthorized(format!(
                "this token expired at {}",
                crate::time::rfc3339(exp)
            )));
        }
        if token.last_used_at.is_none_or(|t| now - t > TOUCH_EVERY_MS)
            && let Err(err) = db.touch_token(&token.id, now).await
        {
            tracing::warn!(error = %err, "could not record token use");
        }
        Ok(Caller {
            user,
            token_id: token.id,
            device_id: token.device_id,
            reason: None,
        })
    }
}

/// Read the audit log (compliance and admins), itself an audited read.
pub async fn read_audit_log(
    db: &Db,
    caller: &Caller,
    q: &crate::db::audit::AuditQuery,
) -> Result<Vec<assist_protocol::AuditEntry>, ApiError> {
    caller.require(&[Role::Compliance, Role::Admin])?;
    db.audit(caller.audit("audit.read", "audit_log", None))
        .await?;
    Ok(db.audit_entries(caller.org_id(), q).await?)
}

/// Most records one export returns.
pub const MAX_AUDIT_EXPORT: usize = 100_000;

/// Every audit record matching `q` (newest first, at most
/// [`MAX_AUDIT_EXPORT`]), for an export: compliance and admins; the export
/// is itself one audit record.
pub async fn export_audit_log(
    db: &Db,
    caller: &Caller,
    q: &crate::db::audit::AuditQuery,
) -> Result<Vec<assist_protocol::AuditEntry>, ApiError> {
    caller.require(&[Role::Compliance, Role::Admin])?;
    db.audit(caller.audit("audit.export", "audit_log", None))
        .await?;
    let mut out = Vec::new();
    let mut page = q.clone();
    page.limit = 1000;
    loop {
        let rows = db.audit_entries(caller.org_id(), &page).await?;
        let full = rows.len() == 1000;
        page.before_id = rows.last().map(|e| e.id);
        out.extend(rows);
        if !full || out.len() >= MAX_AUDIT_EXPORT {
            break;
        }
    }
    out.truncate(MAX_AUDIT_EXPORT);
    Ok(out)
}
