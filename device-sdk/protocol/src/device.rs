//! What a phone sends outside the live session: chat batches, device events
//! (suggestion feedback, blocked attempts, privacy counts) and recordings
//! through resumable uploads. Every item carries the phone's own id, so a
//! resent item is stored once: at-least-once delivery from the outbox gives
//! exactly-once effect.

use serde::{Deserialize, Serialize};

use crate::live::FeedbackAction;

/// Where a chat happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatChannel {
    Wechat,
    Wecom,
    Sms,
    Other,
}

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatSender {
    Rep,
    Customer,
}

impl ChatSender {
    /// The stored and wire form: `rep` or `customer`.
    pub fn as_str(self) -> &'static str {
        crate::Speaker::from(self).as_str()
    }
}

/// A chat's sender is always known: a [`crate::Speaker`] that is never `Unknown`.
impl From<ChatSender> for crate::Speaker {
    fn from(s: ChatSender) -> Self {
        match s {
            ChatSender::Rep => crate::Speaker::Rep,
            ChatSender::Customer => crate::Speaker::Customer,
        }
    }
}

/// `POST /v1/conversations/{conversation_id}/messages`: a batch of one chat's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatBatch {
    /// Needed when the conversation is new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChatChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_ref: Option<String>,
    pub messages: Vec<ChatMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The phone's id: a resent message is stored once.
    pub client_message_id: String,
    pub sender: ChatSender,
    pub text: String,
    /// RFC 3339.
    pub sent_at: String,
}

/// One message's outcome in the answer to a [`ChatBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessageResult {
    pub client_message_id: String,
    #[serde(default)]
    pub id: Option<String>,
    pub duplicate: bool,
}

/// The answer to a [`ChatBatch`] (fields the phone needs; the server sends more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatBatchResult {
    pub conversation_id: String,
    pub accepted: usize,
    pub duplicates: usize,
    pub messages: Vec<ChatMessageResult>,
}

/// What a device event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceEventKind {
    /// A tap on a live suggestion made while the live connection was down.
    SuggestionFeedback {
        suggestion_id: String,
        action: FeedbackAction,
    },
    /// The local guard stopped (or warned about) an outgoing message. The text
    /// itself is not sent, only which rule and where.
    GuardBlocked {
        rule_id: String,
        category: String,
        /// `block` or `warn`.
        decision: String,
        /// The chat it happened in, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        /// Version of the rule set that decided.
        rules_version: u64,
    },
    /// Calls or chats kept on the phone by the rep's privacy exclusions: a count only.
    PrivacyExcluded {
        /// `call` or `chat`.
        item: String,
        count: u64,
    },
    /// Items the outbox dropped because it was full (never silent).
    OutboxDropped {
        /// `recording`, `chat` or `event`.
        item: String,
        count: u64,
        /// The policy that chose them, e.g. `drop_oldest_events`.
        policy: String,
    },
}

/// One event from a phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// The phone's id: a resent event is stored once (per device).
    pub event_id: String,
    /// When it happened on the phone (RFC 3339).
    pub occurred_at: String,
    #[serde(flatten)]
    pub kind: DeviceEventKind,
}

/// `POST /v1/device/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEventBatch {
    pub events: Vec<DeviceEvent>,
}

/// One event's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEventResult {
    pub event_id: String,
    /// Already stored before.
    pub duplicate: bool,
}

/// The answer to `POST /v1/device/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEventBatchResult {
    pub accepted: usize,
    pub duplicates: usize,
    pub results: Vec<DeviceEventResult>,
}

/// `POST /v1/uploads`: begin (or find again) a resumable recording upload.
///
/// Then `PUT /v1/uploads/{upload_id}` with `Content-Range: bytes START-END/TOTAL`
/// and the bytes as `application/octet-stream`; `START` must equal the
/// server's `offset` (else 409 with the current offset in
/// [`UploadStatus`] via `GET /v1/uploads/{upload_id}`). When the last byte
/// arrives the server checks the SHA-256, creates the call and answers with
/// `call_id` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUpload {
    /// The phone's id for this recording (also the call's idempotency key):
    /// creating again with the same key returns the same upload.
    pub upload_key: String,
    /// Total size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
    /// The file name (its extension helps the decoder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The call's metadata, as in the `metadata` part of `POST /v1/calls`.
    #[serde(default)]
    pub metadata: UploadMetadata,
}

/// State of a resumable upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    pub upload_id: String,
    pub upload_key: String,
    pub size: u64,
    /// Bytes stored durably so far; the next chunk starts here.
    pub offset: u64,
    /// `receiving`, `complete` or `failed`.
    pub state: String,
    /// The call created from it, once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Why it failed (bad checksum, undecodable audio …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The call's metadata: the same fields as the `metadata` part of `POST /v1/calls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_ref: Option<String>,
    /// `inbound`, `outbound` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// `mono`, `rep_left` or `rep_right`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_layout: Option<String>,
    /// `zh` or `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_events_flatten_their_kind() {
        let e = DeviceEvent {
            event_id: "e1".into(),
            occurred_at: "2026-11-24T10:00:00Z".into(),
            kind: DeviceEventKind::SuggestionFeedback {
                suggestion_id: "sug_1".into(),
                action: FeedbackAction::Used,
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"event_id":"e1","occurred_at":"2026-11-24T10:00:00Z","type":"suggestion_feedback","suggestion_id":"sug_1","action":"used"}"#
        );
        let back: DeviceEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
