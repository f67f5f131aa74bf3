//! A manager or compliance officer acknowledges or resolves an alert: the
//! status change and its log entry (with webhooks) in one transaction,
//! under the same writer lock as raising.

use super::ingest::AlertIngest;
use super::raise::log_change;
use super::{ALERT_ACKNOWLEDGED, ALERT_RESOLVED};
use crate::db::alerts::{AlertRow, get_alert_tx, lock_alert_log, set_alert_status};
use crate::error::ApiError;
use crate::time::now_ms;

/// Where an alert can go from `open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    fn log_kind(self) -> &'static str {
        match self {
            AlertStatus::Acknowledged => ALERT_ACKNOWLEDGED,
            AlertStatus::Resolved => ALERT_RESOLVED,
        }
    }
}

impl AlertIngest<'_> {
    /// Move alert `id` to `to` (open → acknowledged or resolved,
    /// acknowledged → resolved; anything else is a conflict), then publish.
    pub async fn set_status(
        &self,
        id: &str,
        to: AlertStatus,
        by_user_id: &str,
        note: Option<&str>,
    ) -> Result<AlertRow, ApiError> {
        let writer = self.hub.writer().await;
        let mut tx = self.db.pool().begin().await.map_err(ApiError::internal)?;
        // Write lock first (see `lock_alert_log`), then read.
        lock_alert_log(&mut tx, self.db.backend()).await?;
        let current = get_alert_tx(&mut tx, id).await?;
        let allowed = matches!(
            (current.status.as_str(), to),
            ("open", _) | ("acknowledged", AlertStatus::Resolved)
        );
        if !allowed {
            return Err(ApiError::Conflict(format!(
                "the alert is {}; it cannot become {}",
                current.status,
                to.as_str()
            )));
        }
        set_alert_status(&mut tx, id, to.as_str(), by_user_id, note, now_ms()).await?;
        let updated = get_alert_tx(&mut tx, id).await?;
        let raised = log_change(&mut tx, self.db, &updated, to.log_kind()).await?;
        tx.commit().await.map_err(ApiError::internal)?;
        drop(writer);
        self.publish(&raised).await;
        Ok(updated)
    }
}
