//! WebSocket `GET /v1/live`: one connection of a live call-assist session.
//! The protocol is [`assist_protocol::live`]; the session state is
//! [`crate::live`]. A connection runs two halves:
//!
//! - the **reader** validates frames, paces audio to at most
//!   `live_max_speed` × real time (by not reading: TCP backpressure), feeds the
//!   channels' streamers, handles text turns, feedback and `end`, and checks
//!   the token every few seconds (revoked or expired mid-call → 4401);
//! - the **writer** sends the session's log from its cursor, then the latest
//!   partials; a send that does not complete within `live_stall_timeout_secs`
//!   ends the connection (4408), the session waits for a resume.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::extract::Query;
use assist_protocol::ErrorCode;
use assist_protocol::live::{
    AudioLayout, ClientMessage, Limits, MAX_AUDIO_FRAME_BYTES, MAX_TEXT_FRAME_BYTES, Ready,
    SAMPLE_RATE, ServerMessage, Speaker, Start, close,
};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use crate::caller::Caller;
use crate::db::device::LiveSessionRow;
use crate::error::ApiError;
use crate::http::auth::bearer;
use crate::http::routes::device::{check_client_id, device_of};
use crate::live::{Session, channels_of, drive_channel, finish, on_final};
use crate::state::AppState;
use crate::time::now_ms;

/// Time the phone has to send `start` after connecting.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the token is checked again during a call.
const TOKEN_CHECK: Duration = Duration::from_secs(5);
/// Audio a phone may be ahead of real time before reading slows down, seconds.
const BURST_S: f64 = 2.0;
/// Audio held per channel for speech recognition that is behind (30 s).
const MAX_PENDING_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// Messages the writer takes from the session per lock.
const WRITE_BATCH: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new().route("/live", get(upgrade))
}

#[derive(Debug, Deserialize)]
struct LiveQuery {
    access_token: Option<String>,
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let secret = if headers.contains_key(header::AUTHORIZATION) {
        bearer(&headers)?.to_string()
    } else {
        q.access_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            ApiError::Unauthorized(
                "send the device token as `Authorization: Bearer …` or `?access_token=…`".into(),
            )
        })?
    };
    let caller = Caller::from_secret(&state.db, &secret).await?;
    let device_id = device_of(&caller)?;
    if state.live.active() >= state.config.live.live_max_sessions {
        return Err(ApiError::Overloaded {
            message: format!(
                "this node holds {} live sessions, its limit (`live_max_sessions`); try again shortly",
                state.live.active()
            ),
            retry_after_secs: 2,
        });
    }
    Ok(ws
        .max_message_size(MAX_AUDIO_FRAME_BYTES.max(MAX_TEXT_FRAME_BYTES) * 4)
        .on_upgrade(move |socket| connection(state, caller, secret, device_id, socket)))
}

/// Why a connection must close, sent to the writer.
type CloseRequest = Option<(u16, String)>;

fn close_message(code: u16, reason: &str) -> Message {
    // A close reason is at most 123 bytes.
    let mut r = reason.to_string();
    while r.len() > 120 {
        r.pop();
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: r.into(),
    }))
}

fn json(msg: &ServerMessage) -> Message {
    Message::Text(
        serde_json::to_string(msg)
            .unwrap_or_else(|_| "{}".into())
            .into(),
    )
}

