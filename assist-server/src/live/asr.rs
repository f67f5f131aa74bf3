//! The live recogniser's queue: which utterance of which call is decoded next.
//!
//! Each channel's [`assist_models::vad::Segmenter`] cuts its audio into
//! utterances; every utterance (and every partial of a long one) becomes a
//! job here, and one dispatcher task hands jobs to the live Whisper instance
//! one at a time, earliest *due time* first:
//!
//! | job | due |
//! |---|---|
//! | final of a customer's (or mixed channel's) utterance: it drives suggestions | when queued |
//! | final of the rep's utterance: risk only | queued + 0.5 s |
//! | partial of a customer's long utterance | queued + 1 s |
//! | partial of the rep's | queued + 2 s |
//!
//! Ordering by due time rather than by class alone means a waiting job of a
//! lower class still runs once it has waited its head start: no call, and no
//! leg, starves while others talk. A partial that waited more than two
//! seconds, or whose utterance already has its final, is dropped unrun.
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
use std::collections::{BinaryHeap, VecDeque};
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
        busy / LOAD_WINDOW.as_secs_f64()
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
        let head_start = match (utterance.is_final(), customer) {
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

    fn pop(&self) -> Option<Job> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let job = q.heap.pop().map(|Reverse(j)| j);
        metrics::gauge!("assist_live_asr_queued").set(q.heap.len() as f64);
        job
    }
}

/// The dispatcher: one job at a time, for the life of the process.
async fn dispatch(state: AppState) {
    let hub = Arc::clone(&state.live);
    loop {
        let Some(job) = hub.asr.pop() else {
            tokio::select! {
                _ = hub.asr.notify.notified() => continue,
                _ = state.shutdown.cancelled() => return,
            }
        };
        run(&state, job).await;
    }
}

/// What a job needs from its session.
struct Prepared {
    opts: TranscribeOptions,
    speaker: Speaker,
}

async fn prepare(state: &AppState, job: &Job) -> Option<Prepared> {
    let s = job.slot.lock().await;
    let c = s.channels.get(&job.channel)?;
    if !job.is_final()
        && (c.finals_done >= job.utterance.index || job.queued.elapsed() > PARTIAL_MAX_WAIT)
    {
        metrics::counter!("assist_live_partials_skipped_total").increment(1);
        return None;
    }
    let language = s.start.language.clone().or_else(|| c.language.clone());
    let mut opts = crate::speech::transcribe_options(&state.config, language);
    opts.fit_window = Some(FitWindow::default());
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

async fn run(state: &AppState, job: Job) {
    let Some(speech) = state.speech.clone() else {
        return done(&job).await;
    };
    let Some(p) = prepare(state, &job).await else {
        if job.is_final() {
            done(&job).await;
        }
        return;
    };
    let waited = job.queued.elapsed();
    let kind = if job.is_final() { "final" } else { "partial" };
    metrics::histogram!("assist_live_asr_wait_seconds", "kind" => kind)
        .record(waited.as_secs_f64());
    let started = Instant::now();
    let samples = job.utterance.samples.clone();
    let result = speech.transcribe_utterance(samples, p.opts).await;
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
    let transcript = match result {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "live utterance not recognised");
            let mut s = job.slot.lock().await;
            s.direct(ServerMessage::Error {
                code: ErrorCode::Internal,
                message: "speech recognition failed for an utterance; the call goes on".into(),
            });
            drop(s);
            if job.is_final() {
                done(&job).await;
            }
            return;
        }
    };
    let text = transcript.text().trim().to_string();
    let (start_s, end_s) = (
        job.utterance.start_ms as f64 / 1000.0,
        job.utterance.end_ms as f64 / 1000.0,
    );
    tracing::debug!(
        channel = job.channel,
        index = job.utterance.index,
        final_ = job.is_final(),
        audio_ms = job.utterance.duration_ms(),
        waited_ms = waited.as_millis() as u64,
        asr_ms = (ended - started).as_millis() as u64,
        %text,
        "live utterance recognised"
    );
    if !job.is_final() {
        let mut s = job.slot.lock().await;
        let fresh = s
            .channels
            .get(&job.channel)
            .is_some_and(|c| c.finals_done < job.utterance.index);
        if fresh && !text.is_empty() {
            let seq = s.take_seq();
            s.partial(TranscriptPiece {
                seq,
                speaker: p.speaker,
                text,
                start_s,
                end_s,
            });
        }
        return;
    }
    // Keep the channel's finals in order: take its turn before handing off.
    let order = {
        let mut s = job.slot.lock().await;
        let Some(c) = s.channels.get_mut(&job.channel) else {
            return;
        };
        c.finals_done = c.finals_done.max(job.utterance.index);
        if !text.is_empty() {
            if c.language.is_none() {
                c.language = Some(transcript.language.clone());
            }
            let joined = format!("{} {text}", c.context);
            let chars: Vec<char> = joined.trim().chars().collect();
            c.context = chars[chars.len().saturating_sub(CONTEXT_CHARS)..]
                .iter()
                .collect();
        }
        Arc::clone(&c.order)
    };
    let turn = order.lock_owned().await;
    let state = state.clone();
    tokio::spawn(async move {
        if !text.is_empty()
            && let Err(e) =
                super::on_final(&state, &job.slot, p.speaker, &text, start_s, end_s, None).await
        {
            tracing::warn!(error = %e, "a live final could not be stored");
        }
        drop(turn);
        done(&job).await;
    });
}

/// A final is finished with (stored, empty or failed).
async fn done(job: &Job) {
    if !job.is_final() {
        return;
    }
    let mut s = job.slot.lock().await;
    if let Some(c) = s.channels.get_mut(&job.channel) {
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
