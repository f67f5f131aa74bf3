//! The log-mel spectrogram Whisper reads.
//!
//! Whisper was trained on 80 (large-v3: 128) mel bands computed from a
//! 400-point STFT with hop 160 at 16 kHz, through librosa's default filterbank:
//! Slaney's mel scale (linear below 1 kHz, logarithmic above) and "slaney"
//! area normalisation (each triangle scaled by `2 / (f_high - f_low)`).
//! We compute that filterbank here instead of shipping it as a data file.

use candle_transformers::models::whisper::{self as w};

/// Sample rate Whisper expects.
pub const SAMPLE_RATE: u32 = w::SAMPLE_RATE as u32;
/// STFT frames per second (hop 160 at 16 kHz).
pub const FRAMES_PER_SECOND: usize = w::SAMPLE_RATE / w::HOP_LENGTH;
/// Mel frames in one 30-second window.
pub const WINDOW_FRAMES: usize = w::N_FRAMES;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hertz to Slaney mels.
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

/// Slaney mels to hertz.
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        mel * F_SP
    }
}

/// The mel filterbank as `n_mels` rows of `n_fft / 2 + 1` weights, row-major.
///
/// Same construction as `librosa.filters.mel(sr, n_fft, n_mels)` with its
/// defaults (`fmin = 0`, `fmax = sr / 2`, `htk = False`, `norm = "slaney"`).
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_freqs = n_fft / 2 + 1;
    let sr = sample_rate as f64;
    let fft_freqs: Vec<f64> = (0..n_freqs).map(|k| k as f64 * sr / n_fft as f64).collect();
    let mel_max = hz_to_mel(sr / 2.0);
    // n_mels + 2 band edges, equally spaced in mels.
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_max * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        let norm = 2.0 / (hi - lo);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let rising = (f - lo) / (mid - lo);
            let falling = (hi - f) / (hi - mid);
            let weight = rising.min(falling).max(0.0);
            out[m * n_freqs + k] = (weight * norm) as f32;
        }
    }
    out
}

/// Log-mel spectrogram of 16 kHz mono samples: `n_mels` rows of frames,
/// row-major, with at least one extra 30-second window of padding frames
/// (Whisper's layout). Returns the spectrogram and its frame count per row.
pub fn log_mel(samples: &[f32], filters: &[f32], n_mels: usize) -> (Vec<f32>, usize) {
    let mel =
        w::audio::log_mel_spectrogram_(samples, filters, w::N_FFT, w::HOP_LENGTH, n_mels, false);
    let frames = mel.len() / n_mels;
    (mel, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }
}
