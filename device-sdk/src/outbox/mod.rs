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
//!
//! The files of this module, one [`Outbox`] split by who calls it:
//!
//! - `mod.rs`: opening, the status report and the app's maintenance
//!   (retry or purge dead items, "send now"), the key-value store and
//!   counters that the guard and the privacy list keep here;
//! - `types.rs`: the value types ([`ItemKind`], [`OutboxConfig`],
//!   [`NewChat`], [`Enqueued`], [`OutboxStatus`] …), re-exported here;
//! - `enqueue.rs`: the app's side, `enqueue_*`: checks, idempotency ids,
//!   the durable copy of a recording, making room when full;
//! - `delivery.rs`: the flush's side: due items, and confirm, reschedule or
//!   mark dead after the server's answer;
//! - `store.rs`: the SQL (schema, rows, limits and counters).
//!
//! [`DeviceEventKind::OutboxDropped`]: assist_protocol::device::DeviceEventKind::OutboxDropped

mod delivery;
mod enqueue;
mod store;
mod types;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::util::now_ms;
use crate::{Error, Result};

pub(crate) use store::Row;
pub(crate) use types::StoredChat;
pub use types::{
    Counts, DeadItem, Enqueued, FullPolicy, ItemKind, KindStatus, NewChat, NewRecording,
    OutboxConfig, OutboxStatus, UploadProgress,
};

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

#[cfg(test)]
mod tests;
