//! Resumable recording uploads: `POST /v1/uploads`, then `PUT` chunks with
//! `Content-Range`, persisting the server's offset after each one; after a
//! restart or a cut connection the upload goes on from the server's offset.

use std::io::SeekFrom;

use assist_protocol::ErrorCode;
use assist_protocol::device::{CreateUpload, UploadStatus};
use reqwest::Method;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::client::Client;
use crate::flush::{FlushProgress, FlushReport, Step, blocking, encode_path, is_unauthorized};
use crate::outbox::Row;
use crate::{Error, Result};

/// Most 409 answers in a row before the upload waits for the next flush.
const MAX_CONFLICTS: u32 = 3;

enum Next {
    Done { call_id: Option<String> },
    Dead(String),
    Go { offset: u64 },
}

fn judge(st: &UploadStatus, size: u64) -> Next {
    match st.state.as_str() {
        "complete" => Next::Done {
            call_id: st.call_id.clone(),
        },
        "failed" => Next::Dead(format!(
            "the server could not use the recording: {}",
            st.error.as_deref().unwrap_or("no reason given")
        )),
        _ => Next::Go {
            offset: st.offset.min(size),
        },
    }
}

impl Client {
    /// Upload one queued recording as far as it goes.
    pub(crate) async fn upload(
        &self,
        row: &Row,
        report: &mut FlushReport,
        progress: &(dyn Fn(FlushProgress) + Sync),
    ) -> Result<Step> {
        match self.upload_inner(row, progress).await {
            Ok(call_id) => {
                report.sent += 1;
                if let Some(c) = call_id {
                    report.calls.push((row.key.clone(), c));
                }
                let r = row.clone();
                blocking(&self.outbox, move |o| o.confirm(&[&r])).await?;
                Ok(Step::Continue)
            }
            Err(UploadFail::Dead(msg)) => {
                report.dead += 1;
                tracing::warn!(key = %row.key, error = %msg, "recording refused for good");
                let r = row.clone();
                blocking(&self.outbox, move |o| o.mark_dead(&[&r], &msg)).await?;
                Ok(Step::Continue)
            }
            Err(UploadFail::Storage(e)) => Err(e),
            Err(UploadFail::Http(e)) if is_unauthorized(&e) => {
                report.unauthorized = true;
                report.stopped = Some(format!("the device token was refused: {e}"));
                Ok(Step::Stop)
            }
            Err(UploadFail::Http(e)) if e.is_retryable() => {
                let next = self.retry_at(std::slice::from_ref(row), &e);
                report.failed += 1;
                report.held_until = Some(next);
                report.stopped = Some(match &e {
                    Error::Unreachable { .. } => format!("{e}; queued, will retry"),
                    _ => format!("{e}; will retry at {}", crate::util::rfc3339_ms(next)),
                });
                let (r, msg) = (row.clone(), e.to_string());
                blocking(&self.outbox, move |o| {
                    o.reschedule(&[&r], next, &msg)?;
                    o.set_hold(next)
                })
                .await?;
                Ok(Step::Stop)
            }
            Err(UploadFail::Http(e)) => {
                report.dead += 1;
                let (r, msg) = (row.clone(), e.to_string());
                blocking(&self.outbox, move |o| o.mark_dead(&[&r], &msg)).await?;
                Ok(Step::Continue)
            }
            Err(UploadFail::Later(msg)) => {
                report.failed += 1;
                let next = self.retry_at(std::slice::from_ref(row), &Error::Invalid(String::new()));
                let r = row.clone();
                blocking(&self.outbox, move |o| o.reschedule(&[&r], next, &msg)).await?;
                Ok(Step::Continue)
            }
        }
    }

