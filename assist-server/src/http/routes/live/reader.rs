//! The reader half of a connection: frames in, paced audio to the
//! recognisers, text turns, feedback and `end`.

use super::*;

pub(super) async fn read_loop(
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
            Some(Err(e)) if is_too_long(&e) => {
                // The library refused a frame over `max_message_size`: say
                // so with 4413 (the frame was read whole, so the close is
                // delivered rather than a reset).
                let _ = close_tx.send(Some((
                    close::FRAME_TOO_LARGE,
                    format!(
                        "frames are at most {} bytes",
                        MAX_AUDIO_FRAME_BYTES.max(MAX_TEXT_FRAME_BYTES)
                    ),
                )));
                return;
            }
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

/// Whether a read failed because a frame or message was over the limit.
fn is_too_long(e: &axum::Error) -> bool {
    matches!(
        std::error::Error::source(e).and_then(|s| s.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}

pub(super) async fn on_audio(
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
    let rate = f64::from(s.start.audio.sample_rate.max(1));
    let first = *s.first_audio.get_or_insert_with(Instant::now);
    let Some(c) = s.channels.get_mut(&channel) else {
        return;
    };
    c.received += samples.len() as u64;
    let received_s = c.received as f64 / rate;
    // Voice activity and endpointing run here (well under a millisecond per
    // 32 ms frame); whole utterances go to the recogniser's queue.
    let dropped_s = push_audio(state, slot, &mut s, channel, &samples, false);
    if dropped_s > 0.0
        && s.skipped_warned
            .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
    {
        s.skipped_warned = Some(Instant::now());
        s.direct(ServerMessage::Error {
            code: ErrorCode::Overloaded,
            message: format!(
                "speech recognition is behind on channel {channel}: {dropped_s:.1} s of speech skipped live (the uploaded recording keeps it)"
            ),
        });
    }
    drop(s);
    // Faster than real time: stop reading until the clock catches up.
    let max_speed = state.config.live.live_max_speed.max(0.1);
    let allowed_at = first + Duration::from_secs_f64(((received_s - BURST_S) / max_speed).max(0.0));
    let now = Instant::now();
    if allowed_at > now {
        tokio::time::sleep(allowed_at - now).await;
    }
}

pub(super) async fn on_message(state: &AppState, slot: &Arc<Mutex<Session>>, msg: ClientMessage) {
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
