//! Phone-side client of the assist service.
//!
//! The Device issue fills this crate (durable outbox, live-session client,
//! local guard, the `assist-device` simulator). What is here already is the
//! retry policy every client call follows: retry only on codes the protocol
//! marks retryable, exponential backoff with full jitter, and `Retry-After`
//! from the server wins when it is longer.
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
