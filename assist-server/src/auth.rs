//! Who is calling, and may they do this?
//!
//! Every `/v1` endpoint takes a [`Caller`], extracted from
//! `Authorization: Bearer <token>`. Unknown, revoked and expired tokens are
//! 401 (with the reason); a handler then checks the role with
//! [`Caller::require`] and the organisation of what it touches with
//! [`Caller::same_org`] (403 otherwise).

use assist_protocol::Role;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::db::audit::AuditRecord;
use crate::db::identity::UserRow;
use crate::error::ApiError;
use crate::state::AppState;
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

pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing `Authorization: Bearer <token>` header; create a token with `assist admin create-token`"
                .into(),
        )
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })?
        .trim();
    if token.is_empty() {
        return Err(ApiError::Unauthorized("the bearer token is empty".into()));
    }
    Ok(token)
}

/// Touch `last_used_at` at most this often per token, to keep writes rare.
const TOUCH_EVERY_MS: i64 = 60_000;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer(&parts.headers)?;
        let mut caller = Caller::from_secret(state, secret).await?;
        let reason = parts
            .headers
            .get("x-access-reason")
            // Reasons are often Chinese: accept any UTF-8, not only ASCII.
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .map(|s| s.trim().chars().take(500).collect::<String>())
            .filter(|s| !s.is_empty());
        caller.reason = reason;
        Ok(caller)
    }
}

impl Caller {
    /// Authenticate a token secret (from a header, or a WebSocket's query
    /// string where a browser or phone API cannot set headers).
    pub async fn from_secret(state: &AppState, secret: &str) -> Result<Caller, ApiError> {
        let (token, user) = state
            .db
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
            && let Err(err) = state.db.touch_token(&token.id, now).await
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
