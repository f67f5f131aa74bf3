//! `GET /v1/audit`: the audit log, for compliance officers and admins.
//! Reading the log is itself recorded.

use crate::http::extract::Query;
use assist_protocol::{AuditEntry, Page, Role};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;

use crate::caller::Caller;
use crate::db::audit::AuditQuery;
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::state::AppState;
use crate::time::parse_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<Params>, ApiError>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    caller.require(&[Role::Compliance, Role::Admin])?;
    let Query(p) = params?;
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        match v {
            None => Ok(None),
            Some(s) => parse_rfc3339(s).map(Some).ok_or_else(|| {
                ApiError::invalid(format!(
                    "`{name}` must be an RFC 3339 time such as 2026-11-24T08:00:00Z"
                ))
            }),
        }
    };
    let before_id = match &p.cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("`cursor` is not valid"))?,
        ),
    };
    let limit = crate::http::extract::page_limit(p.limit, 100, 1000)?;
    let q = AuditQuery {
        from_ms: time("from", &p.from)?,
        to_ms: time("to", &p.to)?,
        actor_user_id: p.actor.clone(),
        before_id,
        limit,
    };
    let items = crate::caller::read_audit_log(&state.db, &caller, &q).await?;
    let next_cursor = if items.len() as i64 == limit {
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(Page { items, next_cursor }))
}
