//! Call recordings: `POST /v1/calls` (upload → 202 + job), `GET /v1/calls`
//! and `GET /v1/calls/{id}` (status, segments, role-scoped).
//!
//! Who sees which calls: a rep their own; a manager their team's; compliance
//! and admins the organisation's (each read is audited with the caller's
//! `X-Access-Reason`); trainers none.

use crate::extract::Query;
use assist_protocol::Role;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::calls::{
    CallStatus, audio_ext, audio_path, call_status, enqueue_transcription, write_durably,
};
use crate::db::calls::{CallRow, CallScope, CallSegment, ChannelLayout, Direction, NewCall};
use crate::error::ApiError;
use crate::speech::{check_language, decode_upload, multipart_err, resolve_layout};
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

/// The `metadata` part of an upload (JSON). Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallMetadata {
    /// The rep whose call this is (id or name). Defaults to the caller (a rep
    /// or a rep's device); managers and admins uploading for a rep must say.
    pub rep: Option<String>,
    /// The work phone that recorded it; defaults to the calling device.
    pub device_id: Option<String>,
    /// The customer's reference in your CRM (never a phone number in clear, please).
    pub customer_ref: Option<String>,
    #[serde(default)]
    pub direction: Direction,
    /// When the call started (RFC 3339).
    pub started_at: Option<String>,
    /// `mono`, `rep_left` or `rep_right`; default: mono for one channel,
    /// `rep_left` for two.
    pub channel_layout: Option<ChannelLayout>,
    /// Force the language (`zh`, `en`); default detects it.
    pub language: Option<String>,
    /// Your own id for this upload: a retried upload with the same id finds
    /// the first one (same as the `Idempotency-Key` header).
    pub client_call_id: Option<String>,
}

/// A call as the API shows it.
#[derive(Debug, Serialize)]
pub struct CallView {
    #[serde(flatten)]
    pub call: CallRow,
    pub duration_s: f64,
    #[serde(flatten)]
    pub status: CallStatus,
    /// Present when transcribed (in `GET /v1/calls/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<SegmentView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SegmentView {
    pub start_s: f64,
    pub end_s: f64,
    pub speaker: crate::db::calls::Speaker,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<i64>,
    pub text: String,
    pub avg_logprob: f64,
}

impl CallView {
    /// The call and its status, without the transcript.
    fn new(call: CallRow, job: Option<&crate::jobs::JobRow>) -> Self {
        CallView {
            duration_s: call.duration_ms as f64 / 1000.0,
            status: call_status(job),
            call,
            segments: None,
            text: None,
        }
    }
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
        accept_recording(&state, &caller, meta, header_key, bytes, filename).await?;
    let code = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(view)).into_response())
}

/// Whose call a recording is (the rep) and which phone recorded it, checked
/// against the caller: reps their own calls, managers their team's. Run on
/// the multipart upload and on the first request of a resumable upload, so
/// a recording naming someone else is refused before any byte is sent.
pub(crate) async fn call_owner(
    state: &AppState,
    caller: &Caller,
    meta: &CallMetadata,
) -> Result<(crate::db::identity::UserRow, Option<String>), ApiError> {
    // Whose call is it?
    let rep = match (&meta.rep, caller.role()) {
        (None, Role::Rep) => caller.user.clone(),
        (None, _) => {
            return Err(ApiError::invalid(
                "say whose call this is: metadata `rep` (a rep's id or name)",
            ));
        }
        (Some(who), _) => {
            let user = state
                .db
                .find_user(caller.org_id(), who)
                .await
                .map_err(|_| ApiError::invalid(format!("no rep `{who}` in your organisation")))?;
            if user.role != Role::Rep {
                return Err(ApiError::invalid(format!(
                    "`{}` is a {}, not a rep",
                    user.name, user.role
                )));
            }
            match caller.role() {
                Role::Rep if user.id != caller.user.id => {
                    return Err(ApiError::forbidden("reps upload their own calls only"));
                }
                Role::Manager if user.team_id != caller.user.team_id => {
                    return Err(ApiError::forbidden(
                        "managers upload calls of their own team only",
                    ));
                }
                _ => {}
            }
            user
        }
    };
    let device_id = match (&meta.device_id, &caller.device_id) {
        (Some(d), _) => {
            let device = state
                .db
                .get_device(d)
                .await
                .map_err(|_| ApiError::invalid(format!("no device `{d}`")))?;
            caller.same_org(&device.org_id)?;
            if device.user_id != rep.id {
                return Err(ApiError::invalid(format!(
                    "device `{d}` is bound to another user, not to `{}`",
                    rep.name
                )));
            }
            Some(device.id)
        }
        (None, Some(d)) => Some(d.clone()),
        (None, None) => None,
    };
    Ok((rep, device_id))
}

