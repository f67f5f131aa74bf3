//! Outgoing webhooks for alerts (admins and compliance):
//! `POST /v1/webhooks` (the signing secret is shown once), `GET /v1/webhooks`,
//! `GET /v1/webhooks/{id}`, `DELETE /v1/webhooks/{id}` (switches it off) and
//! `GET /v1/webhooks/{id}/deliveries` (the delivery log: every attempt's
//! status, error and time).
//!
//! Each delivery is a JSON `POST` with `X-Assist-Event`, `X-Assist-Delivery`
//! and `X-Assist-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" keyed with the secret>`; see [`crate::alerts::signature`].

use crate::http::extract::Query;
use assist_knowledge_base::Severity;
use assist_protocol::Role;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::alerts::{ALERT_CREATED, EVENT_KINDS};
use crate::caller::Caller;
use crate::db::alerts::{DeliveryRow, WebhookRow};
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::state::AppState;
use crate::time::{now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).delete(remove))
        .route("/webhooks/{id}/deliveries", get(deliveries))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://…` (or `http://` inside your network).
    pub url: String,
    /// Only alerts of this team (id or name); default every team.
    pub team: Option<String>,
    /// Only alerts at or above this severity; default `low` (all).
    pub min_severity: Option<String>,
    /// Event kinds; default `["alert.created"]`.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct WebhookView {
    #[serde(flatten)]
    pub webhook: WebhookRow,
    pub created: String,
    /// Only in the answer to `POST /v1/webhooks`: keep it, it is not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn view(w: WebhookRow, show_secret: bool) -> WebhookView {
    WebhookView {
        created: rfc3339(w.created_at),
        secret: show_secret.then(|| w.secret.clone()),
        webhook: w,
    }
}

fn admin(caller: &Caller) -> Result<(), ApiError> {
    caller.require(&[Role::Admin, Role::Compliance])
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateWebhook>,
) -> Result<(StatusCode, axum::Json<WebhookView>), ApiError> {
    admin(&caller)?;
    let policy = crate::webhook_target::TargetPolicy::from_config(&state.config.alerts);
    crate::webhook_target::check_url(&body.url, policy)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let min_severity = match &body.min_severity {
        None => Severity::Low,
        Some(s) => Severity::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "min_severity `{s}` is not one of low, medium, high, critical"
            ))
        })?,
    };
    let events = body
        .events
        .clone()
        .unwrap_or_else(|| vec![ALERT_CREATED.to_string()]);
    if events.is_empty() {
        return Err(ApiError::invalid("`events` is empty"));
    }
    for e in &events {
        if !EVENT_KINDS.contains(&e.as_str()) {
            return Err(ApiError::invalid(format!(
                "event `{e}` is not one of {}",
                EVENT_KINDS.join(", ")
            )));
        }
    }
    let team_id = match &body.team {
        None => None,
        Some(t) => Some(
            state
                .db
                .find_team(caller.org_id(), t)
                .await
                .map_err(|_| ApiError::invalid(format!("no team `{t}` in your organisation")))?
                .id,
        ),
    };
    // Last, as it asks DNS: every address of the host must be allowed.
    let url = crate::webhook_target::check_target(&body.url, policy)
        .await
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let w = WebhookRow {
        id: format!("whk_{}", uuid::Uuid::now_v7().simple()),
        org_id: caller.org_id().to_string(),
        url: url.to_string(),
        secret: crate::alerts::new_webhook_secret(),
        team_id,
        min_severity: min_severity.as_str().to_string(),
        events,
        description: body.description.clone(),
        active: true,
        created_by: caller.user.id.clone(),
        created_at: now_ms(),
    };
    state.db.create_webhook(&w).await?;
    state
        .db
        .audit(caller.audit("webhook.create", "webhook", Some(&w.id)))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(view(w, true))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<WebhookView>>, ApiError> {
    admin(&caller)?;
    let rows = state.db.list_webhooks(caller.org_id()).await?;
    Ok(axum::Json(
        rows.into_iter().map(|w| view(w, false)).collect(),
    ))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    admin(&caller)?;
    let w = state.db.get_webhook(caller.org_id(), &id).await?;
    Ok(axum::Json(view(w, false)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    state.db.deactivate_webhook(caller.org_id(), &id).await?;
    state
        .db
        .audit(caller.audit("webhook.disable", "webhook", Some(&id)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    #[serde(flatten)]
    pub delivery: DeliveryRow,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<String>,
}

async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<axum::Json<Vec<DeliveryView>>, ApiError> {
    admin(&caller)?;
    let w = state.db.get_webhook(caller.org_id(), &id).await?;
    let rows = state
        .db
        .webhook_deliveries(&w.id, crate::http::extract::page_limit(q.limit, 100, 1000)?)
        .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|d| DeliveryView {
                created: rfc3339(d.created_at),
                last_attempt: d.last_attempt_at.map(rfc3339),
                delivery: d,
            })
            .collect(),
    ))
}