async fn connection(
    state: AppState,
    caller: Caller,
    secret: String,
    device_id: String,
    socket: WebSocket,
) {
    let (mut sink, mut stream) = socket.split();
    let start = match tokio::time::timeout(START_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ClientMessage>(&t) {
            Ok(ClientMessage::Start(s)) => s,
            Ok(_) => {
                let _ = sink
                    .send(close_message(
                        close::BAD_START,
                        "the first frame must be `start`",
                    ))
                    .await;
                return;
            }
            Err(e) => {
                let _ = sink
                    .send(close_message(close::BAD_START, &format!("bad start: {e}")))
                    .await;
                return;
            }
        },
        _ => {
            let _ = sink
                .send(close_message(
                    close::BAD_START,
                    "send a `start` text frame first (within 10 s)",
                ))
                .await;
            return;
        }
    };
    if let Err((code, reason)) = check_start(&state, &start) {
        let _ = sink.send(close_message(code, &reason)).await;
        return;
    }
    let (slot, resumed, last_seq) = match open_session(&state, &caller, &device_id, start).await {
        Ok(v) => v,
        Err((code, reason)) => {
            let _ = sink.send(close_message(code, &reason)).await;
            return;
        }
    };
    let (generation, notify) = {
        let mut s = slot.lock().await;
        let (generation, notify) = s.attach(last_seq);
        let ready = Ready {
            session_id: s.row.id.clone(),
            resumed,
            audio_received_samples: s.audio_received_samples(),
            speech: state.speech.is_some(),
            limits: Limits {
                max_speed: state.config.live.live_max_speed,
                stall_timeout_s: state.config.live.live_stall_timeout_secs,
                resume_window_s: state.config.live.live_resume_window_secs,
            },
        };
        s.direct(ServerMessage::Ready(ready));
        (generation, notify)
    };
    let (close_tx, close_rx) = watch::channel::<CloseRequest>(None);
    let done = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        state.clone(),
        Arc::clone(&slot),
        generation,
        notify,
        sink,
        close_rx,
        done.clone(),
    ));
    read_loop(&state, &slot, &secret, &mut stream, close_tx, &done).await;
    // Let the writer flush (after `end`) or send the close it was asked to.
    let _ = tokio::time::timeout(
        Duration::from_secs(state.config.live.live_stall_timeout_secs + 2),
        writer,
    )
    .await;
    let mut s = slot.lock().await;
    if s.ended {
        return;
    }
    s.detach(generation);
    let session_id = s.row.id.clone();
    drop(s);
    // Wait for a resume; finish the call if none comes.
    let window = Duration::from_secs(state.config.live.live_resume_window_secs);
    tokio::spawn(async move {
        tokio::time::sleep(window).await;
        let expired = {
            let s = slot.lock().await;
            !s.ended && s.outlet.is_none() && s.detached_at.is_some_and(|t| t.elapsed() >= window)
        };
        if expired {
            tracing::info!(session = %session_id, "no resume within the window");
            finish(&state, &slot, "disconnected").await;
        }
    });
}

/// Check what `start` declares; a close code and reason otherwise.
fn check_start(state: &AppState, start: &Start) -> Result<(), (u16, String)> {
    if start.audio.layout != AudioLayout::None
        && (start.audio.encoding != "pcm_s16le" || start.audio.sample_rate != SAMPLE_RATE)
    {
        return Err((
            close::UNSUPPORTED_AUDIO,
            format!(
                "audio {} at {} Hz is not supported; send pcm_s16le at {SAMPLE_RATE} Hz",
                start.audio.encoding, start.audio.sample_rate
            ),
        ));
    }
    check_client_id("client_call_id", &start.client_call_id)
        .map_err(|e| (close::BAD_START, e.to_string()))?;
    if let Some(l) = &start.language {
        crate::speech::check_language(l).map_err(|e| (close::BAD_START, e.to_string()))?;
    }
    if let Some(k) = start.top_k
        && !(1..=10).contains(&k)
    {
        return Err((close::BAD_START, "top_k must be between 1 and 10".into()));
    }
    let _ = state;
    Ok(())
}

