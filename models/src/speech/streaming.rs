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

/// One word (or one CJK character) of a hypothesis, with absolute times.
#[derive(Debug, Clone, PartialEq)]
struct Word {
    text: String,
    /// Lower case, punctuation removed: what agreement compares.
    key: String,
    start_s: f64,
    end_s: f64,
}

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

/// Number of leading words of `b` that agree with `a` (compared by key).
fn common_prefix(a: &[Word], b: &[Word]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x.key == y.key).count()
}

/// How many leading words of `hyp` re-state `committed`: the prefix length
/// whose edit distance to `committed` is smallest (ties: closest to its length).
fn align_prefix(committed: &[Word], hyp: &[Word]) -> usize {
    if committed.is_empty() {
        return 0;
    }
    let n = committed.len();
    // dist[j] = edit distance between committed and hyp[..j].
    let mut prev: Vec<usize> = (0..=hyp.len()).collect();
    let mut cur = vec![0; hyp.len() + 1];
    for (i, c) in committed.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hyp.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(c.key != h.key))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (0..=hyp.len())
        .min_by_key(|&j| (prev[j], j.abs_diff(n)))
        .unwrap_or(0)
}

/// Punctuation that ends the word before it.
const CLOSING: &str = ",.!?;:，。！？；：、)]}”’»…";

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// Split a segment's text into words (CJK: characters) with times spread
/// over the segment in proportion to their length. Punctuation sticks to the
/// word before it.
fn split_words(text: &str, start_s: f64, end_s: f64) -> Vec<Word> {
    let mut units: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            if !cur.is_empty() {
                units.push(std::mem::take(&mut cur));
            }
        } else if is_cjk(c) {
            if !cur.is_empty() {
                units.push(std::mem::take(&mut cur));
            }
            units.push(c.to_string());
        } else if cur.is_empty() && CLOSING.contains(c) && !units.is_empty() {
            // Closing punctuation after a CJK character joins it.
            if let Some(u) = units.last_mut() {
                u.push(c);
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        units.push(cur);
    }
    let mut words: Vec<Word> = Vec::new();
    for u in units {
        let key: String = u
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        if key.is_empty() {
            if let Some(w) = words.last_mut() {
                w.text.push_str(&u);
            }
            continue;
        }
        words.push(Word {
            text: u,
            key,
            start_s: 0.0,
            end_s: 0.0,
        });
    }
    let total: usize = words.iter().map(|w| w.key.chars().count()).sum();
    let span = (end_s - start_s).max(0.0);
    let mut at = start_s;
    for w in &mut words {
        let share = span * w.key.chars().count() as f64 / total.max(1) as f64;
        w.start_s = at;
        at += share;
        w.end_s = at;
    }
    words
}

