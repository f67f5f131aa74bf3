//! Streaming transcription of live audio with stable prefixes.
//!
//! A [`StreamingTranscriber`] holds the state of one live audio channel (a
//! call leg) but no model: each step borrows a [`Transcribe`] for one decode.
//! That is what lets a WebSocket session own one streamer per call channel
//! while the single Whisper lives on its owner thread
//! ([`crate::worker::ModelHandle`]): the session moves its streamer into the
//! job with the chunk, and gets it back with the update.
//!
//! The policy is *local agreement* (Macháček et al., "Turning Whisper into
//! Real-Time Transcription System", 2023):
//! - audio accumulates in a buffer (at most [`StreamingOptions::max_buffer_s`]);
//!   once at least [`StreamingOptions::min_step_s`] of new audio arrived, the
//!   buffer is decoded again as one window, with the text already committed as
//!   the prompt;
//! - the words of that hypothesis after the committed ones are compared with
//!   the previous hypothesis word by word (ignoring case and punctuation):
//!   their longest common prefix is **committed** and emitted as a final
//!   [`Segment`], never revised; the rest is the **partial**, shown but
//!   replaceable. So the words that become final next are always a prefix of
//!   the partial shown before it;
//! - the buffer is cut at the end of every Whisper segment whose words are all
//!   committed (timestamp tokens are accurate there, unlike positions inside a
//!   segment), so re-decoding stays cheap and the window never overflows;
//! - an energy gate (20 ms frames, RMS above [`StreamingOptions::min_speech_rms`]
//!   and above a tracked noise floor) keeps silence away from Whisper, where it
//!   would invent text; Whisper's own no-speech test applies too. After
//!   [`StreamingOptions::endpoint_silence_s`] of silence following speech the
//!   phrase is decoded once more and committed whole (endpointing), which
//!   bounds how long a phrase stays partial;
//! - [`StreamingTranscriber::finish`] flushes what is left.
//!
//! Samples are 16 kHz mono f32; chunks of 0.5–1 s are typical.
//!
//! ```no_run
//! use assist_models::speech::streaming::{StreamingOptions, StreamingTranscriber};
//! use assist_models::speech::{LoadOptions, TranscribeOptions, Transcriber};
//! use assist_models::worker::{ModelHandle, WorkerConfig};
//! use std::path::PathBuf;
//!
//! # async fn demo(chunks: Vec<Vec<f32>>) -> assist_models::Result<()> {
//! // One Whisper on its owner thread, shared by every live call.
//! let dir = PathBuf::from("/root/.cache/assist/models/whisper-base");
//! let asr: ModelHandle<Transcriber> = ModelHandle::spawn(WorkerConfig::new("asr", 32), move || {
//!     Transcriber::load(&dir, &LoadOptions::default())
//! })?;
//!
//! // One streamer per call channel, owned by the WebSocket session.
//! let opts = StreamingOptions {
//!     transcribe: TranscribeOptions { language: Some("zh".into()), ..Default::default() },
//!     ..Default::default()
//! };
//! let mut stream = StreamingTranscriber::new(opts);
//! for chunk in chunks {
//!     // Move the streamer into the job, run one step on the owner thread, take it back.
//!     let (s, update) = asr
//!         .run(move |m| {
//!             let update = stream.feed(m, &chunk);
//!             Ok((stream, update))
//!         })
//!         .await?;
//!     stream = s;
//!     let update = update?;
//!     for seg in &update.finals {
//!         println!("final [{:.1}-{:.1}] {}", seg.start_s, seg.end_s, seg.text);
//!     }
//!     if let Some(p) = &update.partial {
//!         println!("partial {}", p.text);
//!     }
//! }
//! let (_, last) = asr.run(move |m| { let u = stream.finish(m); Ok((stream, u)) }).await?;
//! for seg in last?.finals {
//!     println!("final {}", seg.text);
//! }
//! # Ok(())
//! # }
//! ```

