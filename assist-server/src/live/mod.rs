//! Live call assist: the sessions behind WebSocket `/v1/live`.
//!
//! The wire protocol is [`assist_protocol::live`]; this module keeps what a
//! session is made of and outlives one connection:
//!
//! - a **log** of the events that must reach the phone (finals, suggestions,
//!   risks), each with its `seq`. A connection's writer sends from the log
//!   from its own cursor, so a slow phone delays events but never loses one,
//!   and a resumed connection replays from the phone's `last_seq`;
//! - per speaker, the **latest partial** only: a newer partial replaces an
//!   unsent one (counted, and reported with `dropped`), so under
//!   backpressure partials go first;
//! - per audio channel, a [`assist_models::vad::Segmenter`] (Silero VAD and
//!   an endpointer) that turns audio into whole utterances as the speaker
//!   pauses, and how much audio arrived; utterances wait in the node's
//!   [`asr::LiveAsr`] queue for the live Whisper instance, customers first;
//! - the row in `live_sessions`; every final is stored in `live_segments`
//!   with the suggestions made for it (`live_suggestions`) before it is sent.
//!
//! Final customer utterances are searched (hybrid, approved scripts only)
//! and risk-checked; alerts go through [`crate::alerts::AlertIngest`] like calls
//! and chats, with the session's reserved call id, so they reach managers' streams
//! and webhooks at once.

//!
//! [`hub`] holds the sessions and what each is made of; [`pipeline`] moves
//! audio through the streaming recogniser and turns each final into
//! suggestions, stored rows and risk findings.

pub mod asr;
pub mod hub;
pub mod pipeline;

pub use hub::{Channel, LiveHub, Outlet, Session, channels_of, speaker_of, text_language};
pub use pipeline::{finish, on_final, push_audio};
