//! What a speech recogniser takes and gives: [`TranscribeOptions`] in, a
//! [`Transcript`] of [`Segment`]s out, through the [`Transcribe`] trait.
//! Re-exported as `assist_models::speech`, next to the Whisper implementation.

use serde::{Deserialize, Serialize};

use crate::Result;

/// What a transcription produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// Language code (`zh`, `en`, ...), forced or detected.
    pub language: String,
    /// Length of the audio, seconds.
    pub duration_s: f64,
    /// Recognised speech in time order.
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// All segment texts joined by spaces (no spaces between Chinese segments).
    pub fn text(&self) -> String {
        let sep = if self.language == "zh" { "" } else { " " };
        self.segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// One stretch of recognised speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    /// Mean log-probability of the window's tokens (closer to 0 = surer).
    pub avg_logprob: f64,
    /// Probability that the window held no speech.
    pub no_speech_prob: f64,
    /// Sampling temperature the accepted decode used (0 = greedy).
    pub temperature: f64,
    /// Channel index for multi-channel recordings (`transcribe_channels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<usize>,
}

/// Whether to transcribe or translate into English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Transcribe,
    Translate,
}

/// How to transcribe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TranscribeOptions {
    /// Language code to force (`zh`, `en`, ...); `None` detects it from the
    /// first 30 seconds. English-only models always say `en`.
    pub language: Option<String>,
    pub task: Task,
    /// Predict timestamps, giving several segments per window (otherwise
    /// one segment per window).
    pub timestamps: bool,
    /// Context text before the audio. `None` uses "以下是普通话的句子。" for
    /// Chinese (steers Whisper to Simplified Mandarin) and nothing otherwise.
    pub initial_prompt: Option<String>,
    /// Product and company names to bias recognition towards; added to the prompt.
    pub vocabulary: Vec<String>,
    /// Give each window the previous window's text as context.
    pub condition_on_previous_text: bool,
    /// Temperatures tried in order when a decode is too repetitive or improbable.
    pub temperatures: Vec<f64>,
    /// Convert Chinese output to Simplified characters.
    pub simplified_chinese: bool,
    /// Most tokens decoded per 30-second window.
    pub max_tokens_per_window: usize,
    /// Seed of the sampler used at temperatures above 0.
    pub seed: u64,
    /// Encode only the audio that exists (plus padding) instead of a whole
    /// 30-second window, for one short utterance; `None` encodes 30 s as
    /// Whisper was trained. Used by [`Transcribe::transcribe_window`] only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit_window: Option<FitWindow>,
}

/// How [`TranscribeOptions::fit_window`] sizes a short encoder window.
///
/// Whisper's encoder takes any number of mel frames up to 3,000 (its
/// positional embedding is sliced), and its cost grows with them, so a
/// 3-second utterance encoded alone costs about a tenth of a 30-second
/// window. The window is the audio, plus `pad_s` of silence (Whisper was
/// trained on speech followed by padding, and the silence tells it where
/// speech ends), rounded up to whole `step_s`, at least `min_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FitWindow {
    pub pad_s: f64,
    pub min_s: f64,
    pub step_s: f64,
    /// When the fitted decode fails (no speech found, a repetition loop),
    /// decode again on a full window. Off for partials, which a later decode
    /// replaces anyway.
    pub retry_full: bool,
}

impl Default for FitWindow {
    fn default() -> Self {
        FitWindow {
            pad_s: 1.0,
            min_s: 3.0,
            step_s: 1.0,
            retry_full: true,
        }
    }
}

impl FitWindow {
    /// Mel frames (100 per second) to encode for `content_frames` of audio:
    /// even (the encoder's second convolution has stride 2), at most 3,000.
    pub fn frames(&self, content_frames: usize) -> usize {
        let step = ((self.step_s * 100.0).round() as usize).max(2);
        let want = content_frames + (self.pad_s.max(0.0) * 100.0).round() as usize;
        let want = want.div_ceil(step) * step;
        let min = (self.min_s.max(0.0) * 100.0).round() as usize;
        let frames = want.max(min).clamp(2, 3000);
        frames + frames % 2
    }
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            task: Task::Transcribe,
            timestamps: true,
            initial_prompt: None,
            vocabulary: Vec::new(),
            condition_on_previous_text: true,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            simplified_chinese: true,
            max_tokens_per_window: 224,
            seed: 0,
            fit_window: None,
        }
    }
}

/// A speech recogniser. Implemented by `assist_models::speech::Transcriber`
/// (Whisper on candle) and, with its `testing` feature, by `FakeTranscriber`. All samples are 16 kHz mono f32.
pub trait Transcribe: Send + 'static {
    /// Transcribe audio of any length.
    fn transcribe(&mut self, samples: &[f32], opts: &TranscribeOptions) -> Result<Transcript>;

    /// Transcribe one window of at most 30 s (longer input is cut to its
    /// first 30 s) without seeking: for callers that re-run a growing buffer.
    fn transcribe_window(
        &mut self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript>;

    /// Transcribe each channel on its own (e.g. channel 0 = rep, 1 = customer)
    /// and merge the segments by start time, each labelled with its channel.
    /// The language is the first channel's with speech (or the forced one).
    fn transcribe_channels(
        &mut self,
        channels: &[Vec<f32>],
        opts: &TranscribeOptions,
    ) -> Result<Transcript> {
        let mut language = None;
        let mut duration_s: f64 = 0.0;
        let mut segments = Vec::new();
        for (i, samples) in channels.iter().enumerate() {
            let t = self.transcribe(samples, opts)?;
            duration_s = duration_s.max(t.duration_s);
            if language.is_none() && !t.segments.is_empty() {
                language = Some(t.language.clone());
            }
            segments.extend(t.segments.into_iter().map(|s| Segment {
                channel: Some(i),
                ..s
            }));
        }
        segments.sort_by(|a, b| {
            a.start_s
                .total_cmp(&b.start_s)
                .then(a.channel.cmp(&b.channel))
        });
        Ok(Transcript {
            language: language
                .or_else(|| opts.language.clone())
                .unwrap_or_else(|| "en".to_string()),
            duration_s,
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fitted_window_is_the_audio_plus_padding_in_whole_steps() {
        let fit = FitWindow::default();
        // 2.34 s of audio + 1 s of padding, rounded up to whole seconds.
        assert_eq!(fit.frames(234), 400);
        // Never under the minimum (3 s), never over Whisper's 30 s.
        assert_eq!(fit.frames(10), 300);
        assert_eq!(fit.frames(2_950), 3_000);
        assert_eq!(fit.frames(9_000), 3_000);
        // Always even: the encoder's second convolution halves it.
        let odd = FitWindow {
            pad_s: 0.0,
            min_s: 0.0,
            step_s: 0.01,
            retry_full: false,
        };
        assert_eq!(odd.frames(123) % 2, 0);
        assert_eq!(TranscribeOptions::default().fit_window, None);
    }
}
