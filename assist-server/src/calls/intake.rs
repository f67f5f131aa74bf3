//! Recording intake: a call's audio arrives (a multipart upload or the last
//! chunk of a resumable upload), is checked and decoded at the door, stored
//! durably, recorded as a call and queued for transcription.

use assist_protocol::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CallStatus, audio_ext, audio_path, call_status, enqueue_transcription, write_durably};
use crate::caller::Caller;
use crate::config::Config;
use crate::db::Db;
use crate::db::calls::{CallRow, ChannelLayout, Direction, NewCall};
use crate::db::identity::UserRow;
use crate::error::ApiError;
use crate::jobs::JobQueue;
use crate::speech::{check_language, decode_upload, resolve_layout};

/// What intake needs from the service.
#[derive(Debug, Clone, Copy)]
pub struct Intake<'a> {
    pub config: &'a Config,
    pub db: &'a Db,
    pub jobs: &'a JobQueue,
    /// Whisper is loaded: without it a recording is refused at the door.
    pub speech_loaded: bool,
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
    pub fn new(call: CallRow, job: Option<&crate::jobs::JobRow>) -> Self {
        CallView {
            duration_s: call.duration_ms as f64 / 1000.0,
            status: call_status(job),
            call,
            segments: None,
            text: None,
        }
    }
}

/// Check, store and queue one recording for transcription: the shared end of
/// the multipart upload and of resumable uploads. Returns the call and
/// whether it was created (`false`: the idempotency key found an earlier one).
pub async fn accept_recording(
    state: Intake<'_>,
    caller: &Caller,
    meta: CallMetadata,
    header_key: Option<String>,
    bytes: bytes::Bytes,
    filename: Option<String>,
) -> Result<(CallView, bool), ApiError> {
    caller.require(&[Role::Rep, Role::Manager, Role::Admin])?;
    if !state.speech_loaded {
        return Err(ApiError::ModelMissing(format!(
            "speech recognition is off: the model `{}` is not loaded; run `assist models fetch --only {}` and restart",
            state.config.speech.speech_model, state.config.speech.speech_model
        )));
    }

    let (rep, device_id) = call_owner(state.db, caller, &meta).await?;
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
    let decoded = decode_upload(state.config, bytes.clone()).await?;
    let layout = resolve_layout(meta.channel_layout, decoded.channels.len())?;

    // A key this uploader used before: the same recording is a retry (the
    // first call, 200); another recording is refused, never dropped.
    if let Some(k) = &idempotency_key
        && let Some(call) = state
            .db
            .call_by_key(caller.org_id(), &caller.user.id, k)
            .await?
    {
        check_same_recording(&call, k, &rep.id, &sha)?;
        return existing_call(state, call).await;
    }
    // A live session of this call reserved its id: the recording becomes that
    // call, so live and post-call alerts of one call are one alert.
    let reserved = match &idempotency_key {
        Some(k) => state.db.live_call_id(caller.org_id(), &rep.id, k).await?,
        None => None,
    };
    if let Some(id) = &reserved
        && let Ok(call) = state.db.get_call(id).await
    {
        // Already uploaded (by the rep's phone, or a manager for them):
        // never write over (or delete) its stored audio.
        let k = idempotency_key.as_deref().unwrap_or_default();
        check_same_recording(&call, k, &rep.id, &sha)?;
        return existing_call(state, call).await;
    }
    let shared = reserved.is_some();
    let call_id = reserved.unwrap_or_else(|| format!("call_{}", uuid::Uuid::now_v7().simple()));
    let ext = audio_ext(filename.as_deref(), &decoded.codec);
    let target = AudioTarget {
        org_id: caller.org_id(),
        call_id: &call_id,
        shared,
        ext: &ext,
    };
    let path = store_audio(state.config, target, &bytes).await?;
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
        // Another request with this key won a race: keep its audio only.
        let _ = std::fs::remove_file(&path);
        let k = new.idempotency_key.as_deref().unwrap_or_default();
        check_same_recording(&call, k, &rep.id, &new.audio_sha256)?;
    }
    let job_id = enqueue_transcription(state.jobs, &call).await?;
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

