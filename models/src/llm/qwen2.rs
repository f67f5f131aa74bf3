//! The Qwen2 forward pass on candle's quantized matrix products, with a
//! key/value cache we own.
//!
//! The weights, block kernels and numerics are those of
//! `candle_transformers::models::quantized_qwen2`; what differs is the cache
//! and the attention around it, which decide the speed of long prompts:
//!
//! - **In-place cache.** Keys and values are written into preallocated
//!   tensors (grown by doubling) with `slice_set`, not concatenated: candle's
//!   model copies the whole cache twice per layer on every decoding step,
//!   which at a 2,000-token post-call prompt is hundreds of MB per token.
//! - **Grouped-query attention without copies.** The query heads that share a
//!   key/value head are stacked into one matrix and multiplied against that
//!   head's keys directly (a strided view of the cache), instead of repeating
//!   the keys and values for every query head.
//! - **Prefix reuse.** [`Qwen2::truncate`] forgets positions after a point, so
//!   a prompt that starts like the previous one (the same system prompt)
//!   only computes its new tokens. Positions are exact (RoPE is applied per
//!   position), so the result equals a fresh run up to float rounding.

use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::Embedding;
use candle_transformers::quantized_nn::RmsNorm;

struct Layer {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    bq: Tensor,
    bk: Tensor,
    bv: Tensor,
    wo: Linear,
    attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    /// `(kv_heads, capacity, head_dim)`; positions `0..len` of the model are valid.
    k_cache: Option<Tensor>,
    v_cache: Option<Tensor>,
}

/// A weight matrix, in the form each kind of product runs fastest on:
///
/// - Q4_K and Q6_K (a Q4_K_M model's) on our AVX-512 VNNI kernels
///   ([`crate::kernels::qk`]) for one row and for prompts alike, where the CPU has
///   them; nothing else is kept.
/// - Otherwise quantized for one-token steps, where reading the weights is
///   the cost (Q8_0 repacked for [`crate::kernels::q8`]'s one-row kernel, the rest on
///   candle's), and optionally dense f32 for prompts, where the arithmetic
///   is: candle's f32 GEMM multiplies a 256-token chunk several times
///   faster than its quantized kernels, which re-quantize the activations
///   and take int8 dot products row by column.
enum Linear {
    KQuant(crate::kernels::qk::KRows),
    Quantized {
        q: QMatMul,
        dense: Option<Tensor>,
        /// The same Q8_0 weights repacked for one-row products, where the
        /// CPU has AVX2 or AVX-512 VNNI.
        q8: Option<crate::kernels::q8::Q8Rows>,
    },
}

/// Rows from which a product goes to the dense weights when there are some.
const DENSE_MIN_ROWS: usize = 8;

