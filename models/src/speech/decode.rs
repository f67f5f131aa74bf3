//! Decoding one 30-second window: greedy or sampled tokens, Whisper's
//! timestamp rules, and the temperature fallback.

use std::io::Write;

use candle_core::{Result, Tensor};

use super::model::Whisper;
use super::tokens::SpecialTokens;
use crate::ops::log_sum_exp;

/// Threshold above which the decoded text is too repetitive (zlib ratio).
pub const COMPRESSION_RATIO_THRESHOLD: f64 = 2.4;
/// Average log-probability below which a decode is retried hotter.
pub const LOGPROB_THRESHOLD: f64 = -1.0;
/// `<|nospeech|>` probability above which a window may be silence.
pub const NO_SPEECH_THRESHOLD: f64 = 0.6;
/// The first timestamp may be at most this many 0.02 s steps (1 s).
const MAX_INITIAL_TIMESTAMP_STEPS: u32 = 50;

/// What one decode of a window produced.
#[derive(Debug, Clone)]
pub struct WindowDecode {
    /// Sampled tokens (text and timestamps), without the end token.
    pub tokens: Vec<u32>,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
    pub temperature: f64,
    pub compression_ratio: f64,
}

/// The fixed inputs of decoding a window.
#[derive(Debug, Clone)]
pub struct DecodeRequest<'a> {
    /// `<|startoftranscript|>` [language] [task] [`<|notimestamps|>`].
    pub sot_sequence: &'a [u32],
    /// Text tokens given as context after `<|startofprev|>` (initial prompt,
    /// custom vocabulary, previous window's text).
    pub prompt: &'a [u32],
    pub timestamps: bool,
    /// Most tokens to sample.
    pub max_tokens: usize,
    /// Never sampled (from the model config plus our special tokens).
    pub suppress: &'a [u32],
    /// Not sampled first (a blank, the end token).
    pub suppress_begin: &'a [u32],
}

/// A small deterministic random generator for temperature sampling.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Decode with each temperature in turn until the result is neither too
/// repetitive nor too improbable (or looks like silence).
pub fn decode_with_fallback(
    model: &mut Whisper,
    special: &SpecialTokens,
    text_of: &dyn Fn(&[u32]) -> String,
    audio: &Tensor,
    req: &DecodeRequest<'_>,
    temperatures: &[f64],
    rng: &mut Rng,
) -> Result<WindowDecode> {
    let temperatures = if temperatures.is_empty() {
        &[0.0][..]
    } else {
        temperatures
    };
    let mut last = None;
    for &t in temperatures {
        let mut result = decode_once(model, special, audio, req, t, rng)?;
        let text: Vec<u32> = result
            .tokens
            .iter()
            .copied()
            .filter(|&id| id < special.eot)
            .collect();
        result.compression_ratio = compression_ratio(&text_of(&text));
        let silent = result.no_speech_prob > NO_SPEECH_THRESHOLD;
        let repetitive = result.compression_ratio > COMPRESSION_RATIO_THRESHOLD;
        let improbable = result.avg_logprob < LOGPROB_THRESHOLD;
        if silent || !(repetitive || improbable) {
            return Ok(result);
        }
        tracing::debug!(
            temperature = t,
            compression_ratio = result.compression_ratio,
            avg_logprob = result.avg_logprob,
            "decode rejected, falling back"
        );
        last = Some(result);
    }
    Ok(last.expect("at least one temperature"))
}

