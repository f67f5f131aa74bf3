//! The live call-assist session over WebSocket (`/v1/live`).
//!
//! [`LiveSession::connect`] opens the socket, sends `start` and waits for
//! `ready`; a background task then owns the connection. The app pushes audio
//! ([`LiveSession::send_audio`], [`LiveSession::push_audio`]), text turns and
//! feedback taps, and reads [`LiveEvent`]s from [`LiveEvents`].
//!
//! Audio goes through one ring per channel holding the last
//! [`LiveOptions::ring_seconds`] of audio; the ring *is* the send buffer, so
//! after a cut connection the task reconnects with backoff, sends
//! `start{resume:{session_id,last_seq}}`, and resends from what the server
//! says it holds (`ready.audio_received_samples`). Replayed events are dropped by
//! `seq`. Feedback taps made while disconnected go to the outbox as
//! `suggestion_feedback` events; taps not acknowledged when the session ends
//! go there too. A close code the protocol marks non-retryable (or a resume
//! window that ran out) ends the session with [`Error::LiveClosed`].

mod conn;
mod ring;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use assist_protocol::live::{
    AUDIO_CHANNEL_CUSTOMER, AUDIO_CHANNEL_MIXED, AUDIO_CHANNEL_REP, AudioLayout, ClientMessage,
    Feedback, FeedbackAction, Ready, SAMPLE_RATE, ServerMessage, Speaker, Start,
};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::util::new_id;
use crate::{Backoff, Client, Error, Result};
use ring::Ring;

/// Settings of a live session.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Audio kept per channel for resending after a cut connection.
    pub ring_seconds: u32,
    /// Largest audio frame sent, in milliseconds (200 ms by default).
    pub frame_ms: u32,
    /// [`LiveSession::send_audio`] waits while more than this much audio is
    /// not yet sent (the server reads at its own pace).
    pub max_backlog_ms: u32,
    pub backoff: Backoff,
    pub connect_timeout: Duration,
    /// Give up reconnecting after this long even if the server's resume
    /// window is longer.
    pub max_reconnect: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            ring_seconds: 30,
            frame_ms: 200,
            max_backlog_ms: 1000,
            backoff: Backoff {
                base: Duration::from_millis(200),
                max: Duration::from_secs(5),
            },
            connect_timeout: Duration::from_secs(10),
            max_reconnect: Duration::from_secs(120),
        }
    }
}

/// What the app hears from a session.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// A server event (each `seq` once, replays removed).
    Message(ServerMessage),
    /// The connection was cut; the session is reconnecting.
    Disconnected { reason: String },
    /// Reconnected and resumed; `resent_ms` is the audio sent again per channel.
    Resumed {
        session_id: String,
        resent_ms: BTreeMap<u8, u64>,
    },
    /// The server no longer knew the session; a new one was started (the
    /// transcript before it stays with the old session).
    Restarted { session_id: String },
    /// Audio that could not be delivered (it left the ring before the server
    /// had it).
    AudioGap { channel: u8, lost_ms: u64 },
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSummary {
    pub session_id: String,
    pub finals: u64,
    pub suggestions: u64,
    pub risks: u64,
    pub reconnects: u32,
    /// Feedback taps moved to the outbox (the connection was down).
    pub feedback_to_outbox: u32,
}

/// The app's end of the event stream.
#[derive(Debug)]
pub struct LiveEvents {
    rx: mpsc::Receiver<LiveEvent>,
}

impl LiveEvents {
    /// The next event; `None` once the session is over (see [`LiveSession::finish`]).
    pub async fn next(&mut self) -> Option<LiveEvent> {
        self.rx.recv().await
    }
}

#[derive(Debug)]
struct TextTurn {
    msg: ClientMessage,
    sent: bool,
}

#[derive(Debug)]
struct State {
    rings: BTreeMap<u8, Ring>,
    texts: VecDeque<TextTurn>,
    /// Taps sent (or to send) and not acknowledged.
    feedback: Vec<(Feedback, bool)>,
    connected: bool,
    end_requested: bool,
    end_sent: bool,
    finished: bool,
    last_seq: u64,
    session_id: String,
    gaps: Vec<(u8, u64)>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer.
    work: Notify,
    /// Wakes senders waiting for backlog room.
    room: Notify,
    client: Client,
    opts: LiveOptions,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A live session (cheap to clone).
#[derive(Debug, Clone)]
pub struct LiveSession {
    shared: Arc<Shared>,
    task: Arc<tokio::sync::Mutex<Option<JoinHandle<Result<LiveSummary>>>>>,
    ready: Ready,
}

/// Text turns kept for resending after a reconnect (the server ignores a
/// repeated `utterance_id`).
const RESEND_TEXTS: usize = 64;

impl LiveSession {
    /// Connect, send `start`, wait for `ready`. Fails at once when the server
    /// cannot be reached or refuses (no retry before a session exists).
    pub async fn connect(
        client: &Client,
        start: Start,
        opts: LiveOptions,
    ) -> Result<(LiveSession, LiveEvents)> {
        if start.resume.is_some() {
            return Err(Error::Invalid(
                "start a session without `resume`; the SDK resumes by itself".into(),
            ));
        }
        let channels: &[u8] = match start.audio.layout {
            AudioLayout::None => &[],
            AudioLayout::Mixed => &[AUDIO_CHANNEL_MIXED],
            AudioLayout::PerSpeaker => &[AUDIO_CHANNEL_REP, AUDIO_CHANNEL_CUSTOMER],
        };
        let cap = u64::from(opts.ring_seconds.max(1)) * u64::from(SAMPLE_RATE);
        let (ws, ready) = conn::connect_once(client, &start, None, opts.connect_timeout)
            .await
            .map_err(conn::ConnFail::into_error)?;
        let state = State {
            rings: channels.iter().map(|&c| (c, Ring::new(cap))).collect(),
            texts: VecDeque::new(),
            feedback: Vec::new(),
            connected: true,
            end_requested: false,
            end_sent: false,
            finished: false,
            last_seq: 0,
            session_id: ready.session_id.clone(),
            gaps: Vec::new(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            work: Notify::new(),
            room: Notify::new(),
            client: client.clone(),
            opts,
        });
        let (tx, rx) = mpsc::channel(256);
        let _ = tx
            .send(LiveEvent::Message(ServerMessage::Ready(ready.clone())))
            .await;
        let task = tokio::spawn(conn::run(shared.clone(), start, ws, ready.clone(), tx));
        Ok((
            LiveSession {
                shared,
                task: Arc::new(tokio::sync::Mutex::new(Some(task))),
                ready,
            },
            LiveEvents { rx },
        ))
    }

