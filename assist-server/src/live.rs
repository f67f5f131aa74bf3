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
//! - per audio channel, a [`StreamingTranscriber`] (behind a mutex, so a job
//!   refused by the busy Whisper thread loses nothing), the audio not yet
//!   given to it, and how much arrived;
//! - the row in `live_sessions`; every final is stored in `live_segments`
//!   with the suggestions made for it (`live_suggestions`) before it is sent.
//!
//! Final customer utterances are searched (hybrid, approved scripts only)
//! and risk-checked; alerts go through [`crate::alerts::raise`] like calls and
//! chats, with the session's reserved call id, so they reach managers' streams
//! and webhooks at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use assist_models::speech::streaming::{StreamingOptions, StreamingTranscriber};
use assist_protocol::ErrorCode;
use assist_protocol::live::{
    AUDIO_CHANNEL_CUSTOMER, AUDIO_CHANNEL_MIXED, AUDIO_CHANNEL_REP, AudioLayout, LiveRisk,
    ServerMessage, Speaker, Start, Suggestion, TranscriptPiece,
};
use tokio::sync::{Mutex, Notify};

use crate::alerts::{HitInContext, Origin, raise};
use crate::auth::Caller;
use crate::db::device::{LiveSegmentRow, LiveSessionRow, NewLiveSuggestion};
use crate::error::ApiError;
use crate::risk::SpeakerRole;
use crate::state::AppState;
use crate::time::now_ms;
use assist_indexer::retriever::Mode;

/// Events kept per session for replay before the oldest sent ones go.
const LOG_KEEP: usize = 10_000;
/// Audio is given to the streamer in pieces of at least this many samples.
const MIN_FEED: usize = 4_000;
/// Customer turns used as context for a short utterance.
const CONTEXT_TURNS: usize = 3;

/// Every live session on this node.
#[derive(Debug, Default)]
pub struct LiveHub {
    sessions: StdMutex<HashMap<String, Arc<Mutex<Session>>>>,
    active: AtomicUsize,
}

/// One speaker's audio channel.
#[derive(Debug)]
pub struct Channel {
    pub stream: Arc<StdMutex<StreamingTranscriber>>,
    /// Audio received and not yet given to the streamer.
    pub pending: Vec<f32>,
    /// All samples received on this channel.
    pub received: u64,
    /// A step is running on the Whisper thread.
    pub busy: bool,
}

/// What the current connection's writer sends besides the log.
#[derive(Debug, Default)]
pub struct Outlet {
    /// Which connection this is; an older writer stops when it changes.
    pub generation: u64,
    pub notify: Arc<Notify>,
    /// Direct answers (ready, acks, errors, ended), in order.
    pub direct: VecDeque<ServerMessage>,
    /// Latest unsent partial per speaker.
    pub partials: HashMap<Speaker, TranscriptPiece>,
    /// Partials replaced before they were sent, not yet reported.
    pub dropped: u64,
    /// Highest `seq` of the log already sent.
    pub sent_seq: u64,
    /// Close after everything is sent (the phone said `end`).
    pub close_when_flushed: bool,
}

/// The state of one live call.
#[derive(Debug)]
pub struct Session {
    pub row: LiveSessionRow,
    pub caller: Caller,
    pub start: Start,
    pub top_k: usize,
    next_seq: u64,
    /// Finals, suggestions and risks in `seq` order.
    log: Vec<ServerMessage>,
    pub channels: HashMap<u8, Channel>,
    pub first_audio: Option<Instant>,
    texts_seen: HashSet<String>,
    customer_turns: VecDeque<String>,
    pub finals: u64,
    pub suggestions: u64,
    pub risks: u64,
    pub outlet: Option<Outlet>,
    generation: u64,
    pub ended: bool,
    /// When the last connection went away (for the resume window).
    pub detached_at: Option<Instant>,
    /// When the phone was last told that audio was skipped.
    pub skipped_warned: Option<Instant>,
}

impl LiveHub {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Mutex<Session>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Find the in-memory session of a device's client call id.
    pub async fn find(&self, device_id: &str, client_call_id: &str) -> Option<Arc<Mutex<Session>>> {
        let all: Vec<Arc<Mutex<Session>>> = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for s in all {
            let g = s.lock().await;
            if g.row.device_id == device_id && g.row.client_call_id == client_call_id {
                drop(g);
                return Some(s);
            }
        }
        None
    }

