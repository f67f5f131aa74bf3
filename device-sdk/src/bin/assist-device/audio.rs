//! Decode a recording (symphonia) and resample it to 16 kHz (rubato).

use std::path::Path;

use anyhow::{Context, Result, bail};
use audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

pub const RATE: u32 = 16_000;

/// Every channel of `path`, as f32 at 16 kHz.
pub fn decode_16k(path: &Path) -> Result<Vec<Vec<f32>>> {
    let (channels, rate) = decode(path)?;
    if channels.is_empty() || channels[0].is_empty() {
        bail!("{}: no audio samples in the file", path.display());
    }
    resample(&channels, rate, RATE)
}

fn decode(path: &Path) -> Result<(Vec<Vec<f32>>, u32)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: not a recording this tool can read ({e})",
                path.display()
            )
        })?;
    let track = format
        .default_track(TrackType::Audio)
        .with_context(|| format!("{}: the file has no audio track", path.display()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .with_context(|| {
            format!(
                "{}: the audio track has no codec parameters",
                path.display()
            )
        })?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| anyhow::anyhow!("{}: unsupported codec ({e})", path.display()))?;
    let mut rate = params.sample_rate;
    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut planes: Vec<Vec<f32>> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) | Err(SymError::ResetRequired) => break,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => bail!("{}: {e}", path.display()),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                rate = Some(buf.spec().rate());
                buf.copy_to_vecs_planar::<f32>(&mut planes);
                if channels.is_empty() {
                    channels = vec![Vec::new(); planes.len()];
                }
                for (dst, src) in channels.iter_mut().zip(&planes) {
                    dst.extend_from_slice(src);
                }
            }
            Err(SymError::DecodeError(_)) => {}
            Err(e) => bail!("{}: {e}", path.display()),
        }
    }
    let rate = rate.with_context(|| format!("{}: unknown sample rate", path.display()))?;
    Ok((channels, rate))
}

fn resample(channels: &[Vec<f32>], from: u32, to: u32) -> Result<Vec<Vec<f32>>> {
    if from == to {
        return Ok(channels.to_vec());
    }
    let n = channels.len();
    let frames = channels.iter().map(Vec::len).min().unwrap_or(0);
    let trimmed: Vec<Vec<f32>> = channels.iter().map(|c| c[..frames].to_vec()).collect();
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, n, FixedSync::Both)
        .map_err(|e| anyhow::anyhow!("cannot resample {from} Hz: {e}"))?;
    let input = SequentialSliceOfVecs::new(&trimmed, n, frames)
        .map_err(|e| anyhow::anyhow!("cannot resample: {e}"))?;
    let out = resampler
        .process_all(&input, frames, None)
        .map_err(|e| anyhow::anyhow!("cannot resample {from} Hz: {e}"))?;
    let data = out.take_data();
    let mut result = vec![Vec::with_capacity(data.len() / n); n];
    for frame in data.chunks_exact(n) {
        for (c, &x) in frame.iter().enumerate() {
            result[c].push(x);
        }
    }
    Ok(result)
}

pub fn to_i16(x: &[f32]) -> Vec<i16> {
    x.iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
        .collect()
}

pub fn mix(channels: &[Vec<f32>]) -> Vec<f32> {
    let n = channels.len().max(1) as f32;
    let len = channels.iter().map(Vec::len).min().unwrap_or(0);
    (0..len)
        .map(|i| channels.iter().map(|c| c[i]).sum::<f32>() / n)
        .collect()
}