/// Resume the named session, continue this device's session of the same
/// call, or begin a new one. Returns it, whether it was resumed and the
/// phone's last seen `seq`.
async fn open_session(
    state: &AppState,
    caller: &Caller,
    device_id: &str,
    start: Start,
) -> Result<(Arc<Mutex<Session>>, bool, u64), (u16, String)> {
    if let Some(resume) = &start.resume {
        let Some(slot) = state.live.get(&resume.session_id) else {
            return Err((
                close::UNKNOWN_SESSION,
                format!(
                    "no live session `{}` here (ended or expired); start anew",
                    resume.session_id
                ),
            ));
        };
        {
            let s = slot.lock().await;
            if s.row.device_id != device_id || s.ended {
                return Err((
                    close::UNKNOWN_SESSION,
                    format!("no live session `{}` for this device", resume.session_id),
                ));
            }
        }
        return Ok((slot, true, resume.last_seq));
    }
    if let Some(slot) = state.live.find(device_id, &start.client_call_id).await {
        // The same call again without resume: a fresh event stream.
        return Ok((slot, false, 0));
    }
    let top_k = start
        .top_k
        .unwrap_or(state.config.live.live_top_k)
        .clamp(1, 10);
    let layout = match start.audio.layout {
        AudioLayout::None => "none",
        AudioLayout::Mixed => "mixed",
        AudioLayout::PerSpeaker => "per_speaker",
    };
    let row = LiveSessionRow {
        id: format!("live_{}", uuid::Uuid::now_v7().simple()),
        org_id: caller.org_id().to_string(),
        rep_user_id: caller.user.id.clone(),
        team_id: caller.user.team_id.clone(),
        device_id: device_id.to_string(),
        client_call_id: start.client_call_id.clone(),
        call_id: format!("call_{}", uuid::Uuid::now_v7().simple()),
        language: start.language.clone(),
        audio_layout: layout.into(),
        started_at: now_ms(),
        ended_at: None,
        end_reason: None,
    };
    let internal = |e: crate::db::DbError| {
        tracing::error!(error = %e, "cannot open a live session");
        (
            close::OVERLOADED,
            "the server could not open the session; retry".to_string(),
        )
    };
    let (row, created) = state.db.create_live_session(&row).await.map_err(internal)?;
    if row.ended_at.is_some() {
        return Err((
            close::BAD_START,
            format!(
                "call `{}` already ended; use a new client_call_id",
                row.client_call_id
            ),
        ));
    }
    let mut session = Session::new(&state.config, row, caller.clone(), start, top_k);
    if !created {
        // This node restarted mid-call: continue the stored numbering.
        let segments = state
            .db
            .live_segments(&session.row.id)
            .await
            .map_err(internal)?;
        session.skip_to(segments.last().map_or(0, |s| s.seq as u64) + 1);
    }
    metrics::counter!("assist_live_sessions_total").increment(1);
    Ok((state.live.insert(session), false, 0))
}

async fn read_loop(
    state: &AppState,
    slot: &Arc<Mutex<Session>>,
    secret: &str,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    close_tx: watch::Sender<CloseRequest>,
    done: &CancellationToken,
) {
    let mut token_check = tokio::time::interval(TOKEN_CHECK);
    token_check.tick().await;
    let mut warned_no_speech = false;
    loop {
        let frame = tokio::select! {
            _ = done.cancelled() => return,
            _ = state.shutdown.cancelled() => {
                let _ = close_tx.send(Some((close::GOING_AWAY, "the server is shutting down; resume later".into())));
                return;
            }
            _ = token_check.tick() => {
                if let Err(e) = Caller::from_secret(&state.db, secret).await
                    && matches!(e, ApiError::Unauthorized(_))
                {
                    let _ = close_tx.send(Some((close::UNAUTHORIZED, e.to_string())));
                    return;
                }
                continue;
            }
            frame = stream.next() => frame,
        };
        match frame {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Binary(bytes))) => {
                if bytes.len() > MAX_AUDIO_FRAME_BYTES {
                    let _ = close_tx.send(Some((
                        close::FRAME_TOO_LARGE,
                        format!("audio frames are at most {MAX_AUDIO_FRAME_BYTES} bytes"),
                    )));
                    return;
                }
                on_audio(state, slot, &bytes, &mut warned_no_speech).await;
            }
            Some(Ok(Message::Text(text))) => {
                if text.len() > MAX_TEXT_FRAME_BYTES {
                    let _ = close_tx.send(Some((
                        close::FRAME_TOO_LARGE,
                        format!("text frames are at most {MAX_TEXT_FRAME_BYTES} bytes"),
                    )));
                    return;
                }
                match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Start(_)) => {
                        let _ = close_tx.send(Some((
                            close::BAD_START,
                            "`start` was sent twice on one connection".into(),
                        )));
                        return;
                    }
                    Ok(ClientMessage::End) => {
                        let (state, slot) = (state.clone(), Arc::clone(slot));
                        tokio::spawn(async move { finish(&state, &slot, "ended").await });
                    }
                    Ok(msg) => on_message(state, slot, msg).await,
                    Err(e) => {
                        slot.lock().await.direct(ServerMessage::Error {
                            code: ErrorCode::InvalidJson,
                            message: format!("this frame is not a valid message: {e}"),
                        });
                    }
                }
            }
            Some(Ok(_)) => {} // pings are answered by the library
        }
    }
}

