//! The live call-assist session: WebSocket `GET /v1/live`.
//!
//! # Connection
//! The phone opens a WebSocket to `/v1/live` with its device token in
//! `Authorization: Bearer …` (or `?access_token=…` where a WebSocket API
//! cannot set headers). Only device tokens of reps are accepted. The first
//! frame the phone sends is a [`ClientMessage::Start`]; the server answers
//! [`ServerMessage::Ready`] and from then on both sides stream.
//!
//! # Frames
//! - **Text frames** carry one JSON [`ClientMessage`] or [`ServerMessage`]
//!   (internally tagged by `type`, snake_case).
//! - **Binary frames** carry audio from the phone: one header byte naming the
//!   channel ([`AUDIO_CHANNEL_MIXED`], [`AUDIO_CHANNEL_REP`] or
//!   [`AUDIO_CHANNEL_CUSTOMER`]) followed by little-endian signed 16-bit PCM
//!   samples at 16 kHz, mono per channel. At most [`MAX_AUDIO_FRAME_BYTES`];
//!   100–500 ms per frame is typical. A frame with an odd number of sample
//!   bytes, an unknown channel byte or a channel the session did not declare
//!   is answered with an [`ServerMessage::Error`] and dropped; the session
//!   goes on.
//!
//! # Order and resume
//! Every server event has a `seq` growing by one per session. On a cut
//! connection the phone reconnects with `Start { resume: Some(..) }` naming the
//! session and the last `seq` it saw; the server replays the events after it
//! (finals, suggestions, risks — never stale partials) and tells in
//! [`Ready::audio_received_samples`] how much audio of each channel it holds, so the
//! phone resends only the rest. A detached session is kept for
//! [`Limits::resume_window_s`] seconds, then finished.
//!
//! # Backpressure
//! The server never buffers without bound: when the phone does not read fast
//! enough, partial transcripts are dropped first (reported by
//! [`ServerMessage::Dropped`]), finals and suggestions never; a phone that
//! reads nothing for [`Limits::stall_timeout_s`] is closed with
//! [`close::CLIENT_TOO_SLOW`] and can resume. Audio sent faster than
//! [`Limits::max_speed`] × real time is not read until real time catches up
//! (TCP backpressure), so a fast sender is slowed, never cut.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// Header byte of an audio frame: one mixed channel (rep and customer together).
pub const AUDIO_CHANNEL_MIXED: u8 = 0;
/// Header byte of an audio frame: the rep's own microphone.
pub const AUDIO_CHANNEL_REP: u8 = 1;
/// Header byte of an audio frame: the far end (the customer).
pub const AUDIO_CHANNEL_CUSTOMER: u8 = 2;
/// The only sample rate accepted.
pub const SAMPLE_RATE: u32 = 16_000;
/// Sample rates the server accepts: 16 kHz, and 8 kHz telephone audio
/// (voice activity runs on it natively; it is upsampled for recognition).
pub const SAMPLE_RATES: [u32; 2] = [16_000, 8_000];
/// Largest binary frame: 1 header byte + 2 s of PCM16.
pub const MAX_AUDIO_FRAME_BYTES: usize = 1 + 2 * SAMPLE_RATE as usize * 2;
/// Largest text frame.
pub const MAX_TEXT_FRAME_BYTES: usize = 64 * 1024;

/// WebSocket close codes the server uses (4000–4999 are the application's).
/// The reason text says what to do; a client decides from the code.
pub mod close {
    /// `end` was received and everything is flushed.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down; reconnect with resume (another node or later).
    pub const GOING_AWAY: u16 = 1001;
    /// The first frame was not a valid `start`, or `start` came twice.
    pub const BAD_START: u16 = 4400;
    /// The token is missing, unknown, revoked or expired (also mid-call).
    pub const UNAUTHORIZED: u16 = 4401;
    /// The token is not a rep's device token.
    pub const FORBIDDEN: u16 = 4403;
    /// `resume` named a session this server does not hold (expired or unknown): start anew.
    pub const UNKNOWN_SESSION: u16 = 4404;
    /// The phone did not read for too long; resume and read faster.
    pub const CLIENT_TOO_SLOW: u16 = 4408;
    /// A frame larger than the limits.
    pub const FRAME_TOO_LARGE: u16 = 4413;
    /// The declared audio format is not PCM16 16 kHz.
    pub const UNSUPPORTED_AUDIO: u16 = 4415;
    /// Too many live sessions on this node; retry later (another node).
    pub const OVERLOADED: u16 = 4503;

    /// Whether a client should reconnect (with resume) after this close code.
    pub fn is_retryable(code: u16) -> bool {
        matches!(
            code,
            GOING_AWAY | CLIENT_TOO_SLOW | OVERLOADED | 1006 | 1011 | 1012 | 1013
        )
    }
}

pub use crate::Speaker;

/// How the phone sends audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioLayout {
    /// No audio: the phone sends text turns only.
    None,
    /// One channel with both sides ([`AUDIO_CHANNEL_MIXED`]).
    Mixed,
    /// Two channels ([`AUDIO_CHANNEL_REP`] and [`AUDIO_CHANNEL_CUSTOMER`]).
    PerSpeaker,
}

/// The declared audio format. Anything but `pcm_s16le` at 16 000 or 8 000 Hz
/// is closed with [`close::UNSUPPORTED_AUDIO`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Must be `pcm_s16le`.
    pub encoding: String,
    /// 16000, or 8000 for telephone audio ([`SAMPLE_RATES`]).
    pub sample_rate: u32,
    pub layout: AudioLayout,
}

