//! The live recogniser's queue: which utterance of which call is decoded next.
//!
//! Each channel's [`assist_models::vad::Segmenter`] cuts its audio into
//! utterances; every utterance (and every partial of a long one) becomes a
//! job here, and one dispatcher task hands jobs to the live Whisper
//! instances (`live_speech_workers`, one job each at a time, never two jobs
//! of one channel at once, so its finals stay in order), earliest *due
//! time* first:
//!
//! | job | due |
//! |---|---|
//! | final of a customer's (or mixed channel's) utterance: it drives suggestions | when queued |
//! | final of the rep's utterance: risk only | queued + 0.5 s |
//! | tentative end of a customer's utterance (decoded while the endpointer still waits, only with time to spare) | when queued |
//! | partial of a customer's long utterance | queued + 1 s |
//! | partial of the rep's | queued + 2 s |
//!
//! Ordering by due time rather than by class alone means a waiting job of a
//! lower class still runs once it has waited its head start: no call, and no
//! leg, starves while others talk. A partial that waited more than two
//! seconds, whose utterance already has its final, or that would make a
//! waiting final wait longer, is dropped unrun, and so are all partials
//! while the recogniser was busy more than half of the last 20 s: under
//! load the transcript comes in whole sentences only.
//!
//! A *tentative* end comes 160 ms into a customer's pause; when the
//! recogniser has time to spare it decodes the utterance then, and if the
//! pause lasts until the final (400 ms), that decode is the final's: the
//! recognition overlaps the endpointer's wait instead of following it.
//! Speech that resumes makes it stale (wasted work, hence only when idle).
//!
//! The encoder runs on the utterance alone (plus a second of padding, see
//! [`assist_models::speech::FitWindow`]), not on a 30-second window, so a
//! two-second sentence costs a fraction of what it used to. Decoded finals
//! go on to [`super::on_final`] (search, storage, risk) in their channel's
//! order while the recogniser already takes the next job.
//!
//! The queue also measures the recogniser: how busy it was over the last
//! 20 s and how long the oldest customer final has waited. New audio sessions
//! are refused while either is over its bound ([`LiveAsr::saturated`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use assist_models::speech::{FitWindow, TranscribeOptions};
use assist_models::vad::Utterance;
use assist_protocol::ErrorCode;
use assist_protocol::live::{ServerMessage, Speaker, TranscriptPiece};
use tokio::sync::{Mutex, Notify};

use super::hub::{Session, speaker_of};
use crate::state::AppState;

/// How long a partial may wait before it is not worth showing.
const PARTIAL_MAX_WAIT: Duration = Duration::from_secs(2);
/// Partials stop while the recogniser was busier than this (last 20 s).
const PARTIAL_MAX_BUSY: f64 = 0.5;
/// Tentative ends are decoded early only while it was less busy than this.
pub const TENTATIVE_MAX_BUSY: f64 = 0.6;
/// The window over which busy time is measured.
const LOAD_WINDOW: Duration = Duration::from_secs(20);
/// A customer final waiting longer than this means the node is full.
const ADMIT_MAX_WAIT: Duration = Duration::from_secs(1);
/// Finals a channel may have waiting before new ones are dropped.
pub const MAX_QUEUED_FINALS: usize = 12;
/// Characters of a channel's recent finals given to Whisper as context.
const CONTEXT_CHARS: usize = 120;

/// One utterance waiting for the recogniser.
struct Job {
    due: Instant,
    order: u64,
    queued: Instant,
    slot: Arc<Mutex<Session>>,
    channel: u8,
    utterance: Utterance,
}

impl Job {
    fn is_final(&self) -> bool {
        self.utterance.is_final()
    }
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.order == other.order
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Job>>,
    next: u64,
}

/// Busy intervals of the recogniser within the load window.
#[derive(Default)]
struct Load {
    busy: VecDeque<(Instant, Instant)>,
    /// Live recognisers the busy time is shared among.
    workers: usize,
}

impl Load {
    fn record(&mut self, from: Instant, to: Instant) {
        self.busy.push_back((from, to));
        let horizon = to.checked_sub(LOAD_WINDOW).unwrap_or(to);
        while self.busy.front().is_some_and(|&(_, end)| end < horizon) {
            self.busy.pop_front();
        }
    }

    fn busy_share(&self, now: Instant) -> f64 {
        let horizon = now.checked_sub(LOAD_WINDOW).unwrap_or(now);
        let busy: f64 = self
            .busy
            .iter()
            .map(|&(a, b)| b.saturating_duration_since(a.max(horizon)).as_secs_f64())
            .sum();
        busy / LOAD_WINDOW.as_secs_f64() / self.workers.max(1) as f64
    }
}

