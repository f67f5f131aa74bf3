//! The phone side in storage: device events, live sessions (their final
//! transcript and the suggestions shown) and resumable uploads.
//!
//! Everything a phone sends carries its own id, and every insert here is
//! `ON CONFLICT DO NOTHING` on that id, so the outbox can resend freely.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, DbResult};

/// One device event to store.
#[derive(Debug, Clone)]
pub struct NewDeviceEvent {
    pub event_id: String,
    /// The `type` of the event (`suggestion_feedback`, `guard_blocked` …).
    pub kind: String,
    /// The whole event as JSON.
    pub payload: String,
    pub occurred_at: i64,
    /// For `suggestion_feedback`: the suggestion and the action.
    pub feedback: Option<(String, String)>,
}

/// A live session row.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSessionRow {
    pub id: String,
    pub org_id: String,
    pub rep_user_id: String,
    pub team_id: Option<String>,
    pub device_id: String,
    pub client_call_id: String,
    pub call_id: String,
    pub language: Option<String>,
    pub audio_layout: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

/// A final transcript piece of a live session.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSegmentRow {
    pub seq: i64,
    pub speaker: String,
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `audio` (recognised on the server) or `text` (sent by the phone).
    pub source: String,
}

/// A suggestion shown during a live call.
#[derive(Debug, Clone)]
pub struct NewLiveSuggestion {
    pub id: String,
    pub final_seq: i64,
    pub script_id: String,
    pub rank: i64,
    pub score: f64,
}

/// A resumable upload.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub device_id: Option<String>,
    pub upload_key: String,
    pub size: i64,
    pub sha256: String,
    pub filename: Option<String>,
    pub metadata: String,
    pub received: i64,
    pub state: String,
    pub call_id: Option<String>,
    pub error: Option<String>,
}

const SESSION_COLUMNS: &str = "id, org_id, rep_user_id, team_id, device_id, client_call_id, call_id, language, audio_layout, started_at, ended_at, end_reason";
const UPLOAD_COLUMNS: &str = "id, org_id, user_id, device_id, upload_key, size, sha256, filename, metadata, received, state, call_id, error";

/// Suggestions shown, used and dismissed, over whatever rows are selected.
const ADOPTION_COLUMNS: &str = "COUNT(*) AS shown, \
     COALESCE(SUM(CASE WHEN feedback = 'used' THEN 1 ELSE 0 END), 0) AS used, \
     COALESCE(SUM(CASE WHEN feedback = 'dismissed' THEN 1 ELSE 0 END), 0) AS dismissed";

fn adoption_row(r: &AnyRow) -> DbResult<(i64, i64, i64)> {
    Ok((
        r.try_get("shown")?,
        r.try_get("used")?,
        r.try_get("dismissed")?,
    ))
}

fn session_row(r: &AnyRow) -> DbResult<LiveSessionRow> {
    Ok(LiveSessionRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        rep_user_id: r.try_get("rep_user_id")?,
        team_id: r.try_get("team_id")?,
        device_id: r.try_get("device_id")?,
        client_call_id: r.try_get("client_call_id")?,
        call_id: r.try_get("call_id")?,
        language: r.try_get("language")?,
        audio_layout: r.try_get("audio_layout")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: r.try_get("end_reason")?,
    })
}

fn upload_row(r: &AnyRow) -> DbResult<UploadRow> {
    Ok(UploadRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        user_id: r.try_get("user_id")?,
        device_id: r.try_get("device_id")?,
        upload_key: r.try_get("upload_key")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        filename: r.try_get("filename")?,
        metadata: r.try_get("metadata")?,
        received: r.try_get("received")?,
        state: r.try_get("state")?,
        call_id: r.try_get("call_id")?,
        error: r.try_get("error")?,
    })
}

/// A tap on a suggestion may arrive over the live connection and again from
/// the outbox (two payload shapes): the tap is the same when it names the
/// same suggestion and action. Other events must match whole.
fn same_payload(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.get("suggestion_id"), b.get("suggestion_id")) {
        (Some(x), Some(y)) => x == y && a.get("action") == b.get("action"),
        _ => a == b,
    }
}

