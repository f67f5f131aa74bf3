//! One simulated phone on `/v1/live`: a real WebSocket client that streams
//! a [`CallPlan`] at real time and notes when every server message arrived.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assist_protocol::live::{
    AUDIO_CHANNEL_CUSTOMER, AUDIO_CHANNEL_REP, AudioFormat, AudioLayout, ClientMessage,
    ServerMessage, Speaker, Start,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::calls::{CallPlan, RATE};

/// Audio per binary frame, seconds (per leg).
pub const FRAME_S: f64 = 0.2;

/// How the phone sends the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PCM16 per speaker; the server's Whisper transcribes.
    Audio,
    /// Each line as a text turn at the moment it ends (on-device ASR).
    Text,
}

/// What one call saw.
#[derive(Debug, Default)]
pub struct CallLog {
    /// When the stream started (audio time 0).
    pub t0: Option<Instant>,
    /// Every server text frame, with its arrival time.
    pub events: Vec<(Instant, ServerMessage)>,
    /// Customer text turns sent: text and send time.
    pub sent: Vec<(String, Instant)>,
    /// The close frame the server sent, if any.
    pub close: Option<(u16, String)>,
    /// `ended` arrived after `end`.
    pub ended: bool,
    /// What went wrong on the client side (connect, send, timeouts).
    pub failure: Option<String>,
    /// Text frames that were not a valid server message.
    pub unreadable: usize,
}

impl CallLog {
    /// Events as seconds since `t0`.
    pub fn relative(&self) -> Vec<(f64, ServerMessage)> {
        let Some(t0) = self.t0 else {
            return Vec::new();
        };
        self.events
            .iter()
            .map(|(at, m)| (secs_since(t0, *at), m.clone()))
            .collect()
    }
}

/// Signed seconds from `t0` to `at`.
pub fn secs_since(t0: Instant, at: Instant) -> f64 {
    if at >= t0 {
        at.duration_since(t0).as_secs_f64()
    } else {
        -t0.duration_since(at).as_secs_f64()
    }
}

/// The reader's result.
#[derive(Default)]
struct Read {
    events: Vec<(Instant, ServerMessage)>,
    close: Option<(u16, String)>,
    unreadable: usize,
    error: Option<String>,
}

fn pcm_frame(channel: u8, samples: &[f32]) -> Message {
    let mut bytes = Vec::with_capacity(1 + samples.len() * 2);
    bytes.push(channel);
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    Message::binary(bytes)
}

fn json(msg: &ClientMessage) -> Message {
    Message::text(serde_json::to_string(msg).expect("client messages serialise"))
}

