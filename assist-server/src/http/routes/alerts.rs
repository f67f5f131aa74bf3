//! Alerts for managers and compliance: `GET /v1/alerts` (list),
//! `GET /v1/alerts/{id}` (with its evidence), `POST /v1/alerts/{id}/ack` and
//! `/resolve` (with a note), and `GET /v1/alerts/stream` — Server-Sent Events,
//! resumable with `Last-Event-ID`.
//!
//! Scope: a manager sees the alerts of their own team; compliance and admins
//! the organisation's. Reps and trainers get 403: alerts are about reps, and
//! a rep contests one through an appeal, not by watching the stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use crate::http::extract::Query;
use assist_protocol::Role;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::alerts::{AlertStatus, AlertView, EvidenceView};
use crate::caller::Caller;
use crate::db::alerts::{AlertFilter, AlertLogRow};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/stream", get(stream))
        .route("/alerts/{id}", get(show))
        .route("/alerts/{id}/ack", post(ack))
        .route("/alerts/{id}/resolve", post(resolve))
}

/// Streams also poll the log this often, for alerts raised on other nodes.
const POLL: Duration = Duration::from_secs(1);

/// The team filter for the caller: `Some(team)` for a manager, `None` for
/// compliance and admins; 403 for everyone else.
fn scope(caller: &Caller) -> Result<Option<String>, ApiError> {
    match caller.role() {
        Role::Manager => caller.user.team_id.clone().map(Some).ok_or_else(|| {
            ApiError::forbidden("you manage no team yet; an admin can put you in one")
        }),
        Role::Compliance | Role::Admin => Ok(None),
        Role::Rep | Role::Trainer => Err(ApiError::forbidden(
            "alerts are for managers, compliance and admins",
        )),
    }
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
    pub limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<AlertView>>, ApiError> {
    let team = match scope(&caller)? {
        Some(own) => {
            if q.team.as_ref().is_some_and(|t| *t != own) {
                return Err(ApiError::forbidden(
                    "managers see the alerts of their own team only",
                ));
            }
            Some(own)
        }
        None => q.team.clone(),
    };
    if let Some(s) = &q.status
        && !["open", "acknowledged", "resolved"].contains(&s.as_str())
    {
        return Err(ApiError::invalid(format!(
            "status `{s}` is not one of open, acknowledged, resolved"
        )));
    }
    let rows = state
        .db
        .list_alerts(
            caller.org_id(),
            &AlertFilter {
                team_id: team,
                status: q.status,
                conversation_id: q.conversation_id,
                call_id: q.call_id,
                limit: crate::http::extract::page_limit(q.limit, 100, 1000)?,
            },
        )
        .await?;
    // Each alert carries a snippet of what was said.
    state
        .db
        .audit(caller.audit("alert.list", "alert", None))
        .await?;
    Ok(axum::Json(rows.iter().map(AlertView::from).collect()))
}

#[derive(Debug, Serialize)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertView,
    pub evidence: Vec<EvidenceView>,
}

/// The alert if the caller may see it (404 otherwise, so ids do not leak).
async fn visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<crate::db::alerts::AlertRow, ApiError> {
    let team = scope(caller)?;
    let alert = state.db.get_alert(id).await?;
    let hidden = alert.org_id != caller.org_id()
        || team
            .as_ref()
            .is_some_and(|t| alert.team_id.as_ref() != Some(t));
    if hidden {
        return Err(ApiError::not_found(format!("no alert `{id}`")));
    }
    Ok(alert)
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AlertDetail>, ApiError> {
    let alert = visible(&state, &caller, &id).await?;
    state
        .db
        .audit(caller.audit("alert.read", "alert", Some(&alert.id)))
        .await?;
    let events = state
        .db
        .risk_events(caller.org_id(), Some(&alert.id), None, None)
        .await?;
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

/// open → acknowledged → resolved (open → resolved too). Acknowledging an
/// acknowledged alert or resolving a resolved one is 409.
async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
    to: &str,
) -> Result<axum::Json<AlertView>, ApiError> {
    // The body is optional: `{"note": "…"}` or nothing.
    let parsed: NoteBody = if body.iter().all(u8::is_ascii_whitespace) {
        NoteBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidJson(format!("the body is not valid JSON: {e}")))?
    };
    let note = parsed.note.map(|n| n.trim().to_string());
    if note.as_ref().is_some_and(|n| n.chars().count() > 4000) {
        return Err(ApiError::invalid("the note is longer than 4000 characters"));
    }
    if to == "resolved" && note.as_ref().is_none_or(|n| n.is_empty()) {
        return Err(ApiError::invalid(
            "resolving an alert needs a `note` saying what was found or done",
        ));
    }
    visible(&state, &caller, &id).await?;
    let status = if to == "resolved" {
        AlertStatus::Resolved
    } else {
        AlertStatus::Acknowledged
    };
    let updated = state
        .alert_ingest()
        .set_status(&id, status, &caller.user.id, note.as_deref())
        .await?;
    state
        .db
        .audit(caller.audit(
            if to == "resolved" {
                "alert.resolve"
            } else {
                "alert.acknowledge"
            },
            "alert",
            Some(&id),
        ))
        .await?;
    Ok(axum::Json(AlertView::from(&updated)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Resume after this event id (same as the `Last-Event-ID` header, for
    /// clients that cannot set headers). `0` replays the whole log.
    pub last_event_id: Option<i64>,
}

struct Cursor {
    state: AppState,
    org_id: String,
    team: Option<String>,
    after: i64,
    buffer: VecDeque<AlertLogRow>,
    head: tokio::sync::watch::Receiver<i64>,
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
    let team = scope(&caller)?;
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
    let after = match header_id.or(q.last_event_id) {
        Some(id) => id,
        None => state.db.alert_log_head().await?,
    };
    // One record per connection: the stream carries every alert's evidence.
    let from = after.to_string();
    state
        .db
        .audit(caller.audit("alert.stream", "alert_log", Some(&from)))
        .await?;
    let cursor = Cursor {
        head: state.alerts.subscribe(),
        org_id: caller.org_id().to_string(),
        team,
        after,
        buffer: VecDeque::new(),
        state,
    };
    let events = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(row) = c.buffer.pop_front() {
                return Some((Ok(event_of(&row)), c));
            }
            match c
                .state
                .db
                .alert_log_after(&c.org_id, c.team.as_deref(), c.after, 200)
                .await
            {
                Ok(rows) if !rows.is_empty() => {
                    c.after = rows.last().map(|r| r.seq).unwrap_or(c.after);
                    c.buffer.extend(rows);
                    continue;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "alert stream could not read the log"),
            }
            tokio::select! {
                _ = c.head.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = c.state.shutdown.cancelled() => return None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