/// A retried recording must be the same file for the same rep; anything else
/// under a used key is a 409 (the caller keeps its recording and sends it
/// with a new key).
fn check_same_recording(
    call: &CallRow,
    key: &str,
    rep_id: &str,
    sha: &str,
) -> Result<(), ApiError> {
    if call.audio_sha256 == sha && call.rep_user_id == rep_id {
        return Ok(());
    }
    Err(ApiError::IdempotencyConflict(format!(
        "the key `{key}` was already used for a different recording (call {}); send this recording with a new Idempotency-Key / client_call_id",
        call.id
    )))
}

/// An earlier call returned for a retried upload, with its job. The job is
/// queued again if a crash came between storing the call and queueing it
/// (the job's own idempotency key makes this a no-op otherwise).
async fn existing_call(state: Intake<'_>, call: CallRow) -> Result<(CallView, bool), ApiError> {
    let job_id = enqueue_transcription(state.jobs, &call).await?;
    let job = state.jobs.get(job_id).await.ok();
    let mut call = call;
    call.job_id = Some(job_id);
    Ok((CallView::new(call, job.as_ref()), false))
}

/// Whose call a recording is (the rep) and which phone recorded it, checked
/// against the caller: reps their own calls, managers their team's. Run on
/// the multipart upload and on the first request of a resumable upload, so
/// a recording naming someone else is refused before any byte is sent.
pub async fn call_owner(
    db: &Db,
    caller: &Caller,
    meta: &CallMetadata,
) -> Result<(UserRow, Option<String>), ApiError> {
    let rep = whose_call(db, caller, meta).await?;
    let device_id = which_device(db, caller, meta, &rep).await?;
    Ok((rep, device_id))
}

/// Whose call it is: the calling rep's own, or the rep named in the
/// metadata (a manager of the rep's team or an admin may upload for a rep).
async fn whose_call(db: &Db, caller: &Caller, meta: &CallMetadata) -> Result<UserRow, ApiError> {
    Ok(match (&meta.rep, caller.role()) {
        (None, Role::Rep) => caller.user.clone(),
        (None, _) => {
            return Err(ApiError::invalid(
                "say whose call this is: metadata `rep` (a rep's id or name)",
            ));
        }
        (Some(who), _) => {
            let user = db
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
    })
}

/// The work phone that recorded it: the one named (bound to the rep), else
/// the calling device.
async fn which_device(
    db: &Db,
    caller: &Caller,
    meta: &CallMetadata,
    rep: &UserRow,
) -> Result<Option<String>, ApiError> {
    Ok(match (&meta.device_id, &caller.device_id) {
        (Some(d), _) => {
            let device = db
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
    })
}

/// Where a recording's audio goes.
#[derive(Debug, Clone, Copy)]
struct AudioTarget<'a> {
    org_id: &'a str,
    call_id: &'a str,
    /// The call id was reserved by a live session: two racing retries may
    /// share it.
    shared: bool,
    ext: &'a str,
}

/// Write the recording durably under the organisation's audio folder. With
/// a shared call id each upload writes its own file, so the loser's
/// clean-up cannot delete the winner's audio; a fresh call id names its
/// file alone.
async fn store_audio(
    config: &Config,
    to: AudioTarget<'_>,
    bytes: &bytes::Bytes,
) -> Result<std::path::PathBuf, ApiError> {
    let file_stem = if to.shared {
        format!(
            "{}-{}",
            to.call_id,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    } else {
        to.call_id.to_string()
    };
    let path = audio_path(&config.storage.data_dir, to.org_id, &file_stem, to.ext);
    let (target, bytes) = (path.clone(), bytes.clone());
    tokio::task::spawn_blocking(move || write_durably(&target, &bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(anyhow::anyhow!("cannot store the recording: {e}")))?;
    Ok(path)
}