impl Linear {
    fn new(w: QTensor, dense: bool, kquants: bool) -> Result<Self> {
        if kquants
            && crate::kernels::qk::available()
            && let Some(k) = crate::kernels::qk::KRows::from_qtensor(&w)?
        {
            return Ok(Linear::KQuant(k));
        }
        let dense = if dense {
            Some(w.dequantize(&w.device())?)
        } else {
            None
        };
        let q8 = if crate::kernels::q8::available() {
            crate::kernels::q8::Q8Rows::from_qtensor(&w)?
        } else {
            None
        };
        Ok(Linear::Quantized {
            q: QMatMul::from_qtensor(w)?,
            dense,
            q8,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.dim(candle_core::D::Minus1)?;
        match self {
            Linear::KQuant(k) => k.forward(x),
            Linear::Quantized { dense: Some(w), .. } if rows >= DENSE_MIN_ROWS => {
                x.broadcast_matmul(&w.t()?)
            }
            Linear::Quantized { q8: Some(q8), .. } if rows == 1 => q8.gemv(x),
            Linear::Quantized { q, .. } => q.forward(x),
        }
    }
}

/// A Qwen2 model read from GGUF; see the [module docs](self).
pub(crate) struct Qwen2 {
    embed: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    context_length: usize,
    /// Positions held in every layer's cache.
    len: usize,
}

/// First cache allocation, positions (grown by doubling).
const FIRST_CAPACITY: usize = 512;

impl Qwen2 {
    /// With `dense_prefill`, every layer's matrices are also kept as f32 for
    /// prompt chunks ([`Linear`]): about 4 bytes per parameter more memory.
    pub(crate) fn from_gguf<R: std::io::Seek + std::io::Read>(
        ct: gguf_file::Content,
        reader: &mut R,
        device: &Device,
        dense_prefill: bool,
        kquant_kernels: bool,
    ) -> Result<Self> {
        let md = |key: &str| match ct.metadata.get(&format!("qwen2.{key}")) {
            Some(v) => Ok(v),
            None => candle_core::bail!("cannot find qwen2.{key} in the metadata"),
        };
        let heads = md("attention.head_count")?.to_u32()? as usize;
        let kv_heads = md("attention.head_count_kv")?.to_u32()? as usize;
        let embedding_length = md("embedding_length")?.to_u32()? as usize;
        let context_length = md("context_length")?.to_u32()? as usize;
        let blocks = md("block_count")?.to_u32()? as usize;
        let eps = md("attention.layer_norm_rms_epsilon")?.to_f32()? as f64;
        let rope_base = md("rope.freq_base")
            .and_then(|m| m.to_f32())
            .unwrap_or(10_000.0);
        if heads == 0
            || kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
            || !embedding_length.is_multiple_of(heads)
        {
            candle_core::bail!(
                "unusable head counts: {heads} heads, {kv_heads} key/value heads, width {embedding_length}"
            );
        }
        let head_dim = embedding_length / heads;

        let mut tensor = |name: &str| ct.tensor(reader, name, device);
        let embed = tensor("token_embd.weight")?.dequantize(device)?;
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, eps)?;
        // Only the last position reaches the output: no dense copy.
        let output = match tensor("output.weight") {
            Ok(w) => Linear::new(w, false, kquant_kernels)?,
            // Tied embeddings.
            Err(_) => Linear::new(tensor("token_embd.weight")?, false, kquant_kernels)?,
        };
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let mut t = |name: &str| tensor(&format!("blk.{i}.{name}"));
            let mut q = |name: &str| -> Result<Linear> {
                Linear::new(t(name)?, dense_prefill, kquant_kernels)
            };
            let (wq, wk, wv, wo) = (
                q("attn_q.weight")?,
                q("attn_k.weight")?,
                q("attn_v.weight")?,
                q("attn_output.weight")?,
            );
            let (gate, up, down) = (
                q("ffn_gate.weight")?,
                q("ffn_up.weight")?,
                q("ffn_down.weight")?,
            );
            let mut t = |name: &str| tensor(&format!("blk.{i}.{name}"));
            layers.push(Layer {
                wq,
                wk,
                wv,
                bq: t("attn_q.bias")?.dequantize(device)?,
                bk: t("attn_k.bias")?.dequantize(device)?,
                bv: t("attn_v.bias")?.dequantize(device)?,
                wo,
                attn_norm: RmsNorm::from_qtensor(t("attn_norm.weight")?, eps)?,
                ffn_norm: RmsNorm::from_qtensor(t("ffn_norm.weight")?, eps)?,
                gate,
                up,
                down,
                k_cache: None,
                v_cache: None,
            });
        }
        let (cos, sin) = rope_tables(head_dim, rope_base, context_length, device)?;
        Ok(Qwen2 {
            embed: Embedding::new(embed, embedding_length),
            layers,
            norm,
            output,
            cos,
            sin,
            heads,
            kv_heads,
            head_dim,
            context_length,
            len: 0,
        })
    }

    /// Matrices on the k-quant kernels ([`Linear::KQuant`]).
    pub(crate) fn kquant_matrices(&self) -> usize {
        let layers = self
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down]);
        layers
            .chain([&self.output])
            .filter(|m| matches!(m, Linear::KQuant(_)))
            .count()
    }

    /// Positions held in the cache.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forget every position from `len` on (the storage is kept).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Forget the cache and free its storage.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        for l in &mut self.layers {
            l.k_cache = None;
            l.v_cache = None;
        }
    }

    /// Logits of the last of `ids`, fed at positions `pos..`; `pos` must not
    /// be past the cached positions (earlier ones are overwritten).
    pub(crate) fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Tensor> {
        let t = ids.len();
        if t == 0 {
            candle_core::bail!("no tokens to feed");
        }
        if pos > self.len {
            candle_core::bail!("position {pos} is past the {} cached", self.len);
        }
        if pos + t > self.context_length {
            candle_core::bail!(
                "{} positions do not fit the context of {}",
                pos + t,
                self.context_length
            );
        }
        let device = self.embed.embeddings().device().clone();
        let input = Tensor::new(ids, &device)?.unsqueeze(0)?;
        let mask = if t > 1 {
            Some(self.mask(t, pos, &device)?)
        } else {
            None
        };
        let cos = self.cos.narrow(0, pos, t)?;
        let sin = self.sin.narrow(0, pos, t)?;
        let shape = Shape {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        };
        let mut x = self.embed.forward(&input)?;
        for layer in &mut self.layers {
            let h = layer.attn_norm.forward(&x)?;
            let h = layer.attention(&h, pos, &cos, &sin, mask.as_ref(), &shape)?;
            x = (x + h)?;
            let h = layer.ffn_norm.forward(&x)?;
            let h = layer.mlp(&h)?;
            x = (x + h)?;
        }
        self.len = pos + t;
        let x = self.norm.forward(&x.i((.., t - 1, ..))?)?;
        self.output.forward(&x)?.flatten_all()
    }

    /// Additive causal mask for `t` new queries at `pos..`, one row per
    /// (query head of a group, query): `(group · t, pos + t)`.
    fn mask(&self, t: usize, pos: usize, device: &Device) -> Result<Tensor> {
        let group = self.heads / self.kv_heads;
        let ctx = pos + t;
        let mut m = vec![0f32; group * t * ctx];
        for (r, row) in m.chunks_mut(ctx).enumerate() {
            let q = r % t;
            for v in &mut row[pos + q + 1..] {
                *v = f32::NEG_INFINITY;
            }
        }
        Tensor::from_vec(m, (group * t, ctx), device)
    }
}