impl AudioFormat {
    /// PCM16 16 kHz with this layout.
    pub fn pcm16(layout: AudioLayout) -> Self {
        AudioFormat {
            encoding: "pcm_s16le".into(),
            sample_rate: SAMPLE_RATE,
            layout,
        }
    }
}

/// Continue a session after a cut connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub session_id: String,
    /// The last `seq` the phone received; later events are replayed.
    pub last_seq: u64,
}

/// The first frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// The phone's id of this call; the same id on the uploaded recording
    /// links the two. 1–200 characters of letters, digits and `-_.:`.
    pub client_call_id: String,
    /// `zh` or `en`; forcing it is best for live audio. Default: detect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub audio: AudioFormat,
    /// Filters for suggestions (the knowledge base's product id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// How many suggestions per customer utterance (1–10, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// A text frame from the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Start(Start),
    /// A finished utterance as text (on-device speech recognition, or a typed
    /// note). Treated exactly like a final transcript segment.
    Text {
        speaker: Speaker,
        text: String,
        /// The phone's id for it; a resent utterance with the same id is ignored.
        utterance_id: String,
    },
    /// One tap on a suggestion. Stored once per `feedback_id`.
    Feedback(Feedback),
    /// The call ended: flush what is pending, answer [`ServerMessage::Ended`]
    /// and close with [`close::NORMAL`].
    End,
}

/// What the rep did with a suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackAction {
    Used,
    Dismissed,
}

/// One-tap feedback on a suggestion (also sent through the outbox as a
/// [`crate::device::DeviceEvent`] when the live connection is down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    /// The phone's id for this tap: a resent tap is stored once.
    pub feedback_id: String,
    /// The `suggestion_id` of a [`Suggestion`].
    pub suggestion_id: String,
    pub action: FeedbackAction,
}

/// Limits the server applies to this session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Audio faster than this multiple of real time is read no faster.
    pub max_speed: f64,
    /// A phone that reads nothing this long is closed ([`close::CLIENT_TOO_SLOW`]).
    pub stall_timeout_s: u64,
    /// How long a cut session waits for a resume.
    pub resume_window_s: u64,
}

/// Answer to `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub session_id: String,
    pub resumed: bool,
    /// Audio the server holds per channel, in samples at the session's rate (channel byte
    /// as a string key: "0", "1", "2"); after a resume, send the rest.
    pub audio_received_samples: std::collections::BTreeMap<String, u64>,
    /// Whether speech recognition is available on this server (if not, only
    /// text turns are assisted).
    pub speech: bool,
    pub limits: Limits,
}

/// One transcript piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptPiece {
    pub seq: u64,
    pub speaker: Speaker,
    pub text: String,
    /// Times in the channel's audio, seconds (0 for text turns).
    pub start_s: f64,
    pub end_s: f64,
}

/// A script suggested for a customer utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// Send this back in [`Feedback`].
    pub suggestion_id: String,
    pub script_id: String,
    pub title: String,
    pub body: String,
    pub scenario: String,
    pub score: f32,
    /// Rank in the keyword (BM25) and vector lists, 1-based, when it was in them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25_rank: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_rank: Option<usize>,
}

/// A risk found in the live call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRisk {
    pub seq: u64,
    /// The `seq` of the final it was found in.
    pub final_seq: u64,
    pub speaker: Speaker,
    pub category: String,
    pub severity: String,
    /// The words that matched.
    pub evidence: String,
    /// Why it raised no alert (`negated`, `role`, `rate_limited`), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

/// A text frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Ready(Ready),
    /// The current guess of words not yet final (replaced by the next partial
    /// of the same speaker). May be dropped under backpressure.
    Partial(TranscriptPiece),
    /// Committed transcript; never revised.
    Final(TranscriptPiece),
    /// Scripts for the customer utterance ending in final `final_seq`.
    Suggestions {
        seq: u64,
        final_seq: u64,
        /// The text the search ran on.
        query: String,
        suggestions: Vec<Suggestion>,
    },
    Risk(LiveRisk),
    /// A feedback tap was stored (`duplicate`: it already had been).
    FeedbackAck {
        feedback_id: String,
        duplicate: bool,
    },
    /// Partials were dropped because the phone read too slowly.
    Dropped {
        partials: u64,
    },
    /// A frame was refused; the session goes on.
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Answer to `end`: everything is flushed.
    Ended {
        session_id: String,
        finals: u64,
        suggestions: u64,
        risks: u64,
    },
}

impl ServerMessage {
    /// The event's sequence number, for those that carry one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ServerMessage::Partial(p) | ServerMessage::Final(p) => Some(p.seq),
            ServerMessage::Suggestions { seq, .. } => Some(*seq),
            ServerMessage::Risk(r) => Some(r.seq),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_by_type() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"start","client_call_id":"c1","audio":{"encoding":"pcm_s16le","sample_rate":16000,"layout":"per_speaker"}}"#,
        )
        .unwrap();
        match m {
            ClientMessage::Start(s) => {
                assert_eq!(s.audio, AudioFormat::pcm16(AudioLayout::PerSpeaker));
                assert!(s.resume.is_none());
            }
            other => panic!("{other:?}"),
        }
        let end: ClientMessage = serde_json::from_str(r#"{"type":"end"}"#).unwrap();
        assert_eq!(end, ClientMessage::End);
        let json = serde_json::to_string(&ServerMessage::Dropped { partials: 3 }).unwrap();
        assert_eq!(json, r#"{"type":"dropped","partials":3}"#);
    }
}
