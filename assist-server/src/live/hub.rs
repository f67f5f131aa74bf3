//! The sessions on this node and what one is made of: the event log for
//! replay, the latest partial per speaker, the audio channels and their
//! streaming recognisers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use assist_models::vad::{EndReason, EndpointOptions, SampleRate, Segmenter, SileroModel};
use assist_protocol::live::{
    AUDIO_CHANNEL_CUSTOMER, AUDIO_CHANNEL_MIXED, AUDIO_CHANNEL_REP, AudioLayout, ServerMessage,
    Speaker, Start, TranscriptPiece,
};
use tokio::sync::{Mutex, Notify};

use crate::caller::Caller;
use crate::config::Config;
use crate::db::device::LiveSessionRow;

/// Events kept per session for replay before the oldest sent ones go.
const LOG_KEEP: usize = 10_000;
/// Customer turns used as context for a short utterance.
pub(crate) const CONTEXT_TURNS: usize = 3;

/// Every live session on this node.
#[derive(Debug, Default)]
pub struct LiveHub {
    sessions: StdMutex<HashMap<String, Arc<Mutex<Session>>>>,
    active: AtomicUsize,
    /// Every live utterance of this node waits here for the recogniser.
    pub asr: super::asr::LiveAsr,
}

/// One speaker's audio channel.
#[derive(Debug)]
pub struct Channel {
    /// Voice activity and endpointing: audio in, utterances out.
    pub segmenter: Segmenter,
    /// All samples received on this channel.
    pub received: u64,
    /// The end of this channel's recent finals, given to Whisper as context.
    pub context: String,
    /// The language the channel's first final was recognised in (when the
    /// session does not force one).
    pub language: Option<String>,
    /// Index of the last utterance whose final was decoded (older partials
    /// are not shown).
    pub finals_done: u64,
    /// Finals queued, being recognised or being stored.
    pub inflight: usize,
    /// Keeps this channel's finals in order from recogniser to phone.
    pub order: Arc<Mutex<()>>,
    /// The utterance offered at a pause and being (or already) decoded early.
    pub tentative: Option<Tentative>,
}

/// An utterance decoded at a pause, before its final was certain.
#[derive(Debug)]
pub struct Tentative {
    pub index: u64,
    pub end_ms: u64,
    /// What the early decode heard, once it has.
    pub heard: Option<super::asr::Heard>,
    /// The final came while the decode ran: it finishes as that final.
    pub final_due: bool,
    pub reason: EndReason,
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
    pub(crate) customer_turns: VecDeque<String>,
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

impl Session {
    pub fn new(
        config: &Config,
        vad: Option<&SileroModel>,
        row: LiveSessionRow,
        caller: Caller,
        start: Start,
        top_k: usize,
    ) -> Session {
        let mut channels = HashMap::new();
        let rate = SampleRate::from_hz(start.audio.sample_rate).unwrap_or(SampleRate::Hz16000);
        let live = &config.live;
        // Bounded to what works: an utterance must fit Whisper's 30 s window.
        let opts = EndpointOptions {
            end_silence_ms: live.live_end_silence_ms.clamp(100, 5_000),
            max_utterance_ms: (live.live_max_utterance_secs.clamp(2.0, 29.0) * 1000.0).round()
                as u32,
            partial_every_ms: live.live_partial_every_ms,
            ..EndpointOptions::default()
        };
        for &ch in channels_of(start.audio.layout) {
            let segmenter = Segmenter::new(vad, rate, opts.clone())
                .or_else(|e| {
                    tracing::warn!(error = %e, "live channel falls back to the energy gate");
                    Segmenter::new(None, rate, opts.clone())
                })
                .expect("the energy gate needs no weights");
            channels.insert(
                ch,
                Channel {
                    segmenter,
                    received: 0,
                    context: String::new(),
                    language: None,
                    finals_done: 0,
                    inflight: 0,
                    order: Arc::new(Mutex::new(())),
                    tentative: None,
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

    pub(crate) fn take_seq(&mut self) -> u64 {
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

    pub(crate) fn log_event(&mut self, msg: ServerMessage) {
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

    pub(crate) fn partial(&mut self, piece: TranscriptPiece) {
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
