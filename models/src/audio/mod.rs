//! Audio in: decode a recording to 16 kHz f32 samples per channel.
//!
//! How the pieces fit together:
//!
//! - [`decode_file`] / [`decode_bytes`] sniff the container and decode it with
//!   symphonia (WAV 8/16/24/32-bit PCM and float, MP3, AAC/M4A, FLAC, OGG
//!   Vorbis, ALAC, CAF, MKV/WebM, ...). Anything symphonia refuses (AMR-NB
//!   from phones, Opus, ...) goes through `ffmpeg` when it is on PATH;
//!   without it the error says which codec and to install ffmpeg.
//! - Every channel is resampled to [`DecodeOptions::target_rate`] (16 kHz,
//!   Whisper's rate) with rubato's FFT resampler and returned separately in
//!   a [`Decoded`]: a stereo call recording keeps rep and customer apart
//!   (which is which is the caller's mapping); mono is one track.
//! - Problems are [`crate::Error`] variants a caller can map to a status:
//!   [`crate::Error::InvalidAudio`] (empty, truncated, corrupt, absurd sample
//!   rate), [`crate::Error::UnsupportedAudio`] and
//!   [`crate::Error::AudioTooLong`] (over [`DecodeOptions::max_seconds`]).
//!
//! ```no_run
//! use assist_models::audio::{DecodeOptions, decode_file};
//!
//! # fn main() -> assist_models::Result<()> {
//! let audio = decode_file("call.m4a".as_ref(), &DecodeOptions::default())?;
//! assert_eq!(audio.sample_rate, 16_000);
//! println!("{} channels, {:.1} s, was {} Hz {}", audio.channels.len(), audio.duration_s,
//!          audio.original_sample_rate, audio.codec);
//! # Ok(())
//! # }
//! ```

mod ffmpeg;
mod resample;
mod symphonia_io;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use resample::resample;

use crate::{Error, Result};

/// Lowest sample rate accepted (anything below is a broken header).
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// Highest sample rate accepted.
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Most channels accepted.
pub const MAX_CHANNELS: usize = 32;

/// How to decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecodeOptions {
    /// Rate of the returned samples.
    pub target_rate: u32,
    /// Longest audio accepted, seconds.
    pub max_seconds: f64,
    /// The ffmpeg program used for codecs symphonia cannot decode; `None`
    /// never runs it.
    pub ffmpeg: Option<PathBuf>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            target_rate: 16_000,
            max_seconds: 4.0 * 3600.0,
            ffmpeg: Some(PathBuf::from("ffmpeg")),
        }
    }
}

/// Decoded audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// One vector of samples in [-1, 1] per channel, at `sample_rate`.
    pub channels: Vec<Vec<f32>>,
    /// Rate of `channels` (the requested target rate).
    pub sample_rate: u32,
    /// Rate of the file.
    pub original_sample_rate: u32,
    /// Length, seconds.
    pub duration_s: f64,
    /// Codec that was decoded (`pcm_s16le`, `mp3`, `aac`, `amr_nb` via ffmpeg, ...).
    pub codec: String,
    /// Whether ffmpeg did the decoding.
    pub via_ffmpeg: bool,
}

impl Decoded {
    /// All channels averaged into one.
    pub fn mono(&self) -> Vec<f32> {
        match self.channels.len() {
            0 => Vec::new(),
            1 => self.channels[0].clone(),
            n => {
                let len = self.channels.iter().map(Vec::len).min().unwrap_or(0);
                (0..len)
                    .map(|i| self.channels.iter().map(|c| c[i]).sum::<f32>() / n as f32)
                    .collect()
            }
        }
    }
}

/// Audio at its original rate, before resampling.
#[derive(Debug)]
pub(crate) struct Raw {
    pub channels: Vec<Vec<f32>>,
    /// Rate of `channels`.
    pub rate: u32,
    /// Rate of the file.
    pub original_rate: u32,
    pub codec: String,
}

/// Where the encoded bytes are.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

