//! The connection task: connect, stream both ways, reconnect and resume.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assist_protocol::device::DeviceEventKind;
use assist_protocol::live::{
    ClientMessage, Feedback, Ready, Resume, SAMPLE_RATE, ServerMessage, Start, close,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{LiveEvent, LiveSummary, Shared};
use crate::{Client, Error, Result};

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a connection attempt or a connection ended.
#[derive(Debug)]
pub(super) enum ConnFail {
    /// A close frame (or an HTTP refusal mapped to one).
    Closed { code: u16, reason: String },
    /// Network trouble: reconnect.
    Dropped(String),
}

impl ConnFail {
    fn retryable(&self) -> bool {
        match self {
            ConnFail::Closed { code, .. } => close::is_retryable(*code),
            ConnFail::Dropped(_) => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            ConnFail::Closed { code, reason } => format!("closed with {code}: {reason}"),
            ConnFail::Dropped(why) => why.clone(),
        }
    }

    pub(super) fn into_error(self) -> Error {
        match self {
            ConnFail::Closed { code, reason } => Error::LiveClosed {
                code,
                reason: explain(code, &reason),
            },
            ConnFail::Dropped(message) => Error::Unreachable {
                url: "/v1/live".into(),
                message,
            },
        }
    }
}

/// What to tell a person about a close code.
fn explain(code: u16, reason: &str) -> String {
    let what = match code {
        close::UNAUTHORIZED => "the device token was refused",
        close::FORBIDDEN => "this token is not a rep's device token",
        close::BAD_START => "the server did not accept the start message",
        close::UNKNOWN_SESSION => "the server no longer holds this session",
        close::FRAME_TOO_LARGE => "a frame was larger than the server accepts",
        close::UNSUPPORTED_AUDIO => "the audio format is not PCM16 16 kHz",
        close::OVERLOADED => "the server has too many live sessions",
        _ => "",
    };
    match (what.is_empty(), reason.is_empty()) {
        (true, _) => reason.to_string(),
        (false, true) => what.to_string(),
        (false, false) => format!("{what} ({reason})"),
    }
}

/// Open the socket, send `start` (resuming if asked), wait for `ready`.
pub(super) async fn connect_once(
    client: &Client,
    start: &Start,
    resume: Option<Resume>,
    timeout: Duration,
) -> Result<(Ws, Ready), ConnFail> {
    let url = client.ws_url("/live");
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnFail::Closed {
            code: close::BAD_START,
            reason: format!("bad server URL `{url}`: {e}"),
        })?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", client.config.token)).map_err(|_| {
        ConnFail::Closed {
            code: close::UNAUTHORIZED,
            reason: "the token has characters a header cannot carry".into(),
        }
    })?;
    req.headers_mut().insert("authorization", auth);
    let attempt = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(handshake_fail)?;
        let first = ClientMessage::Start(Start {
            resume,
            ..start.clone()
        });
        let json = serde_json::to_string(&first).map_err(|e| ConnFail::Dropped(e.to_string()))?;
        ws.send(Message::Text(json.into()))
            .await
            .map_err(|e| ConnFail::Dropped(e.to_string()))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMessage>(&t) {
                    Ok(ServerMessage::Ready(r)) => return Ok((ws, r)),
                    Ok(ServerMessage::Error { code, message }) => {
                        tracing::warn!(%code, %message, "live start refused");
                    }
                    Ok(other) => tracing::debug!(?other, "event before ready"),
                    Err(e) => tracing::warn!(error = %e, "unreadable server frame"),
                },
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(ConnFail::Closed { code, reason });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ConnFail::Dropped(e.to_string())),
                None => return Err(ConnFail::Dropped("closed before ready".into())),
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ConnFail::Dropped(format!(
            "no ready within {} s",
            timeout.as_secs()
        ))),
    }
}

fn handshake_fail(e: tungstenite::Error) -> ConnFail {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice::<assist_protocol::ErrorBody>(b).ok())
                .map(|b| b.message)
                .unwrap_or_default();
            let code = match status {
                401 => close::UNAUTHORIZED,
                403 => close::FORBIDDEN,
                429 | 503 => close::OVERLOADED,
                s if s >= 500 => 1011,
                _ => close::BAD_START,
            };
            ConnFail::Closed {
                code,
                reason: format!("HTTP {status} {body}").trim().to_string(),
            }
        }
        other => ConnFail::Dropped(other.to_string()),
    }
}

