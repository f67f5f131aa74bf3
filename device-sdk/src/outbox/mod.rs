//! The durable outbox: everything the phone must deliver, in one SQLite file.
//!
//! - **Durable.** WAL journal with `synchronous=FULL`: when an `enqueue_*`
//!   returns `Ok`, the item survives a crash or `kill -9` at any later point.
//!   A recording is first copied into the outbox's own directory and fsync'd
//!   (file and directory), so the app may delete its copy at once.
//! - **Idempotent.** Each item gets its id at enqueue time (`client_message_id`,
//!   `event_id`, `upload_key`) and keeps it on every retry; the server stores
//!   an id once, so at-least-once delivery has exactly-once effect.
//! - **Deleted only when confirmed.** A 2xx answer (or "duplicate") deletes an
//!   item. A non-retryable answer moves it to `dead`, with the error, where
//!   [`Outbox::status`] shows it until the app retries or purges it.
//! - **Bounded.** [`OutboxConfig::max_bytes`] and [`OutboxConfig::max_items`];
//!   when full, [`FullPolicy`] decides (default: a new recording is refused
//!   with [`Error::OutboxFull`]; a new chat message or event pushes out the
//!   oldest device events, and is refused only when that is not enough).
//!   Every drop and refusal is counted persistently ([`OutboxStatus::dropped`],
//!   [`OutboxStatus::refused`]) and reported to the server as a
//!   [`DeviceEventKind::OutboxDropped`] event.
//! - **Scheduled.** Each item's `next_attempt_at` is stored, so a restart
//!   keeps the retry schedule; so is the server-wide hold a `Retry-After` sets.

mod store;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use assist_protocol::device::{
    ChatChannel, ChatMessage, ChatSender, CreateUpload, DeviceEvent, DeviceEventKind,
    UploadMetadata,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::util::{check_client_id, new_id, now_ms, now_rfc3339};
use crate::{Error, Result};

pub(crate) use store::Row;

/// What an outbox item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Chat,
    Event,
    Recording,
}

impl ItemKind {
    pub const ALL: [ItemKind; 3] = [ItemKind::Chat, ItemKind::Event, ItemKind::Recording];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Chat => "chat",
            ItemKind::Event => "event",
            ItemKind::Recording => "recording",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        ItemKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do when a new item does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullPolicy {
    /// Drop the oldest device events (suggestion taps, guard reports) to make
    /// room for a new chat message or event. Default: yes. (A recording never
    /// pushes out events: it is refused, so the app can tell the rep.)
    pub drop_oldest_events: bool,
    /// Let a new recording push out the oldest recordings. Default: no — a
    /// new recording is refused with [`Error::OutboxFull`].
    pub drop_oldest_recordings: bool,
}

impl Default for FullPolicy {
    fn default() -> Self {
        FullPolicy {
            drop_oldest_events: true,
            drop_oldest_recordings: false,
        }
    }
}

/// Limits of the outbox.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Stored bytes (recordings plus JSON payloads). Default 2 GiB.
    pub max_bytes: u64,
    /// Stored items. Default 100 000.
    pub max_items: u64,
    pub policy: FullPolicy,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: 2 << 30,
            max_items: 100_000,
            policy: FullPolicy::default(),
        }
    }
}

/// A chat message to deliver (`POST /v1/conversations/{id}/messages`).
#[derive(Debug, Clone)]
pub struct NewChat {
    pub conversation_id: String,
    /// Needed when the conversation is new on the server.
    pub channel: Option<ChatChannel>,
    pub customer_ref: Option<String>,
    pub sender: ChatSender,
    pub text: String,
    /// RFC 3339; default now.
    pub sent_at: Option<String>,
    /// Default: a fresh id.
    pub client_message_id: Option<String>,
}

/// A recording to upload.
#[derive(Debug, Clone, Default)]
pub struct NewRecording {
    /// The upload's (and call's) idempotency key; use the live session's
    /// `client_call_id` to link the two. Default: a fresh id.
    pub upload_key: Option<String>,
    pub metadata: UploadMetadata,
}

