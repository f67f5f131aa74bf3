//! From audio and text turns to finals, suggestions and risk findings.

use std::sync::Arc;

use assist_protocol::ErrorCode;
use assist_protocol::live::{LiveRisk, ServerMessage, Speaker, Suggestion, TranscriptPiece};
use tokio::sync::Mutex;

use crate::alerts::{Commit, Line, Origin, Owner};
use crate::caller::Caller;
use crate::db::device::{LiveSegmentRow, LiveSessionRow, NewLiveSuggestion};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;
use assist_indexer::retriever::Mode;

use super::hub::{CONTEXT_TURNS, Session, text_language};

/// One final piece: log it, store it with its suggestions, risk-check it.
///
/// The session is locked only to log: the final goes to the phone before
/// the search runs, and audio keeps flowing while it does.
pub async fn on_final(
    state: &AppState,
    slot: &Arc<Mutex<Session>>,
    speaker: Speaker,
    text: &str,
    start_s: f64,
    end_s: f64,
    utterance_id: Option<&str>,
) -> Result<(), ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    let piece = TranscriptPiece {
        seq: 0,
        speaker,
        text: text.to_string(),
        start_s,
        end_s,
    };
    let at = log_final(slot, piece).await;
    metrics::counter!("assist_live_finals_total").increment(1);
    let stored = suggest_for(state, slot, &at, speaker, text).await;
    let segment = LiveSegmentRow {
        seq: at.final_seq as i64,
        speaker: Speaker::as_str(speaker).to_string(),
        text: text.to_string(),
        start_ms: (start_s * 1000.0).round() as i64,
        end_ms: (end_s * 1000.0).round() as i64,
        source: if utterance_id.is_some() {
            "text"
        } else {
            "audio"
        }
        .to_string(),
    };
    state
        .db
        .insert_live_final(&at.row, &segment, utterance_id, &stored, now_ms())
        .await?;
    check_risk(state, slot, &at, &segment, speaker, text).await
}

/// What the later steps of a final need from the session.
struct FinalAt {
    final_seq: u64,
    /// The search text (a short utterance leans on the turn before it).
    query: String,
    caller: Caller,
    product: Option<String>,
    top_k: usize,
    row: LiveSessionRow,
}

/// Log the final for the phone and remember a customer's turn as context.
async fn log_final(slot: &Arc<Mutex<Session>>, mut piece: TranscriptPiece) -> FinalAt {
    let mut session = slot.lock().await;
    let final_seq = session.take_seq();
    session.finals += 1;
    piece.seq = final_seq;
    let (speaker, text) = (piece.speaker, piece.text.clone());
    session.log_event(ServerMessage::Final(piece));
    let context: Vec<String> = session.customer_turns.iter().cloned().collect();
    let query = crate::suggest::query_text(&text, &context);
    if speaker != Speaker::Rep {
        session.customer_turns.push_back(text);
        if session.customer_turns.len() > CONTEXT_TURNS {
            session.customer_turns.pop_front();
        }
    }
    FinalAt {
        final_seq,
        query,
        caller: session.caller.clone(),
        product: session.start.product.clone(),
        top_k: session.top_k,
        row: session.row.clone(),
    }
}

