//! Calls: an uploaded recording, the job that transcribes it and the
//! transcript's segments.
//!
//! The audio itself is a file in the data directory (`audio_path`); the row
//! holds its size, SHA-256, codec and length so a later reader can tell a
//! damaged file. Segments are written in the same transaction that completes
//! the transcription job (see [`crate::jobs::JobQueue::complete_with`]), so a
//! call is either transcribed in full or not at all.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, DbResult, is_unique_violation};
use crate::time::now_ms;

/// Who is on a recording's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelLayout {
    /// One track (or both parties mixed): speakers unknown.
    Mono,
    /// Stereo, channel 0 (left) the rep, channel 1 (right) the customer.
    RepLeft,
    /// Stereo, channel 0 (left) the customer, channel 1 (right) the rep.
    RepRight,
}

impl ChannelLayout {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelLayout::Mono => "mono",
            ChannelLayout::RepLeft => "rep_left",
            ChannelLayout::RepRight => "rep_right",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mono" => ChannelLayout::Mono,
            "rep_left" => ChannelLayout::RepLeft,
            "rep_right" => ChannelLayout::RepRight,
            _ => return None,
        })
    }

    /// The speaker on channel `ch` (`None`: a mono or mixed transcript).
    pub fn speaker(self, ch: Option<usize>) -> Speaker {
        match (self, ch) {
            (ChannelLayout::RepLeft, Some(0)) | (ChannelLayout::RepRight, Some(1)) => Speaker::Rep,
            (ChannelLayout::RepLeft, Some(1)) | (ChannelLayout::RepRight, Some(0)) => {
                Speaker::Customer
            }
            _ => Speaker::Unknown,
        }
    }
}

pub use assist_protocol::Speaker;

fn parse_speaker(s: &str) -> DbResult<Speaker> {
    Speaker::parse(s).ok_or_else(|| DbError::Invalid(format!("unknown speaker `{s}`")))
}

/// Whether the rep called or was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
    #[default]
    Unknown,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> DbResult<Self> {
        Ok(match s {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            "unknown" => Direction::Unknown,
            other => return Err(DbError::Invalid(format!("unknown direction `{other}`"))),
        })
    }
}

/// A new call's row.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub org_id: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub device_id: Option<String>,
    pub uploaded_by: String,
    pub customer_ref: Option<String>,
    pub direction: Direction,
    pub started_at: Option<i64>,
    pub channel_layout: ChannelLayout,
    pub language: Option<String>,
    pub audio_path: String,
    pub audio_bytes: i64,
    pub audio_sha256: String,
    pub audio_codec: String,
    pub duration_ms: i64,
    pub filename: Option<String>,
    pub idempotency_key: Option<String>,
}

/// A stored call.
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    pub id: String,
    pub org_id: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub device_id: Option<String>,
    pub uploaded_by: String,
    pub customer_ref: Option<String>,
    pub direction: Direction,
    pub started_at: Option<i64>,
    pub channel_layout: ChannelLayout,
    pub language: Option<String>,
    #[serde(skip)]
    pub audio_path: String,
    pub audio_bytes: i64,
    pub audio_sha256: String,
    pub audio_codec: String,
    pub duration_ms: i64,
    pub filename: Option<String>,
    pub job_id: Option<i64>,
    pub detected_language: Option<String>,
    pub model: Option<String>,
    pub transcribed_at: Option<i64>,
    pub created_at: i64,
}

/// One transcript segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSegment {
    pub seq: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub channel: Option<i64>,
    pub speaker: Speaker,
    pub text: String,
    pub avg_logprob: f64,
}

const CALL_COLUMNS: &str = "id, org_id, rep_user_id, team_id, device_id, uploaded_by, customer_ref, direction, \
     started_at, channel_layout, language, audio_path, audio_bytes, audio_sha256, audio_codec, duration_ms, \
     filename, job_id, detected_language, model, transcribed_at, created_at";

