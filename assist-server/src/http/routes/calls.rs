//! Call recordings: `POST /v1/calls` (upload → 202 + job), `GET /v1/calls`
//! and `GET /v1/calls/{id}` (status, segments, role-scoped).
//!
//! Who sees which calls: a rep their own; a manager their team's; compliance
//! and admins the organisation's (each read is audited with the caller's
//! `X-Access-Reason`); trainers none.

use assist_protocol::Role;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::caller::Caller;
use crate::calls::call_status;
use crate::calls::intake::{CallMetadata, CallView, SegmentView, accept_recording};
use crate::db::calls::{CallRow, CallScope, CallSegment};
use crate::error::ApiError;
use crate::http::extract::{Query, multipart_err};
use crate::state::AppState;

pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/calls",
            post(upload)
                .layer(DefaultBodyLimit::max(max_upload_bytes))
                .get(list),
        )
        .route("/calls/{id}", get(get_call))
}

fn segment_view(s: CallSegment) -> SegmentView {
    SegmentView {
        start_s: s.start_ms as f64 / 1000.0,
        end_s: s.end_ms as f64 / 1000.0,
        speaker: s.speaker,
        channel: s.channel,
        text: s.text,
        avg_logprob: s.avg_logprob,
    }
}

/// Rep, manager or admin may upload.
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Rep, Role::Manager, Role::Admin])?;
    let mut audio: Option<(axum::body::Bytes, Option<String>)> = None;
    let mut meta = CallMetadata::default();
    while let Some(field) = form.next_field().await.map_err(multipart_err)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "audio" | "file" => {
                let filename = field.file_name().map(str::to_string);
                let bytes = field.bytes().await.map_err(multipart_err)?;
                audio = Some((bytes, filename));
            }
            "metadata" => {
                let text = field.text().await.map_err(multipart_err)?;
                meta = serde_json::from_str(&text).map_err(|e| {
                    ApiError::InvalidJson(format!("the `metadata` part is not valid: {e}"))
                })?;
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown form field `{other}`; send `audio` (the recording) and optionally `metadata` (JSON)"
                )));
            }
        }
    }
    let (bytes, filename) = audio.ok_or_else(|| {
        ApiError::invalid("no `audio` part: send the recording as multipart field `audio`")
    })?;
    let header_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (view, created) =
        accept_recording(state.intake(), &caller, meta, header_key, bytes, filename).await?;
    let code = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(view)).into_response())
}

/// 404 (not 403) for calls the caller may not see, so ids do not leak.
pub(crate) fn may_see(caller: &Caller, call: &CallRow) -> Result<(), ApiError> {
    let hidden = || ApiError::not_found(format!("no call `{}`", call.id));
    if call.org_id != caller.org_id() {
        return Err(hidden());
    }
    match caller.role() {
        Role::Rep if call.rep_user_id == caller.user.id => Ok(()),
        Role::Manager if call.team_id.is_some() && call.team_id == caller.user.team_id => Ok(()),
        Role::Compliance | Role::Admin => Ok(()),
        Role::Trainer => Err(ApiError::forbidden(
            "trainers do not read calls; the knowledge base is theirs",
        )),
        Role::Rep | Role::Manager => Err(hidden()),
    }
}

async fn get_call(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<CallView>, ApiError> {
    let call = state
        .db
        .get_call(&id)
        .await
        .map_err(|_| ApiError::not_found(format!("no call `{id}`")))?;
    may_see(&caller, &call)?;
    let job = match call.job_id {
        Some(j) => Some(state.jobs.get(j).await?),
        None => None,
    };
    let status = call_status(job.as_ref());
    let (segments, text) = if status.status == "transcribed" {
        let segs = state.db.call_segments(&call.id).await?;
        let zh = call.detected_language.as_deref() == Some("zh");
        let text = segs
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(if zh { "" } else { " " });
        (
            Some(segs.into_iter().map(segment_view).collect()),
            Some(text),
        )
    } else {
        (None, None)
    };
    state
        .db
        .audit(caller.audit("call.read", "call", Some(&call.id)))
        .await?;
    Ok(axum::Json(CallView {
        segments,
        text,
        ..CallView::new(call, job.as_ref())
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<i64>,
    /// Only calls created before this time (RFC 3339), for paging.
    pub before: Option<String>,
    /// Compliance/admin: one rep's calls (id).
    pub rep_id: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let scope = match caller.role() {
        Role::Rep => CallScope {
            rep_user_id: Some(caller.user.id.clone()),
            team_id: None,
        },
        Role::Manager => CallScope {
            rep_user_id: q.rep_id.clone(),
            team_id: Some(caller.user.team_id.clone().ok_or_else(|| {
                ApiError::forbidden("you manage no team; ask an admin to put you in one")
            })?),
        },
        Role::Compliance | Role::Admin => CallScope {
            rep_user_id: q.rep_id.clone(),
            team_id: None,
        },
        Role::Trainer => {
            return Err(ApiError::forbidden(
                "trainers do not read calls; the knowledge base is theirs",
            ));
        }
    };
    let before =
        match &q.before {
            None => None,
            Some(t) => Some(crate::time::parse_rfc3339(t).ok_or_else(|| {
                ApiError::invalid(format!("before `{t}` is not an RFC 3339 time"))
            })?),
        };
    let limit = crate::http::extract::page_limit(q.limit, 50, 500)?;
    let calls = state
        .db
        .list_calls(caller.org_id(), &scope, limit, before)
        .await?;
    let mut views = Vec::with_capacity(calls.len());
    for call in calls {
        let job = match call.job_id {
            Some(j) => state.jobs.get(j).await.ok(),
            None => None,
        };
        views.push(CallView::new(call, job.as_ref()));
    }
    state
        .db
        .audit(caller.audit("call.list", "call", None))
        .await?;
    Ok(axum::Json(serde_json::json!({ "calls": views })))
}
