//! Speech in the service: the Whisper model on its owner thread, and the
//! checks every uploaded recording goes through before it is accepted.
//!
//! Uploads are decoded once when they arrive (on a blocking thread), so a
//! corrupt, empty, unsupported or too-long file is refused with a clear error
//! at once (400 / 415 / 413) instead of failing later in a job.

use std::path::Path;

use assist_models::audio::{DecodeOptions, Decoded, decode_bytes, decode_file};
use assist_models::speech::{LoadOptions, Transcribe, TranscribeOptions, Transcriber, Transcript};
use assist_models::worker::{ModelHandle, WorkerConfig};

use crate::config::Config;

use crate::db::calls::ChannelLayout;
use crate::error::ApiError;

pub mod formats;

/// The speech model behind its owner thread. Cheap to clone.
#[derive(Clone)]
pub struct SpeechService {
    handle: ModelHandle<Box<dyn Transcribe>>,
    /// Instances for live calls (`live_speech_workers`), so a long recording
    /// being transcribed never holds a live utterance back, and several
    /// utterances are decoded at once; empty: live shares `handle`.
    live: Vec<ModelHandle<Box<dyn Transcribe>>>,
    /// Silero VAD for live endpointing; `None` falls back to an energy gate.
    vad: Option<assist_models::vad::SileroModel>,
    model: String,
}

impl std::fmt::Debug for SpeechService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechService")
            .field("model", &self.model)
            .field("live_instances", &self.live.len())
            .field("vad", &self.vad.as_ref().map(|v| v.source().to_path_buf()))
            .finish()
    }
}

impl SpeechService {
    /// Load the Whisper model in `dir` (the store's CTranslate2 layout or a
    /// Hugging Face directory) on a new owner thread. Blocking.
    /// A second instance on its own thread serves live calls.
    pub fn open(config: &Config, dir: &Path, model: &str) -> anyhow::Result<SpeechService> {
        let load = |name: String| {
            let dir = dir.to_path_buf();
            move || {
                let opts = LoadOptions {
                    name,
                    ..LoadOptions::default()
                };
                Ok(Box::new(Transcriber::load(&dir, &opts)?) as Box<dyn Transcribe>)
            }
        };
        let mut service = Self::spawn(config, model, load(model.to_string()))?;
        for i in 0..config.live.live_speech_workers.max(1) {
            service = service.with_live(config, load(format!("{model}-live-{i}")))?;
        }
        Ok(service)
    }

    /// Live recognisers that decode at once.
    pub fn live_workers(&self) -> usize {
        self.live.len().max(1)
    }

    /// Serve live calls from a second recogniser on its own thread.
    pub fn with_live(
        mut self,
        config: &Config,
        load: impl FnOnce() -> assist_models::Result<Box<dyn Transcribe>> + Send + 'static,
    ) -> anyhow::Result<SpeechService> {
        self.live.push(ModelHandle::spawn(
            WorkerConfig::new(
                format!("asr-live-{}", self.live.len()),
                config.models.model_queue_capacity,
            ),
            load,
        )?);
        Ok(self)
    }

    /// Endpoint live audio with Silero VAD (else an energy gate).
    pub fn with_vad(mut self, vad: Option<assist_models::vad::SileroModel>) -> SpeechService {
        self.vad = vad;
        self
    }

    /// The VAD weights live channels use, if loaded.
    pub fn vad(&self) -> Option<&assist_models::vad::SileroModel> {
        self.vad.as_ref()
    }

    /// Run any recogniser (tests use `FakeTranscriber` or a failing one).
    pub fn spawn(
        config: &Config,
        model: &str,
        load: impl FnOnce() -> assist_models::Result<Box<dyn Transcribe>> + Send + 'static,
    ) -> anyhow::Result<SpeechService> {
        let handle = ModelHandle::spawn(
            WorkerConfig::new("asr", config.models.model_queue_capacity),
            load,
        )?;
        Ok(SpeechService {
            handle,
            live: Vec::new(),
            vad: None,
            model: model.to_string(),
        })
    }

    /// The model id or role this service runs (reported with transcripts).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Transcribe decoded audio as laid out: mono mixes every channel into one
    /// track; a stereo layout transcribes the two channels separately.
    pub async fn transcribe(
        &self,
        audio: Decoded,
        layout: ChannelLayout,
        opts: TranscribeOptions,
    ) -> Result<Transcript, ApiError> {
        let out = self
            .handle
            .run(move |asr| transcribe_layout(asr.as_mut(), &audio, layout, &opts))
            .await?;
        Ok(out)
    }

    /// Transcribe one live utterance (16 kHz mono) on live instance `worker`.
    pub async fn transcribe_utterance(
        &self,
        worker: usize,
        samples: Vec<f32>,
        opts: TranscribeOptions,
    ) -> Result<Transcript, ApiError> {
        let handle = if self.live.is_empty() {
            &self.handle
        } else {
            &self.live[worker % self.live.len()]
        };
        let out = handle
            .run(move |asr| asr.transcribe_window(&samples, &opts))
            .await?;
        Ok(out)
    }

    pub fn shutdown(&self) {
        self.handle.shutdown();
        for live in &self.live {
            live.shutdown();
        }
    }
}

