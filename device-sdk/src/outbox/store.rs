//! SQL of the outbox: schema, rows, limits and counters.

use std::collections::HashSet;
use std::path::Path;

use assist_protocol::device::{DeviceEvent, DeviceEventKind};
use rusqlite::{Connection, ToSql, Transaction, params};

use super::{DeadItem, ItemKind, KindStatus, OutboxConfig, OutboxStatus, UploadProgress};
use crate::Result;
use crate::util::{new_id, now_ms, now_rfc3339};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    idem_key TEXT NOT NULL UNIQUE,
    conversation_id TEXT,
    payload TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    file TEXT,
    report TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    upload_id TEXT,
    upload_offset INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_due ON items (state, kind, next_attempt_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS privacy (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    label TEXT,
    PRIMARY KEY (kind, value)
);
";

pub(super) fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

pub(super) struct NewRow {
    pub kind: ItemKind,
    pub key: String,
    pub conversation_id: Option<String>,
    pub payload: String,
    pub file: Option<String>,
    pub file_bytes: u64,
    /// The report counter this event drains (exempt from the drop policy).
    pub report: Option<String>,
}

/// A stored item.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub id: i64,
    pub kind: ItemKind,
    pub key: String,
    pub conversation_id: Option<String>,
    pub payload: String,
    pub file: Option<String>,
    pub attempts: u32,
    pub upload_id: Option<String>,
    pub upload_offset: u64,
}

pub(super) fn select_rows(
    conn: &Connection,
    filter: &str,
    args: &[&dyn ToSql],
) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT id, kind, idem_key, conversation_id, payload, file, attempts, upload_id, upload_offset FROM items WHERE {filter}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(args, |r| {
        let kind: String = r.get(1)?;
        Ok(Row {
            id: r.get(0)?,
            kind: ItemKind::parse(&kind).unwrap_or(ItemKind::Event),
            key: r.get(2)?,
            conversation_id: r.get(3)?,
            payload: r.get(4)?,
            file: r.get(5)?,
            attempts: r.get::<_, i64>(6)? as u32,
            upload_id: r.get(7)?,
            upload_offset: r.get::<_, i64>(8)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn insert_row(tx: &Transaction<'_>, row: &NewRow, bytes: u64, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO items (kind, idem_key, conversation_id, payload, bytes, file, report, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            row.kind.as_str(),
            row.key,
            row.conversation_id,
            row.payload,
            bytes as i64,
            row.file,
            row.report,
            now
        ],
    )?;
    Ok(())
}

pub(super) fn delete_row(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.execute("DELETE FROM items WHERE id = ?1", [id])?;
    Ok(())
}

pub(super) fn usage(conn: &Connection) -> Result<(u64, u64)> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM items",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// Make room for `needed` bytes and one item under the policy. Drops happen
/// only when they free enough; returns whether the item fits now.
pub(super) fn make_room(
    tx: &Transaction<'_>,
    config: &OutboxConfig,
    kind: ItemKind,
    needed: u64,
) -> Result<bool> {
    let (items, used) = usage(tx)?;
    let fits =
        |items: u64, used: u64| items < config.max_items && used + needed <= config.max_bytes;
    if fits(items, used) {
        return Ok(true);
    }
    if needed > config.max_bytes {
        return Ok(false);
    }
    // Candidates, in the order they would go: for a new chat or event the
    // oldest events; for a new recording (if allowed) the oldest recordings.
    // Report events are never dropped: they are how drops become known.
    let mut candidates: Vec<(i64, ItemKind, u64, Option<String>)> = Vec::new();
    let mut pick = |k: ItemKind| -> Result<()> {
        let mut stmt = tx.prepare(
            "SELECT id, bytes, file FROM items WHERE kind = ?1 AND report IS NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([k.as_str()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                k,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for r in rows {
            candidates.push(r?);
        }
        Ok(())
    };
    if config.policy.drop_oldest_events && kind != ItemKind::Recording {
        pick(ItemKind::Event)?;
    }
    if config.policy.drop_oldest_recordings && kind == ItemKind::Recording {
        pick(ItemKind::Recording)?;
    }
    let (mut items_left, mut used_left) = (items, used);
    let mut chosen = 0;
    while !fits(items_left, used_left) && chosen < candidates.len() {
        items_left -= 1;
        used_left -= candidates[chosen].2;
        chosen += 1;
    }
    if !fits(items_left, used_left) {
        return Ok(false);
    }
    for (id, k, _, file) in &candidates[..chosen] {
        tx.execute("DELETE FROM items WHERE id = ?1", [id])?;
        let policy = match k {
            ItemKind::Recording => "drop_oldest_recordings",
            _ => "drop_oldest_events",
        };
        count_drop(tx, *k, policy, 1)?;
        if let Some(f) = file {
            // Deleting before commit is safe: a rollback keeps a row whose
            // file is gone only if the commit fails, and then the upload
            // fails loudly (dead, with the error) instead of silently.
            tx.execute(
                "INSERT INTO kv (key, value) VALUES ('unlink.' || ?1, ?1) ON CONFLICT DO NOTHING",
                [f],
            )?;
        }
    }
    tracing::warn!(dropped = chosen, kind = %kind, "outbox full: dropped the oldest items");
    Ok(true)
}

pub(super) fn count_drop(tx: &Transaction<'_>, kind: ItemKind, policy: &str, n: u64) -> Result<()> {
    add_counter(tx, &format!("dropped.{kind}"), n)?;
    add_counter(tx, &format!("report.dropped.{kind}.{policy}"), n)
}

pub(super) fn count_refused(tx: &Transaction<'_>, kind: ItemKind) -> Result<()> {
    add_counter(tx, &format!("refused.{kind}"), 1)?;
    add_counter(tx, &format!("report.dropped.{kind}.refuse_new"), 1)
}

pub(super) fn add_counter(conn: &Connection, name: &str, n: u64) -> Result<()> {
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        params![name, n as i64],
    )?;
    Ok(())
}

pub(super) fn counter(conn: &Connection, name: &str) -> Result<u64> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0) as u64)
}