async fn on_audio(
    state: &AppState,
    slot: &Arc<Mutex<Session>>,
    bytes: &[u8],
    warned_no_speech: &mut bool,
) {
    let mut s = slot.lock().await;
    let error = |s: &mut Session, message: String| {
        s.direct(ServerMessage::Error {
            code: ErrorCode::InvalidRequest,
            message,
        })
    };
    let Some((&channel, pcm)) = bytes.split_first() else {
        return error(&mut s, "an empty audio frame".into());
    };
    let layout = s.start.audio.layout;
    if !channels_of(layout).contains(&channel) {
        return error(
            &mut s,
            format!(
                "audio on channel {channel}, which this session's layout ({layout:?}) does not have"
            ),
        );
    }
    if pcm.len() % 2 != 0 {
        return error(
            &mut s,
            format!(
                "an audio frame of {} sample bytes: PCM16 needs an even number",
                pcm.len()
            ),
        );
    }
    if state.speech.is_none() {
        if !*warned_no_speech {
            *warned_no_speech = true;
            error(
                &mut s,
                "speech recognition is off on this server: audio is ignored, send text turns"
                    .into(),
            );
        }
        return;
    }
    let samples: Vec<f32> = pcm
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let first = *s.first_audio.get_or_insert_with(Instant::now);
    let Some(c) = s.channels.get_mut(&channel) else {
        return;
    };
    c.received += samples.len() as u64;
    c.pending.extend_from_slice(&samples);
    // Speech recognition this far behind: skip the oldest audio rather than
    // hold it without bound (the uploaded recording has all of it).
    let skipped = c.pending.len().saturating_sub(MAX_PENDING_SAMPLES);
    if skipped > 0 {
        c.pending.drain(..skipped);
        metrics::counter!("assist_live_audio_skipped_samples_total").increment(skipped as u64);
    }
    let received_s = c.received as f64 / f64::from(SAMPLE_RATE);
    let run = !c.busy && c.pending.len() >= 4_000;
    if skipped > 0
        && s.skipped_warned
            .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
    {
        s.skipped_warned = Some(Instant::now());
        s.direct(ServerMessage::Error {
            code: ErrorCode::Overloaded,
            message: format!(
                "speech recognition is behind on channel {channel}: {:.1} s of audio skipped live (the uploaded recording keeps it)",
                skipped as f64 / f64::from(SAMPLE_RATE)
            ),
        });
    }
    drop(s);
    if run {
        let (state, slot) = (state.clone(), Arc::clone(slot));
        tokio::spawn(async move {
            if let Err(e) = drive_channel(state, slot, channel, false).await {
                tracing::warn!(error = %e, "live speech step failed");
            }
        });
    }
    // Faster than real time: stop reading until the clock catches up.
    let max_speed = state.config.live.live_max_speed.max(0.1);
    let allowed_at = first + Duration::from_secs_f64(((received_s - BURST_S) / max_speed).max(0.0));
    let now = Instant::now();
    if allowed_at > now {
        tokio::time::sleep(allowed_at - now).await;
    }
}