use super::{Segment, Transcribe, TranscribeOptions, Transcript, prompt_text};
use crate::Result;
use words::{Word, align_prefix, common_prefix, join_words, split_words};

#[cfg(test)]
mod tests;
mod words;

const SAMPLE_RATE: usize = 16_000;
/// Energy-gate frame: 20 ms.
const FRAME: usize = 320;
/// Audio kept before speech when silence is dropped (a word's onset).
const PRE_ROLL_S: f64 = 0.3;

/// How a stream is transcribed.
#[derive(Debug, Clone)]
pub struct StreamingOptions {
    /// Decoding options. Forcing `language` is best for live audio; if it is
    /// `None`, the first decode detects it and the stream keeps that language.
    pub transcribe: TranscribeOptions,
    /// New audio needed before the buffer is decoded again, seconds.
    pub min_step_s: f64,
    /// Longest buffer; past it the pending words are committed and the buffer
    /// cut (Whisper sees 30 s at most).
    pub max_buffer_s: f64,
    /// Frames quieter than this RMS are never speech (−40 dBFS).
    pub min_speech_rms: f32,
    /// Silence after speech that ends a phrase and commits it, seconds.
    pub endpoint_silence_s: f64,
    /// Characters of committed text given to Whisper as context.
    pub context_chars: usize,
}

impl Default for StreamingOptions {
    fn default() -> Self {
        StreamingOptions {
            transcribe: TranscribeOptions::default(),
            min_step_s: 1.0,
            max_buffer_s: 25.0,
            min_speech_rms: 0.01,
            endpoint_silence_s: 0.6,
            context_chars: 200,
        }
    }
}

/// What one step produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamUpdate {
    /// Newly committed text, in order; never revised later.
    pub finals: Vec<Segment>,
    /// The current uncommitted guess after the committed text (may change).
    pub partial: Option<Segment>,
    /// Whether this step ran the model.
    pub decoded: bool,
}

/// End time of each Whisper segment of a decode, with the count of buffer
/// words up to it.
type SegmentEnds = Vec<(f64, usize)>;

/// The streaming state of one audio channel. See the module docs.
#[derive(Debug, Clone)]
pub struct StreamingTranscriber {
    opts: StreamingOptions,
    /// Audio not yet cut away.
    buffer: Vec<f32>,
    /// Stream time of `buffer[0]`, seconds.
    buffer_start_s: f64,
    /// RMS of each complete 20 ms frame of `buffer`.
    frame_rms: Vec<f32>,
    noise_floor: f32,
    /// Samples added since the last decode.
    new_samples: usize,
    /// Words committed whose audio is still in the buffer (the decode repeats them).
    committed_in_buffer: Vec<Word>,
    /// Committed words whose audio was cut away: the prompt context (Whisper
    /// must not be told what it is about to hear again).
    context: Vec<Word>,
    /// The previous hypothesis after the committed words.
    pending: Vec<Word>,
    /// All committed text (the prompt context and [`Self::transcript`]).
    committed: Vec<Segment>,
    language: Option<String>,
    /// Stream time of all audio pushed, seconds.
    pushed_s: f64,
}

impl StreamingTranscriber {
    pub fn new(opts: StreamingOptions) -> Self {
        StreamingTranscriber {
            language: opts.transcribe.language.clone(),
            noise_floor: opts.min_speech_rms / 4.0,
            opts,
            buffer: Vec::new(),
            buffer_start_s: 0.0,
            frame_rms: Vec::new(),
            new_samples: 0,
            committed_in_buffer: Vec::new(),
            context: Vec::new(),
            pending: Vec::new(),
            committed: Vec::new(),
            pushed_s: 0.0,
        }
    }

