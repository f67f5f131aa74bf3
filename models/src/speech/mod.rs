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

pub use convert::{HfWhisperFiles, convert_ct2, converted_dir_for};
#[cfg(any(test, feature = "testing"))]
pub use fake::FakeTranscriber;
pub use model::Precision;
pub use streaming::{StreamUpdate, StreamingOptions, StreamingTranscriber};
pub use transcriber::{LoadOptions, Progress, Transcriber};

// The plain types and the trait live in the candle-free API crate.
pub use assist_model_api::speech::{
    FitWindow, Segment, Task, Transcribe, TranscribeOptions, Transcript,
};

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