/// Suggestions for what the customer said (or anyone, on a mixed channel):
/// logged for the phone, returned to be stored with the final.
async fn suggest_for(
    state: &AppState,
    slot: &Arc<Mutex<Session>>,
    at: &FinalAt,
    speaker: Speaker,
    text: &str,
) -> Vec<NewLiveSuggestion> {
    let mut stored = Vec::new();
    let wants = speaker != Speaker::Rep
        && state.search.is_some()
        && text.chars().filter(|c| c.is_alphanumeric()).count() >= 2;
    if !wants {
        return stored;
    }
    let query = crate::suggest::SuggestQuery {
        mode: Mode::Hybrid,
        text: at.query.clone(),
        // The language of what was said, not the recogniser's hint: a
        // Chinese turn in an English call still wants Chinese scripts.
        language: Some(text_language(text).to_string()),
        product: at.product.clone(),
        scenario: None,
        k: at.top_k,
    };
    let found =
        crate::suggest::suggest(&state.db, state.search.as_ref(), at.caller.org_id(), query).await;
    let mut session = slot.lock().await;
    match found {
        Ok(resp) => {
            let mut list = Vec::with_capacity(resp.suggestions.len());
            for (rank, s) in resp.suggestions.into_iter().enumerate() {
                let id = format!("sug_{}", uuid::Uuid::now_v7().simple());
                stored.push(NewLiveSuggestion {
                    id: id.clone(),
                    final_seq: at.final_seq as i64,
                    script_id: s.script_id.clone(),
                    rank: rank as i64 + 1,
                    score: s.score,
                });
                list.push(Suggestion {
                    suggestion_id: id,
                    script_id: s.script_id,
                    title: s.title,
                    body: s.body,
                    scenario: s.scenario.as_str().to_string(),
                    score: s.score as f32,
                    bm25_rank: s.why.bm25_rank,
                    vector_rank: s.why.vector_rank,
                });
            }
            if !list.is_empty() {
                let seq = session.take_seq();
                session.suggestions += list.len() as u64;
                session.log_event(ServerMessage::Suggestions {
                    seq,
                    final_seq: at.final_seq,
                    query: at.query.clone(),
                    suggestions: list,
                });
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, session = %at.row.id, "live suggestion failed");
            session.direct(ServerMessage::Error {
                code: e.code(),
                message: format!("no suggestions for this utterance: {e}"),
            });
        }
    }
    stored
}

/// Risk: alerts for managers, and the findings for the phone. The final is
/// stored already; the alert write has no rows of its own.
async fn check_risk(
    state: &AppState,
    slot: &Arc<Mutex<Session>>,
    at: &FinalAt,
    segment: &LiveSegmentRow,
    speaker: Speaker,
    text: &str,
) -> Result<(), ApiError> {
    let ingest = state.alert_ingest();
    let row = &at.row;
    let line = Line {
        origin: Origin::Live {
            call_id: row.call_id.clone(),
            session_id: row.id.clone(),
            final_seq: at.final_seq as i64,
            start_ms: segment.start_ms,
            end_ms: segment.end_ms,
        },
        speaker,
        text,
    };
    let owner = Owner {
        org_id: &row.org_id,
        rep_user_id: &row.rep_user_id,
        team_id: row.team_id.as_deref(),
    };
    let checked = ingest.check(owner, &[line]).await?;
    if checked.is_empty() {
        return Ok(());
    }
    let raised = ingest
        .commit(checked, Commit::New, crate::alerts::no_rows())
        .await?
        .raised;
    let mut session = slot.lock().await;
    for e in &raised.events {
        let seq = session.take_seq();
        session.risks += 1;
        session.log_event(ServerMessage::Risk(LiveRisk {
            seq,
            final_seq: at.final_seq,
            speaker,
            category: e.category.clone(),
            severity: e.severity.clone(),
            evidence: assist_risk::normalize::char_slice(
                text,
                e.char_start.max(0) as usize,
                e.char_end.max(0) as usize,
            ),
            suppressed: e.suppressed.clone(),
        }));
    }
    Ok(())
}