    /// `Ok(call_id)` when the server holds the whole recording.
    async fn upload_inner(
        &self,
        row: &Row,
        progress: &(dyn Fn(FlushProgress) + Sync),
    ) -> Result<Option<String>, UploadFail> {
        let create: CreateUpload = serde_json::from_str(&row.payload)
            .map_err(|e| UploadFail::Dead(format!("corrupt outbox entry: {e}")))?;
        let path = self
            .outbox
            .file_path(row)
            .ok_or_else(|| UploadFail::Dead("the outbox entry names no file".into()))?;
        let size = create.size;
        let mut upload_id = row.upload_id.clone();
        let mut offset = row.upload_offset;
        // After a restart the server may hold more (or less) than we stored.
        let mut sync = upload_id.is_some();
        let mut conflicts = 0;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) => {
                return Err(UploadFail::Dead(format!(
                    "the queued copy {} is gone: {e}",
                    path.display()
                )));
            }
        };
        let mut buf = vec![0u8; self.config.chunk_bytes];
        loop {
            let status: UploadStatus = match &upload_id {
                None => {
                    let st: UploadStatus = self
                        .call_json(Method::POST, "/uploads", &create)
                        .await
                        .map_err(UploadFail::Http)?
                        .body;
                    upload_id = Some(st.upload_id.clone());
                    st
                }
                Some(id) if sync => {
                    match self
                        .call(self.request(Method::GET, &format!("/uploads/{}", encode_path(id))))
                        .await
                    {
                        Ok(a) => a.body,
                        Err(e) if is_gone(&e) => {
                            // The server forgot it (expired): start again.
                            upload_id = None;
                            offset = 0;
                            continue;
                        }
                        Err(e) => return Err(UploadFail::Http(e)),
                    }
                }
                Some(id) => {
                    let id = id.clone();
                    let req = self
                        .request(Method::PUT, &format!("/uploads/{}", encode_path(&id)))
                        .header(CONTENT_TYPE, "application/octet-stream");
                    let req = if offset >= size {
                        // Every byte is in but the call was not made yet
                        // (a passing failure): ask again.
                        req.header(CONTENT_RANGE, format!("bytes */{size}"))
                    } else {
                        let n = (size - offset).min(buf.len() as u64) as usize;
                        file.seek(SeekFrom::Start(offset))
                            .await
                            .map_err(|e| UploadFail::Dead(format!("{}: {e}", path.display())))?;
                        file.read_exact(&mut buf[..n])
                            .await
                            .map_err(|e| UploadFail::Dead(format!("{}: {e}", path.display())))?;
                        req.header(
                            CONTENT_RANGE,
                            format!("bytes {offset}-{}/{size}", offset + n as u64 - 1),
                        )
                        .body(buf[..n].to_vec())
                    };
                    match self.call::<UploadStatus>(req).await {
                        Ok(a) => {
                            conflicts = 0;
                            a.body
                        }
                        Err(e) if is_conflict(&e) => {
                            conflicts += 1;
                            if conflicts > MAX_CONFLICTS {
                                return Err(UploadFail::Later(format!(
                                    "the server kept answering 409 ({e})"
                                )));
                            }
                            sync = true;
                            continue;
                        }
                        Err(e) if is_gone(&e) => {
                            upload_id = None;
                            offset = 0;
                            continue;
                        }
                        Err(e) => return Err(UploadFail::Http(e)),
                    }
                }
            };
            sync = false;
            match judge(&status, size) {
                Next::Done { call_id } => return Ok(call_id),
                Next::Dead(msg) => return Err(UploadFail::Dead(msg)),
                Next::Go { offset: o } => {
                    offset = o;
                    let (id, uid) = (row.id, upload_id.clone());
                    blocking(&self.outbox, move |ob| ob.set_upload(id, uid.as_deref(), o))
                        .await
                        .map_err(UploadFail::Storage)?;
                    progress(FlushProgress::Upload {
                        upload_key: row.key.clone(),
                        offset,
                        size,
                    });
                }
            }
        }
    }
}

enum UploadFail {
    Http(Error),
    Dead(String),
    Later(String),
    Storage(Error),
}

/// A 409 about the upload's offset (resync and go on), not a reused key
/// (`idempotency_conflict`, which is final).
fn is_conflict(e: &Error) -> bool {
    match e {
        Error::Api { code: Some(c), .. } => *c == ErrorCode::Conflict,
        Error::Api { status, .. } => *status == 409,
        _ => false,
    }
}

fn is_gone(e: &Error) -> bool {
    matches!(e, Error::Api { status: 404, .. })
}