/// The id an item was queued under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub kind: ItemKind,
    /// `client_message_id`, `event_id` or `upload_key`.
    pub key: String,
    /// The key was queued before (and is still queued): nothing new was stored.
    pub already_queued: bool,
}

/// Stored JSON of a chat item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredChat {
    pub channel: Option<ChatChannel>,
    pub customer_ref: Option<String>,
    pub message: ChatMessage,
}

/// Counts per item kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub chat: u64,
    pub event: u64,
    pub recording: u64,
}

impl Counts {
    fn add(&mut self, kind: ItemKind, n: u64) {
        match kind {
            ItemKind::Chat => self.chat += n,
            ItemKind::Event => self.event += n,
            ItemKind::Recording => self.recording += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.chat + self.event + self.recording
    }
}

/// One kind's line of [`OutboxStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindStatus {
    pub pending: u64,
    pub dead: u64,
    pub bytes: u64,
}

/// An item the server refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadItem {
    pub kind: ItemKind,
    pub key: String,
    pub attempts: u32,
    pub error: String,
}

/// A recording part-way through its upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadProgress {
    pub upload_key: String,
    pub offset: u64,
    pub size: u64,
}

/// What is in the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStatus {
    pub per_kind: BTreeMap<ItemKind, KindStatus>,
    pub items: u64,
    pub bytes: u64,
    pub max_items: u64,
    pub max_bytes: u64,
    /// Items dropped to make room (since the outbox was created).
    pub dropped: Counts,
    /// New items refused because the outbox was full.
    pub refused: Counts,
    pub dead: Vec<DeadItem>,
    pub uploads: Vec<UploadProgress>,
    /// When the next pending item is due (Unix ms).
    pub next_attempt_at: Option<i64>,
    /// The server asked for a pause (Retry-After, unreachable) until then (Unix ms).
    pub held_until: Option<i64>,
}

impl OutboxStatus {
    pub fn pending(&self) -> u64 {
        self.per_kind.values().map(|k| k.pending).sum()
    }
}

/// The durable outbox (cheap to clone; all clones share one database).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    dir: PathBuf,
    config: OutboxConfig,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.inner.dir)
            .field("config", &self.inner.config)
            .finish()
    }
}

const RECORDINGS: &str = "recordings";