    /// The first `ready` of the session.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// The current session id (changes only after a [`LiveEvent::Restarted`]).
    pub fn session_id(&self) -> String {
        self.shared.lock().session_id.clone()
    }

    fn check_channel(&self, st: &State, channel: u8) -> Result<()> {
        if st.finished {
            return Err(Error::LiveEnded);
        }
        if st.end_requested {
            return Err(Error::Invalid(
                "the session was ended; no more audio".into(),
            ));
        }
        if !st.rings.contains_key(&channel) {
            return Err(Error::Invalid(format!(
                "audio channel {channel} is not part of this session's layout (channels {:?})",
                st.rings.keys().collect::<Vec<_>>()
            )));
        }
        Ok(())
    }

    /// Queue PCM (16 kHz mono s16) for `channel`, waiting while too much is
    /// unsent — for sources that can wait (a file).
    pub async fn send_audio(&self, channel: u8, pcm: &[i16]) -> Result<()> {
        let max = u64::from(self.shared.opts.max_backlog_ms) * u64::from(SAMPLE_RATE) / 1000;
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut st = self.shared.lock();
                self.check_channel(&st, channel)?;
                let ring = st.rings.get_mut(&channel).expect("checked");
                if ring.backlog() < max.max(pcm.len() as u64) {
                    push(&mut st, channel, pcm);
                    drop(st);
                    self.shared.work.notify_one();
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Queue PCM for `channel` without waiting — for a live microphone. When
    /// the ring overflows (a long outage), the oldest unsent audio is lost
    /// and reported as [`LiveEvent::AudioGap`].
    pub fn push_audio(&self, channel: u8, pcm: &[i16]) -> Result<()> {
        let mut st = self.shared.lock();
        self.check_channel(&st, channel)?;
        push(&mut st, channel, pcm);
        drop(st);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Send a finished utterance as text; returns its `utterance_id`.
    pub fn send_text(&self, speaker: Speaker, text: &str) -> Result<String> {
        if text.trim().is_empty() {
            return Err(Error::Invalid("the text turn is empty".into()));
        }
        let id = new_id("utt");
        let mut st = self.shared.lock();
        if st.finished {
            return Err(Error::LiveEnded);
        }
        st.texts.push_back(TextTurn {
            msg: ClientMessage::Text {
                speaker,
                text: text.to_string(),
                utterance_id: id.clone(),
            },
            sent: false,
        });
        while st.texts.len() > RESEND_TEXTS && st.texts.front().is_some_and(|t| t.sent) {
            st.texts.pop_front();
        }
        drop(st);
        self.shared.work.notify_one();
        Ok(id)
    }

    /// One tap on a suggestion; returns its `feedback_id`. Sent live when
    /// connected, else queued in the outbox.
    pub fn feedback(&self, suggestion_id: &str, action: FeedbackAction) -> Result<String> {
        let fb = Feedback {
            feedback_id: new_id("fb"),
            suggestion_id: suggestion_id.to_string(),
            action,
        };
        let id = fb.feedback_id.clone();
        let mut st = self.shared.lock();
        if st.connected && !st.finished {
            st.feedback.push((fb, false));
            drop(st);
            self.shared.work.notify_one();
        } else {
            drop(st);
            conn::feedback_to_outbox(&self.shared.client, &fb)?;
        }
        Ok(id)
    }

    /// Ask the server to finish: everything queued is sent first, then `end`.
    pub fn end(&self) -> Result<()> {
        let mut st = self.shared.lock();
        if st.finished {
            return Err(Error::LiveEnded);
        }
        st.end_requested = true;
        drop(st);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Wait for the session to end (after [`LiveSession::end`], or a failure).
    pub async fn finish(&self) -> Result<LiveSummary> {
        let handle = self.task.lock().await.take();
        match handle {
            Some(h) => match h.await {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(Error::LiveEnded),
            },
            None => Err(Error::LiveEnded),
        }
    }
}

fn push(st: &mut State, channel: u8, pcm: &[i16]) {
    let ring = st.rings.get_mut(&channel).expect("checked");
    let lost = ring.push(pcm);
    if lost > 0 {
        st.gaps
            .push((channel, lost * 1000 / u64::from(SAMPLE_RATE)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_the_documented_values() {
        let o = LiveOptions::default();
        assert_eq!(o.ring_seconds, 30);
        assert_eq!(o.frame_ms, 200);
    }
}
