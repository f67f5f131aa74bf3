//! Taking the [`Caller`] from a request.
//!
//! Every `/v1` endpoint takes a [`Caller`], extracted from
//! `Authorization: Bearer <token>`. Unknown, revoked and expired tokens are
//! 401 (with the reason); a handler then checks the role with
//! [`Caller::require`] and the organisation of what it touches with
//! [`Caller::same_org`] (403 otherwise).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer(&parts.headers)?;
        let mut caller = Caller::from_secret(&state.db, secret).await?;
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
