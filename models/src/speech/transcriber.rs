//! [`Transcriber`]: loading a Whisper model and running long-form transcription.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use super::convert::{self, HfWhisperFiles, WhisperConfig};
use super::decode::{
    self, COMPRESSION_RATIO_THRESHOLD, DecodeRequest, LOGPROB_THRESHOLD, NO_SPEECH_THRESHOLD, Rng,
};
use super::mel::{self, FRAMES_PER_SECOND, WINDOW_FRAMES};
use super::model::{Precision, Whisper};
use super::segments::split_segments;
use super::tokens::SpecialTokens;
use super::{Segment, Task, Transcribe, TranscribeOptions, Transcript, prompt_text};
use crate::{Error, Result};

/// A window whose samples all stay below this (-60 dBFS) is silence.
const SILENCE_PEAK: f32 = 1e-3;
/// Frames of silence kept before the first loud sample (0.1 s).
const SILENCE_MARGIN_FRAMES: usize = 10;

/// How to load a Whisper model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Weight precision of the linear layers ([`Precision::Mixed`] by default).
    pub precision: Precision,
    /// Where to cache the conversion of a CTranslate2 model; default
    /// `<store root>/converted/<model id>` (see [`super::converted_dir_for`]).
    pub converted_dir: Option<PathBuf>,
    /// Name for logs and errors.
    pub name: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            precision: Precision::default(),
            converted_dir: None,
            name: "asr".to_string(),
        }
    }
}

/// A loaded Whisper model with its tokenizer and mel filterbank. Not `Sync`
/// in spirit: it keeps decoder state, so one owner thread drives it.
#[derive(Debug)]
pub struct Transcriber {
    model: Whisper,
    tokenizer: Tokenizer,
    special: SpecialTokens,
    filters: Vec<f32>,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    device: Device,
    name: String,
    progress: Option<Progress>,
}

