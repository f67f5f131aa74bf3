//! From risk hits to alerts: storing evidence, deduplication and rate
//! limits, the alert event log behind the SSE stream, and webhooks.
//!
//! How it fits together:
//!
//! - Every source of a risky line (a call segment, a chat message, a live
//!   final) goes through [`AlertIngest`]: [`check`](AlertIngest::check)
//!   runs the risk engine on its [`Line`]s, then
//!   [`commit`](AlertIngest::commit) takes [`AlertHub::writer`], opens the
//!   transaction, lets the source write its own rows, calls [`raise`] with
//!   every hit in context ([`HitInContext`]), commits and publishes. `raise`
//!   stores each hit as a risk event, opens a new alert or counts a repeat on an open one
//!   (same conversation or call and category within `alert_dedup_secs`),
//!   applies the per-conversation rate limit, appends an `alert_log` row per
//!   change and a `webhook_deliveries` row per matching webhook — all in the
//!   caller's transaction, so an alert is never half-written.
//! - After the commit [`Raised::publish`] runs: SSE subscribers
//!   wake up ([`AlertHub::subscribe`]) and each delivery becomes a job on
//!   the `webhook` queue (idempotent per delivery; deliveries left without a
//!   job by a crash are queued again at startup, [`requeue_deliveries`]).
//! - [`manage`] is what a person does with alerts (list, open, acknowledge,
//!   resolve, judge, follow the log), shared by the API and the console.
//! - [`WebhookSender`] posts a delivery, signed with HMAC-SHA256 over
//!   `"{timestamp}.{body}"` ([`signature`]), retried with exponential backoff
//!   by the job queue; every attempt is recorded and the last one marks the
//!   delivery `failed`. The alert itself stays in the log either way.

mod hub;
mod ingest;
pub mod manage;
mod raise;
pub mod screening;
mod status;
mod views;
mod webhook;

pub use hub::AlertHub;
pub use ingest::{
    AlertIngest, Checked, Commit, Ingested, Line, Owner, Tx, Writes, Written, no_rows,
};
pub use raise::{HitInContext, Origin, Raised, log_change, raise};
pub use status::AlertStatus;
pub use views::{AlertView, EvidenceView};
pub use webhook::{
    WEBHOOK_QUEUE, WebhookSender, new_webhook_secret, requeue_deliveries, signature,
};

/// Event kinds in the alert log (SSE `event:` names, webhook `X-Assist-Event`).
pub const ALERT_CREATED: &str = "alert.created";
pub const ALERT_REPEATED: &str = "alert.repeated";
pub const ALERT_ACKNOWLEDGED: &str = "alert.acknowledged";
pub const ALERT_RESOLVED: &str = "alert.resolved";
pub const EVENT_KINDS: [&str; 4] = [
    ALERT_CREATED,
    ALERT_REPEATED,
    ALERT_ACKNOWLEDGED,
    ALERT_RESOLVED,
];