    pub fn insert(&self, session: Session) -> Arc<Mutex<Session>> {
        let id = session.row.id.clone();
        let slot = Arc::new(Mutex::new(session));
        let mut all = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if all.insert(id, Arc::clone(&slot)).is_none() {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        slot
    }

    pub fn remove(&self, id: &str) {
        let mut all = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if all.remove(id).is_some() {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Ids of every session (for shutdown).
    pub fn ids(&self) -> Vec<String> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// The channel bytes a layout allows.
pub fn channels_of(layout: AudioLayout) -> &'static [u8] {
    match layout {
        AudioLayout::None => &[],
        AudioLayout::Mixed => &[AUDIO_CHANNEL_MIXED],
        AudioLayout::PerSpeaker => &[AUDIO_CHANNEL_REP, AUDIO_CHANNEL_CUSTOMER],
    }
}

pub fn speaker_of(channel: u8) -> Speaker {
    match channel {
        AUDIO_CHANNEL_REP => Speaker::Rep,
        AUDIO_CHANNEL_CUSTOMER => Speaker::Customer,
        _ => Speaker::Unknown,
    }
}

fn speaker_str(s: Speaker) -> &'static str {
    match s {
        Speaker::Rep => "rep",
        Speaker::Customer => "customer",
        Speaker::Unknown => "unknown",
    }
}

impl Session {
    pub fn new(
        state: &AppState,
        row: LiveSessionRow,
        caller: Caller,
        start: Start,
        top_k: usize,
    ) -> Session {
        let mut channels = HashMap::new();
        for &ch in channels_of(start.audio.layout) {
            let opts = StreamingOptions {
                transcribe: crate::speech::transcribe_options(
                    &state.config,
                    start.language.clone(),
                ),
                ..StreamingOptions::default()
            };
            channels.insert(
                ch,
                Channel {
                    stream: Arc::new(StdMutex::new(StreamingTranscriber::new(opts))),
                    pending: Vec::new(),
                    received: 0,
                    busy: false,
                },
            );
        }
        Session {
            row,
            caller,
            start,
            top_k,
            next_seq: 1,
            log: Vec::new(),
            channels,
            first_audio: None,
            texts_seen: HashSet::new(),
            customer_turns: VecDeque::new(),
            finals: 0,
            suggestions: 0,
            risks: 0,
            outlet: None,
            generation: 0,
            ended: false,
            detached_at: None,
            skipped_warned: None,
        }
    }

    /// Continue numbering at `seq` (a session reopened after a restart).
    pub fn skip_to(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Attach a new connection whose phone has seen events up to `last_seq`.
    /// Returns its generation and the notifier its writer waits on.
    pub fn attach(&mut self, last_seq: u64) -> (u64, Arc<Notify>) {
        self.generation += 1;
        if let Some(old) = &self.outlet {
            // Wake the old writer so it sees it was replaced.
            old.notify.notify_one();
        }
        let notify = Arc::new(Notify::new());
        self.outlet = Some(Outlet {
            generation: self.generation,
            notify: Arc::clone(&notify),
            sent_seq: last_seq,
            ..Outlet::default()
        });
        self.detached_at = None;
        (self.generation, notify)
    }

    /// The connection of `generation` went away.
    pub fn detach(&mut self, generation: u64) {
        if self
            .outlet
            .as_ref()
            .is_some_and(|o| o.generation == generation)
        {
            self.outlet = None;
            self.detached_at = Some(Instant::now());
        }
    }

    /// Send a message to the current connection only (not logged).
    pub fn direct(&mut self, msg: ServerMessage) {
        if let Some(o) = &mut self.outlet {
            o.direct.push_back(msg);
            o.notify.notify_one();
        }
    }

    fn log_event(&mut self, msg: ServerMessage) {
        self.log.push(msg);
        if self.log.len() > LOG_KEEP {
            // A very long call: forget the oldest events already sent (a
            // resume never asks that far back); unsent ones always stay.
            let sent = self.outlet.as_ref().map_or(0, |o| o.sent_seq);
            let sent_idx = self.log.partition_point(|m| m.seq().unwrap_or(0) <= sent);
            let cut = sent_idx.min(self.log.len() - LOG_KEEP / 2);
            self.log.drain(..cut);
        }
        if let Some(o) = &self.outlet {
            o.notify.notify_one();
        }
    }

    fn partial(&mut self, piece: TranscriptPiece) {
        if let Some(o) = &mut self.outlet {
            if o.partials.insert(piece.speaker, piece).is_some() {
                o.dropped += 1;
                metrics::counter!("assist_live_partials_dropped_total").increment(1);
            }
            o.notify.notify_one();
        }
    }

    /// What the writer of `generation` should send next: `None` when it was
    /// replaced; otherwise up to `max` messages (empty: nothing to send).
    pub fn next_batch(
        &mut self,
        generation: u64,
        max: usize,
    ) -> Option<(Vec<ServerMessage>, bool)> {
        let outlet = self.outlet.as_mut()?;
        if outlet.generation != generation {
            return None;
        }
        let mut out: Vec<ServerMessage> = outlet.direct.drain(..).collect();
        let from = self
            .log
            .partition_point(|m| m.seq().unwrap_or(0) <= outlet.sent_seq);
        let take = max.saturating_sub(out.len()).max(1);
        for m in self.log[from..].iter().take(take) {
            outlet.sent_seq = m.seq().unwrap_or(outlet.sent_seq);
            out.push(m.clone());
        }
        let caught_up = from + take >= self.log.len();
        if caught_up {
            if outlet.dropped > 0 {
                out.push(ServerMessage::Dropped {
                    partials: outlet.dropped,
                });
                outlet.dropped = 0;
            }
            let mut partials: Vec<TranscriptPiece> =
                outlet.partials.drain().map(|(_, p)| p).collect();
            partials.sort_by_key(|p| p.seq);
            out.extend(partials.into_iter().map(ServerMessage::Partial));
        }
        let close = caught_up && outlet.close_when_flushed && outlet.direct.is_empty();
        Some((out, close))
    }

    /// Audio the server holds per channel, in samples.
    pub fn audio_received_samples(&self) -> std::collections::BTreeMap<String, u64> {
        self.channels
            .iter()
            .map(|(ch, c)| (ch.to_string(), c.received))
            .collect()
    }

    pub fn seen_utterance(&mut self, id: &str) -> bool {
        !self.texts_seen.insert(id.to_string())
    }

    pub fn log_len(&self) -> usize {
        self.log.len()
    }
}

/// `zh` when a text has more Han characters than Latin letters, else `en`.
pub fn text_language(text: &str) -> &'static str {
    let han = text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c) || ('\u{3400}'..='\u{4dbf}').contains(c))
        .count();
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    if han * 2 >= latin && han > 0 {
        "zh"
    } else {
        "en"
    }
}

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
    let (final_seq, query, caller, product, top_k, row) = {
        let mut session = slot.lock().await;
        let final_seq = session.take_seq();
        session.finals += 1;
        session.log_event(ServerMessage::Final(TranscriptPiece {
            seq: final_seq,
            speaker,
            text: text.to_string(),
            start_s,
            end_s,
        }));
        let context: Vec<String> = session.customer_turns.iter().cloned().collect();
        let query = crate::routes::suggest::query_text(text, &context);
        if speaker != Speaker::Rep {
            session.customer_turns.push_back(text.to_string());
            if session.customer_turns.len() > CONTEXT_TURNS {
                session.customer_turns.pop_front();
            }
        }
        (
            final_seq,
            query,
            session.caller.clone(),
            session.start.product.clone(),
            session.top_k,
            session.row.clone(),
        )
    };
    metrics::counter!("assist_live_finals_total").increment(1);

    // Suggestions for what the customer said (or anyone, on a mixed channel).
    let mut stored = Vec::new();
    let wants = speaker != Speaker::Rep
        && state.search.is_some()
        && text.chars().filter(|c| c.is_alphanumeric()).count() >= 2;
    if wants {
        let found = crate::routes::suggest::run(
            state,
            &caller,
            Mode::Hybrid,
            &query,
            // The language of what was said, not the recogniser's hint: a
            // Chinese turn in an English call still wants Chinese scripts.
            Some(text_language(text).to_string()),
            product,
            None,
            top_k,
        )
        .await;
        let mut session = slot.lock().await;
        match found {
            Ok(resp) => {
                let mut list = Vec::with_capacity(resp.suggestions.len());
                for (rank, s) in resp.suggestions.into_iter().enumerate() {
                    let id = format!("sug_{}", uuid::Uuid::now_v7().simple());
                    stored.push(NewLiveSuggestion {
                        id: id.clone(),
                        final_seq: final_seq as i64,
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
                        final_seq,
                        query,
                        suggestions: list,
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, session = %row.id, "live suggestion failed");
                session.direct(ServerMessage::Error {
                    code: e.code(),
                    message: format!("no suggestions for this utterance: {e}"),
                });
            }
        }
    }
    let segment = LiveSegmentRow {
        seq: final_seq as i64,
        speaker: speaker_str(speaker).to_string(),
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
        .insert_live_final(&row, &segment, utterance_id, &stored, now_ms())
        .await?;

    // Risk: alerts for managers, and the findings for the phone.
    let role = match speaker {
        Speaker::Rep => SpeakerRole::Rep,
        Speaker::Customer => SpeakerRole::Customer,
        Speaker::Unknown => SpeakerRole::Unknown,
    };
    let mut hits = state
        .screening
        .check_all(&state.db, &row.org_id, &[(text, role)])
        .await?;
    let hits = hits.pop().unwrap_or_default();
    if hits.is_empty() {
        return Ok(());
    }
    let in_context: Vec<HitInContext> = hits
        .into_iter()
        .map(|hit| HitInContext {
            origin: Origin::Live {
                call_id: row.call_id.clone(),
                session_id: row.id.clone(),
                final_seq: final_seq as i64,
                start_ms: segment.start_ms,
                end_ms: segment.end_ms,
            },
            rep_user_id: row.rep_user_id.clone(),
            team_id: row.team_id.clone(),
            speaker: segment.speaker.clone(),
            hit,
        })
        .collect();
    let writer = state.alerts.writer().await;
    let mut tx = state.db.pool().begin().await.map_err(ApiError::internal)?;
    let raised = raise(
        &mut tx,
        &state.db,
        &state.config.alerts,
        &row.org_id,
        in_context,
    )
    .await?;
    tx.commit().await.map_err(ApiError::internal)?;
    drop(writer);
    state.publish_alerts(&raised).await;
    let mut session = slot.lock().await;
    for e in &raised.events {
        let seq = session.take_seq();
        session.risks += 1;
        session.log_event(ServerMessage::Risk(LiveRisk {
            seq,
            final_seq,
            speaker,
            category: e.category.clone(),
            severity: e.severity.clone(),
            evidence: crate::risk::normalize::char_slice(
                text,
                e.char_start.max(0) as usize,
                e.char_end.max(0) as usize,
            ),
            suppressed: e.suppressed.clone(),
        }));
    }
    Ok(())
}

/// Run the streamer of `channel` on the pending audio until none is left
/// (or only a little, unless `finish`). Only one runner per channel.
pub async fn drive_channel(
    state: AppState,
    slot: Arc<Mutex<Session>>,
    channel: u8,
    finish: bool,
) -> Result<(), ApiError> {
    let Some(speech) = state.speech.clone() else {
        return Ok(());
    };
    loop {
        let (stream, chunk) = {
            let mut s = slot.lock().await;
            let Some(c) = s.channels.get_mut(&channel) else {
                return Ok(());
            };
            if c.busy || (c.pending.len() < MIN_FEED && !finish) {
                return Ok(());
            }
            c.busy = true;
            (Arc::clone(&c.stream), std::mem::take(&mut c.pending))
        };
        let result = speech.stream_step(stream, chunk.clone(), finish).await;
        let mut s = slot.lock().await;
        if let Some(c) = s.channels.get_mut(&channel) {
            c.busy = false;
        }
        let update = match result {
            Ok(u) => u,
            Err(ApiError::Overloaded { .. }) => {
                // The Whisper thread is full: keep the audio, try again shortly.
                if let Some(c) = s.channels.get_mut(&channel) {
                    let mut back = chunk;
                    back.append(&mut c.pending);
                    c.pending = back;
                }
                drop(s);
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                s.direct(ServerMessage::Error {
                    code: ErrorCode::Internal,
                    message: "speech recognition failed for a piece of audio; the call goes on"
                        .into(),
                });
                return Err(e);
            }
        };
        drop(s);
        let speaker = speaker_of(channel);
        for seg in &update.finals {
            on_final(
                &state,
                &slot,
                speaker,
                &seg.text,
                seg.start_s,
                seg.end_s,
                None,
            )
            .await?;
        }
        let mut s = slot.lock().await;
        if let Some(p) = &update.partial
            && !p.text.trim().is_empty()
        {
            let seq = s.take_seq();
            s.partial(TranscriptPiece {
                seq,
                speaker,
                text: p.text.trim().to_string(),
                start_s: p.start_s,
                end_s: p.end_s,
            });
        }
        if finish {
            return Ok(());
        }
    }
}

/// Flush every channel and mark the session ended (stored; removed from the hub).
pub async fn finish(state: &AppState, slot: &Arc<Mutex<Session>>, reason: &str) {
    let channels: Vec<u8> = slot.lock().await.channels.keys().copied().collect();
    for ch in channels {
        // Wait for a running step of this channel, then flush it.
        loop {
            let busy = slot.lock().await.channels.get(&ch).is_some_and(|c| c.busy);
            if !busy {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if let Err(e) = drive_channel(state.clone(), Arc::clone(slot), ch, true).await {
            tracing::warn!(error = %e, "flushing a live channel failed");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_of_a_turn_follows_its_script() {
        assert_eq!(text_language("你们这个价格太贵了"), "zh");
        assert_eq!(text_language("the price is too high"), "en");
        assert_eq!(text_language("这个CRM多少钱"), "zh");
        assert_eq!(text_language("is 云客 CRM cheaper than the others"), "en");
        assert_eq!(text_language("123"), "en");
    }
}