/// The session task.
pub(super) async fn run(
    shared: Arc<Shared>,
    start: Start,
    ws: Ws,
    _ready: Ready,
    tx: mpsc::Sender<LiveEvent>,
) -> Result<LiveSummary> {
    let mut ws = Some(ws);
    let mut reconnects = 0u32;
    let mut resume_window = Duration::from_secs(_ready.limits.resume_window_s);
    let result = loop {
        let conn = ws.take().expect("a connection");
        let fail = match drive(&shared, conn, &tx).await {
            Ok(summary) => break Ok(summary),
            Err(f) => f,
        };
        shared.lock().connected = false;
        if !fail.retryable() {
            break Err(fail.into_error());
        }
        let _ = tx
            .send(LiveEvent::Disconnected {
                reason: fail.describe(),
            })
            .await;
        match reconnect(&shared, &start, &tx, resume_window).await {
            Ok((conn, ready)) => {
                reconnects += 1;
                resume_window = Duration::from_secs(ready.limits.resume_window_s);
                ws = Some(conn);
            }
            Err(e) => break Err(e),
        }
    };
    // Whatever the end, unacknowledged taps must not be lost.
    let pending: Vec<Feedback> = {
        let mut st = shared.lock();
        st.finished = true;
        st.connected = false;
        st.feedback.drain(..).map(|(f, _)| f).collect()
    };
    shared.room.notify_waiters();
    let mut moved = 0;
    for fb in &pending {
        match feedback_to_outbox(&shared.client, fb) {
            Ok(()) => moved += 1,
            Err(e) => tracing::warn!(error = %e, "cannot queue a feedback tap"),
        }
    }
    result.map(|mut s| {
        s.reconnects = reconnects;
        s.feedback_to_outbox = moved;
        s
    })
}

/// Reconnect with backoff until resumed, restarted, refused or out of time.
async fn reconnect(
    shared: &Arc<Shared>,
    start: &Start,
    tx: &mpsc::Sender<LiveEvent>,
    window: Duration,
) -> Result<(Ws, Ready)> {
    let began = Instant::now();
    let limit = window.min(shared.opts.max_reconnect);
    let mut attempt = 0;
    loop {
        let delay = shared.opts.backoff.delay(attempt, None);
        attempt += 1;
        tokio::time::sleep(delay).await;
        if began.elapsed() > limit {
            return Err(Error::LiveClosed {
                code: close::UNKNOWN_SESSION,
                reason: format!("could not resume the session within {} s", limit.as_secs()),
            });
        }
        let resume = {
            let st = shared.lock();
            Resume {
                session_id: st.session_id.clone(),
                last_seq: st.last_seq,
            }
        };
        let timeout = shared.opts.connect_timeout;
        match connect_once(&shared.client, start, Some(resume), timeout).await {
            Ok((ws, ready)) => {
                let resent = resumed(shared, &ready, false);
                let _ = tx
                    .send(LiveEvent::Resumed {
                        session_id: ready.session_id.clone(),
                        resent_ms: resent,
                    })
                    .await;
                return Ok((ws, ready));
            }
            Err(ConnFail::Closed {
                code: close::UNKNOWN_SESSION,
                ..
            }) => match connect_once(&shared.client, start, None, timeout).await {
                Ok((ws, ready)) => {
                    resumed(shared, &ready, true);
                    let _ = tx
                        .send(LiveEvent::Restarted {
                            session_id: ready.session_id.clone(),
                        })
                        .await;
                    return Ok((ws, ready));
                }
                Err(f) if f.retryable() => {
                    tracing::info!(reason = %f.describe(), "live restart failed; retrying")
                }
                Err(f) => return Err(f.into_error()),
            },
            Err(f) if f.retryable() => {
                tracing::info!(attempt, reason = %f.describe(), "live reconnect failed; retrying")
            }
            Err(f) => return Err(f.into_error()),
        }
    }
}

/// Set the send cursors from `ready`, mark text turns and taps for resending.
fn resumed(shared: &Shared, ready: &Ready, restarted: bool) -> BTreeMap<u8, u64> {
    let mut st = shared.lock();
    let mut resent = BTreeMap::new();
    let mut gaps = Vec::new();
    for (&ch, ring) in st.rings.iter_mut() {
        if restarted {
            ring.restart();
            continue;
        }
        let samples = ready
            .audio_received_samples
            .get(&ch.to_string())
            .copied()
            .unwrap_or(0);
        let (again, lost) = ring.resume_at(samples);
        resent.insert(ch, again * 1000 / u64::from(SAMPLE_RATE));
        if lost > 0 {
            gaps.push((ch, lost * 1000 / u64::from(SAMPLE_RATE)));
        }
    }
    st.gaps.extend(gaps);
    if restarted {
        st.last_seq = 0;
        st.session_id = ready.session_id.clone();
        st.texts.clear();
    }
    for t in st.texts.iter_mut() {
        t.sent = false;
    }
    for f in st.feedback.iter_mut() {
        f.1 = false;
    }
    st.end_sent = false;
    st.connected = true;
    drop(st);
    shared.work.notify_one();
    resent
}

/// Stream one connection until the session ends or the connection fails.
async fn drive(
    shared: &Arc<Shared>,
    ws: Ws,
    tx: &mpsc::Sender<LiveEvent>,
) -> Result<LiveSummary, ConnFail> {
    let (sink, stream) = ws.split();
    tokio::select! {
        r = reader(shared, stream, tx) => r,
        w = writer(shared, sink, tx) => Err(w),
    }
}