/// Words back into text: spaces between words, none around CJK characters.
fn join_words(words: &[Word]) -> String {
    let mut out = String::new();
    for w in words {
        let cjk_edge = out
            .chars()
            .last()
            .is_some_and(|c| is_cjk(c) || (!c.is_alphanumeric() && !c.is_ascii()))
            || w.text.chars().next().is_some_and(is_cjk);
        if !out.is_empty() && !cjk_edge {
            out.push(' ');
        }
        out.push_str(&w.text);
    }
    out
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::FakeTranscriber;

    /// A recogniser for synthetic audio in which word `k` is a run of the
    /// constant sample value `0.2 + 0.01 k` (0.4 s long) and silence is 0.
    /// It names a word `w<k>` once its whole run is in the buffer, and guesses
    /// wrongly (`guess<k>x<n>`) while the run is cut off by the buffer's end —
    /// Whisper's unstable last word. Slivers under 0.1 s are not heard. Every
    /// three words make one segment.
    #[derive(Debug, Default)]
    struct ScriptedAsr {
        decodes: usize,
        prompts: Vec<String>,
    }

    const WORD_S: f64 = 0.4;

    fn word_audio(k: usize) -> Vec<f32> {
        vec![0.2 + 0.01 * k as f32; (WORD_S * 16_000.0) as usize]
    }

    impl Transcribe for ScriptedAsr {
        fn transcribe(&mut self, samples: &[f32], opts: &TranscribeOptions) -> Result<Transcript> {
            self.transcribe_window(samples, opts)
        }

        fn transcribe_window(
            &mut self,
            samples: &[f32],
            opts: &TranscribeOptions,
        ) -> Result<Transcript> {
            self.decodes += 1;
            self.prompts
                .push(opts.initial_prompt.clone().unwrap_or_default());
            let mut words = Vec::new();
            let mut i = 0;
            while i < samples.len() {
                if samples[i] == 0.0 {
                    i += 1;
                    continue;
                }
                let v = samples[i];
                let start = i;
                while i < samples.len() && samples[i] == v {
                    i += 1;
                }
                if i - start < 1_600 {
                    // A sliver left by a cut: too short to be heard as a word.
                    continue;
                }
                let k = ((v - 0.2) / 0.01).round() as usize;
                let complete = i < samples.len() && (i - start) as f64 / 16_000.0 >= WORD_S - 0.01;
                // An incomplete word is guessed differently every 0.1 s.
                let name = if complete {
                    format!("w{k}")
                } else {
                    format!("guess{k}x{}", (i - start) / 1_600)
                };
                words.push((start as f64 / 16_000.0, i as f64 / 16_000.0, name));
            }
            let segments = words
                .chunks(3)
                .map(|c| Segment {
                    start_s: c[0].0,
                    end_s: c[c.len() - 1].1,
                    text: c.iter().map(|w| w.2.as_str()).collect::<Vec<_>>().join(" "),
                    avg_logprob: -0.1,
                    no_speech_prob: 0.0,
                    temperature: 0.0,
                    channel: None,
                })
                .collect();
            Ok(Transcript {
                language: "en".into(),
                duration_s: samples.len() as f64 / 16_000.0,
                segments,
            })
        }
    }

    fn opts() -> StreamingOptions {
        StreamingOptions {
            transcribe: TranscribeOptions {
                language: Some("en".into()),
                ..Default::default()
            },
            min_step_s: 0.5,
            ..Default::default()
        }
    }

    /// Words 0..n, each followed by 0.15 s of silence (too short to end a
    /// phrase); 0.55 s per word, so 0.5 s chunks often cut a word.
    fn phrase(from: usize, n: usize) -> Vec<f32> {
        let mut a = Vec::new();
        for k in from..from + n {
            a.extend(word_audio(k));
            a.extend(vec![0.0; 2_400]);
        }
        a
    }

    fn run(
        asr: &mut ScriptedAsr,
        s: &mut StreamingTranscriber,
        audio: &[f32],
    ) -> Vec<StreamUpdate> {
        audio
            .chunks(8_000)
            .map(|c| s.feed(asr, c).unwrap())
            .collect()
    }

    #[test]
    fn agreement_commits_stable_prefixes_and_never_revises() {
        let mut asr = ScriptedAsr::default();
        let mut s = StreamingTranscriber::new(opts());
        let mut updates = run(&mut asr, &mut s, &phrase(0, 12));
        updates.push(s.finish(&mut asr).unwrap());
        let finals: Vec<String> = updates
            .iter()
            .flat_map(|u| u.finals.iter().map(|f| f.text.clone()))
            .collect();
        let expected: Vec<String> = (0..12).map(|k| format!("w{k}")).collect();
        assert_eq!(finals.join(" "), expected.join(" "), "{updates:#?}");
        assert_eq!(s.committed_text(), expected.join(" "));
        // Unstable guesses are shown as partials but never committed.
        assert!(
            updates
                .iter()
                .any(|u| u.partial.as_ref().is_some_and(|p| p.text.contains("guess")))
        );
        assert!(!finals.iter().any(|f| f.contains("guess")));
        // Whatever becomes final was a prefix of the partial shown before it
        // (except at finish, which commits the rest).
        let mut last_partial: Option<String> = None;
        for u in &updates[..updates.len() - 1] {
            for f in &u.finals {
                let p = last_partial.clone().unwrap_or_default();
                assert!(
                    p.starts_with(&f.text),
                    "final `{}` not a prefix of partial `{p}`",
                    f.text
                );
            }
            if u.decoded {
                last_partial = u.partial.as_ref().map(|p| p.text.clone());
            }
        }
        // Times are absolute and in order (word times inside a Whisper
        // segment are interpolated, so neighbours may overlap a little).
        let segs = s.transcript().segments;
        assert!(
            segs.windows(2).all(|w| w[0].start_s <= w[1].start_s),
            "{segs:?}"
        );
        assert!(segs.last().unwrap().end_s > 5.0);
    }

    #[test]
    fn buffer_is_cut_at_committed_segments_and_context_becomes_prompt() {
        let mut asr = ScriptedAsr::default();
        let mut s = StreamingTranscriber::new(opts());
        run(&mut asr, &mut s, &phrase(0, 30));
        // 30 words × 0.5 s = 15 s pushed, but the buffer holds only the tail.
        assert!(
            s.buffer.len() < 16_000 * 4,
            "{} samples left",
            s.buffer.len()
        );
        assert!(s.buffer_start_s > 10.0);
        assert!(
            asr.prompts.last().unwrap().contains("w20"),
            "{:?}",
            asr.prompts.last()
        );
        s.finish(&mut asr).unwrap();
        let expected: Vec<String> = (0..30).map(|k| format!("w{k}")).collect();
        assert_eq!(s.committed_text(), expected.join(" "));
    }

    #[test]
    fn silence_is_never_decoded_and_a_pause_ends_the_phrase() {
        let mut asr = ScriptedAsr::default();
        let mut s = StreamingTranscriber::new(opts());
        let ups = run(&mut asr, &mut s, &vec![0.0; 16_000 * 10]);
        assert_eq!(asr.decodes, 0);
        assert!(
            ups.iter()
                .all(|u| u.finals.is_empty() && u.partial.is_none())
        );
        assert!(s.buffer.len() <= 16_000, "silence is dropped");

        // Two words then a pause: committed during the pause, without finish().
        let mut audio = phrase(0, 2);
        audio.extend(vec![0.0; 16_000]);
        let ups = run(&mut asr, &mut s, &audio);
        assert_eq!(s.committed_text(), "w0 w1", "{ups:#?}");
        let t = s.finish(&mut asr).unwrap();
        assert!(t.finals.is_empty());
        // Stream times count the leading silence.
        assert!(s.transcript().segments[0].start_s >= 10.0);
    }

    #[test]
    fn a_run_on_longer_than_the_buffer_is_committed() {
        let mut asr = ScriptedAsr::default();
        let mut s = StreamingTranscriber::new(StreamingOptions {
            max_buffer_s: 3.0,
            ..opts()
        });
        // One continuous 6 s "word" the recogniser never completes (nor agrees on).
        let audio = vec![0.25; 16_000 * 6];
        run(&mut asr, &mut s, &audio);
        assert!(s.buffer.len() <= 16_000 * 4);
        assert!(!s.committed_text().is_empty());
    }

    #[test]
    fn works_with_the_fake_transcriber_and_finish_flushes() {
        let mut fake = FakeTranscriber::default();
        let mut s = StreamingTranscriber::new(opts());
        let tone: Vec<f32> = (0..8_000).map(|i| (i as f32 * 0.1).sin() * 0.3).collect();
        let u = s.feed(&mut fake, &tone).unwrap();
        assert!(u.finals.is_empty());
        assert_eq!(u.partial.unwrap().text, "fake speech 1");
        let u = s.finish(&mut fake).unwrap();
        assert!(u.decoded);
        assert_eq!(s.committed_text(), "fake speech 1");
        // After finish, more silence changes nothing.
        s.feed(&mut fake, &[0.0; 16_000]).unwrap();
        assert_eq!(s.finish(&mut fake).unwrap(), StreamUpdate::default());
    }

    #[test]
    fn words_split_by_script_and_rejoin() {
        let w = split_words("您好，我是 Acme 的小王。", 1.0, 2.0);
        let keys: Vec<&str> = w.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["您", "好", "我", "是", "acme", "的", "小", "王"]);
        assert_eq!(w[1].text, "好，");
        assert_eq!(join_words(&w), "您好，我是Acme的小王。");
        assert!((w[0].start_s - 1.0).abs() < 1e-9 && (w[7].end_s - 2.0).abs() < 1e-9);
        let e = split_words("Hello, world. It's $20!", 0.0, 1.0);
        assert_eq!(join_words(&e), "Hello, world. It's $20!");
        assert_eq!(e[3].key, "20");
    }

    #[test]
    fn alignment_skips_repeated_committed_words_even_if_revised() {
        let w = |k: &str| Word {
            text: k.into(),
            key: k.into(),
            start_s: 0.0,
            end_s: 0.0,
        };
        let committed = [w("the"), w("price"), w("is")];
        let hyp = [w("the"), w("prize"), w("is"), w("ten"), w("dollars")];
        assert_eq!(align_prefix(&committed, &hyp), 3);
        assert_eq!(align_prefix(&[], &hyp), 0);
        let dropped = [w("price"), w("is"), w("ten")];
        assert_eq!(align_prefix(&committed, &dropped), 2);
    }
}