    /// Add audio without decoding (cheap; no model needed).
    pub fn push_audio(&mut self, samples: &[f32]) {
        let done = self.frame_rms.len() * FRAME;
        self.buffer.extend_from_slice(samples);
        self.new_samples += samples.len();
        self.pushed_s += samples.len() as f64 / SAMPLE_RATE as f64;
        let mut at = done;
        while at + FRAME <= self.buffer.len() {
            let frame = &self.buffer[at..at + FRAME];
            let rms = (frame.iter().map(|x| x * x).sum::<f32>() / FRAME as f32).sqrt();
            // The floor follows quiet frames at once and loud ones very slowly.
            self.noise_floor = if rms < self.noise_floor {
                rms.max(1e-5)
            } else {
                self.noise_floor * 0.9995 + rms * 0.0005
            };
            self.frame_rms.push(rms);
            at += FRAME;
        }
    }

    /// Whether enough new audio arrived for [`Self::step`] to decode.
    pub fn ready(&self) -> bool {
        self.new_samples as f64 >= self.opts.min_step_s * SAMPLE_RATE as f64
    }

    /// [`Self::push_audio`] then [`Self::step`].
    pub fn feed<T: Transcribe + ?Sized>(
        &mut self,
        asr: &mut T,
        samples: &[f32],
    ) -> Result<StreamUpdate> {
        self.push_audio(samples);
        self.step(asr)
    }

    /// Decode if there is reason to (enough new speech, or a phrase ended)
    /// and report what became final and the current partial.
    pub fn step<T: Transcribe + ?Sized>(&mut self, asr: &mut T) -> Result<StreamUpdate> {
        let Some(last_speech) = self.last_speech_frame() else {
            // Nothing but silence: never show it to Whisper; keep a short pre-roll.
            let mut update = StreamUpdate::default();
            let pending = std::mem::take(&mut self.pending);
            self.commit(pending, &mut update);
            self.release(usize::MAX);
            self.new_samples = 0;
            self.cut_before(self.buffer_end_s() - PRE_ROLL_S);
            return Ok(update);
        };
        let speech_end_s = self.buffer_start_s + ((last_speech + 1) * FRAME) as f64 / 16_000.0;
        let trailing_silence = self.buffer_end_s() - speech_end_s;
        if trailing_silence >= self.opts.endpoint_silence_s {
            // The phrase is over: decode it once more and commit all of it.
            let mut words = self.decode(asr)?;
            if words.is_empty() {
                // A short phrase alone in a window can fail Whisper's
                // no-speech test; what was already shown stands.
                words = std::mem::take(&mut self.pending);
            }
            let mut update = StreamUpdate {
                decoded: true,
                ..Default::default()
            };
            self.commit(words, &mut update);
            self.release(usize::MAX);
            self.pending.clear();
            self.cut_before(self.buffer_end_s() - PRE_ROLL_S);
            return Ok(update);
        }
        if !self.ready() {
            return Ok(StreamUpdate {
                partial: self.partial(),
                ..Default::default()
            });
        }
        let (words, segment_ends) = self.decode_with_segments(asr)?;
        let mut update = StreamUpdate {
            decoded: true,
            ..Default::default()
        };
        let agreed = common_prefix(&self.pending, &words);
        // The new hypothesis's spelling: its punctuation saw more context.
        self.commit(words[..agreed].to_vec(), &mut update);
        self.pending = words[agreed..].to_vec();
        // Cut at the end of the last wholly committed Whisper segment, inside
        // the pause that follows it (a timestamp alone may fall inside a word),
        // or anywhere at a segment end once the buffer is long.
        let committed_n = self.committed_in_buffer.len();
        let long = self.buffer_end_s() - self.buffer_start_s > self.opts.max_buffer_s * 0.6;
        let cut = segment_ends
            .iter()
            .rev()
            .filter(|(_, n)| *n <= committed_n)
            .find_map(|&(end_s, n)| {
                let at = self.pause_near(end_s).or(long.then_some(end_s))?;
                Some((at, n))
            });
        if let Some((at, n)) = cut {
            tracing::debug!(at_s = at, words = n, "stream buffer cut");
            self.release(n);
            self.cut_before(at);
        }
        if self.buffer_end_s() - self.buffer_start_s > self.opts.max_buffer_s {
            // A very long run-on: commit the guess and start over at its end.
            let pending = std::mem::take(&mut self.pending);
            let end = pending
                .last()
                .map(|w| w.end_s)
                .unwrap_or(self.buffer_end_s());
            self.commit(pending, &mut update);
            self.release(usize::MAX);
            self.cut_before(end.max(self.buffer_end_s() - self.opts.max_buffer_s));
        }
        update.partial = self.partial();
        Ok(update)
    }

