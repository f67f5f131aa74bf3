//! The generation loop: prompt in chunks, then one token at a time.

use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::utils::apply_repeat_penalty;

use super::tokenizer::LlmTokenizer;
use super::{FinishReason, GenerateOptions, Generation, StreamToken};
use crate::{Error, Result};

/// Prompt tokens per forward pass. Bounds the attention scores held at once
/// (heads × chunk × context floats) on long transcripts.
const PREFILL_CHUNK: usize = 256;

/// A causal LM with a key/value cache.
pub(crate) trait Forward {
    /// Logits (one row, vocabulary long) after feeding `ids` at positions `pos..`.
    fn forward(&mut self, ids: &[u32], pos: usize) -> candle_core::Result<Tensor>;
    /// Forget the key/value cache.
    fn reset(&mut self);
    /// Keep the cached positions of the longest prefix `prompt` shares with
    /// what was fed before (never all of it: the last prompt token is fed
    /// again for its logits) and forget the rest; how many were kept.
    fn reuse_prefix(&mut self, _prompt: &[u32]) -> usize {
        self.reset();
        0
    }
}

/// candle's sampler for `opts`: argmax at temperature 0, else the nucleus
/// and top-k cuts asked for.
fn sampling(opts: &GenerateOptions) -> Sampling {
    let temperature = opts.temperature;
    if temperature < 1e-7 {
        return Sampling::ArgMax;
    }
    match (opts.top_k, opts.top_p) {
        (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
        (Some(k), None) => Sampling::TopK { k, temperature },
        (None, Some(p)) => Sampling::TopP { p, temperature },
        (None, None) => Sampling::All { temperature },
    }
}

/// Generate after `prompt`; see [`Llm::generate`](super::Llm::generate).
pub(crate) fn run(
    model: &mut impl Forward,
    tokenizer: &LlmTokenizer,
    prompt: &[u32],
    context_length: usize,
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(StreamToken<'_>) -> bool,
    name: &str,
) -> Result<Generation> {
    let started = Instant::now();
    let fail = |reason: String| Error::Inference {
        model: name.to_string(),
        reason,
    };
    let candle = |e: candle_core::Error| fail(e.to_string());
    opts.check()
        .map_err(|e| fail(format!("invalid options: {e}")))?;
    if prompt.is_empty() {
        return Err(fail("the prompt is empty".into()));
    }
    if prompt.len() >= context_length {
        return Err(fail(format!(
            "the prompt has {} tokens; the model's context holds {context_length}",
            prompt.len()
        )));
    }
    let budget = opts.max_tokens.min(context_length - prompt.len());

    let reused = model.reuse_prefix(prompt);
    let mut pos = reused;
    let mut logits = None;
    for chunk in prompt[reused..].chunks(PREFILL_CHUNK) {
        logits = Some(model.forward(chunk, pos).map_err(candle)?);
        pos += chunk.len();
    }
    let prompt_secs = started.elapsed().as_secs_f64();
    let mut logits = logits.ok_or_else(|| fail("no logits".into()))?;

    let mut sampler = LogitsProcessor::from_sampling(opts.seed, sampling(opts));
    let mut decoder = tokenizer.stream_decoder();
    let mut generated: Vec<u32> = Vec::new();
    let mut text = String::new();
    let mut finish = FinishReason::Length;
    let mut first_token_secs = None;
    let mut decode_steps = 0usize;
    while generated.len() < budget {
        let next = sample(&mut sampler, &logits, &generated, opts).map_err(candle)?;
        let now = started.elapsed().as_secs_f64();
        first_token_secs.get_or_insert(now);
        if tokenizer.is_stop(next) {
            finish = FinishReason::Stop;
            break;
        }
        generated.push(next);
        let delta = decoder.push(next)?;
        text.push_str(&delta);
        let go_on = on_token(StreamToken {
            id: next,
            index: generated.len() - 1,
            text: &delta,
        });
        if !go_on {
            finish = FinishReason::Cancelled;
            break;
        }
        if generated.len() >= budget {
            break;
        }
        logits = model.forward(&[next], pos).map_err(candle)?;
        pos += 1;
        decode_steps += 1;
    }
    // Bytes of a character cut off by the token limit are dropped: `text`
    // holds whole characters only, exactly the streamed deltas.

    let total_secs = started.elapsed().as_secs_f64();
    let first = first_token_secs.unwrap_or(total_secs);
    let decode_secs = total_secs - first;
    let out = Generation {
        text,
        finish_reason: finish,
        prompt_tokens: prompt.len(),
        cached_prompt_tokens: reused,
        generated_tokens: generated.len(),
        prompt_ms: prompt_secs * 1e3,
        time_to_first_token_ms: first * 1e3,
        total_ms: total_secs * 1e3,
        prompt_tokens_per_s: rate(prompt.len() - reused, prompt_secs),
        generation_tokens_per_s: rate(decode_steps, decode_secs),
    };
    metrics::histogram!("assist_llm_time_to_first_token_seconds", "model" => name.to_string())
        .record(first);
    metrics::counter!("assist_llm_prompt_tokens_total", "model" => name.to_string())
        .increment(out.prompt_tokens as u64);
    metrics::counter!("assist_llm_generated_tokens_total", "model" => name.to_string())
        .increment(out.generated_tokens as u64);
    tracing::debug!(
        model = name,
        prompt_tokens = out.prompt_tokens,
        cached_prompt_tokens = out.cached_prompt_tokens,
        generated_tokens = out.generated_tokens,
        finish = ?out.finish_reason,
        ttft_ms = out.time_to_first_token_ms as u64,
        prompt_tps = out.prompt_tokens_per_s,
        gen_tps = out.generation_tokens_per_s,
        "llm generation"
    );
    Ok(out)
}

fn rate(tokens: usize, secs: f64) -> f64 {
    if tokens == 0 || secs <= 0.0 {
        0.0
    } else {
        tokens as f64 / secs
    }
}

fn sample(
    sampler: &mut LogitsProcessor,
    logits: &Tensor,
    generated: &[u32],
    opts: &GenerateOptions,
) -> candle_core::Result<u32> {
    let logits = logits.to_dtype(DType::F32)?;
    let logits = if opts.repeat_penalty != 1.0 && !generated.is_empty() {
        let start = generated.len().saturating_sub(opts.repeat_last_n);
        apply_repeat_penalty(&logits, opts.repeat_penalty, &generated[start..])?
    } else {
        logits
    };
    sampler.sample(&logits)
}
