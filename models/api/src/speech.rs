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
