//! The outbox's value types: what an item is, the limits, what the app
//! enqueues, and the status report.

use std::collections::BTreeMap;

use assist_protocol::device::{ChatChannel, ChatMessage, ChatSender, UploadMetadata};
use serde::{Deserialize, Serialize};

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
    /// new recording is refused with [`Error::OutboxFull`](crate::Error::OutboxFull).
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
    pub(super) fn add(&mut self, kind: ItemKind, n: u64) {
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
