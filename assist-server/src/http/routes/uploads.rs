//! Resumable recording uploads, for phones on flaky networks:
//!
//! - `POST /v1/uploads` (JSON [`CreateUpload`]) opens an upload, or finds the
//!   caller's open one with the same `upload_key`: 201 or 200 with its
//!   [`UploadStatus`].
//! - `PUT /v1/uploads/{id}` with `Content-Range: bytes START-END/TOTAL` (END
//!   inclusive) appends a chunk. A chunk may overlap what the server already
//!   has (a resend after a lost answer): the known bytes are skipped. A chunk
//!   starting after the server's offset is a gap: 409, and the phone asks
//!   `GET` for the offset. Each chunk is fsync'd before the offset moves, so
//!   a crash loses at most the chunk in flight.
//! - When the last byte is in, the SHA-256 is checked and the recording goes
//!   through the same checks as `POST /v1/calls`; the answer carries
//!   `call_id`. If that step failed for a passing reason (overload), a `PUT`
//!   with `Content-Range: bytes */TOTAL` and an empty body tries it again.
//! - `GET /v1/uploads/{id}` tells the state and the offset.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use assist_protocol::Role;
use assist_protocol::device::{CreateUpload, UploadStatus};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use crate::caller::Caller;
use crate::calls::intake::{CallMetadata, accept_recording};
use crate::db::device::UploadRow;
use crate::error::ApiError;
use crate::http::extract::Json as AppJson;
use crate::http::routes::device::check_client_id;
use crate::state::AppState;
use crate::time::now_ms;

/// Largest chunk accepted by one `PUT`.
pub const MAX_CHUNK_BYTES: usize = 16 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/uploads", post(create)).route(
        "/uploads/{id}",
        get(status)
            .put(put_chunk)
            .layer(DefaultBodyLimit::max(MAX_CHUNK_BYTES)),
    )
}

/// Uploads with a `PUT` in progress on this node: a second concurrent `PUT`
/// of the same upload is 409 rather than interleaved.
static BUSY: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

struct Busy(String);

impl Busy {
    fn take(id: &str) -> Result<Busy, ApiError> {
        let mut busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
        if busy.insert(id.to_string()) {
            Ok(Busy(id.to_string()))
        } else {
            Err(ApiError::Conflict(format!(
                "another chunk of upload `{id}` is being written; wait for it, then GET the offset"
            )))
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

fn part_path(state: &AppState, u: &UploadRow) -> PathBuf {
    state
        .config
        .storage
        .data_dir
        .join("uploads")
        .join(&u.org_id)
        .join(format!("{}.part", u.id))
}

fn view(u: &UploadRow) -> UploadStatus {
    UploadStatus {
        upload_id: u.id.clone(),
        upload_key: u.upload_key.clone(),
        size: u.size as u64,
        offset: u.received as u64,
        state: u.state.clone(),
        call_id: u.call_id.clone(),
        error: u.error.clone(),
    }
}

fn metadata_of(req: &CreateUpload) -> Result<CallMetadata, ApiError> {
    let value = serde_json::to_value(&req.metadata).map_err(ApiError::internal)?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("`metadata` is not valid: {e}")))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CreateUpload>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Rep, Role::Manager, Role::Admin])?;
    check_client_id("upload_key", &req.upload_key)?;
    if req.size == 0 {
        return Err(ApiError::invalid("`size` is 0: there is nothing to upload"));
    }
    let limit = state.config.server.max_upload_bytes as u64;
    if req.size > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the recording is {} bytes; the limit is {limit} (`max_upload_bytes`)",
            req.size
        )));
    }
    if req.sha256.len() != 64 || !req.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(
            "`sha256` must be the 64 hex digits of the file's SHA-256",
        ));
    }
    if req
        .filename
        .as_ref()
        .is_some_and(|f| f.chars().count() > 255)
    {
        return Err(ApiError::invalid(
            "`filename` is longer than 255 characters",
        ));
    }
    // Refuse bad metadata now, not after the last chunk.
    let meta = metadata_of(&req)?;
    if let Some(l) = &meta.language {
        crate::speech::check_language(l)?;
    }
    crate::calls::intake::call_owner(&state.db, &caller, &meta).await?;
    let row = UploadRow {
        id: format!("upl_{}", uuid::Uuid::now_v7().simple()),
        org_id: caller.org_id().to_string(),
        user_id: caller.user.id.clone(),
        device_id: caller.device_id.clone(),
        upload_key: req.upload_key.clone(),
        size: req.size as i64,
        sha256: req.sha256.to_ascii_lowercase(),
        filename: req.filename.clone(),
        metadata: serde_json::to_string(&req.metadata).map_err(ApiError::internal)?,
        received: 0,
        state: "receiving".into(),
        call_id: None,
        error: None,
    };
    let (row, created) = state.db.create_upload(&row, now_ms()).await?;
    if !created && (row.size != req.size as i64 || row.sha256 != req.sha256.to_ascii_lowercase()) {
        return Err(ApiError::IdempotencyConflict(format!(
            "upload_key `{}` was already used for a different file ({} bytes, sha256 {})",
            row.upload_key, row.size, row.sha256
        )));
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(view(&row))).into_response())
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<UploadRow, ApiError> {
    let row = state.db.get_upload(caller.org_id(), id).await?;
    if row.user_id != caller.user.id {
        return Err(ApiError::not_found(format!("no upload `{id}`")));
    }
    Ok(row)
}