struct Shape {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Layer {
    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate.forward(x)?)?;
        let up = self.up.forward(x)?;
        self.down.forward(&(gate * up)?)
    }

    fn attention(
        &mut self,
        x: &Tensor,
        pos: usize,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        s: &Shape,
    ) -> Result<Tensor> {
        let (_, t, width) = x.dims3()?;
        let project = |w: &Linear, b: &Tensor, heads: usize| -> Result<Tensor> {
            w.forward(x)?
                .broadcast_add(b)?
                .reshape((1, t, heads, s.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = project(&self.wq, &self.bq, s.heads)?;
        let k = project(&self.wk, &self.bk, s.kv_heads)?;
        let v = project(&self.wv, &self.bv, s.kv_heads)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;

        let ctx = pos + t;
        let keys = append(&mut self.k_cache, &k.squeeze(0)?, pos)?;
        let values = append(&mut self.v_cache, &v.squeeze(0)?, pos)?;

        // (heads, t, d) → (kv_heads, group·t, d): a group's heads are adjacent.
        let group = s.heads / s.kv_heads;
        let scale = 1.0 / (s.head_dim as f64).sqrt();
        let q = (q.squeeze(0)? * scale)?.reshape((s.kv_heads, group * t, s.head_dim))?;
        let scores = q.matmul(&keys.t()?)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        debug_assert_eq!(scores.dims(), [s.kv_heads, group * t, ctx]);
        let probs = scores
            .contiguous()?
            .apply_op1_no_bwd(&crate::ops::SoftmaxRows)?;
        let y = probs
            .matmul(&values)?
            .reshape((s.heads, t, s.head_dim))?
            .transpose(0, 1)?
            .reshape((1, t, width))?;
        self.wo.forward(&y)
    }
}

/// Write `new` (`(kv_heads, t, d)`) at positions `pos..` of `cache`, growing
/// it by doubling; the cache's positions `0..pos + t` as a strided view.
fn append(cache: &mut Option<Tensor>, new: &Tensor, pos: usize) -> Result<Tensor> {
    let (heads, t, d) = new.dims3()?;
    let need = pos + t;
    let capacity = cache.as_ref().map_or(0, |c| c.dim(1).unwrap_or(0));
    if need > capacity {
        let grown = need.max(capacity * 2).max(FIRST_CAPACITY);
        let fresh = Tensor::zeros((heads, grown, d), DType::F32, new.device())?;
        if let Some(old) = cache.as_ref()
            && pos > 0
        {
            fresh.slice_set(&old.narrow(1, 0, pos)?.contiguous()?, 1, 0)?;
        }
        *cache = Some(fresh);
    }
    let cache = cache.as_ref().expect("allocated above");
    cache.slice_set(&new.contiguous()?, 1, pos)?;
    cache.narrow(1, 0, need)
}

fn rope_tables(
    head_dim: usize,
    base: f32,
    context_length: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inv_freq: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let inv_freq = Tensor::new(inv_freq.as_slice(), device)?.unsqueeze(0)?;
    let positions = Tensor::arange(0u32, context_length as u32, device)?
        .to_dtype(DType::F32)?
        .unsqueeze(1)?;
    let angles = positions.broadcast_mul(&inv_freq)?;
    Ok((angles.cos()?, angles.sin()?))
}

#[cfg(test)]
mod tests {
    //! Against candle's `quantized_qwen2` on the store's 0.5B weights (skipped
    //! when they are not fetched): same logits up to rounding, through chunked
    //! prompts, decoding steps and a truncated-and-refed cache.

    use std::path::PathBuf;

    use candle_core::quantized::gguf_file;
    use candle_core::{Device, Tensor};
    use candle_transformers::models::quantized_qwen2;

    use super::Qwen2;

    /// Largest logit difference allowed, as a share of the largest logit.
    const TOLERANCE: f32 = 0.05;

    fn gguf() -> Option<PathBuf> {
        let root = match std::env::var_os("ASSIST_MODEL_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/assist/models"),
        };
        let dir = root.join("qwen2.5-coder-0.5b-instruct");
        let ready = dir.join("ready.json").is_file();
        if !ready {
            assist_testkit::skip(
                assist_testkit::Kind::Model,
                "qwen2.5-coder-0.5b-instruct is not fetched",
            );
        }
        ready.then(|| dir.join("model.gguf"))
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        max_abs(&(a - b).unwrap())
    }

    fn argmax(t: &Tensor) -> u32 {
        t.argmax(0).unwrap().to_scalar::<u32>().unwrap()
    }

    #[test]
    fn matches_candles_qwen2_through_chunks_decoding_and_truncation() {
        matches_candles_qwen2(false);
    }

    /// The same with the model's Q4_K and Q6_K matrices on our kernels
    /// (where the CPU has AVX-512 VNNI): their activations are quantized per
    /// 32 values, candle's per 256, so the logits differ by rounding only.
    #[test]
    fn matches_candles_qwen2_with_our_kquant_kernels() {
        if !crate::kernels::qk::available() {
            assist_testkit::skip(assist_testkit::Kind::Cpu, "no AVX-512 VNNI on this CPU");
            return;
        }
        matches_candles_qwen2(true);
    }

    fn matches_candles_qwen2(kquants: bool) {
        let Some(path) = gguf() else { return };
        let device = Device::Cpu;
        // Both models from the same re-quantized image (candle's Q5_0 kernel is scalar).
        let mut file = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let slow = crate::llm::requant::slow_tensors(&content);
        let image = crate::llm::requant::requantize(&content, &mut file, &slow, &path).unwrap();
        let load = |image: &mut std::io::Cursor<Vec<u8>>| {
            image.set_position(0);
            gguf_file::Content::read(image).unwrap()
        };
        let (mut a, mut b) = (image.clone(), image);
        let mut theirs =
            quantized_qwen2::ModelWeights::from_gguf(load(&mut a), &mut a, &device).unwrap();
        let mut ours = Qwen2::from_gguf(load(&mut b), &mut b, &device, false, kquants).unwrap();

        let prompt: Vec<u32> = (0..37u32).map(|i| 1000 + i * 97).collect();
        let feed = |m: &mut quantized_qwen2::ModelWeights, ids: &[u32], pos: usize| {
            let x = Tensor::new(ids, &device).unwrap().unsqueeze(0).unwrap();
            m.forward(&x, pos).unwrap().flatten_all().unwrap()
        };
        // Prompt in two chunks (a mask with an offset), then greedy steps.
        feed(&mut theirs, &prompt[..20], 0);
        let mut want = feed(&mut theirs, &prompt[20..], 20);
        ours.forward(&prompt[..20], 0).unwrap();
        let mut got = ours.forward(&prompt[20..], 20).unwrap();
        for pos in prompt.len()..prompt.len() + 6 {
            let scale = max_abs(&want);
            println!(
                "position {pos}: max |diff| {} of max |logit| {scale}",
                max_diff(&got, &want)
            );
            // Not bit-exact: a rounding difference can flip the int8
            // quantisation of an activation; a one-token step against a
            // batched prompt of the same tokens differs by ~2 % in either model.
            assert!(
                max_diff(&got, &want) < TOLERANCE * scale,
                "logits differ by {} at position {pos}",
                max_diff(&got, &want)
            );
            // The same next token, unless the top two are closer than the
            // models' measured difference (the test's prompt ids are
            // arbitrary, so near ties happen; seen on a Zen 1 CPU).
            let (mine, theirs_best) = (argmax(&got), argmax(&want));
            if mine != theirs_best {
                let logits = got.to_vec1::<f32>().unwrap();
                let gap = logits[mine as usize] - logits[theirs_best as usize];
                assert!(
                    gap <= max_diff(&got, &want),
                    "argmax {mine} vs {theirs_best} at position {pos}: gap {gap} is no near tie"
                );
            }
            let next = argmax(&want);
            want = feed(&mut theirs, &[next], pos);
            got = ours.forward(&[next], pos).unwrap();
        }
        // Forget the answer and part of the prompt, feed the rest again: the
        // same logits as the first time.
        ours.truncate(30);
        assert_eq!(ours.len(), 30);
        let again = ours.forward(&prompt[30..], 30).unwrap();
        theirs.clear_kv_cache();
        let fresh = feed(&mut theirs, &prompt, 0);
        let scale = max_abs(&fresh);
        assert!(max_diff(&again, &fresh) < TOLERANCE * scale);
        assert_eq!(argmax(&again), argmax(&fresh));
        assert!(ours.forward(&[1], 40).is_err(), "gaps are refused");
    }
}
