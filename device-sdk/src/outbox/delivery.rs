//! The flush's side of the outbox: which items are due, and what became of
//! each after the server answered (confirmed, retry later, dead), plus the
//! server-wide hold and the drop/privacy reports turned into device events.

use rusqlite::{TransactionBehavior, params};

use super::{ItemKind, Outbox, Row, store};
use crate::Result;
use crate::util::now_ms;

impl Outbox {
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
}
