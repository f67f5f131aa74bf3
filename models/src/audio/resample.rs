//! Sample-rate conversion with rubato's FFT resampler.

use audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

use crate::{Error, Result};

/// Resample every channel from `from` Hz to `to` Hz. Channels must have equal
/// lengths. The output has `ceil(len * to / from)` frames per channel,
/// aligned with the input (rubato's delay is trimmed).
pub fn resample(channels: &[Vec<f32>], from: u32, to: u32) -> Result<Vec<Vec<f32>>> {
    if from == to || channels.is_empty() {
        return Ok(channels.to_vec());
    }
    let n = channels.len();
    let frames = channels[0].len();
    if channels.iter().any(|c| c.len() != frames) {
        return Err(Error::InvalidAudio(
            "channels have different lengths".into(),
        ));
    }
    let err = |e: &dyn std::fmt::Display| {
        Error::InvalidAudio(format!("cannot resample {from} Hz to {to} Hz: {e}"))
    };
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, n, FixedSync::Both)
        .map_err(|e| err(&e))?;
    let input = SequentialSliceOfVecs::new(channels, n, frames).map_err(|e| err(&e))?;
    let out = resampler
        .process_all(&input, frames, None)
        .map_err(|e| err(&e))?;
    let data = out.take_data();
    let out_frames = data.len() / n;
    let mut result = vec![Vec::with_capacity(out_frames); n];
    for frame in data.chunks_exact(n) {
        for (c, &x) in frame.iter().enumerate() {
            result[c].push(x);
        }
    }
    Ok(result)
}