/// Called after each 30-second window of a long transcription with
/// (seconds done, seconds in all), for progress bars.
pub struct Progress(pub Box<dyn FnMut(f64, f64) + Send>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl Transcriber {
    /// Load from a model directory: the store's CTranslate2 layout
    /// (`model.bin`, converted once and cached) or a Hugging Face layout.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let files = if dir.join("model.bin").is_file() {
            let out = opts
                .converted_dir
                .clone()
                .unwrap_or_else(|| convert::converted_dir_for(dir));
            convert::convert_ct2(dir, &out)?
        } else {
            HfWhisperFiles::in_dir(dir)?
        };
        Transcriber::load_files(&files, opts)
    }

    /// Report progress of long transcriptions (`None` stops reporting).
    pub fn set_progress(&mut self, progress: Option<Progress>) {
        self.progress = progress;
    }

    /// Load from HF-layout files.
    pub fn load_files(files: &HfWhisperFiles, opts: &LoadOptions) -> Result<Self> {
        let started = std::time::Instant::now();
        let load_err = |reason: String| Error::Load {
            model: opts.name.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&files.config)
            .map_err(|e| Error::io("reading", &files.config, e))?;
        let config: WhisperConfig =
            serde_json::from_str(&text).map_err(|e| Error::ModelFormat {
                path: files.config.clone(),
                reason: e.to_string(),
            })?;
        let tokenizer = Tokenizer::from_file(&files.tokenizer)
            .map_err(|e| load_err(format!("tokenizer {}: {e}", files.tokenizer.display())))?;
        let special =
            SpecialTokens::from_tokenizer(&tokenizer, config.vocab_size).map_err(load_err)?;
        let device = Device::Cpu;
        let mut tensors = HashMap::new();
        for path in &files.weights {
            let part =
                candle_core::safetensors::load(path, &device).map_err(|e| Error::ModelFormat {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            tensors.extend(part);
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = Whisper::load(vb, config.model(), opts.precision)
            .map_err(|e| load_err(e.to_string()))?;
        let mut suppress = config.suppress_tokens.clone();
        // Never sample the task/control tokens between <|startoftranscript|> and the timestamps.
        suppress.extend(special.sot..special.timestamp_begin);
        let mut suppress_begin = config.begin_suppress_tokens.clone();
        if suppress_begin.is_empty() {
            suppress_begin = tokenizer.token_to_id("Ġ").into_iter().collect();
        }
        suppress_begin.push(special.eot);
        tracing::info!(
            model = %opts.name,
            precision = ?opts.precision,
            layers = config.encoder_layers,
            d_model = config.d_model,
            multilingual = special.multilingual(),
            load_ms = started.elapsed().as_millis() as u64,
            "whisper loaded"
        );
        Ok(Transcriber {
            filters: mel::mel_filters(
                mel::SAMPLE_RATE,
                candle_transformers::models::whisper::N_FFT,
                config.num_mel_bins,
            ),
            model,
            tokenizer,
            special,
            suppress,
            suppress_begin,
            device,
            name: opts.name.clone(),
            progress: None,
        })
    }

    /// Whether the model knows several languages (else English only).
    pub fn is_multilingual(&self) -> bool {
        self.special.multilingual()
    }

    /// The language codes the model can be told to use.
    pub fn languages(&self) -> Vec<&str> {
        self.special
            .languages
            .iter()
            .map(|(c, _)| c.as_str())
            .collect()
    }

    /// Detect the spoken language from the first 30 s: `(code, probability)`.
    pub fn detect_language(&mut self, samples: &[f32]) -> Result<(String, f64)> {
        let (mel, frames) = self.mel(samples);
        let audio = self
            .encode(&mel, frames, 0)
            .map_err(|e| self.infer_err(e))?;
        self.detect_from_audio(&audio)
            .map_err(|e| self.infer_err(e))
    }

    fn infer_err(&self, e: candle_core::Error) -> Error {
        Error::Inference {
            model: self.name.clone(),
            reason: e.to_string(),
        }
    }

    /// Log-mel of the samples followed by 30 s of silence, so every window
    /// starting inside the audio is complete. Returns (mel, frames per row).
    fn mel(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        self.mel_padded(samples, WINDOW_FRAMES)
    }

    /// Log-mel of the samples followed by `pad_frames` of silence.
    fn mel_padded(&self, samples: &[f32], pad_frames: usize) -> (Vec<f32>, usize) {
        let mut padded = Vec::with_capacity(samples.len() + pad_frames * 160);
        padded.extend_from_slice(samples);
        padded.resize(samples.len() + pad_frames * 160, 0.0);
        mel::log_mel(&padded, &self.filters, self.model.config.num_mel_bins)
    }

    /// Encoder output of the 30-second window starting at mel frame `seek`.
    fn encode(&mut self, mel: &[f32], frames: usize, seek: usize) -> candle_core::Result<Tensor> {
        self.encode_frames(mel, frames, seek, WINDOW_FRAMES)
    }

    /// Encoder output of `width` mel frames from `seek` (at most 3,000; the
    /// mel beyond the audio is that of silence, as in a padded window).
    fn encode_frames(
        &mut self,
        mel: &[f32],
        frames: usize,
        seek: usize,
        width: usize,
    ) -> candle_core::Result<Tensor> {
        let n_mels = self.model.config.num_mel_bins;
        let width = width.clamp(2, WINDOW_FRAMES);
        let mut window = vec![0f32; n_mels * width];
        for m in 0..n_mels {
            let row = &mel[m * frames..(m + 1) * frames];
            let end = (seek + width).min(frames);
            window[m * width..m * width + (end - seek)].copy_from_slice(&row[seek..end]);
        }
        let t = Tensor::from_vec(window, (1, n_mels, width), &self.device)?;
        self.model.encoder.forward(&t)
    }

    fn detect_from_audio(&mut self, audio: &Tensor) -> candle_core::Result<(String, f64)> {
        if !self.special.multilingual() {
            return Ok(("en".to_string(), 1.0));
        }
        let decoder = &mut self.model.decoder;
        decoder.reset();
        let hidden = decoder.forward(&[self.special.sot], audio)?;
        let logits = decoder.logits(&hidden, 0)?.to_vec1::<f32>()?;
        let langs = &self.special.languages;
        let scores: Vec<f32> = langs.iter().map(|(_, id)| logits[*id as usize]).collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let total: f64 = scores.iter().map(|&s| ((s - max) as f64).exp()).sum();
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        Ok((langs[best].0.clone(), 1.0 / total))
    }

    fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(format!(" {}", text.trim()), false)
            .map_err(|e| Error::Inference {
                model: self.name.clone(),
                reason: format!("tokenizing the prompt: {e}"),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    fn decode_text(&self, ids: &[u32], language: &str, opts: &TranscribeOptions) -> String {
        let text: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&i| i < self.special.eot)
            .collect();
        let s = self.tokenizer.decode(&text, true).unwrap_or_default();
        let s = s.trim();
        if language == "zh" && opts.simplified_chinese {
            zhconv::zhconv(s, zhconv::Variant::ZhHans)
        } else {
            s.to_string()
        }
    }

    /// The language to use: forced, English for English-only models, else
    /// detected on the window at `seek`.
    fn resolve_language(&mut self, opts: &TranscribeOptions, audio: &Tensor) -> Result<String> {
        if !self.special.multilingual() {
            return Ok("en".to_string());
        }
        if let Some(code) = &opts.language {
            let code = code.to_ascii_lowercase();
            let code = code.split(['-', '_']).next().unwrap_or("").to_string();
            if self.special.language(&code).is_none() {
                return Err(Error::Inference {
                    model: self.name.clone(),
                    reason: format!("unknown language `{code}`"),
                });
            }
            return Ok(code);
        }
        let (code, p) = self
            .detect_from_audio(audio)
            .map_err(|e| self.infer_err(e))?;
        tracing::debug!(language = %code, probability = p, "language detected");
        Ok(code)
    }

    fn sot_sequence(&self, language: &str, opts: &TranscribeOptions) -> Vec<u32> {
        let mut seq = vec![self.special.sot];
        if let Some(lang) = self.special.language(language) {
            seq.push(lang);
            let task = match opts.task {
                Task::Transcribe => self.special.transcribe,
                Task::Translate => self.special.translate,
            };
            seq.extend(task);
        }
        if !opts.timestamps {
            seq.push(self.special.no_timestamps);
        }
        seq
    }

    /// The shared loop: windows from mel frame 0 until `content_frames`;
    /// with `seek_windows` false only the first window is decoded.
    fn run(
        &mut self,
        samples: &[f32],
        opts: &TranscribeOptions,
        seek_windows: bool,
    ) -> Result<Transcript> {
        let duration_s = samples.len() as f64 / mel::SAMPLE_RATE as f64;
        let content_frames = samples.len().div_ceil(160);
        let (mel, frames) = match (&opts.fit_window, seek_windows) {
            // A short window needs only its own padding.
            (Some(fit), false) => {
                self.mel_padded(samples, fit.frames(content_frames.min(WINDOW_FRAMES)) + 2)
            }
            _ => self.mel(samples),
        };
        let mut segments = Vec::new();
        let mut language = None;
        let mut seek = 0usize;
        let mut context: Vec<u32> = Vec::new();
        let mut rng = Rng::new(opts.seed);
        let mut sot = Vec::new();
        let mut base_prompt = Vec::new();
        while seek < content_frames {
            // Skip digital silence (a muted leg of a stereo call, padding):
            // there is nothing to hear, Whisper would invent text, and its first
            // timestamp can be at most 1 s into a window.
            let start = (seek * 160).min(samples.len());
            match samples[start..]
                .iter()
                .position(|x| x.abs() >= SILENCE_PEAK)
            {
                None => break,
                Some(p) => {
                    seek = ((start + p) / 160)
                        .saturating_sub(SILENCE_MARGIN_FRAMES)
                        .max(seek)
                }
            }
            if seek >= content_frames {
                break;
            }
            let window_frames = (content_frames - seek).min(WINDOW_FRAMES);
            let offset_s = seek as f64 / FRAMES_PER_SECOND as f64;
            let window_started = std::time::Instant::now();
            // One short utterance: encode the audio there is, not 30 s. Should
            // that decode fail (no speech found, a repetition loop, cut off at
            // the token limit: rare, but a whole sentence lost), the utterance
            // is decoded again on a full window, as Whisper was trained.
            let mut width = match (&opts.fit_window, seek_windows) {
                (Some(fit), false) => fit.frames(window_frames),
                _ => WINDOW_FRAMES,
            };
            let mut full_mel: Option<(Vec<f32>, usize)> = None;
            let result = loop {
                let (m, f) = match &full_mel {
                    Some((m, f)) => (m.as_slice(), *f),
                    None => (mel.as_slice(), frames),
                };
                let audio = self
                    .encode_frames(m, f, seek, width)
                    .map_err(|e| self.infer_err(e))?;
                let encode_ms = window_started.elapsed().as_secs_f64() * 1e3;
                if language.is_none() {
                    let lang = self.resolve_language(opts, &audio)?;
                    sot = self.sot_sequence(&lang, opts);
                    if let Some(text) = prompt_text(opts, &lang) {
                        base_prompt = self.encode_text(&text)?;
                    }
                    language = Some(lang);
                }
                let mut prompt = base_prompt.clone();
                prompt.extend_from_slice(&context);
                // Nobody says more than ~12 tokens a second: a fitted decode
                // past that is a repetition loop, and stops early to retry.
                let max_tokens = if width < WINDOW_FRAMES {
                    opts.max_tokens_per_window
                        .min(16 + window_frames * 12 / FRAMES_PER_SECOND)
                } else {
                    opts.max_tokens_per_window
                };
                let req = DecodeRequest {
                    sot_sequence: &sot,
                    prompt: &prompt,
                    timestamps: opts.timestamps,
                    max_tokens,
                    suppress: &self.suppress,
                    suppress_begin: &self.suppress_begin,
                };
                let text_of = |ids: &[u32]| self.tokenizer.decode(ids, true).unwrap_or_default();
                let result = decode::decode_with_fallback(
                    &mut self.model,
                    &self.special,
                    &text_of,
                    &audio,
                    &req,
                    &opts.temperatures,
                    &mut rng,
                )
                .map_err(|e| Error::Inference {
                    model: self.name.clone(),
                    reason: e.to_string(),
                })?;
                tracing::debug!(
                    offset_s,
                    encode_ms,
                    encoder_frames = width,
                    decode_ms = window_started.elapsed().as_secs_f64() * 1e3 - encode_ms,
                    tokens = result.tokens.len(),
                    prompt_tokens = prompt.len(),
                    temperature = result.temperature,
                    "window transcribed"
                );
                let text_tokens = result
                    .tokens
                    .iter()
                    .filter(|&&t| t < self.special.eot)
                    .count();
                let failed = width < WINDOW_FRAMES
                    && opts.fit_window.is_some_and(|f| f.retry_full)
                    && (result.no_speech_prob > NO_SPEECH_THRESHOLD
                        || text_tokens == 0
                        || result.compression_ratio > COMPRESSION_RATIO_THRESHOLD
                        || result.tokens.len() >= max_tokens);
                if !failed {
                    break result;
                }
                tracing::debug!(
                    offset_s,
                    no_speech = result.no_speech_prob,
                    compression_ratio = result.compression_ratio,
                    tokens = result.tokens.len(),
                    "fitted window failed; decoding the full window"
                );
                full_mel = Some(self.mel(samples));
                width = WINDOW_FRAMES;
            };
            let lang = language.clone().unwrap_or_default();
            // Likely no speech, and the text is improbable or a repetition loop
            // (Whisper's typical invention on silence and noise): drop it.
            let silent = result.no_speech_prob > NO_SPEECH_THRESHOLD
                && (result.avg_logprob < LOGPROB_THRESHOLD
                    || result.compression_ratio > COMPRESSION_RATIO_THRESHOLD);
            let advance = if silent {
                tracing::debug!(
                    offset_s,
                    no_speech = result.no_speech_prob,
                    "window skipped as silence"
                );
                window_frames
            } else {
                let (pieces, advance) = split_segments(
                    &result.tokens,
                    &self.special,
                    window_frames,
                    opts.timestamps,
                );
                for (start, end, ids) in pieces {
                    let text = self.decode_text(&ids, &lang, opts);
                    if text.is_empty() {
                        continue;
                    }
                    segments.push(Segment {
                        start_s: round2(offset_s + start),
                        end_s: round2((offset_s + end).min(duration_s)),
                        text,
                        avg_logprob: result.avg_logprob,
                        no_speech_prob: result.no_speech_prob,
                        temperature: result.temperature,
                        channel: None,
                    });
                }
                if opts.condition_on_previous_text && result.temperature <= 0.5 {
                    context.extend(result.tokens.iter().filter(|&&t| t < self.special.eot));
                } else {
                    context.clear();
                }
                advance
            };
            if !seek_windows {
                break;
            }
            seek += advance.max(1);
            if let Some(Progress(report)) = &mut self.progress {
                report(
                    (seek as f64 / FRAMES_PER_SECOND as f64).min(duration_s),
                    duration_s,
                );
            }
        }
        Ok(Transcript {
            language: language
                .unwrap_or_else(|| opts.language.clone().unwrap_or_else(|| "en".to_string())),
            duration_s: round2(duration_s),
            segments,
        })
    }
}

impl Transcribe for Transcriber {
    fn transcribe(&mut self, samples: &[f32], opts: &TranscribeOptions) -> Result<Transcript> {
        self.run(samples, opts, true)
    }

    fn transcribe_window(
        &mut self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript> {
        let n = samples.len().min(WINDOW_FRAMES * 160);
        self.run(&samples[..n], opts, false)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