/// Run one call: connect with the device token, `start`, wait for `ready`,
/// stream the plan at real time, `end`, and wait up to `drain` for `ended`
/// and the close.
pub async fn run_call(
    ws_url: &str,
    token: &str,
    call_id: &str,
    plan: &CallPlan,
    send: Mode,
    drain: Duration,
) -> CallLog {
    let mut log = CallLog::default();
    let request = match ws_url.into_client_request() {
        Ok(mut r) => {
            r.headers_mut().insert(
                "authorization",
                format!("Bearer {token}")
                    .parse()
                    .expect("token is a header value"),
            );
            r
        }
        Err(e) => {
            log.failure = Some(format!("bad url: {e}"));
            return log;
        }
    };
    let socket = match tokio_tungstenite::connect_async(request).await {
        Ok((s, _)) => s,
        Err(e) => {
            log.failure = Some(format!("connect: {e}"));
            return log;
        }
    };
    let (mut sink, mut stream) = socket.split();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<bool>();
    // The reader runs on its own so the server never waits for this phone.
    let shared: Arc<Mutex<Read>> = Arc::default();
    let seen = Arc::clone(&shared);
    let reader = tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        while let Some(frame) = stream.next().await {
            let at = Instant::now();
            let mut out = seen.lock().unwrap_or_else(|p| p.into_inner());
            match frame {
                Ok(Message::Text(t)) => match serde_json::from_str::<ServerMessage>(t.as_str()) {
                    Ok(m) => {
                        if let ServerMessage::Ready(r) = &m
                            && let Some(tx) = ready_tx.take()
                        {
                            let _ = tx.send(r.speech);
                        }
                        out.events.push((at, m));
                    }
                    Err(_) => out.unreadable += 1,
                },
                Ok(Message::Close(c)) => {
                    out.close = Some(c.map_or((1005, String::new()), |c| {
                        (u16::from(c.code), c.reason.as_str().to_string())
                    }));
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    out.error = Some(e.to_string());
                    break;
                }
            }
        }
    });

    let start = ClientMessage::Start(Start {
        client_call_id: call_id.to_string(),
        language: Some(plan.language.clone()),
        audio: AudioFormat::pcm16(match send {
            Mode::Audio => AudioLayout::PerSpeaker,
            Mode::Text => AudioLayout::None,
        }),
        product: None,
        top_k: None,
        resume: None,
    });
    let mut sent_ok = sink.send(json(&start)).await.is_ok();
    match tokio::time::timeout(Duration::from_secs(15), ready_rx).await {
        Ok(Ok(speech)) => {
            if send == Mode::Audio && !speech {
                log.failure = Some("`ready` says speech recognition is off".into());
                sent_ok = false;
            }
        }
        _ => {
            log.failure = Some("no `ready` within 15 s".into());
            sent_ok = false;
        }
    }

    if sent_ok {
        let t0 = Instant::now();
        log.t0 = Some(t0);
        let at = |s: f64| tokio::time::Instant::from_std(t0 + Duration::from_secs_f64(s.max(0.0)));
        match send {
            Mode::Audio => {
                let step = (FRAME_S * RATE) as usize;
                let frames = plan.rep.len().div_ceil(step);
                'frames: for k in 0..frames {
                    // Frame k holds audio [0.2k, 0.2k + 0.2): sent once spoken.
                    tokio::time::sleep_until(at(FRAME_S * (k + 1) as f64)).await;
                    let (a, b) = (k * step, ((k + 1) * step).min(plan.rep.len()));
                    for (channel, leg) in [
                        (AUDIO_CHANNEL_REP, &plan.rep),
                        (AUDIO_CHANNEL_CUSTOMER, &plan.customer),
                    ] {
                        if let Err(e) = sink.send(pcm_frame(channel, &leg[a..b])).await {
                            log.failure =
                                Some(format!("sending audio at {:.1} s: {e}", a as f64 / RATE));
                            break 'frames;
                        }
                    }
                }
            }
            Mode::Text => {
                for (j, turn) in plan.turns.iter().enumerate() {
                    tokio::time::sleep_until(at(turn.end_s)).await;
                    let msg = ClientMessage::Text {
                        speaker: turn.speaker,
                        text: turn.text.clone(),
                        utterance_id: format!("u{j}"),
                    };
                    let sent_at = Instant::now();
                    if let Err(e) = sink.send(json(&msg)).await {
                        log.failure = Some(format!("sending text turn {j}: {e}"));
                        break;
                    }
                    if turn.speaker == Speaker::Customer {
                        log.sent.push((turn.text.clone(), sent_at));
                    }
                }
                tokio::time::sleep_until(at(plan.duration_s)).await;
            }
        }
        if log.failure.is_none() {
            let _ = sink.send(json(&ClientMessage::End)).await;
        }
    }

    let abort = reader.abort_handle();
    match tokio::time::timeout(drain, reader).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            log.failure = Some(format!("reader failed: {e}"));
        }
        Err(_) => {
            // Not flushed in time: hang up, keep what arrived.
            abort.abort();
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            log.failure.get_or_insert_with(|| {
                format!("no close within {:.0} s after `end`", drain.as_secs_f64())
            });
        }
    }
    let read = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
    log.ended = read
        .events
        .iter()
        .any(|(_, m)| matches!(m, ServerMessage::Ended { .. }));
    log.events = read.events;
    log.close = read.close;
    log.unreadable = read.unreadable;
    if let Some(e) = read.error {
        log.failure.get_or_insert(e);
    }
    log
}