async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UploadStatus>, ApiError> {
    Ok(Json(view(&load(&state, &caller, &id).await?)))
}

/// `bytes START-END/TOTAL` → `(Some((START, END)), TOTAL)`; `bytes */TOTAL` → `(None, TOTAL)`.
fn parse_range(headers: &HeaderMap) -> Result<(Option<(u64, u64)>, u64), ApiError> {
    let raw = headers
        .get("content-range")
        .ok_or_else(|| {
            ApiError::invalid("send `Content-Range: bytes START-END/TOTAL` with each chunk")
        })?
        .to_str()
        .map_err(|_| ApiError::invalid("Content-Range is not ASCII"))?;
    let bad = || {
        ApiError::invalid(format!(
            "Content-Range `{raw}` is not `bytes START-END/TOTAL` (END inclusive) or `bytes */TOTAL`"
        ))
    };
    let rest = raw.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = rest.split_once('/').ok_or_else(bad)?;
    let total: u64 = total.trim().parse().map_err(|_| bad())?;
    if range.trim() == "*" {
        return Ok((None, total));
    }
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a || b >= total {
        return Err(bad());
    }
    Ok((Some((a, b)), total))
}

async fn put_chunk(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (range, total) = parse_range(&headers)?;
    let _busy = Busy::take(&id)?;
    let mut row = load(&state, &caller, &id).await?;
    if total != row.size as u64 {
        return Err(ApiError::invalid(format!(
            "Content-Range total {total} is not the upload's size {}",
            row.size
        )));
    }
    if row.state != "receiving" {
        // Complete or failed: a resend after a lost answer gets the answer again.
        return Ok(Json(view(&row)).into_response());
    }
    if let Some((start, end)) = range {
        if (end - start + 1) as usize != body.len() {
            return Err(ApiError::invalid(format!(
                "Content-Range names {} bytes but the body has {}",
                end - start + 1,
                body.len()
            )));
        }
        let have = row.received as u64;
        if start > have {
            return Err(ApiError::Conflict(format!(
                "this chunk starts at byte {start} but the server has {have}; GET /v1/uploads/{id} and continue from its offset"
            )));
        }
        if end + 1 > have {
            // Skip what is already stored, append the rest durably.
            let skip = (have - start) as usize;
            let path = part_path(&state, &row);
            let data = body.slice(skip..);
            tokio::task::spawn_blocking(move || append_durably(&path, have, &data))
                .await
                .map_err(ApiError::internal)?
                .map_err(|e| ApiError::internal(anyhow::anyhow!("cannot store the chunk: {e}")))?;
            state
                .db
                .advance_upload(&row.id, have as i64, end as i64 + 1, now_ms())
                .await?;
            row.received = end as i64 + 1;
        }
    }
    if row.received < row.size {
        return Ok(Json(view(&row)).into_response());
    }
    complete(&state, &caller, row).await
}