    /// Commit whatever is left (end of the call).
    pub fn finish<T: Transcribe + ?Sized>(&mut self, asr: &mut T) -> Result<StreamUpdate> {
        let mut update = StreamUpdate::default();
        if self.last_speech_frame().is_some() || !self.pending.is_empty() {
            let words = if self.last_speech_frame().is_some() {
                update.decoded = true;
                let words = self.decode(asr)?;
                if words.is_empty() {
                    std::mem::take(&mut self.pending)
                } else {
                    words
                }
            } else {
                std::mem::take(&mut self.pending)
            };
            self.commit(words, &mut update);
        }
        self.pending.clear();
        self.release(usize::MAX);
        self.cut_before(self.buffer_end_s());
        Ok(update)
    }

    /// Everything committed so far.
    pub fn transcript(&self) -> Transcript {
        Transcript {
            language: self.language.clone().unwrap_or_else(|| "en".to_string()),
            duration_s: self.pushed_s,
            segments: self.committed.clone(),
        }
    }

    /// The committed text, joined.
    pub fn committed_text(&self) -> String {
        self.transcript().text()
    }

    /// The language in use (forced, or detected by the first decode).
    pub fn language(&self) -> Option<&str> {
        self.language.as_deref()
    }

    /// Seconds of audio pushed so far.
    pub fn duration_s(&self) -> f64 {
        self.pushed_s
    }

    // ------------------------------------------------------------ internals

    fn buffer_end_s(&self) -> f64 {
        self.buffer_start_s + self.buffer.len() as f64 / SAMPLE_RATE as f64
    }

    fn speech_threshold(&self) -> f32 {
        self.opts.min_speech_rms.max(self.noise_floor * 3.0)
    }

    fn last_speech_frame(&self) -> Option<usize> {
        let threshold = self.speech_threshold();
        self.frame_rms.iter().rposition(|&r| r >= threshold)
    }

    /// The middle of a pause (≥ 160 ms below the speech threshold: longer
    /// than a stop consonant's closure) within 0.2 s of stream time `t`, the
    /// closest one.
    fn pause_near(&self, t: f64) -> Option<f64> {
        let threshold = self.speech_threshold();
        let frame_s = FRAME as f64 / SAMPLE_RATE as f64;
        let f = ((t - self.buffer_start_s) / frame_s).round() as isize;
        let quiet = |i: isize| {
            i >= 0 && (i as usize) < self.frame_rms.len() && self.frame_rms[i as usize] < threshold
        };
        let mut best: Option<(isize, isize)> = None;
        let mut i = f - 10;
        while i <= f + 10 {
            if quiet(i) {
                let start = i;
                while quiet(i + 1) {
                    i += 1;
                }
                let mid = (start + i) / 2;
                if i - start + 1 >= 8 && best.is_none_or(|(m, _)| (mid - f).abs() < (m - f).abs()) {
                    best = Some((mid, i));
                }
            }
            i += 1;
        }
        best.map(|(mid, _)| self.buffer_start_s + mid as f64 * frame_s)
    }

    /// Drop audio before stream time `t` (rounded down to a frame).
    fn cut_before(&mut self, t: f64) {
        let frames = (((t - self.buffer_start_s) * SAMPLE_RATE as f64) / FRAME as f64)
            .floor()
            .max(0.0) as usize;
        let frames = frames.min(self.buffer.len() / FRAME);
        if frames == 0 {
            return;
        }
        self.buffer.drain(..frames * FRAME);
        self.frame_rms.drain(..frames.min(self.frame_rms.len()));
        self.buffer_start_s += (frames * FRAME) as f64 / SAMPLE_RATE as f64;
        self.new_samples = self.new_samples.min(self.buffer.len());
    }

