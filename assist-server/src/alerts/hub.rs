//! The in-process side of the alert log: who is waiting for new rows, and
//! who may write next.

use std::sync::Arc;

/// Wakes SSE streams when the alert log grows, and serialises log writers
/// within this process (across processes, see [`crate::db::alerts::lock_alert_log`]).
#[derive(Debug, Clone)]
pub struct AlertHub {
    head: Arc<tokio::sync::watch::Sender<i64>>,
    write: Arc<tokio::sync::Mutex<()>>,
}

impl Default for AlertHub {
    fn default() -> Self {
        AlertHub {
            head: Arc::new(tokio::sync::watch::channel(0).0),
            write: Arc::default(),
        }
    }
}

impl AlertHub {
    /// Hold while writing to the alert log, until the transaction commits.
    pub async fn writer(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write.lock().await
    }

    /// A receiver that changes whenever new log rows are committed here.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.head.subscribe()
    }

    /// Say that log rows up to `seq` are committed.
    pub fn published(&self, seq: i64) {
        self.head.send_if_modified(|head| {
            if seq > *head {
                *head = seq;
                true
            } else {
                false
            }
        });
    }
}
