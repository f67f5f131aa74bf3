//! The writer half of a connection: the session's log from the phone's
//! cursor, then the latest partials.

use super::*;

pub(super) async fn write_loop(
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