async fn reader(
    shared: &Arc<Shared>,
    mut stream: SplitStream<Ws>,
    tx: &mpsc::Sender<LiveEvent>,
) -> Result<LiveSummary, ConnFail> {
    let mut ended: Option<LiveSummary> = None;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| ConnFail::Dropped(e.to_string()))?;
        match frame {
            Message::Text(t) => {
                let msg: ServerMessage = match serde_json::from_str(&t) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable server frame");
                        continue;
                    }
                };
                {
                    let mut st = shared.lock();
                    if let Some(seq) = msg.seq() {
                        if seq <= st.last_seq {
                            continue; // a replay of what we already have
                        }
                        st.last_seq = seq;
                    }
                    match &msg {
                        ServerMessage::FeedbackAck { feedback_id, .. } => {
                            st.feedback.retain(|(f, _)| f.feedback_id != *feedback_id)
                        }
                        ServerMessage::Ended {
                            session_id,
                            finals,
                            suggestions,
                            risks,
                        } => {
                            ended = Some(LiveSummary {
                                session_id: session_id.clone(),
                                finals: *finals,
                                suggestions: *suggestions,
                                risks: *risks,
                                reconnects: 0,
                                feedback_to_outbox: 0,
                            })
                        }
                        _ => {}
                    }
                }
                if tx.send(LiveEvent::Message(msg)).await.is_err() {
                    tracing::debug!("the app dropped the event stream");
                }
            }
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                if let Some(s) = ended.take() {
                    return Ok(s);
                }
                if code == close::NORMAL {
                    let st = shared.lock();
                    return Ok(LiveSummary {
                        session_id: st.session_id.clone(),
                        finals: 0,
                        suggestions: 0,
                        risks: 0,
                        reconnects: 0,
                        feedback_to_outbox: 0,
                    });
                }
                return Err(ConnFail::Closed { code, reason });
            }
            _ => {}
        }
    }
    match ended {
        Some(s) => Ok(s),
        None => Err(ConnFail::Dropped("the connection was cut".into())),
    }
}

enum Work {
    Frame(Vec<u8>),
    Text(String),
    Idle,
}

async fn writer(
    shared: &Arc<Shared>,
    mut sink: SplitSink<Ws, Message>,
    tx: &mpsc::Sender<LiveEvent>,
) -> ConnFail {
    let frame_samples = u64::from(shared.opts.frame_ms.max(10)) * u64::from(SAMPLE_RATE) / 1000;
    let max_samples = ((assist_protocol::live::MAX_AUDIO_FRAME_BYTES - 1) / 2) as u64;
    let frame_samples = frame_samples.min(max_samples);
    loop {
        let wake = shared.work.notified();
        let (work, gaps) = {
            let mut st = shared.lock();
            let gaps: Vec<(u8, u64)> = st.gaps.drain(..).collect();
            (next_work(&mut st, frame_samples), gaps)
        };
        for (channel, lost_ms) in gaps {
            let _ = tx.send(LiveEvent::AudioGap { channel, lost_ms }).await;
        }
        let sent = match work {
            Work::Frame(bytes) => {
                let r = sink.send(Message::Binary(bytes.into())).await;
                shared.room.notify_waiters();
                r
            }
            Work::Text(json) => sink.send(Message::Text(json.into())).await,
            Work::Idle => {
                wake.await;
                continue;
            }
        };
        if let Err(e) = sent {
            return ConnFail::Dropped(e.to_string());
        }
    }
}

/// What to send next: text turns and taps first, then audio (the channel
/// furthest behind first, to keep channels aligned), then `end` once all
/// audio is out.
fn next_work(st: &mut super::State, frame_samples: u64) -> Work {
    if let Some(t) = st.texts.iter_mut().find(|t| !t.sent) {
        t.sent = true;
        return Work::Text(serde_json::to_string(&t.msg).unwrap_or_default());
    }
    if let Some(f) = st.feedback.iter_mut().find(|f| !f.1) {
        f.1 = true;
        return Work::Text(
            serde_json::to_string(&ClientMessage::Feedback(f.0.clone())).unwrap_or_default(),
        );
    }
    let behind = st
        .rings
        .iter_mut()
        .filter(|(_, r)| r.backlog() > 0)
        .min_by_key(|(_, r)| r.cursor());
    if let Some((&ch, ring)) = behind
        && let Some(pcm) = ring.take(frame_samples)
    {
        let mut frame = Vec::with_capacity(pcm.len() + 1);
        frame.push(ch);
        frame.extend_from_slice(&pcm);
        return Work::Frame(frame);
    }
    if st.end_requested && !st.end_sent {
        st.end_sent = true;
        return Work::Text(serde_json::to_string(&ClientMessage::End).unwrap_or_default());
    }
    Work::Idle
}

/// A tap the live connection could not deliver: an outbox event under the
/// tap's own id.
pub(super) fn feedback_to_outbox(client: &Client, fb: &Feedback) -> Result<()> {
    client.outbox.enqueue_event_with_id(
        fb.feedback_id.clone(),
        DeviceEventKind::SuggestionFeedback {
            suggestion_id: fb.suggestion_id.clone(),
            action: fb.action,
        },
    )?;
    Ok(())
}