async fn on_message(state: &AppState, slot: &Arc<Mutex<Session>>, msg: ClientMessage) {
    let mut s = slot.lock().await;
    match msg {
        ClientMessage::Text {
            speaker,
            text,
            utterance_id,
        } => {
            if let Err(e) = check_client_id("utterance_id", &utterance_id) {
                return s.direct(ServerMessage::Error {
                    code: ErrorCode::InvalidRequest,
                    message: e.to_string(),
                });
            }
            if text.trim().is_empty() || text.chars().count() > 2000 {
                return s.direct(ServerMessage::Error {
                    code: ErrorCode::InvalidRequest,
                    message: "a text turn must have 1–2000 characters".into(),
                });
            }
            if s.seen_utterance(&utterance_id) {
                return;
            }
            let stored = state
                .db
                .live_utterance_seen(&s.row.id, &utterance_id)
                .await
                .unwrap_or(false);
            if stored {
                return;
            }
            let speaker = if speaker == Speaker::Unknown {
                Speaker::Customer
            } else {
                speaker
            };
            drop(s);
            if let Err(e) =
                on_final(state, slot, speaker, &text, 0.0, 0.0, Some(&utterance_id)).await
            {
                tracing::warn!(error = %e, "a live text turn failed");
                slot.lock().await.direct(ServerMessage::Error {
                    code: e.code(),
                    message: format!("the text turn could not be processed: {e}"),
                });
            }
        }
        ClientMessage::Feedback(f) => {
            if let Err(e) = check_client_id("feedback_id", &f.feedback_id) {
                return s.direct(ServerMessage::Error {
                    code: ErrorCode::InvalidRequest,
                    message: e.to_string(),
                });
            }
            let payload = serde_json::to_string(&f).unwrap_or_default();
            let action = match f.action {
                assist_protocol::live::FeedbackAction::Used => "used",
                assist_protocol::live::FeedbackAction::Dismissed => "dismissed",
            };
            let result = state
                .db
                .record_feedback(
                    &s.row.org_id,
                    &s.row.rep_user_id,
                    &s.row.device_id,
                    &f.feedback_id,
                    &f.suggestion_id,
                    action,
                    &payload,
                    now_ms(),
                )
                .await;
            match result {
                Ok(new) => {
                    metrics::counter!("assist_live_feedback_total", "action" => action)
                        .increment(u64::from(new));
                    s.direct(ServerMessage::FeedbackAck {
                        feedback_id: f.feedback_id,
                        duplicate: !new,
                    })
                }
                Err(e) => {
                    let e = ApiError::from(e);
                    s.direct(ServerMessage::Error {
                        code: e.code(),
                        message: e.to_string(),
                    })
                }
            }
        }
        ClientMessage::Start(_) | ClientMessage::End => {}
    }
}

async fn write_loop(
    state: AppState,
    slot: Arc<Mutex<Session>>,
    generation: u64,
    notify: Arc<tokio::sync::Notify>,
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut close_rx: watch::Receiver<CloseRequest>,
    done: CancellationToken,
) {
    let stall = Duration::from_secs(state.config.live.live_stall_timeout_secs.max(1));
    let _guard = done.clone().drop_guard();
    loop {
        loop {
            let batch = slot.lock().await.next_batch(generation, WRITE_BATCH);
            let Some((messages, close_now)) = batch else {
                let _ = tokio::time::timeout(
                    Duration::from_millis(500),
                    sink.send(close_message(
                        close::NORMAL,
                        "replaced by a newer connection of this session",
                    )),
                )
                .await;
                return;
            };
            if messages.is_empty() && !close_now {
                break;
            }
            for m in &messages {
                match tokio::time::timeout(stall, sink.send(json(m))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        metrics::counter!("assist_live_stalled_total").increment(1);
                        let _ = tokio::time::timeout(
                            Duration::from_millis(200),
                            sink.send(close_message(
                                close::CLIENT_TOO_SLOW,
                                "the phone did not read; resume and read faster",
                            )),
                        )
                        .await;
                        return;
                    }
                }
            }
            if close_now {
                let _ = tokio::time::timeout(
                    stall,
                    sink.send(close_message(close::NORMAL, "the call ended")),
                )
                .await;
                return;
            }
        }
        tokio::select! {
            _ = notify.notified() => {}
            changed = close_rx.changed() => {
                let request = close_rx.borrow().clone();
                if changed.is_err() || request.is_some() {
                    if let Some((code, reason)) = request {
                        let _ = tokio::time::timeout(stall, sink.send(close_message(code, &reason))).await;
                    }
                    return;
                }
            }
        }
    }
}