/// Names of the recording files the items hold.
pub(super) fn files(conn: &Connection) -> Result<HashSet<String>> {
    let mut stmt = conn.prepare("SELECT file FROM items WHERE file IS NOT NULL")?;
    let files = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(files)
}

pub(super) fn status(conn: &Connection) -> Result<OutboxStatus> {
    let mut st = OutboxStatus::default();
    {
        let mut stmt = conn.prepare(
            "SELECT kind, state, COUNT(*), COALESCE(SUM(bytes), 0) FROM items GROUP BY kind, state",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
            ))
        })?;
        for kind in ItemKind::ALL {
            st.per_kind.insert(kind, KindStatus::default());
        }
        for row in rows {
            let (kind, state, n, bytes) = row?;
            let Some(kind) = ItemKind::parse(&kind) else {
                continue;
            };
            let k = st.per_kind.entry(kind).or_default();
            if state == "dead" {
                k.dead += n;
            } else {
                k.pending += n;
            }
            k.bytes += bytes;
            st.items += n;
            st.bytes += bytes;
        }
    }
    {
        let mut stmt = conn.prepare(
            "SELECT kind, idem_key, attempts, COALESCE(last_error, '') FROM items WHERE state = 'dead' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DeadItem {
                kind: ItemKind::parse(&r.get::<_, String>(0)?).unwrap_or(ItemKind::Event),
                key: r.get(1)?,
                attempts: r.get::<_, i64>(2)? as u32,
                error: r.get(3)?,
            })
        })?;
        st.dead = rows.collect::<Result<_, _>>()?;
    }
    {
        let mut stmt = conn.prepare(
            "SELECT idem_key, upload_offset, payload FROM items WHERE kind = 'recording' AND upload_offset > 0 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (key, offset, payload) = row?;
            let size = serde_json::from_str::<assist_protocol::device::CreateUpload>(&payload)
                .map(|u| u.size)
                .unwrap_or(0);
            st.uploads.push(UploadProgress {
                upload_key: key,
                offset,
                size,
            });
        }
    }
    st.next_attempt_at = conn.query_row(
        "SELECT MIN(next_attempt_at) FROM items WHERE state = 'pending'",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )?;
    for kind in ItemKind::ALL {
        st.dropped
            .add(kind, counter(conn, &format!("dropped.{kind}"))?);
        st.refused
            .add(kind, counter(conn, &format!("refused.{kind}"))?);
    }
    use rusqlite::OptionalExtension;
    st.held_until = conn
        .query_row("SELECT value FROM kv WHERE key = 'hold_until'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|&t| t > now_ms());
    Ok(st)
}

/// Unreported counters → device events. A counter with an unsent report
/// waits for it (the count is frozen in the event once queued, so a resend
/// never changes what the server stores under that event id).
pub(super) fn materialize_reports(conn: &mut Connection) -> Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let counters: Vec<(String, i64)> = {
        let mut stmt = tx
            .prepare("SELECT name, value FROM counters WHERE name LIKE 'report.%' AND value > 0")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut made = 0;
    for (name, value) in counters {
        let waiting: i64 = tx.query_row(
            "SELECT COUNT(*) FROM items WHERE report = ?1",
            [&name],
            |r| r.get(0),
        )?;
        if waiting > 0 {
            continue;
        }
        let parts: Vec<&str> = name.split('.').collect();
        let kind = match parts.as_slice() {
            ["report", "dropped", item, policy] => DeviceEventKind::OutboxDropped {
                item: (*item).to_string(),
                count: value as u64,
                policy: (*policy).to_string(),
            },
            ["report", "privacy", item] => DeviceEventKind::PrivacyExcluded {
                item: (*item).to_string(),
                count: value as u64,
            },
            _ => continue,
        };
        let event = DeviceEvent {
            event_id: new_id("evt"),
            occurred_at: now_rfc3339(),
            kind,
        };
        let payload = serde_json::to_string(&event).unwrap_or_default();
        let row = NewRow {
            kind: ItemKind::Event,
            key: event.event_id.clone(),
            conversation_id: None,
            payload,
            file: None,
            file_bytes: 0,
            report: Some(name.clone()),
        };
        let bytes = row.payload.len() as u64;
        insert_row(&tx, &row, bytes, now_ms())?;
        tx.execute(
            "UPDATE counters SET value = value - ?2 WHERE name = ?1",
            params![name, value],
        )?;
        made += 1;
    }
    tx.commit()?;
    Ok(made)
}

/// Files of dropped recordings whose deletion was deferred to after commit.
pub(super) fn take_unlinks(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT value FROM kv WHERE key LIKE 'unlink.%'")?;
    let files: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    conn.execute("DELETE FROM kv WHERE key LIKE 'unlink.%'", [])?;
    Ok(files)
}