/// Decode a file.
pub fn decode_file(path: &Path, opts: &DecodeOptions) -> Result<Decoded> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("opening", path, e))?;
    if meta.len() == 0 {
        return Err(Error::InvalidAudio(format!("{} is empty", path.display())));
    }
    decode(Input::File(path), opts)
}

/// Decode an in-memory recording (an upload). `bytes` may be any supported format.
pub fn decode_bytes(bytes: &[u8], opts: &DecodeOptions) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(Error::InvalidAudio("the audio is empty (0 bytes)".into()));
    }
    decode(Input::Bytes(bytes), opts)
}

fn decode(input: Input<'_>, opts: &DecodeOptions) -> Result<Decoded> {
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&opts.target_rate) {
        return Err(Error::InvalidAudio(format!(
            "target sample rate {} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}",
            opts.target_rate
        )));
    }
    let (raw, via_ffmpeg) = match symphonia_io::decode(input, opts) {
        Ok(raw) => (raw, false),
        Err(symphonia_io::Failure::Fatal(err)) => return Err(err),
        Err(symphonia_io::Failure::Unsupported { codec, detail }) => {
            match opts.ffmpeg.as_deref().filter(|p| ffmpeg::available(p)) {
                Some(program) => (ffmpeg::decode(program, input, opts, &codec)?, true),
                None if codec == "unknown" => {
                    return Err(Error::InvalidAudio(format!(
                        "not a recognised audio format ({detail}); if it is audio in an uncommon codec, install ffmpeg to decode it"
                    )));
                }
                None => return Err(Error::UnsupportedAudio { codec }),
            }
        }
    };
    finish(raw, via_ffmpeg, opts)
}

fn finish(raw: Raw, via_ffmpeg: bool, opts: &DecodeOptions) -> Result<Decoded> {
    let frames = raw.channels.first().map(Vec::len).unwrap_or(0);
    if frames == 0 {
        return Err(Error::InvalidAudio(
            "no audio samples could be decoded (empty or truncated file)".into(),
        ));
    }
    let duration_s = frames as f64 / raw.rate as f64;
    check_length(duration_s, opts)?;
    let channels = resample::resample(&raw.channels, raw.rate, opts.target_rate)?;
    Ok(Decoded {
        channels,
        sample_rate: opts.target_rate,
        original_sample_rate: raw.original_rate,
        duration_s,
        codec: raw.codec,
        via_ffmpeg,
    })
}

pub(crate) fn check_rate(rate: u32) -> Result<()> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(Error::InvalidAudio(format!(
            "sample rate {rate} Hz is not plausible (expected {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE})"
        )))
    }
}

pub(crate) fn check_channels(n: usize) -> Result<()> {
    if (1..=MAX_CHANNELS).contains(&n) {
        Ok(())
    } else {
        Err(Error::InvalidAudio(format!(
            "{n} channels is not plausible (expected 1..={MAX_CHANNELS})"
        )))
    }
}

pub(crate) fn check_length(seconds: f64, opts: &DecodeOptions) -> Result<()> {
    if seconds > opts.max_seconds {
        Err(Error::AudioTooLong {
            seconds,
            max_seconds: opts.max_seconds,
        })
    } else {
        Ok(())
    }
}

/// Name a format symphonia cannot open from its first bytes, if it is one
/// we know (so the error can say "AMR-NB" rather than "unknown").
pub(crate) fn sniff_codec(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"#!AMR-WB\n") {
        Some("amr_wb")
    } else if head.starts_with(b"#!AMR\n") {
        Some("amr_nb")
    } else if head.starts_with(b"OggS") && head.windows(8).any(|w| w == b"OpusHead") {
        Some("opus")
    } else if head.starts_with(b"OggS") && head.windows(8).any(|w| w == b"Speex   ") {
        Some("speex")
    } else if head.starts_with(&[0x30, 0x26, 0xB2, 0x75]) {
        Some("wma")
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" && head[8..12].starts_with(b"3g") {
        Some("3gp (amr)")
    } else {
        None
    }
}