/// The queue of live utterances of a node. See the module docs.
#[derive(Default)]
pub struct LiveAsr {
    queue: StdMutex<Queue>,
    notify: Notify,
    load: StdMutex<Load>,
    started: AtomicBool,
}

impl std::fmt::Debug for LiveAsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveAsr")
            .field("queued", &self.queued())
            .finish()
    }
}

impl LiveAsr {
    /// Jobs waiting.
    pub fn queued(&self) -> usize {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .heap
            .len()
    }

    /// Finals waiting (not counting the one being decoded).
    pub fn finals_waiting(&self) -> usize {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .heap
            .iter()
            .filter(|Reverse(j)| j.is_final())
            .count()
    }

    /// Share of the last 20 s the recogniser was busy with live audio.
    pub fn busy_share(&self) -> f64 {
        self.load
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .busy_share(Instant::now())
    }

    /// Why a new audio session should be refused now, if it should.
    pub fn saturated(&self, max_busy: f64) -> Option<String> {
        let busy = self.busy_share();
        if busy > max_busy {
            return Some(format!(
                "live speech recognition on this node was busy {:.0} % of the last {} s (bound {:.0} %, `live_admit_busy`)",
                busy * 100.0,
                LOAD_WINDOW.as_secs(),
                max_busy * 100.0
            ));
        }
        let now = Instant::now();
        let oldest = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .heap
            .iter()
            .filter(|Reverse(j)| j.is_final())
            .map(|Reverse(j)| now.saturating_duration_since(j.queued))
            .max()?;
        (oldest > ADMIT_MAX_WAIT).then(|| {
            format!(
                "live speech recognition on this node is {:.1} s behind",
                oldest.as_secs_f64()
            )
        })
    }

    /// Queue an utterance of `channel` (the caller counted a final in the
    /// channel's `inflight`). Starts the dispatcher on first use.
    pub fn enqueue(
        &self,
        state: &AppState,
        slot: &Arc<Mutex<Session>>,
        channel: u8,
        utterance: Utterance,
    ) {
        let now = Instant::now();
        let customer = speaker_of(channel) != Speaker::Rep;
        let head_start = match (utterance.is_final() || utterance.tentative, customer) {
            (true, true) => Duration::ZERO,
            (true, false) => Duration::from_millis(500),
            (false, true) => Duration::from_secs(1),
            (false, false) => Duration::from_secs(2),
        };
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let order = q.next;
            q.next += 1;
            q.heap.push(Reverse(Job {
                due: now + head_start,
                order,
                queued: now,
                slot: Arc::clone(slot),
                channel,
                utterance,
            }));
            metrics::gauge!("assist_live_asr_queued").set(q.heap.len() as f64);
        }
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(dispatch(state.clone()));
        }
        self.notify.notify_one();
    }

    /// The earliest-due job of a channel not in `busy` (a channel's jobs
    /// run one at a time, so its finals stay in order).
    fn pop(&self, busy: &HashSet<(usize, u8)>) -> Option<Job> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut held = Vec::new();
        let mut found = None;
        while let Some(Reverse(j)) = q.heap.pop() {
            if busy.contains(&j.key()) {
                held.push(j);
            } else {
                found = Some(j);
                break;
            }
        }
        for j in held {
            q.heap.push(Reverse(j));
        }
        metrics::gauge!("assist_live_asr_queued").set(q.heap.len() as f64);
        found
    }
}

impl Job {
    /// Which channel of which session.
    fn key(&self) -> (usize, u8) {
        (Arc::as_ptr(&self.slot) as usize, self.channel)
    }
}

/// The dispatcher, for the life of the process: as many jobs at once as the
/// speech service has live recognisers, never two of one channel.
async fn dispatch(state: AppState) {
    let hub = Arc::clone(&state.live);
    let workers = state.speech.as_ref().map_or(1, |s| s.live_workers()).max(1);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, (usize, u8))>();
    hub.asr
        .load
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .workers = workers;
    let mut free: Vec<usize> = (0..workers).rev().collect();
    let mut busy: HashSet<(usize, u8)> = HashSet::new();
    loop {
        while let Ok((worker, key)) = done_rx.try_recv() {
            free.push(worker);
            busy.remove(&key);
        }
        let job = if free.is_empty() {
            None
        } else {
            hub.asr.pop(&busy)
        };
        let Some(job) = job else {
            tokio::select! {
                _ = hub.asr.notify.notified() => continue,
                Some((worker, key)) = done_rx.recv() => {
                    free.push(worker);
                    busy.remove(&key);
                    continue;
                }
                _ = state.shutdown.cancelled() => return,
            }
        };
        let worker = free.pop().expect("a free worker");
        let key = job.key();
        busy.insert(key);
        let (state, done_tx) = (state.clone(), done_tx.clone());
        tokio::spawn(async move {
            run(&state, job, worker).await;
            let _ = done_tx.send((worker, key));
        });
    }
}

