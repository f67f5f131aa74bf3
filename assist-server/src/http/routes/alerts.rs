//! Alerts for managers and compliance: `GET /v1/alerts` (list, filtered by
//! status, team, severity, category, rep, conversation or call),
//! `GET /v1/alerts/{id}` (with its evidence), `POST /v1/alerts/{id}/ack` and
//! `/resolve` (with a note), `POST /v1/alerts/{id}/verdict` (confirmed or
//! false positive), and `GET /v1/alerts/stream` — Server-Sent Events,
//! resumable with `Last-Event-ID`.
//!
//! Scope: a manager sees the alerts of their own team; compliance and admins
//! the organisation's. Reps and trainers get 403: alerts are about reps, and
//! a rep contests one through an appeal, not by watching the stream. The
//! rules live in [`crate::alerts::manage`], which the console uses too.

use std::convert::Infallible;

use crate::http::extract::Query;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::alerts::manage::{self, Verdict};
use crate::alerts::{AlertStatus, AlertView, EvidenceView};
use crate::caller::Caller;
use crate::db::alerts::AlertLogRow;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/stream", get(stream))
        .route("/alerts/{id}", get(show))
        .route("/alerts/{id}/ack", post(ack))
        .route("/alerts/{id}/resolve", post(resolve))
        .route("/alerts/{id}/verdict", post(verdict))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `open`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    /// Compliance and admins: one team only.
    pub team: Option<String>,
    pub conversation_id: Option<String>,
    pub call_id: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: Option<String>,
    pub category: Option<String>,
    /// A rep's user id.
    pub rep: Option<String>,
    pub limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<AlertView>>, ApiError> {
    let rows = manage::list(
        &state.db,
        &caller,
        &manage::ListQuery {
            status: q.status,
            team: q.team,
            conversation_id: q.conversation_id,
            call_id: q.call_id,
            severity: q.severity,
            category: q.category,
            rep: q.rep,
            limit: crate::http::extract::page_limit(q.limit, 100, 1000)?,
        },
    )
    .await?;
    Ok(axum::Json(rows.iter().map(AlertView::from).collect()))
}

#[derive(Debug, Serialize)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertView,
    pub evidence: Vec<EvidenceView>,
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AlertDetail>, ApiError> {
    let (alert, events) = manage::show(&state.db, &caller, &id).await?;
    Ok(axum::Json(AlertDetail {
        alert: AlertView::from(&alert),
        evidence: events.iter().map(EvidenceView::from).collect(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub note: Option<String>,
}

async fn ack(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<AlertView>, ApiError> {
    change(state, caller, id, body, "acknowledged").await
}

async fn resolve(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<AlertView>, ApiError> {
    change(state, caller, id, body, "resolved").await
}

/// The optional body `{"note": "…"}` (or nothing).
fn note_of(body: &[u8]) -> Result<NoteBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(NoteBody::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidJson(format!("the body is not valid JSON: {e}")))
}

/// open → acknowledged → resolved (open → resolved too). Acknowledging an
/// acknowledged alert or resolving a resolved one is 409.
async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
    to: &str,
) -> Result<axum::Json<AlertView>, ApiError> {
    let parsed = note_of(&body)?;
    let status = if to == "resolved" {
        AlertStatus::Resolved
    } else {
        AlertStatus::Acknowledged
    };
    let updated = manage::change(
        state.alert_ingest(),
        &caller,
        &id,
        status,
        parsed.note.as_deref(),
    )
    .await?;
    Ok(axum::Json(AlertView::from(&updated)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictBody {
    /// `confirmed` or `false_positive`.
    pub verdict: String,
    pub note: Option<String>,
}

async fn verdict(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    crate::http::extract::Json(body): crate::http::extract::Json<VerdictBody>,
) -> Result<axum::Json<AlertView>, ApiError> {
    let verdict = Verdict::parse(body.verdict.trim())?;
    let updated =
        manage::set_verdict(&state.db, &caller, &id, verdict, body.note.as_deref()).await?;
    Ok(axum::Json(AlertView::from(&updated)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Resume after this event id (same as the `Last-Event-ID` header, for
    /// clients that cannot set headers). `0` replays the whole log.
    pub last_event_id: Option<i64>,
}

fn event_of(row: &AlertLogRow) -> Event {
    Event::default()
        .id(row.seq.to_string())
        .event(&row.kind)
        .data(&row.payload)
}

/// `text/event-stream` of alert events: `id` is the log sequence number,
/// `event` the kind (`alert.created`, `alert.repeated`, `alert.acknowledged`,
/// `alert.resolved`), `data` the alert and its evidence as JSON.
async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    manage::scope(&caller)?;
    let header_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID must be an event id this stream sent")
                })?,
        ),
    };
    let (team, after) =
        manage::follow_from(&state.db, &caller, header_id.or(q.last_event_id)).await?;
    let events = manage::follow(
        state.db.clone(),
        &state.alerts,
        state.shutdown.clone(),
        caller.org_id().to_string(),
        team,
        after,
    )
    .map(|row| Ok(event_of(&row)));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