/// Run a recogniser on audio as laid out: mono mixes every channel into one
/// track; a stereo layout transcribes the two channels separately.
pub fn transcribe_layout(
    asr: &mut dyn Transcribe,
    audio: &Decoded,
    layout: ChannelLayout,
    opts: &TranscribeOptions,
) -> assist_models::Result<Transcript> {
    match layout {
        ChannelLayout::Mono => asr.transcribe(&audio.mono(), opts),
        ChannelLayout::RepLeft | ChannelLayout::RepRight => {
            asr.transcribe_channels(&audio.channels[..2], opts)
        }
    }
}

/// Decode options from the configuration.
pub fn decode_options(config: &Config) -> DecodeOptions {
    DecodeOptions {
        max_seconds: config.speech.speech_max_seconds,
        ffmpeg: (!config.speech.ffmpeg.as_os_str().is_empty())
            .then(|| config.speech.ffmpeg.clone()),
        ..DecodeOptions::default()
    }
}

/// Decode an upload on a blocking thread (errors become 400 / 413 / 415).
pub async fn decode_upload(config: &Config, bytes: bytes::Bytes) -> Result<Decoded, ApiError> {
    let opts = decode_options(config);
    tokio::task::spawn_blocking(move || decode_bytes(&bytes, &opts))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// Decode a stored recording on a blocking thread.
pub async fn decode_stored(config: &Config, path: &Path) -> assist_models::Result<Decoded> {
    let opts = decode_options(config);
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || decode_file(&path, &opts)).await {
        Ok(r) => r,
        Err(join) => Err(assist_models::Error::InvalidAudio(format!(
            "decoding panicked: {join}"
        ))),
    }
}

/// The channel layout to use for a recording: the requested one (checked
/// against the file) or, when none was given, mono for one channel and
/// rep-left for two (the common call-recorder convention).
pub fn resolve_layout(
    requested: Option<ChannelLayout>,
    channels: usize,
) -> Result<ChannelLayout, ApiError> {
    match (requested, channels) {
        (_, 0) => Err(ApiError::invalid("the recording has no audio channels")),
        (Some(ChannelLayout::Mono), _) => Ok(ChannelLayout::Mono),
        (Some(layout), 2) => Ok(layout),
        (Some(layout), n) => Err(ApiError::invalid(format!(
            "channel_layout `{}` needs a stereo recording (rep on one channel, customer on the other); \
             this one has {n} channel{}; send channel_layout `mono` instead",
            layout.as_str(),
            if n == 1 { "" } else { "s" }
        ))),
        (None, 2) => Ok(ChannelLayout::RepLeft),
        (None, _) => Ok(ChannelLayout::Mono),
    }
}

/// Transcription options for the service: the forced language (if any) and
/// the configured vocabulary.
pub fn transcribe_options(config: &Config, language: Option<String>) -> TranscribeOptions {
    TranscribeOptions {
        language: language.or_else(|| config.speech.speech_language.clone()),
        vocabulary: config.speech.speech_vocabulary.clone(),
        ..TranscribeOptions::default()
    }
}

/// Whisper's language codes are two or three lowercase letters.
pub fn check_language(language: &str) -> Result<String, ApiError> {
    let l = language.trim().to_ascii_lowercase();
    let l = match l.as_str() {
        "zh-cn" | "zh-hans" | "cmn" | "chinese" | "mandarin" => "zh".to_string(),
        "en-us" | "en-gb" | "english" => "en".to_string(),
        _ => l,
    };
    if WHISPER_LANGUAGES.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(ApiError::invalid(format!(
            "language `{language}` is not one Whisper knows; use a code such as `zh` or `en`, or leave it out to detect it"
        )))
    }
}

/// The language codes Whisper's multilingual vocabularies have a token for.
/// Checked at the door: an unknown code would otherwise fail every attempt
/// of the transcription job.
const WHISPER_LANGUAGES: [&str; 100] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_checked_against_the_file() {
        assert_eq!(resolve_layout(None, 1).unwrap(), ChannelLayout::Mono);
        assert_eq!(resolve_layout(None, 2).unwrap(), ChannelLayout::RepLeft);
        assert_eq!(resolve_layout(None, 6).unwrap(), ChannelLayout::Mono);
        assert_eq!(
            resolve_layout(Some(ChannelLayout::RepRight), 2).unwrap(),
            ChannelLayout::RepRight
        );
        assert_eq!(
            resolve_layout(Some(ChannelLayout::Mono), 2).unwrap(),
            ChannelLayout::Mono
        );
        let err = resolve_layout(Some(ChannelLayout::RepLeft), 1).unwrap_err();
        assert!(err.to_string().contains("has 1 channel;"), "{err}");
        assert!(resolve_layout(None, 0).is_err());
    }

    #[test]
    fn language_codes_are_normalised() {
        assert_eq!(check_language("zh-CN").unwrap(), "zh");
        assert_eq!(check_language("EN").unwrap(), "en");
        assert_eq!(check_language("yue").unwrap(), "yue");
        assert!(check_language("klingon!").is_err());
        assert!(check_language("").is_err());
    }
}
