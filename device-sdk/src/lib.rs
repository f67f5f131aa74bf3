//! Phone-side client of the assist service.
//!
//! - [`Outbox`]: the durable SQLite queue of chats, device events and
//!   recordings, each with its idempotency id from enqueue on.
//! - [`Client`]: the server connection; [`Client::flush`] delivers the outbox
//!   (resumable uploads for recordings), [`Client::update_guard`] fetches the
//!   signed rules, [`Client::spawn_background`] keeps flushing.
//! - [`Guard`]: the organisation's block rules, checked locally in microseconds.
//! - [`Privacy`]: personal contacts that never leave the phone (counted only).
//! - [`LiveSession`]: the `/v1/live` WebSocket client with resume.
//!
//! Every retry follows [`Backoff`]: retry only on codes the protocol marks
//! retryable, exponential backoff with full jitter, and `Retry-After` from the
//! server wins when it is longer. See README.md for the `assist-device` CLI.
//!
//! ```
//! use assist_device_sdk::Backoff;
//! use std::time::Duration;
//! let b = Backoff::default();
//! let d = b.delay(3, None);
//! assert!(d <= Duration::from_millis(500 * 8));
//! assert_eq!(b.delay(0, Some(Duration::from_secs(9))), Duration::from_secs(9));
//! ```

use std::time::Duration;

pub use assist_protocol as protocol;

mod client;
mod error;
mod flush;
pub mod guard;
pub mod live;
pub mod outbox;
pub mod privacy;
mod upload;
mod util;

pub use client::{Client, ClientConfig};
pub use error::{Error, Result};
pub use flush::{Background, FlushProgress, FlushReport};
pub use guard::{Guard, GuardDecision, GuardHit, GuardUpdate};
pub use live::{LiveEvent, LiveEvents, LiveOptions, LiveSession, LiveSummary};
pub use outbox::{
    Enqueued, FullPolicy, ItemKind, NewChat, NewRecording, Outbox, OutboxConfig, OutboxStatus,
};
pub use privacy::{Party, Privacy, PrivateItem, Screened};
pub use util::rfc3339_ms;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (0-based). A server `Retry-After`
    /// longer than the computed delay is honoured.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max);
        let jittered = cap.mul_f64(rand::random::<f64>());
        match retry_after {
            Some(ra) if ra > jittered => ra,
            _ => jittered,
        }
    }
}