/// What a job needs from its session.
struct Prepared {
    opts: TranscribeOptions,
    speaker: Speaker,
}

/// What kind of decode a job is.
fn kind(u: &Utterance) -> &'static str {
    if u.is_final() {
        "final"
    } else if u.tentative {
        "tentative"
    } else {
        "partial"
    }
}

async fn prepare(state: &AppState, job: &Job) -> Option<Prepared> {
    let s = job.slot.lock().await;
    let c = s.channels.get(&job.channel)?;
    let u = &job.utterance;
    if u.tentative {
        // Only while the pause it was made for still holds.
        if !c
            .tentative
            .as_ref()
            .is_some_and(|t| t.index == u.index && t.end_ms == u.end_ms)
        {
            metrics::counter!("assist_live_tentative_skipped_total").increment(1);
            return None;
        }
    } else if !u.is_final()
        // Partials are a nicety: they yield to every waiting final, so under
        // load they thin out before any final waits for them.
        && (c.finals_done >= u.index
            || job.queued.elapsed() > PARTIAL_MAX_WAIT
            || state.live.asr.finals_waiting() > 0
            || state.live.asr.busy_share() > PARTIAL_MAX_BUSY)
    {
        metrics::counter!("assist_live_partials_skipped_total").increment(1);
        return None;
    }
    let language = s.start.language.clone().or_else(|| c.language.clone());
    let mut opts = crate::speech::transcribe_options(&state.config, language);
    opts.fit_window = Some(FitWindow {
        // A partial's failure costs nothing: the final decodes it again.
        retry_full: u.is_final() || u.tentative,
        ..FitWindow::default()
    });
    opts.timestamps = false;
    opts.condition_on_previous_text = false;
    opts.temperatures = vec![0.0];
    opts.max_tokens_per_window = 160;
    if !c.context.is_empty() {
        // The channel's last words: names and the topic carry over.
        let base = opts
            .language
            .as_deref()
            .and_then(|l| (l == "zh").then_some("以下是普通话的句子。"));
        let vocab = state.config.speech.speech_vocabulary.join("、");
        let prompt = [base.unwrap_or(""), vocab.as_str(), c.context.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        opts.initial_prompt = Some(prompt);
        opts.vocabulary.clear();
    }
    Some(Prepared {
        opts,
        speaker: speaker_of(job.channel),
    })
}

async fn run(state: &AppState, job: Job, worker: usize) {
    let Some(speech) = state.speech.clone() else {
        if job.is_final() {
            done(&job.slot, job.channel).await;
        }
        return;
    };
    let Some(p) = prepare(state, &job).await else {
        if job.is_final() {
            done(&job.slot, job.channel).await;
        }
        return;
    };
    let waited = job.queued.elapsed();
    let kind = kind(&job.utterance);
    metrics::histogram!("assist_live_asr_wait_seconds", "kind" => kind)
        .record(waited.as_secs_f64());
    let started = Instant::now();
    let samples = job.utterance.samples.clone();
    let result = speech.transcribe_utterance(worker, samples, p.opts).await;
    let ended = Instant::now();
    state
        .live
        .asr
        .load
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(started, ended);
    metrics::histogram!("assist_live_asr_seconds", "kind" => kind)
        .record((ended - started).as_secs_f64());
    let u = &job.utterance;
    let transcript = match result {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, kind, "live utterance not recognised");
            if u.tentative {
                // The final (if it came) is decoded on its own after all.
                let mut s = job.slot.lock().await;
                let due = s.channels.get_mut(&job.channel).and_then(|c| {
                    let t = c.tentative.take()?;
                    t.final_due.then_some(t.reason)
                });
                drop(s);
                if let Some(reason) = due {
                    let mut again = job.utterance.clone();
                    again.tentative = false;
                    again.end = Some(reason);
                    state.live.asr.enqueue(state, &job.slot, job.channel, again);
                }
                return;
            }
            if !u.is_final() {
                return;
            }
            let mut s = job.slot.lock().await;
            s.direct(ServerMessage::Error {
                code: ErrorCode::Internal,
                message: "speech recognition failed for an utterance; the call goes on".into(),
            });
            drop(s);
            return done(&job.slot, job.channel).await;
        }
    };
    let text = transcript.text().trim().to_string();
    tracing::debug!(
        channel = job.channel,
        index = u.index,
        kind,
        audio_ms = u.duration_ms(),
        waited_ms = waited.as_millis() as u64,
        asr_ms = (ended - started).as_millis() as u64,
        %text,
        "live utterance recognised"
    );
    let heard = Heard {
        channel: job.channel,
        speaker: p.speaker,
        index: u.index,
        start_ms: u.start_ms,
        end_ms: u.end_ms,
        text,
        language: transcript.language,
    };
    if u.tentative {
        let mut s = job.slot.lock().await;
        let Some(c) = s.channels.get_mut(&job.channel) else {
            return;
        };
        match &mut c.tentative {
            Some(t) if t.index == u.index && t.end_ms == u.end_ms => {
                if t.final_due {
                    // The pause held and the final is waiting for this.
                    c.tentative = None;
                    drop(s);
                    metrics::counter!("assist_live_tentative_used_total").increment(1);
                    finish_final(state, &job.slot, heard).await;
                } else {
                    t.heard = Some(heard);
                }
            }
            _ => {}
        }
        return;
    }
    if !u.is_final() {
        let mut s = job.slot.lock().await;
        let fresh = s
            .channels
            .get(&job.channel)
            .is_some_and(|c| c.finals_done < u.index);
        if fresh && !heard.text.is_empty() {
            let seq = s.take_seq();
            s.partial(TranscriptPiece {
                seq,
                speaker: p.speaker,
                text: heard.text,
                start_s: u.start_ms as f64 / 1000.0,
                end_s: u.end_ms as f64 / 1000.0,
            });
        }
        return;
    }
    finish_final(state, &job.slot, heard).await;
}