/// Check, store and queue one recording for transcription: the shared end of
/// the multipart upload and of resumable uploads. Returns the call and
/// whether it was created (`false`: the idempotency key found an earlier one).
pub(crate) async fn accept_recording(
    state: &AppState,
    caller: &Caller,
    meta: CallMetadata,
    header_key: Option<String>,
    bytes: axum::body::Bytes,
    filename: Option<String>,
) -> Result<(CallView, bool), ApiError> {
    caller.require(&[Role::Rep, Role::Manager, Role::Admin])?;
    if state.speech.is_none() {
        return Err(ApiError::ModelMissing(format!(
            "speech recognition is off: the model `{}` is not loaded; run `assist models fetch --only {}` and restart",
            state.config.speech.speech_model, state.config.speech.speech_model
        )));
    }

    let (rep, device_id) = call_owner(state, caller, &meta).await?;
    let started_at = match &meta.started_at {
        None => None,
        Some(t) => Some(crate::time::parse_rfc3339(t).ok_or_else(|| {
            ApiError::invalid(format!(
                "started_at `{t}` is not an RFC 3339 time such as 2026-11-24T09:30:00+08:00"
            ))
        })?),
    };
    let language = meta.language.as_deref().map(check_language).transpose()?;
    let idempotency_key = header_key
        .or_else(|| meta.client_call_id.clone())
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    if idempotency_key.as_ref().is_some_and(|k| k.len() > 200) {
        return Err(ApiError::invalid(
            "the idempotency key is longer than 200 characters",
        ));
    }
    if let Some(c) = &meta.customer_ref
        && c.chars().count() > 200
    {
        return Err(ApiError::invalid(
            "customer_ref is longer than 200 characters",
        ));
    }

    // Refuse bad audio now, with the reason, rather than in a job later.
    let sha = hex::encode(Sha256::digest(&bytes));
    let decoded = decode_upload(&state.config, bytes.clone()).await?;
    let layout = resolve_layout(meta.channel_layout, decoded.channels.len())?;

    // A live session of this call reserved its id: the recording becomes that
    // call, so live and post-call alerts of one call are one alert.
    let reserved = match &idempotency_key {
        Some(k) => state.db.live_call_id(caller.org_id(), &rep.id, k).await?,
        None => None,
    };
    if let Some(id) = &reserved
        && let Ok(call) = state.db.get_call(id).await
    {
        // Already uploaded: never write over (or delete) its stored audio.
        let job = match call.job_id {
            Some(j) => state.jobs.get(j).await.ok(),
            None => None,
        };
        return Ok((CallView::new(call, job.as_ref()), false));
    }
    // With a reserved id, two racing retries share the call id: each writes
    // its own file, so the loser's clean-up cannot delete the winner's audio.
    let (call_id, file_stem) = match reserved {
        Some(id) => {
            let stem = format!("{id}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            (id, stem)
        }
        None => {
            let id = format!("call_{}", uuid::Uuid::now_v7().simple());
            (id.clone(), id)
        }
    };
    let ext = audio_ext(filename.as_deref(), &decoded.codec);
    let path = audio_path(
        &state.config.storage.data_dir,
        caller.org_id(),
        &file_stem,
        &ext,
    );
    {
        let path = path.clone();
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || write_durably(&path, &bytes))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::internal(anyhow::anyhow!("cannot store the recording: {e}")))?;
    }
    let new = NewCall {
        org_id: caller.org_id().to_string(),
        rep_user_id: rep.id.clone(),
        team_id: rep.team_id.clone(),
        device_id,
        uploaded_by: caller.user.id.clone(),
        customer_ref: meta.customer_ref.clone(),
        direction: meta.direction,
        started_at,
        channel_layout: layout,
        language,
        audio_path: path.to_string_lossy().into_owned(),
        audio_bytes: bytes.len() as i64,
        audio_sha256: sha,
        audio_codec: decoded.codec.clone(),
        duration_ms: (decoded.duration_s * 1000.0).round() as i64,
        filename: filename.clone(),
        idempotency_key,
    };
    let (call, created) = match state.db.create_call(&call_id, &new).await {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
    };
    if !created {
        // A retried upload: keep the first one's audio only.
        let _ = std::fs::remove_file(&path);
    }
    let job_id = enqueue_transcription(&state.jobs, &call).await?;
    if created {
        state
            .db
            .audit(caller.audit("call.upload", "call", Some(&call.id)))
            .await?;
    }
    let job = state.jobs.get(job_id).await.ok();
    let mut call = call;
    call.job_id = Some(job_id);
    Ok((CallView::new(call, job.as_ref()), created))
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
    let limit = crate::extract::page_limit(q.limit, 50, 500)?;
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
