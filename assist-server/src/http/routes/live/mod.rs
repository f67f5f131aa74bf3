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
//!
//! This file upgrades and runs a connection; `open` starts or resumes its
//! session, `reader` and `writer` are the two halves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::extract::Query;
use assist_protocol::ErrorCode;
use assist_protocol::live::{
    AudioLayout, ClientMessage, Limits, MAX_AUDIO_FRAME_BYTES, MAX_TEXT_FRAME_BYTES, Ready,
    SAMPLE_RATE, SAMPLE_RATES, ServerMessage, Speaker, Start, close,
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
use crate::live::{Session, channels_of, finish, on_final, push_audio};
use crate::state::AppState;
use crate::time::now_ms;

mod open;
mod reader;
mod writer;

use open::{check_start, open_session};
use reader::read_loop;
use writer::write_loop;

/// Time the phone has to send `start` after connecting.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the token is checked again during a call.
pub(super) const TOKEN_CHECK: Duration = Duration::from_secs(5);
/// Audio a phone may be ahead of real time before reading slows down, seconds.
pub(super) const BURST_S: f64 = 2.0;
/// Messages the writer takes from the session per lock.
pub(super) const WRITE_BATCH: usize = 64;

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
pub(super) type CloseRequest = Option<(u16, String)>;

pub(super) fn close_message(code: u16, reason: &str) -> Message {
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

pub(super) fn json(msg: &ServerMessage) -> Message {
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