impl Outbox {
    /// Open (or create) the outbox in `dir`: `dir/outbox.db` and
    /// `dir/recordings/`. Leftovers of a crash during a recording's copy are
    /// removed.
    pub fn open(dir: impl AsRef<Path>, config: OutboxConfig) -> Result<Outbox> {
        let dir = dir.as_ref().to_path_buf();
        let rec = dir.join(RECORDINGS);
        std::fs::create_dir_all(&rec).map_err(|e| Error::io(&rec, e))?;
        let conn = store::open(&dir.join("outbox.db"))?;
        let outbox = Outbox {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                dir,
                config,
            }),
        };
        outbox.remove_orphans()?;
        Ok(outbox)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn config(&self) -> &OutboxConfig {
        &self.inner.config
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.inner.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a chat message.
    pub fn enqueue_chat(&self, chat: NewChat) -> Result<Enqueued> {
        check_conversation_id(&chat.conversation_id)?;
        if chat.text.trim().is_empty() {
            return Err(Error::Invalid("the message text is empty".into()));
        }
        if chat.text.chars().count() > 8000 {
            return Err(Error::Invalid(
                "the message is longer than 8000 characters".into(),
            ));
        }
        let key = match chat.client_message_id {
            Some(k) => {
                check_client_id("client_message_id", &k)?;
                k
            }
            None => new_id("msg"),
        };
        let sent_at = match chat.sent_at {
            Some(t) => {
                t.parse::<jiff::Timestamp>().map_err(|_| {
                    Error::Invalid(format!(
                        "sent_at `{t}` is not an RFC 3339 time such as 2026-11-24T09:30:00+08:00"
                    ))
                })?;
                t
            }
            None => now_rfc3339(),
        };
        let stored = StoredChat {
            channel: chat.channel,
            customer_ref: chat.customer_ref,
            message: ChatMessage {
                client_message_id: key.clone(),
                sender: chat.sender,
                text: chat.text,
                sent_at,
            },
        };
        let payload = serde_json::to_string(&stored).map_err(|e| Error::Invalid(e.to_string()))?;
        self.insert(store::NewRow {
            kind: ItemKind::Chat,
            key,
            conversation_id: Some(chat.conversation_id),
            payload,
            file: None,
            file_bytes: 0,
            report: None,
        })
    }

    /// Queue a device event with a fresh `event_id`.
    pub fn enqueue_event(&self, kind: DeviceEventKind) -> Result<Enqueued> {
        self.enqueue_event_with_id(new_id("evt"), kind)
    }

    /// Queue a device event under the caller's id (e.g. a feedback tap's
    /// `feedback_id`, so a tap sent both live and later is stored once).
    pub fn enqueue_event_with_id(
        &self,
        event_id: String,
        kind: DeviceEventKind,
    ) -> Result<Enqueued> {
        check_client_id("event_id", &event_id)?;
        let event = DeviceEvent {
            event_id: event_id.clone(),
            occurred_at: now_rfc3339(),
            kind,
        };
        let payload = serde_json::to_string(&event).map_err(|e| Error::Invalid(e.to_string()))?;
        self.insert(store::NewRow {
            kind: ItemKind::Event,
            key: event_id,
            conversation_id: None,
            payload,
            file: None,
            file_bytes: 0,
            report: None,
        })
    }

    /// Queue a recording: the file is copied into the outbox (fsync'd) and
    /// its SHA-256 computed, so the app may delete `path` once this returns.
    /// Blocking (file copy); call it from `spawn_blocking` in async code.
    pub fn enqueue_recording(&self, path: &Path, rec: NewRecording) -> Result<Enqueued> {
        let key = match rec.upload_key {
            Some(k) => {
                check_client_id("upload_key", &k)?;
                k
            }
            None => new_id("rec"),
        };
        if let Some(existing) = self.find_key(ItemKind::Recording, &key)? {
            return Ok(existing);
        }
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        if meta.len() == 0 {
            return Err(Error::Invalid(format!(
                "{} is empty: there is nothing to upload",
                path.display()
            )));
        }
        let limits = &self.inner.config;
        if meta.len() > limits.max_bytes {
            self.count_refused(ItemKind::Recording)?;
            return Err(self.full_error(ItemKind::Recording, meta.len())?);
        }
        let filename = path
            .file_name()
            .map(|f| f.to_string_lossy().chars().take(255).collect::<String>());
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(|e| format!(".{e}"))
            .unwrap_or_default();
        let file = format!("{key}{ext}");
        let dest = self.inner.dir.join(RECORDINGS).join(&file);
        let (size, sha256) = copy_durably(path, &dest)?;
        let upload = CreateUpload {
            upload_key: key.clone(),
            size,
            sha256,
            filename,
            metadata: rec.metadata,
        };
        let payload = serde_json::to_string(&upload).map_err(|e| Error::Invalid(e.to_string()))?;
        let result = self.insert(store::NewRow {
            kind: ItemKind::Recording,
            key,
            conversation_id: None,
            payload,
            file: Some(file),
            file_bytes: size,
            report: None,
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&dest);
        }
        result
    }

    /// What is queued, dropped, refused and dead.
    pub fn status(&self) -> Result<OutboxStatus> {
        let mut st = store::status(&self.conn())?;
        st.max_bytes = self.inner.config.max_bytes;
        st.max_items = self.inner.config.max_items;
        Ok(st)
    }

    /// Move every dead item back to pending, due now. Returns how many.
    pub fn retry_dead(&self) -> Result<u64> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE items SET state = 'pending', attempts = 0, next_attempt_at = ?1, last_error = NULL WHERE state = 'dead'",
            params![now_ms()],
        )?;
        Ok(n as u64)
    }

    /// Make every pending item due now and lift the server-wide pause (a
    /// "send now" button). Dead items stay dead. Returns how many are pending.
    pub fn make_due_now(&self) -> Result<u64> {
        let conn = self.conn();
        conn.execute("DELETE FROM kv WHERE key = 'hold_until'", [])?;
        let n = conn.execute(
            "UPDATE items SET next_attempt_at = ?1 WHERE state = 'pending' AND next_attempt_at > ?1",
            params![now_ms()],
        )?;
        let _ = n;
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM items WHERE state = 'pending'",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Delete every dead item (counted as dropped, policy `purged_dead`, and
    /// reported to the server). Returns how many.
    pub fn purge_dead(&self) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows = store::select_rows(&tx, "state = 'dead'", &[])?;
        for r in &rows {
            store::delete_row(&tx, r.id)?;
            store::count_drop(&tx, r.kind, "purged_dead", 1)?;
        }
        tx.commit()?;
        drop(conn);
        for r in &rows {
            self.remove_file_of(r);
        }
        Ok(rows.len() as u64)
    }

    /// The server-wide pause, if one is set and not over.
    pub(crate) fn held_until(&self) -> Result<Option<i64>> {
        let v = self
            .kv_get("hold_until")?
            .and_then(|v| v.parse::<i64>().ok());
        Ok(v.filter(|&t| t > now_ms()))
    }

    pub(crate) fn set_hold(&self, until_ms: i64) -> Result<()> {
        self.kv_set("hold_until", &until_ms.to_string())
    }

    pub(crate) fn kv_get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn kv_set(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Add `n` to a persistent report counter (`privacy.call` …) that the
    /// next flush turns into a device event.
    pub(crate) fn add_report(&self, name: &str, n: u64) -> Result<()> {
        store::add_counter(&self.conn(), &format!("report.{name}"), n)
    }

    pub(crate) fn counter(&self, name: &str) -> Result<u64> {
        store::counter(&self.conn(), name)
    }

    pub(crate) fn add_counter(&self, name: &str, n: u64) -> Result<()> {
        store::add_counter(&self.conn(), name, n)
    }

    /// Turn unreported drop/refusal/privacy counts into device events (at most
    /// one unsent report per counter; later counts wait for it).
    pub(crate) fn materialize_reports(&self) -> Result<usize> {
        store::materialize_reports(&mut self.conn())
    }

    /// Items of `kind` due at `now`, oldest first.
    pub(crate) fn due(&self, kind: ItemKind, now: i64, limit: usize) -> Result<Vec<Row>> {
        store::select_rows(
            &self.conn(),
            &format!(
                "state = 'pending' AND kind = ?1 AND next_attempt_at <= ?2 ORDER BY {} LIMIT {limit}",
                if kind == ItemKind::Chat {
                    "conversation_id, id"
                } else {
                    "id"
                }
            ),
            &[&kind.as_str(), &now],
        )
    }

    /// The server confirmed these items: delete them (and their files).
    pub(crate) fn confirm(&self, rows: &[&Row]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for r in rows {
            store::delete_row(&tx, r.id)?;
        }
        tx.commit()?;
        drop(conn);
        for r in rows {
            self.remove_file_of(r);
        }
        Ok(())
    }

    /// A retryable failure: try again at `next_at`.
    pub(crate) fn reschedule(&self, rows: &[&Row], next_at: i64, error: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for r in rows {
            tx.execute(
                "UPDATE items SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
                params![r.id, next_at, error],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A final refusal: keep the item, with the error, as dead.
    pub(crate) fn mark_dead(&self, rows: &[&Row], error: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for r in rows {
            tx.execute(
                "UPDATE items SET state = 'dead', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![r.id, error],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Remember an upload's id and the offset the server confirmed.
    pub(crate) fn set_upload(&self, id: i64, upload_id: Option<&str>, offset: u64) -> Result<()> {
        self.conn().execute(
            "UPDATE items SET upload_id = ?2, upload_offset = ?3 WHERE id = ?1",
            params![id, upload_id, offset as i64],
        )?;
        Ok(())
    }

    pub(crate) fn file_path(&self, row: &Row) -> Option<PathBuf> {
        row.file
            .as_ref()
            .map(|f| self.inner.dir.join(RECORDINGS).join(f))
    }

    fn remove_file_of(&self, row: &Row) {
        if let Some(p) = self.file_path(row)
            && let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove a delivered recording");
        }
    }

    fn find_key(&self, kind: ItemKind, key: &str) -> Result<Option<Enqueued>> {
        let found: Option<String> = self
            .conn()
            .query_row("SELECT kind FROM items WHERE idem_key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?;
        match found.as_deref().and_then(ItemKind::parse) {
            Some(k) if k == kind => Ok(Some(Enqueued {
                kind,
                key: key.to_string(),
                already_queued: true,
            })),
            Some(other) => Err(Error::Invalid(format!(
                "the id `{key}` is already queued for a {other}"
            ))),
            None => Ok(None),
        }
    }

    fn insert(&self, row: store::NewRow) -> Result<Enqueued> {
        let kind = row.kind;
        let key = row.key.clone();
        let needed = row.payload.len() as u64 + row.file_bytes;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<String> = tx
            .query_row("SELECT kind FROM items WHERE idem_key = ?1", [&key], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(k) = existing {
            return if k == kind.as_str() {
                Ok(Enqueued {
                    kind,
                    key,
                    already_queued: true,
                })
            } else {
                Err(Error::Invalid(format!(
                    "the id `{key}` is already queued for a {k}"
                )))
            };
        }
        if !store::make_room(&tx, &self.inner.config, kind, needed)? {
            store::count_refused(&tx, kind)?;
            tx.commit()?;
            drop(conn);
            return Err(self.full_error(kind, needed)?);
        }
        store::insert_row(&tx, &row, needed, now_ms())?;
        tx.commit()?;
        // Recordings dropped to make room: their files go after the commit.
        for f in store::take_unlinks(&conn)? {
            let _ = std::fs::remove_file(self.inner.dir.join(RECORDINGS).join(f));
        }
        Ok(Enqueued {
            kind,
            key,
            already_queued: false,
        })
    }

    fn count_refused(&self, kind: ItemKind) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::count_refused(&tx, kind)?;
        tx.commit()?;
        Ok(())
    }

    fn full_error(&self, kind: ItemKind, needed: u64) -> Result<Error> {
        let (items, used) = store::usage(&self.conn())?;
        Ok(Error::OutboxFull {
            item: kind.as_str(),
            needed,
            used,
            max_bytes: self.inner.config.max_bytes,
            items,
            max_items: self.inner.config.max_items,
        })
    }

    /// Files in `recordings/` that no item names: a crash between the copy and
    /// the insert. The app's `enqueue_recording` did not return Ok for them.
    fn remove_orphans(&self) -> Result<()> {
        let dir = self.inner.dir.join(RECORDINGS);
        let known = store::files(&self.conn())?;
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !known.contains(&name) {
                tracing::info!(file = %name, "removing an unqueued recording copy");
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Conversation ids as the chat route accepts them.
fn check_conversation_id(id: &str) -> Result<()> {
    if assist_protocol::is_valid_conversation_id(id) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the conversation id `{}` must be {}",
            id.chars().take(64).collect::<String>(),
            assist_protocol::CONVERSATION_ID_RULE
        )))
    }
}

/// Copy `src` to `dest` through a temporary name, fsync the file and the
/// directory, and return the size and the lower-case hex SHA-256.
fn copy_durably(src: &Path, dest: &Path) -> Result<(u64, String)> {
    let tmp = dest.with_extension("part");
    let mut input = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
    let mut out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| Error::io(src, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(&tmp, e))?;
        size += n as u64;
    }
    out.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(out);
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
    if let Some(dir) = dest.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests;