fn call_row(r: &AnyRow) -> DbResult<CallRow> {
    let layout: String = r.try_get("channel_layout")?;
    let direction: String = r.try_get("direction")?;
    Ok(CallRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        rep_user_id: r.try_get("rep_user_id")?,
        team_id: r.try_get("team_id")?,
        device_id: r.try_get("device_id")?,
        uploaded_by: r.try_get("uploaded_by")?,
        customer_ref: r.try_get("customer_ref")?,
        direction: Direction::parse(&direction)?,
        started_at: r.try_get("started_at")?,
        channel_layout: ChannelLayout::parse(&layout)
            .ok_or_else(|| DbError::Invalid(format!("unknown channel layout `{layout}`")))?,
        language: r.try_get("language")?,
        audio_path: r.try_get("audio_path")?,
        audio_bytes: r.try_get("audio_bytes")?,
        audio_sha256: r.try_get("audio_sha256")?,
        audio_codec: r.try_get("audio_codec")?,
        duration_ms: r.try_get("duration_ms")?,
        filename: r.try_get("filename")?,
        job_id: r.try_get("job_id")?,
        detected_language: r.try_get("detected_language")?,
        model: r.try_get("model")?,
        transcribed_at: r.try_get("transcribed_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Which calls a listing covers.
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    /// Only this rep's calls.
    pub rep_user_id: Option<String>,
    /// Only this team's calls.
    pub team_id: Option<String>,
}

/// How a call's idempotency key is stored: `<uploader's user id>/<key>`, so
/// the unique `(org_id, idempotency_key)` index makes keys unique per
/// uploader, not per organisation (migration 0008 rewrote older rows this
/// way). User ids never contain `/`, so the first `/` ends the scope.
pub fn scoped_key(uploaded_by: &str, key: &str) -> String {
    format!("{uploaded_by}/{key}")
}

impl Db {
    /// Insert a call. With an idempotency key this uploader already used,
    /// returns the existing call and `false` (the caller compares it with
    /// what it sent). Keys are scoped to the uploader: see [`scoped_key`].
    pub async fn create_call(&self, id: &str, new: &NewCall) -> DbResult<(CallRow, bool)> {
        let key = new
            .idempotency_key
            .as_deref()
            .map(|k| scoped_key(&new.uploaded_by, k));
        if let Some(key) = &key
            && let Some(existing) = self.call_by_scoped_key(&new.org_id, key).await?
        {
            return Ok((existing, false));
        }
        let result = sqlx::query(
            "INSERT INTO calls (id, org_id, rep_user_id, team_id, device_id, uploaded_by, customer_ref, direction, \
             started_at, channel_layout, language, audio_path, audio_bytes, audio_sha256, audio_codec, duration_ms, \
             filename, idempotency_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind(id)
        .bind(&new.org_id)
        .bind(&new.rep_user_id)
        .bind(&new.team_id)
        .bind(&new.device_id)
        .bind(&new.uploaded_by)
        .bind(&new.customer_ref)
        .bind(new.direction.as_str())
        .bind(new.started_at)
        .bind(new.channel_layout.as_str())
        .bind(&new.language)
        .bind(&new.audio_path)
        .bind(new.audio_bytes)
        .bind(&new.audio_sha256)
        .bind(&new.audio_codec)
        .bind(new.duration_ms)
        .bind(&new.filename)
        .bind(&key)
        .bind(now_ms())
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => Ok((self.get_call(id).await?, true)),
            // Two uploads with the same key raced: the other one won.
            Err(e) if is_unique_violation(&e) => match &key {
                Some(key) => self
                    .call_by_scoped_key(&new.org_id, key)
                    .await?
                    .map(|c| (c, false))
                    .ok_or_else(|| DbError::Conflict("a call with that id exists".into())),
                None => Err(DbError::Conflict("a call with that id exists".into())),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The call `uploaded_by` stored under idempotency key `key`, if any.
    pub async fn call_by_key(
        &self,
        org_id: &str,
        uploaded_by: &str,
        key: &str,
    ) -> DbResult<Option<CallRow>> {
        self.call_by_scoped_key(org_id, &scoped_key(uploaded_by, key))
            .await
    }

    async fn call_by_scoped_key(&self, org_id: &str, key: &str) -> DbResult<Option<CallRow>> {
        let r = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE org_id = $1 AND idempotency_key = $2"
        ))
        .bind(org_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(call_row).transpose()
    }

    /// Remember the transcription job of a call.
    pub async fn set_call_job(&self, call_id: &str, job_id: i64) -> DbResult<()> {
        sqlx::query("UPDATE calls SET job_id = $1 WHERE id = $2")
            .bind(job_id)
            .bind(call_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn get_call(&self, id: &str) -> DbResult<CallRow> {
        let r = sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| DbError::NotFound(format!("no call `{id}`")))?;
        call_row(&r)
    }

    /// Calls of an organisation, newest first.
    pub async fn list_calls(
        &self,
        org_id: &str,
        scope: &CallScope,
        limit: i64,
        before: Option<i64>,
    ) -> DbResult<Vec<CallRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE org_id = $1 \
             AND ($2 = '' OR rep_user_id = $2) AND ($3 = '' OR team_id = $3) \
             AND created_at < $4 ORDER BY created_at DESC, id DESC LIMIT $5"
        ))
        .bind(org_id)
        .bind(scope.rep_user_id.clone().unwrap_or_default())
        .bind(scope.team_id.clone().unwrap_or_default())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 500))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(call_row).collect()
    }

    /// Calls whose transcription job was never enqueued.
    pub async fn calls_without_job(&self) -> DbResult<Vec<CallRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE job_id IS NULL ORDER BY created_at"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(call_row).collect()
    }

    pub async fn call_segments(&self, call_id: &str) -> DbResult<Vec<CallSegment>> {
        let rows = sqlx::query(
            "SELECT seq, start_ms, end_ms, channel, speaker, text, avg_logprob FROM call_segments \
             WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let speaker: String = r.try_get("speaker")?;
                Ok(CallSegment {
                    seq: r.try_get("seq")?,
                    start_ms: r.try_get("start_ms")?,
                    end_ms: r.try_get("end_ms")?,
                    channel: r.try_get("channel")?,
                    speaker: parse_speaker(&speaker)?,
                    text: r.try_get("text")?,
                    avg_logprob: r.try_get("avg_logprob")?,
                })
            })
            .collect()
    }
}

/// Write a call's transcript inside the transaction that completes its job:
/// replaces any earlier segments (a re-run after a crash writes the same).
pub async fn store_transcript(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    call_id: &str,
    detected_language: &str,
    model: &str,
    segments: &[CallSegment],
) -> DbResult<()> {
    sqlx::query("DELETE FROM call_segments WHERE call_id = $1")
        .bind(call_id)
        .execute(&mut **tx)
        .await?;
    for s in segments {
        sqlx::query(
            "INSERT INTO call_segments (call_id, seq, start_ms, end_ms, channel, speaker, text, avg_logprob) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(call_id)
        .bind(s.seq)
        .bind(s.start_ms)
        .bind(s.end_ms)
        .bind(s.channel)
        .bind(s.speaker.as_str())
        .bind(&s.text)
        .bind(s.avg_logprob)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE calls SET detected_language = $1, model = $2, transcribed_at = $3 WHERE id = $4",
    )
    .bind(detected_language)
    .bind(model)
    .bind(now_ms())
    .bind(call_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