    /// Move the first `n` committed words (all with `usize::MAX`) out of the
    /// buffer's account into the prompt context.
    fn release(&mut self, n: usize) {
        let n = n.min(self.committed_in_buffer.len());
        self.context.extend(self.committed_in_buffer.drain(..n));
        let chars: usize = self
            .context
            .iter()
            .map(|w| w.text.chars().count() + 1)
            .sum();
        if chars > 2 * self.opts.context_chars.max(1) {
            let keep = self.context.len() / 2;
            self.context.drain(..self.context.len() - keep);
        }
    }

    fn partial(&self) -> Option<Segment> {
        let first = self.pending.first()?;
        let last = self.pending.last()?;
        Some(Segment {
            start_s: round2(first.start_s),
            end_s: round2(last.end_s),
            text: join_words(&self.pending),
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            channel: None,
        })
    }

    /// Append `words` to the committed text and the update.
    fn commit(&mut self, words: Vec<Word>, update: &mut StreamUpdate) {
        if words.is_empty() {
            return;
        }
        let seg = Segment {
            start_s: round2(words[0].start_s),
            end_s: round2(words[words.len() - 1].end_s),
            text: join_words(&words),
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            channel: None,
        };
        self.committed_in_buffer.extend(words);
        self.committed.push(seg.clone());
        update.finals.push(seg);
    }

    /// Decode the buffer; the words after those already committed.
    fn decode<T: Transcribe + ?Sized>(&mut self, asr: &mut T) -> Result<Vec<Word>> {
        Ok(self.decode_with_segments(asr)?.0)
    }

    /// Decode the buffer. Returns the uncommitted words, and for every Whisper
    /// segment its end time with the number of buffer words up to it,
    /// counted on the committed-words scale (so a cut can drop them).
    fn decode_with_segments<T: Transcribe + ?Sized>(
        &mut self,
        asr: &mut T,
    ) -> Result<(Vec<Word>, SegmentEnds)> {
        self.new_samples = 0;
        let mut opts = self.opts.transcribe.clone();
        opts.language = self.language.clone();
        opts.condition_on_previous_text = false;
        // No temperature fallback: the buffer is decoded again a second later
        // anyway, and sampling retries multiply the cost of a step.
        opts.temperatures.truncate(1);
        let context = self.context();
        if !context.is_empty() || self.language.is_some() {
            let base = self
                .language
                .as_deref()
                .and_then(|l| prompt_text(&self.opts.transcribe, l));
            let prompt = [base.unwrap_or_default(), context]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            opts.initial_prompt = Some(prompt);
            opts.vocabulary.clear();
        }
        let t = asr.transcribe_window(&self.buffer, &opts)?;
        if self.language.is_none() && !t.segments.is_empty() {
            self.language = Some(t.language.clone());
        }
        let mut words = Vec::new();
        let mut ends = Vec::new();
        for seg in &t.segments {
            words.extend(split_words(
                &seg.text,
                self.buffer_start_s + seg.start_s,
                self.buffer_start_s + seg.end_s,
            ));
            ends.push((self.buffer_start_s + seg.end_s, words.len()));
        }
        // Skip the words this buffer repeats from what is already committed.
        let skip = align_prefix(&self.committed_in_buffer, &words);
        let held = self.committed_in_buffer.len();
        let ends = ends
            .into_iter()
            .map(|(e, n)| {
                (
                    e,
                    if n <= skip {
                        n.min(held)
                    } else {
                        held + n - skip
                    },
                )
            })
            .collect();
        Ok((words[skip..].to_vec(), ends))
    }

    /// The last committed characters whose audio is gone, for the prompt.
    fn context(&self) -> String {
        let text = join_words(&self.context);
        let chars: Vec<char> = text.chars().collect();
        let from = chars.len().saturating_sub(self.opts.context_chars);
        chars[from..].iter().collect()
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
