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
/// row-major, padded with silent frames to a whole number of 15-second
/// blocks plus one more (candle's layout). Returns the spectrogram and its
/// frame count per row.
///
/// Numerically the same as candle's `log_mel_spectrogram_` (itself after
/// whisper.cpp, including its doubling of the mirrored bins), but with a
/// planned real FFT: candle's recursive FFT of the 400-point frame falls back
/// to a DFT with a `sin_cos` per term at size 25, which took about 9 % of a
/// whole transcription's CPU (perf, whisper-base, 63 s of speech).
pub fn log_mel(samples: &[f32], filters: &[f32], n_mels: usize) -> (Vec<f32>, usize) {
    let (n_fft, hop) = (w::N_FFT, w::HOP_LENGTH);
    let n_freqs = n_fft / 2 + 1;
    // Frames: whole hops, rounded up to whole 15 s blocks, plus one block.
    let block = WINDOW_FRAMES / 2;
    let frames = (samples.len() / hop).next_multiple_of(block) + block;
    let hann: Vec<f32> = (0..n_fft)
        .map(|i| 0.5 * (1.0 - (2.0 * std::f32::consts::PI * i as f32 / n_fft as f32).cos()))
        .collect();
    let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut power = vec![0f32; n_freqs];
    // Frames starting past the last sample are silence: log10 of the floor.
    let mut mel = vec![-10f32; n_mels * frames];
    let audible = (samples.len() / hop + 1).min(frames);
    for i in 0..audible {
        let offset = i * hop;
        for (j, x) in input.iter_mut().enumerate() {
            *x = samples.get(offset + j).map_or(0.0, |s| s * hann[j]);
        }
        fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .expect("buffers made by the plan");
        for (j, (p, c)) in power.iter_mut().zip(&spectrum).enumerate() {
            let m = c.re * c.re + c.im * c.im;
            // whisper.cpp adds the mirrored (conjugate) half to bins 1..n/2.
            *p = if j == 0 || j == n_fft / 2 { m } else { 2.0 * m };
        }
        for j in 0..n_mels {
            let row = &filters[j * n_freqs..(j + 1) * n_freqs];
            let sum: f32 = row.iter().zip(&power).map(|(f, p)| f * p).sum();
            mel[j * frames + i] = sum.max(1e-10).log10();
        }
    }
    let floor = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 8.0;
    for m in &mut mel {
        *m = m.max(floor) / 4.0 + 1.0;
    }
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

    /// Our planned-FFT spectrogram matches candle's reference one.
    #[test]
    fn log_mel_matches_candles() {
        let filters = mel_filters(SAMPLE_RATE, w::N_FFT, 80);
        for len in [
            0usize,
            1,
            159,
            160,
            16_000 * 3 + 77,
            16_000 * 30,
            16_000 * 31,
        ] {
            let samples: Vec<f32> = (0..len)
                .map(|i| {
                    let t = i as f32 / 16_000.0;
                    0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                        + 0.1 * (2.0 * std::f32::consts::PI * 1234.5 * t).sin()
                        + 0.05 * ((i * 7919 % 1000) as f32 / 1000.0 - 0.5)
                })
                .collect();
            let want = w::audio::log_mel_spectrogram_(
                &samples,
                &filters,
                w::N_FFT,
                w::HOP_LENGTH,
                80,
                false,
            );
            let (got, frames) = log_mel(&samples, &filters, 80);
            assert_eq!(got.len(), want.len(), "length for {len} samples");
            assert_eq!(frames * 80, want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-3, "{len} samples: max difference {worst}");
        }
    }
}