/// New audio of `channel`: find the utterances it completes and queue them
/// for the recogniser. Returns seconds of speech dropped because the
/// channel already had [`super::asr::MAX_QUEUED_FINALS`] finals waiting.
pub fn push_audio(
    state: &AppState,
    slot: &Arc<Mutex<Session>>,
    session: &mut Session,
    channel: u8,
    samples: &[f32],
    finish: bool,
) -> f64 {
    let Some(c) = session.channels.get_mut(&channel) else {
        return 0.0;
    };
    let segmenter = &mut c.segmenter;
    let found = vad_pool().install(|| {
        if finish {
            segmenter.push(samples).and_then(|mut u| {
                u.extend(segmenter.finish()?);
                Ok(u)
            })
        } else {
            segmenter.push(samples)
        }
    });
    let utterances = match found {
        Ok(u) => u,
        Err(e) => {
            session.direct(ServerMessage::Error {
                code: ErrorCode::InvalidRequest,
                message: format!("an audio frame was not usable: {e}"),
            });
            return 0.0;
        }
    };
    let mut dropped_s = 0.0;
    let customer = super::hub::speaker_of(channel) != Speaker::Rep;
    for u in utterances {
        if u.tentative {
            // Decode at the pause only with time to spare, and only what
            // drives suggestions: wasted if the speaker goes on.
            let asr = &state.live.asr;
            // One at a time: a tentative that became a final stays until decoded.
            let free = c.tentative.as_ref().is_none_or(|t| !t.final_due);
            if customer
                && free
                && asr.finals_waiting() == 0
                && asr.busy_share() < super::asr::TENTATIVE_MAX_BUSY
            {
                c.tentative = Some(super::hub::Tentative {
                    index: u.index,
                    end_ms: u.end_ms,
                    heard: None,
                    final_due: false,
                    reason: assist_models::vad::EndReason::Silence,
                });
                asr.enqueue(state, slot, channel, u);
            }
            continue;
        }
        if let Some(reason) = u.end
            && let Some(t) = &mut c.tentative
            && t.index == u.index
            && t.end_ms == u.end_ms
        {
            // The pause held: the early decode of this very audio is the final.
            c.inflight += 1;
            metrics::counter!("assist_live_utterances_total").increment(1);
            match t.heard.take() {
                Some(heard) => {
                    c.tentative = None;
                    metrics::counter!("assist_live_tentative_used_total").increment(1);
                    let (state, slot) = (state.clone(), Arc::clone(slot));
                    tokio::spawn(async move {
                        super::asr::finish_final(&state, &slot, heard).await;
                    });
                }
                None => {
                    t.final_due = true;
                    t.reason = reason;
                }
            }
            continue;
        }
        if u.is_final() {
            if c.tentative.as_ref().is_some_and(|t| !t.final_due) {
                c.tentative = None;
            }
            if c.inflight >= super::asr::MAX_QUEUED_FINALS {
                dropped_s += u.duration_ms() as f64 / 1000.0;
                metrics::counter!("assist_live_utterances_dropped_total").increment(1);
                continue;
            }
            c.inflight += 1;
            metrics::counter!("assist_live_utterances_total").increment(1);
        }
        state.live.asr.enqueue(state, slot, channel, u);
    }
    // Speech resumed after a pause: its early decode is stale.
    let post_roll = u64::from(c.segmenter.options().post_roll_ms);
    if let Some(t) = &c.tentative
        && !t.final_due
        && c.segmenter
            .last_voice_end_ms()
            .is_some_and(|v| v + post_roll > t.end_ms)
    {
        c.tentative = None;
    }
    dropped_s
}

/// The thread the VAD's small products run on. Candle hands every product
/// to rayon; from the global pool a 32 ms frame's would queue behind the
/// live Whisper's large ones (and hold the session meanwhile), so voice
/// activity gets a one-thread pool of its own.
fn vad_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "assist-vad".into())
            .build()
            .expect("a one-thread pool starts")
    })
}

/// Whether every final of the session has been recognised and stored.
fn settled(session: &Session) -> bool {
    session.channels.values().all(|c| c.inflight == 0)
}

/// Flush every channel and mark the session ended (stored; removed from the hub).
pub async fn finish(state: &AppState, slot: &Arc<Mutex<Session>>, reason: &str) {
    {
        // The utterance going on when the call ends is a final too.
        let mut s = slot.lock().await;
        let channels: Vec<u8> = s.channels.keys().copied().collect();
        for ch in channels {
            push_audio(state, slot, &mut s, ch, &[], true);
        }
    }
    // Wait for the recogniser and storage of what is queued (bounded: a
    // node shutting down does not wait forever).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !settled(&*slot.lock().await) && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut s = slot.lock().await;
    if s.ended {
        return;
    }
    s.ended = true;
    let id = s.row.id.clone();
    if let Err(e) = state.db.end_live_session(&id, reason, now_ms()).await {
        tracing::warn!(error = %e, session = %id, "could not mark the live session ended");
    }
    let ended = ServerMessage::Ended {
        session_id: id.clone(),
        finals: s.finals,
        suggestions: s.suggestions,
        risks: s.risks,
    };
    s.direct(ended);
    if let Some(o) = &mut s.outlet {
        o.close_when_flushed = true;
        o.notify.notify_one();
    }
    drop(s);
    state.live.remove(&id);
    tracing::info!(session = %id, reason, "live session ended");
}