/// An event id the device sent before must carry the same event: a retry
/// is fine, an id reused for another event is refused (never dropped).
/// Payloads are compared as JSON values ([`same_payload`]).
async fn same_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    device_id: &str,
    event_id: &str,
    payload: &str,
) -> DbResult<()> {
    let stored: String =
        sqlx::query("SELECT payload FROM device_events WHERE device_id = $1 AND event_id = $2")
            .bind(device_id)
            .bind(event_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("payload")?;
    let same = match (
        serde_json::from_str::<serde_json::Value>(&stored),
        serde_json::from_str::<serde_json::Value>(payload),
    ) {
        (Ok(a), Ok(b)) => same_payload(&a, &b),
        _ => stored == payload,
    };
    if same {
        Ok(())
    } else {
        Err(DbError::KeyConflict(format!(
            "event_id `{event_id}` was already used by this phone for a different event; send it with a new id"
        )))
    }
}

impl Db {
    /// Store a batch of events from one device. Returns, per event, whether
    /// it was new. Feedback events also mark their suggestion (first tap wins).
    pub async fn insert_device_events(
        &self,
        org_id: &str,
        user_id: &str,
        device_id: &str,
        events: &[NewDeviceEvent],
        now: i64,
    ) -> DbResult<Vec<bool>> {
        let mut tx = self.pool().begin().await?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let done = sqlx::query(
                "INSERT INTO device_events (device_id, event_id, org_id, user_id, kind, payload, occurred_at, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (device_id, event_id) DO NOTHING",
            )
            .bind(device_id)
            .bind(&e.event_id)
            .bind(org_id)
            .bind(user_id)
            .bind(&e.kind)
            .bind(&e.payload)
            .bind(e.occurred_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let new = done.rows_affected() == 1;
            if !new {
                same_event(&mut tx, device_id, &e.event_id, &e.payload).await?;
            }
            if new && let Some((suggestion_id, action)) = &e.feedback {
                set_feedback(
                    &mut tx,
                    org_id,
                    user_id,
                    suggestion_id,
                    action,
                    &e.event_id,
                    now,
                )
                .await?;
            }
            out.push(new);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Record a tap on a live suggestion, once per `feedback_id`: stored as a
    /// device event (its id is the feedback id) and on the suggestion.
    /// Returns `true` when it was new. 404 for a suggestion that is not the
    /// rep's own.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_feedback(
        &self,
        org_id: &str,
        user_id: &str,
        device_id: &str,
        feedback_id: &str,
        suggestion_id: &str,
        action: &str,
        payload: &str,
        now: i64,
    ) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        let owned = sqlx::query(
            "SELECT 1 FROM live_suggestions WHERE id = $1 AND org_id = $2 AND rep_user_id = $3",
        )
        .bind(suggestion_id)
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if owned.is_none() {
            return Err(DbError::NotFound(format!(
                "no suggestion `{suggestion_id}` was shown to you"
            )));
        }
        let done = sqlx::query(
            "INSERT INTO device_events (device_id, event_id, org_id, user_id, kind, payload, occurred_at, received_at) \
             VALUES ($1, $2, $3, $4, 'suggestion_feedback', $5, $6, $6) ON CONFLICT (device_id, event_id) DO NOTHING",
        )
        .bind(device_id)
        .bind(feedback_id)
        .bind(org_id)
        .bind(user_id)
        .bind(payload)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let new = done.rows_affected() == 1;
        if !new {
            same_event(&mut tx, device_id, feedback_id, payload).await?;
        }
        if new {
            set_feedback(
                &mut tx,
                org_id,
                user_id,
                suggestion_id,
                action,
                feedback_id,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// How many device events of each kind an organisation has.
    pub async fn device_event_counts(&self, org_id: &str) -> DbResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM device_events WHERE org_id = $1 GROUP BY kind ORDER BY kind",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("n")?)))
            .collect()
    }

    /// Find the live session of this device and client call id.
    pub async fn find_live_session(
        &self,
        device_id: &str,
        client_call_id: &str,
    ) -> DbResult<Option<LiveSessionRow>> {
        let r = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM live_sessions WHERE device_id = $1 AND client_call_id = $2"
        ))
        .bind(device_id)
        .bind(client_call_id)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(session_row).transpose()
    }

    pub async fn get_live_session(&self, org_id: &str, id: &str) -> DbResult<LiveSessionRow> {
        let r = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM live_sessions WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no live session `{id}`")))?;
        session_row(&r)
    }

    /// Create a live session (or return the one this device already has for
    /// this client call id). Returns it and whether it was new.
    pub async fn create_live_session(
        &self,
        s: &LiveSessionRow,
    ) -> DbResult<(LiveSessionRow, bool)> {
        let done = sqlx::query(
            "INSERT INTO live_sessions (id, org_id, rep_user_id, team_id, device_id, client_call_id, call_id, language, audio_layout, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (device_id, client_call_id) DO NOTHING",
        )
        .bind(&s.id)
        .bind(&s.org_id)
        .bind(&s.rep_user_id)
        .bind(&s.team_id)
        .bind(&s.device_id)
        .bind(&s.client_call_id)
        .bind(&s.call_id)
        .bind(&s.language)
        .bind(&s.audio_layout)
        .bind(s.started_at)
        .execute(self.pool())
        .await?;
        let row = self
            .find_live_session(&s.device_id, &s.client_call_id)
            .await?
            .ok_or_else(|| DbError::NotFound("the live session vanished".into()))?;
        Ok((row, done.rows_affected() == 1))
    }

    /// Store one final piece and the suggestions made for it, together.
    pub async fn insert_live_final(
        &self,
        session: &LiveSessionRow,
        segment: &LiveSegmentRow,
        utterance_id: Option<&str>,
        suggestions: &[NewLiveSuggestion],
        now: i64,
    ) -> DbResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO live_segments (session_id, seq, speaker, text, start_ms, end_ms, source, utterance_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (session_id, seq) DO NOTHING",
        )
        .bind(&session.id)
        .bind(segment.seq)
        .bind(&segment.speaker)
        .bind(&segment.text)
        .bind(segment.start_ms)
        .bind(segment.end_ms)
        .bind(&segment.source)
        .bind(utterance_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for s in suggestions {
            sqlx::query(
                "INSERT INTO live_suggestions (id, session_id, org_id, rep_user_id, team_id, final_seq, script_id, rank, score, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&s.id)
            .bind(&session.id)
            .bind(&session.org_id)
            .bind(&session.rep_user_id)
            .bind(&session.team_id)
            .bind(s.final_seq)
            .bind(&s.script_id)
            .bind(s.rank)
            .bind(s.score)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether this session already has a text turn with this utterance id.
    pub async fn live_utterance_seen(
        &self,
        session_id: &str,
        utterance_id: &str,
    ) -> DbResult<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM live_segments WHERE session_id = $1 AND utterance_id = $2")
                .bind(session_id)
                .bind(utterance_id)
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    pub async fn live_segments(&self, session_id: &str) -> DbResult<Vec<LiveSegmentRow>> {
        let rows = sqlx::query(
            "SELECT seq, speaker, text, start_ms, end_ms, source FROM live_segments WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LiveSegmentRow {
                    seq: r.try_get("seq")?,
                    speaker: r.try_get("speaker")?,
                    text: r.try_get("text")?,
                    start_ms: r.try_get("start_ms")?,
                    end_ms: r.try_get("end_ms")?,
                    source: r.try_get("source")?,
                })
            })
            .collect()
    }

    /// Suggestions shown in a session and how many were used / dismissed.
    pub async fn live_suggestion_counts(&self, session_id: &str) -> DbResult<(i64, i64, i64)> {
        let r = sqlx::query(&format!(
            "SELECT {ADOPTION_COLUMNS} FROM live_suggestions WHERE session_id = $1"
        ))
        .bind(session_id)
        .fetch_one(self.pool())
        .await?;
        adoption_row(&r)
    }

    /// Live suggestions shown in `[from, to)` to a rep or a team (or the
    /// whole organisation), and how many were used / dismissed.
    pub async fn suggestion_adoption(
        &self,
        org_id: &str,
        rep: Option<&str>,
        team: Option<&str>,
        from: i64,
        to: i64,
    ) -> DbResult<(i64, i64, i64)> {
        let r = sqlx::query(&format!(
            "SELECT {ADOPTION_COLUMNS} FROM live_suggestions \
             WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 \
             AND ($4 = '' OR rep_user_id = $4) AND ($5 = '' OR team_id = $5)"
        ))
        .bind(org_id)
        .bind(from)
        .bind(to)
        .bind(rep.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .fetch_one(self.pool())
        .await?;
        adoption_row(&r)
    }

    pub async fn end_live_session(&self, id: &str, reason: &str, now: i64) -> DbResult<()> {
        sqlx::query(
            "UPDATE live_sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The call id a live session reserved for this rep's client call id, if any.
    pub async fn live_call_id(
        &self,
        org_id: &str,
        rep_user_id: &str,
        client_call_id: &str,
    ) -> DbResult<Option<String>> {
        Ok(sqlx::query(
            "SELECT call_id FROM live_sessions WHERE org_id = $1 AND rep_user_id = $2 AND client_call_id = $3 \
             ORDER BY started_at LIMIT 1",
        )
        .bind(org_id)
        .bind(rep_user_id)
        .bind(client_call_id)
        .fetch_optional(self.pool())
        .await?
        .map(|r| r.try_get("call_id"))
        .transpose()?)
    }

    /// Create an upload, or return the caller's existing one with this key.
    pub async fn create_upload(&self, u: &UploadRow, now: i64) -> DbResult<(UploadRow, bool)> {
        let done = sqlx::query(
            "INSERT INTO uploads (id, org_id, user_id, device_id, upload_key, size, sha256, filename, metadata, received, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 'receiving', $10, $10) ON CONFLICT (org_id, user_id, upload_key) DO NOTHING",
        )
        .bind(&u.id)
        .bind(&u.org_id)
        .bind(&u.user_id)
        .bind(&u.device_id)
        .bind(&u.upload_key)
        .bind(u.size)
        .bind(&u.sha256)
        .bind(&u.filename)
        .bind(&u.metadata)
        .bind(now)
        .execute(self.pool())
        .await?;
        let r = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE org_id = $1 AND user_id = $2 AND upload_key = $3"
        ))
        .bind(&u.org_id)
        .bind(&u.user_id)
        .bind(&u.upload_key)
        .fetch_one(self.pool())
        .await?;
        Ok((upload_row(&r)?, done.rows_affected() == 1))
    }

    pub async fn get_upload(&self, org_id: &str, id: &str) -> DbResult<UploadRow> {
        let r = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DbError::NotFound(format!("no upload `{id}`")))?;
        upload_row(&r)
    }

    /// Move the durable offset from `from` to `to` (409 if another writer moved it).
    pub async fn advance_upload(&self, id: &str, from: i64, to: i64, now: i64) -> DbResult<()> {
        let done = sqlx::query(
            "UPDATE uploads SET received = $1, updated_at = $2 WHERE id = $3 AND received = $4 AND state = 'receiving'",
        )
        .bind(to)
        .bind(now)
        .bind(id)
        .bind(from)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(DbError::Conflict(
                "another request moved this upload; GET it for the current offset".into(),
            ))
        }
    }

    pub async fn finish_upload(
        &self,
        id: &str,
        call_id: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE uploads SET state = $1, call_id = $2, error = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(if error.is_some() { "failed" } else { "complete" })
        .bind(call_id)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Mark a suggestion with the first feedback it gets.
async fn set_feedback(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org_id: &str,
    user_id: &str,
    suggestion_id: &str,
    action: &str,
    feedback_id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE live_suggestions SET feedback = $1, feedback_id = $2, feedback_at = $3 \
         WHERE id = $4 AND org_id = $5 AND rep_user_id = $6 AND feedback IS NULL",
    )
    .bind(action)
    .bind(feedback_id)
    .bind(now)
    .bind(suggestion_id)
    .bind(org_id)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