/// One decode of a window at one temperature.
pub fn decode_once(
    model: &mut Whisper,
    special: &SpecialTokens,
    audio: &Tensor,
    req: &DecodeRequest<'_>,
    temperature: f64,
    rng: &mut Rng,
) -> Result<WindowDecode> {
    let n_ctx = model.config.max_target_positions;
    let decoder = &mut model.decoder;
    decoder.reset();
    let mut initial = Vec::with_capacity(n_ctx);
    if let (false, Some(prev)) = (req.prompt.is_empty(), special.prev) {
        let keep = (n_ctx / 2).saturating_sub(1);
        initial.push(prev);
        initial.extend_from_slice(&req.prompt[req.prompt.len().saturating_sub(keep)..]);
    }
    let sot_index = initial.len();
    initial.extend_from_slice(req.sot_sequence);

    let hidden = decoder.forward(&initial, audio)?;
    let no_speech_prob = match special.no_speech {
        Some(id) => {
            let logits = decoder.logits(&hidden, sot_index)?.to_vec1::<f32>()?;
            softmax_at(&logits, id as usize)
        }
        None => 0.0,
    };
    let mut logits = decoder
        .logits(&hidden, initial.len() - 1)?
        .to_vec1::<f32>()?;
    let max_tokens = req.max_tokens.min(n_ctx.saturating_sub(initial.len()));
    let mut sampled: Vec<u32> = Vec::new();
    let mut sum_logprob = 0f64;
    for step in 0..max_tokens {
        suppress(&mut logits, req.suppress);
        if step == 0 {
            suppress(&mut logits, req.suppress_begin);
        }
        if req.timestamps {
            timestamp_rules(&mut logits, &sampled, special);
        }
        let next = if temperature > 0.0 {
            sample(&logits, temperature, rng)
        } else {
            argmax(&logits)
        };
        // log-softmax at `next` only: one pass over the vocabulary per step.
        let lp = (logits[next as usize] - log_sum_exp(&logits)) as f64;
        if lp.is_finite() {
            sum_logprob += lp;
        }
        if next == special.eot {
            break;
        }
        sampled.push(next);
        if step + 1 == max_tokens {
            break;
        }
        let hidden = decoder.forward(&[next], audio)?;
        logits = decoder.logits(&hidden, 0)?.to_vec1::<f32>()?;
    }
    Ok(WindowDecode {
        avg_logprob: sum_logprob / (sampled.len() + 1) as f64,
        tokens: sampled,
        no_speech_prob,
        temperature,
        compression_ratio: 0.0,
    })
}

fn suppress(logits: &mut [f32], ids: &[u32]) {
    for &id in ids {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// Whisper's timestamp rules: timestamps come in pairs (end, start) and
/// never go backwards; the first token is a timestamp of at most 1 s; when
/// timestamps together are likelier than any text token, take a timestamp.
fn timestamp_rules(logits: &mut [f32], seq: &[u32], sp: &SpecialTokens) {
    let ts = sp.timestamp_begin as usize;
    let eot = sp.eot as usize;
    let n = logits.len();
    let is_ts = |id: u32| sp.is_timestamp(id);
    let last_ts = seq.last().is_some_and(|&t| is_ts(t));
    let penultimate_ts = seq.len() < 2 || is_ts(seq[seq.len() - 2]);
    if last_ts {
        if penultimate_ts {
            logits[ts.min(n)..].fill(f32::NEG_INFINITY);
        } else {
            logits[..eot.min(n)].fill(f32::NEG_INFINITY);
        }
    }
    if let Some(&last) = seq.iter().rev().find(|&&t| is_ts(t)) {
        // A closing timestamp may equal the opening one; anything else must move forward.
        let bound = if last_ts && !penultimate_ts {
            last
        } else {
            last + 1
        };
        logits[ts.min(n)..(bound as usize).min(n)].fill(f32::NEG_INFINITY);
    }
    if seq.is_empty() {
        logits[..ts.min(n)].fill(f32::NEG_INFINITY);
        let last_allowed = ts + MAX_INITIAL_TIMESTAMP_STEPS as usize;
        if last_allowed + 1 < n {
            logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
        }
    }
    if ts < n {
        // Both sides in log-probabilities share the same normaliser, so
        // compare the raw logits: ln Σ over timestamps against the best text.
        let ts_mass = log_sum_exp(&logits[ts..]);
        let best_text = logits[..ts]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if ts_mass > best_text {
            logits[..ts].fill(f32::NEG_INFINITY);
        }
    }
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn sample(logits: &[f32], temperature: f64, rng: &mut Rng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((l - max) as f64 / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut r = rng.next_f64() * total;
    for (i, w) in weights.iter().enumerate() {
        if r < *w {
            return i as u32;
        }
        r -= w;
    }
    argmax(logits)
}

fn softmax_at(v: &[f32], i: usize) -> f64 {
    match v.get(i) {
        Some(&x) => ((x - log_sum_exp(v)) as f64).exp(),
        None => 0.0,
    }
}

/// Bytes of `text` over bytes of its zlib compression: high for loops of
/// repeated phrases.
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = enc
        .write_all(text.as_bytes())
        .and_then(|_| enc.finish())
        .map(|v| v.len())
        .unwrap_or(text.len());
    text.len() as f64 / compressed.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_compresses_well() {
        let loop_text = "thank you. ".repeat(30);
        assert!(compression_ratio(&loop_text) > COMPRESSION_RATIO_THRESHOLD);
        let normal = "Please send me the price list for the premium plan by Friday.";
        assert!(compression_ratio(normal) < COMPRESSION_RATIO_THRESHOLD);
    }

    #[test]
    fn rng_is_uniformish() {
        let mut rng = Rng::new(7);
        let mean: f64 = (0..10_000).map(|_| rng.next_f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
