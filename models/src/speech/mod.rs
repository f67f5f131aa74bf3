//! Speech recognition with Whisper on candle.
//!
//! How the types fit together:
//!
//! - Audio comes in through [`crate::audio::decode_file`] /
//!   [`crate::audio::decode_bytes`] as 16 kHz f32 samples per channel.
//! - A [`Transcriber`] owns one Whisper model (encoder, decoder with its
//!   key/value cache), its tokenizer and mel filterbank. It is meant to live
//!   on a model's owner thread: the server holds a
//!   [`crate::worker::ModelHandle<Transcriber>`] (or `Box<dyn Transcribe>`)
//!   and sends it jobs. [`Transcriber::load`] takes either a standard Hugging
//!   Face Whisper directory (safetensors + `config.json` + `tokenizer.json`)
//!   or the store's CTranslate2 model (`model.bin`), which it converts once
//!   with [`convert_ct2`] into `<store>/converted/<id>/` and reuses after.
//! - [`Transcribe::transcribe`] handles audio of any length (30-second
//!   windows, seeking to the last complete timestamp);
//!   [`Transcribe::transcribe_window`] decodes one window without seeking (for
//!   an incremental caller re-running a growing buffer);
//!   [`Transcribe::transcribe_channels`] transcribes each channel of a call
//!   recording and merges the [`Segment`]s by time, labelled by channel.
//! - [`TranscribeOptions`] choose the language (or detect it), the prompt and
//!   custom vocabulary, timestamps and the temperature fallback. The output is
//!   a serde [`Transcript`].
//! - A [`StreamingTranscriber`] turns live audio (0.5–1 s chunks) into final
//!   and partial segments with stable prefixes (local agreement); it holds no
//!   model, so one per call channel can borrow the owner thread's
//!   `Transcriber` step by step (see [`streaming`]).
//! - With the `testing` feature, `FakeTranscriber` returns a deterministic
//!   transcript built from the audio length, for server tests.
//!
//! ```no_run
//! use assist_models::audio::{DecodeOptions, decode_file};
//! use assist_models::speech::{LoadOptions, Transcribe, TranscribeOptions, Transcriber};
//! use std::path::Path;
//!
//! # fn main() -> assist_models::Result<()> {
//! let audio = decode_file(Path::new("call.wav"), &DecodeOptions::default())?;
//! let dir = Path::new("/root/.cache/assist/models/whisper-base");
//! let mut asr = Transcriber::load(dir, &LoadOptions::default())?;
//! let opts = TranscribeOptions { language: Some("zh".into()), ..Default::default() };
//! let transcript = asr.transcribe_channels(&audio.channels, &opts)?;
//! for seg in &transcript.segments {
//!     println!("[{:.1}-{:.1}] ch{:?} {}", seg.start_s, seg.end_s, seg.channel, seg.text);
//! }
//! # Ok(())
//! # }
//! ```

pub mod convert;
pub mod ct2;
mod decode;
#[cfg(any(test, feature = "testing"))]
mod fake;
pub mod mel;
pub mod model;
mod segments;
pub mod streaming;
mod tokens;
mod transcriber;

use serde::{Deserialize, Serialize};

pub use convert::{HfWhisperFiles, convert_ct2, converted_dir_for};
#[cfg(any(test, feature = "testing"))]
pub use fake::FakeTranscriber;
pub use model::Precision;
pub use streaming::{StreamUpdate, StreamingOptions, StreamingTranscriber};
pub use transcriber::{LoadOptions, Progress, Transcriber};

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

/// Prompt text for a language from the options: the initial prompt (or the
/// Chinese default) followed by the custom vocabulary.
pub(crate) fn prompt_text(opts: &TranscribeOptions, language: &str) -> Option<String> {
    let base = match &opts.initial_prompt {
        Some(p) => Some(p.clone()),
        None if language == "zh" => Some("以下是普通话的句子。".to_string()),
        None => None,
    };
    let vocab = if opts.vocabulary.is_empty() {
        None
    } else if language == "zh" {
        Some(format!("{}。", opts.vocabulary.join("、")))
    } else {
        Some(format!("{}.", opts.vocabulary.join(", ")))
    };
    let parts: Vec<String> = base.into_iter().chain(vocab).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A speech recogniser. Implemented by [`Transcriber`] and, with the
/// `testing` feature, by `FakeTranscriber`. All samples are 16 kHz mono f32.
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
    fn prompt_defaults_to_mandarin_hint_and_adds_vocabulary() {
        let mut opts = TranscribeOptions::default();
        assert_eq!(prompt_text(&opts, "en"), None);
        assert_eq!(
            prompt_text(&opts, "zh").as_deref(),
            Some("以下是普通话的句子。")
        );
        opts.vocabulary = vec!["星云套餐".into(), "Acme".into()];
        assert_eq!(
            prompt_text(&opts, "zh").as_deref(),
            Some("以下是普通话的句子。 星云套餐、Acme。")
        );
        assert_eq!(prompt_text(&opts, "en").as_deref(), Some("星云套餐, Acme."));
    }

    #[test]
    fn options_deserialise_with_defaults() {
        let opts: TranscribeOptions = serde_json::from_str(r#"{"language":"zh"}"#).unwrap();
        assert_eq!(opts.language.as_deref(), Some("zh"));
        assert!(opts.timestamps);
        assert_eq!(opts.temperatures.len(), 6);
    }
}