/// A decoded utterance.
#[derive(Debug, Clone)]
pub struct Heard {
    pub channel: u8,
    pub speaker: Speaker,
    pub index: u64,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub language: String,
}

/// A final is decoded (the channel counted it in `inflight`): remember it as
/// context, then store, search and risk-check it in the channel's order.
pub async fn finish_final(state: &AppState, slot: &Arc<Mutex<Session>>, heard: Heard) {
    let order = {
        let mut s = slot.lock().await;
        let Some(c) = s.channels.get_mut(&heard.channel) else {
            return;
        };
        c.finals_done = c.finals_done.max(heard.index);
        if !heard.text.is_empty() {
            if c.language.is_none() {
                c.language = Some(heard.language.clone());
            }
            let joined = format!("{} {}", c.context, heard.text);
            let chars: Vec<char> = joined.trim().chars().collect();
            c.context = chars[chars.len().saturating_sub(CONTEXT_CHARS)..]
                .iter()
                .collect();
        }
        Arc::clone(&c.order)
    };
    // Take the channel's turn before handing off, so its finals stay in order.
    let turn = order.lock_owned().await;
    let (state, slot) = (state.clone(), Arc::clone(slot));
    tokio::spawn(async move {
        if !heard.text.is_empty()
            && let Err(e) = super::on_final(
                &state,
                &slot,
                heard.speaker,
                &heard.text,
                heard.start_ms as f64 / 1000.0,
                heard.end_ms as f64 / 1000.0,
                None,
            )
            .await
        {
            tracing::warn!(error = %e, "a live final could not be stored");
        }
        drop(turn);
        done(&slot, heard.channel).await;
    });
}

/// A final of `channel` is finished with (stored, empty or failed).
async fn done(slot: &Arc<Mutex<Session>>, channel: u8) {
    let mut s = slot.lock().await;
    if let Some(c) = s.channels.get_mut(&channel) {
        c.inflight = c.inflight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_share_counts_only_the_window() {
        let mut load = Load::default();
        let t0 = Instant::now();
        load.record(t0, t0 + Duration::from_secs(5));
        load.record(t0 + Duration::from_secs(10), t0 + Duration::from_secs(15));
        let share = load.busy_share(t0 + Duration::from_secs(20));
        assert!((share - 0.5).abs() < 1e-6, "{share}");
        // 10 s later the first interval has left the window.
        let share = load.busy_share(t0 + Duration::from_secs(30));
        assert!((share - 0.25).abs() < 1e-6, "{share}");
    }
}