/// Truncate the part file to `offset` (dropping a torn write from a crash),
/// append `data` and fsync.
fn append_durably(path: &std::path::Path, offset: u64, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    if len < offset {
        return Err(std::io::Error::other(format!(
            "the stored part has {len} bytes but the upload says {offset}"
        )));
    }
    f.set_len(offset)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(data)?;
    f.sync_all()
}

/// All bytes are in: check the digest and turn the file into a call.
async fn complete(state: &AppState, caller: &Caller, row: UploadRow) -> Result<Response, ApiError> {
    let path = part_path(state, &row);
    let size = row.size as u64;
    let read_path = path.clone();
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(&read_path)?;
        let mut buf = Vec::with_capacity(size as usize);
        Read::by_ref(&mut f).take(size).read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::internal(anyhow::anyhow!("cannot read the stored upload: {e}")))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != row.sha256 {
        let msg = format!(
            "the received file's SHA-256 is {digest}, not {} as declared; start a new upload with a new upload_key",
            row.sha256
        );
        state
            .db
            .finish_upload(&row.id, None, Some(&msg), now_ms())
            .await?;
        let _ = std::fs::remove_file(&path);
        return Err(ApiError::invalid(msg));
    }
    let meta: CallMetadata = serde_json::from_str::<serde_json::Value>(&row.metadata)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let meta = CallMetadata {
        client_call_id: Some(row.upload_key.clone()),
        ..meta
    };
    match accept_recording(
        state.intake(),
        caller,
        meta,
        Some(row.upload_key.clone()),
        bytes.into(),
        row.filename.clone(),
    )
    .await
    {
        Ok((call, _)) => {
            state
                .db
                .finish_upload(&row.id, Some(&call.call.id), None, now_ms())
                .await?;
            let _ = std::fs::remove_file(&path);
            let row = state.db.get_upload(&row.org_id, &row.id).await?;
            Ok((StatusCode::CREATED, Json(view(&row))).into_response())
        }
        // Passing trouble: keep the bytes; `PUT bytes */TOTAL` retries.
        Err(e @ (ApiError::Overloaded { .. } | ApiError::NotReady(_) | ApiError::Internal(_))) => {
            Err(e)
        }
        Err(e) => {
            state
                .db
                .finish_upload(&row.id, None, Some(&e.to_string()), now_ms())
                .await?;
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-range", v.parse().unwrap());
        h
    }

    #[test]
    fn content_range_is_parsed_strictly() {
        assert_eq!(
            parse_range(&headers("bytes 0-99/1000")).unwrap(),
            (Some((0, 99)), 1000)
        );
        assert_eq!(parse_range(&headers("bytes */1000")).unwrap(), (None, 1000));
        for bad in [
            "bytes 10-5/100",
            "bytes 0-100/100",
            "0-9/100",
            "bytes a-b/c",
        ] {
            assert!(parse_range(&headers(bad)).is_err(), "{bad}");
        }
        assert!(parse_range(&HeaderMap::new()).is_err());
    }

    #[test]
    fn a_torn_write_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.part");
        append_durably(&p, 0, b"hello").unwrap();
        // A crash left junk after the durable offset 5.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"JUNK")
            .unwrap();
        append_durably(&p, 5, b" world").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello world");
        assert!(append_durably(&p, 50, b"x").is_err());
    }
}
