//! Whisper's encoder and decoder on candle, with a key/value cache for the
//! decoder's self-attention.
//!
//! Weights use the Hugging Face layout (`model.encoder.layers.0.self_attn.q_proj.weight`,
//! ...), the same names `candle_transformers::models::whisper::model::Whisper`
//! loads, so a standard HF Whisper directory and our CTranslate2 conversion
//! load the same way. We run our own forward pass rather than candle's
//! because candle's decoder recomputes every earlier token at each step
//! (no self-attention cache), which costs ~20× more on a 30-second window,
//! and because linear layers here may be quantized (`QMatMul`, q8_0).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Embedding, LayerNorm, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::ops::BiasGelu;

pub use candle_transformers::models::whisper::Config;

/// How the linear layers' weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32.
    F32,
    /// Every linear layer and the output projection quantized to q8_0.
    Q8,
    /// The default: f32 for every product of several rows (the encoder, the
    /// cross-attention keys and values, a window's prompt), where candle's
    /// f32 GEMM is fastest, plus a q8_0 copy of the decoder's matrices for
    /// its one-token steps, where reading the weights is the cost: an int8
    /// copy is a quarter of the bytes ([`crate::kernels::q8`]). Where the CPU has
    /// neither AVX2 nor AVX-512 VNNI this is `F32`.
    #[default]
    Mixed,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "q8" | "q8_0" => Ok(Precision::Q8),
            "mixed" => Ok(Precision::Mixed),
            other => Err(format!("unknown precision `{other}` (f32, q8, mixed)")),
        }
    }
}

/// How one part of the model keeps its matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quant {
    /// f32 only.
    None,
    /// q8_0 only.
    Q8,
    /// f32, and a q8_0 copy for one-row products.
    F32AndRows,
}

/// Attention scores per head above which [`Attention::attend`] goes one
/// head at a time (the encoder's 1500 × 1500; not a decoding step's).
const PER_HEAD_SCORES: usize = 1 << 20;

/// A weight matrix `[out, in]`, as [`Quant`] says.
#[derive(Debug, Clone)]
struct Weight {
    w: QMatMul,
    /// Repacked q8_0 for one-row products ([`crate::kernels::q8::Q8Rows`]).
    rows: Option<std::sync::Arc<crate::kernels::q8::Q8Rows>>,
}

impl Weight {
    fn new(w: Tensor, quant: Quant) -> Result<Self> {
        let quantizable = w.dim(D::Minus1)? % GgmlDType::Q8_0.block_size() == 0;
        if quant == Quant::None || !quantizable {
            return Ok(Weight {
                w: QMatMul::Tensor(w),
                rows: None,
            });
        }
        let q = QTensor::quantize(&w, GgmlDType::Q8_0)?;
        let rows = if crate::kernels::q8::available() {
            crate::kernels::q8::Q8Rows::from_qtensor(&q)?.map(std::sync::Arc::new)
        } else {
            None
        };
        let w = match quant {
            Quant::Q8 => QMatMul::from_qtensor(q)?,
            _ => QMatMul::Tensor(w),
        };
        Ok(Weight { w, rows })
    }

    /// `x · wᵀ`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.rows {
            Some(rows) if x.elem_count() == x.dim(D::Minus1)? => rows.gemv(x),
            _ => matmul(x, &self.w),
        }
    }
}

/// A linear layer: weight `[out, in]` and optional bias.
#[derive(Debug, Clone)]
struct Proj {
    w: Weight,
    b: Option<Tensor>,
}

impl Proj {
    fn load(vb: &VarBuilder, n_in: usize, n_out: usize, bias: bool, quant: Quant) -> Result<Self> {
        let w = vb.get((n_out, n_in), "weight")?;
        let b = if bias {
            Some(vb.get(n_out, "bias")?)
        } else {
            None
        };
        Ok(Proj {
            w: Weight::new(w, quant)?,
            b,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.w.forward(x)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// `x · wᵀ`. A single row (a decoding step) against dense f32 weights is a
/// matrix-vector product, which gemm runs on one thread and which is bound
/// by reading the weights; the weight rows are then split into one part per
/// thread of candle's barrier pool ([`crate::pool::on_each_pool_thread`]).
fn matmul(x: &Tensor, w: &QMatMul) -> Result<Tensor> {
    let QMatMul::Tensor(wt) = w else {
        return w.forward(x);
    };
    let (out, inp) = wt.dims2()?;
    let parts = crate::pool::pool_threads();
    if parts == 1 || x.elem_count() != inp || out < 64 * parts {
        return w.forward(x);
    }
    let row = x.reshape((1, inp))?;
    // With `out ≥ 64 · parts` every part has rows.
    let step = out.div_ceil(parts);
    let pieces = crate::pool::on_each_pool_thread(|tid| {
        let start = tid * step;
        row.matmul(&wt.narrow(0, start, step.min(out - start))?.t()?)
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("a matrix has dimensions") = out;
    Tensor::cat(&pieces, 1)?.reshape(dims)
}

fn layer_norm(vb: VarBuilder, n: usize) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(n, "weight")?,
        vb.get(n, "bias")?,
        1e-5,
    ))
}

#[derive(Debug, Clone)]
struct Attention {
    q: Proj,
    k: Proj,
    v: Proj,
    out: Proj,
    n_head: usize,
    /// Self-attention: keys/values of every position so far,
    /// `[b, heads, t, d / heads]`. (An f16 cache through the fused kernel,
    /// as for the cross-attention, measured 1.5 % slower per call: these
    /// are a few dozen positions, where candle's products are cheap.)
    cache: Option<(Tensor, Tensor)>,
    /// Cross-attention: keys/values of the encoder output, in f16.
    kv: Option<KvF16>,
}

/// One window's cross-attention keys and values in f16, `[heads, n, d /
/// heads]` each. A decoding step reads all of them for every layer (36 MB
/// per token in f32 for whisper-base), so half the bytes is a shorter step;
/// f16 keeps 11 significant bits, far finer than the attention needs. Steps
/// run the fused kernel ([`crate::ops::attend_f16`]).
#[derive(Debug, Clone)]
struct KvF16 {
    k: Vec<half::f16>,
    v: Vec<half::f16>,
    heads: usize,
    d: usize,
    n: usize,
}

impl KvF16 {
    /// From keys and values already split into heads, `[1, heads, n, d]`.
    fn from_heads(k: &Tensor, v: &Tensor) -> Result<Self> {
        use half::slice::HalfFloatSliceExt;
        let (b, heads, n, d) = k.dims4()?;
        if b != 1 {
            candle_core::bail!("whisper decoder: batch of {b} windows, only 1 is supported");
        }
        let half = |x: &Tensor| -> Result<Vec<half::f16>> {
            let x = x.flatten_all()?.to_vec1::<f32>()?;
            let mut out = vec![half::f16::ZERO; x.len()];
            out.convert_from_f32_slice(&x);
            Ok(out)
        };
        Ok(KvF16 {
            k: half(k)?,
            v: half(v)?,
            heads,
            d,
            n,
        })
    }

    fn view(&self) -> crate::ops::F16Heads<'_> {
        crate::ops::F16Heads {
            k: &self.k,
            v: &self.v,
            heads: self.heads,
            d: self.d,
            n: self.n,
        }
    }

    /// f32 copies `[1, heads, n, d]` for candle's products (several rows).
    fn tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        use half::slice::HalfFloatSliceExt;
        let shape = (1, self.heads, self.n, self.d);
        Ok((
            Tensor::from_vec(self.k.to_f32_vec(), shape, device)?,
            Tensor::from_vec(self.v.to_f32_vec(), shape, device)?,
        ))
    }
}

impl Attention {
    fn load(vb: VarBuilder, n_state: usize, n_head: usize, quant: Quant) -> Result<Self> {
        Ok(Attention {
            q: Proj::load(&vb.pp("q_proj"), n_state, n_state, true, quant)?,
            k: Proj::load(&vb.pp("k_proj"), n_state, n_state, false, quant)?,
            v: Proj::load(&vb.pp("v_proj"), n_state, n_state, true, quant)?,
            out: Proj::load(&vb.pp("out_proj"), n_state, n_state, true, quant)?,
            n_head,
            cache: None,
            kv: None,
        })
    }

    /// Self-attention over `x`; with `cached`, `x` continues the cached
    /// positions and is appended to them.
    fn self_attend(&mut self, x: &Tensor, mask: Option<&Tensor>, cached: bool) -> Result<Tensor> {
        let q = self.q.forward(x)?;
        let mut k = self.heads(&self.k.forward(x)?)?;
        let mut v = self.heads(&self.v.forward(x)?)?;
        if cached {
            if let Some((pk, pv)) = &self.cache {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            self.cache = Some((k.clone(), v.clone()));
        }
        self.attend(&q, &k, &v, mask)
    }

    /// Cross-attention to the encoder output `xa`. Its keys and values are
    /// projected once per window and kept split into heads, in f16
    /// ([`KvF16`]). A window's prompt (several rows) goes through candle's
    /// products on an f32 copy.
    fn cross_attend(&mut self, x: &Tensor, xa: &Tensor) -> Result<Tensor> {
        let q = self.q.forward(x)?;
        if self.kv.is_none() {
            let k = self.heads(&self.k.forward(xa)?)?;
            let v = self.heads(&self.v.forward(xa)?)?;
            self.kv = Some(KvF16::from_heads(&k, &v)?);
        }
        if q.dim(1)? == 1 {
            return self.attend_cached(&q);
        }
        let Some(kv) = &self.kv else {
            unreachable!("set above")
        };
        let (k, v) = kv.tensors(q.device())?;
        self.attend(&q, &k, &v, None)
    }

    /// One decoding step's row `q` (`[1, 1, d]`, as projected) against the
    /// f16 keys and values, then the output projection.
    fn attend_cached(&self, q: &Tensor) -> Result<Tensor> {
        let Some(kv) = &self.kv else {
            candle_core::bail!("whisper decoder: attention before its keys and values")
        };
        let scale = 1.0 / (kv.d as f32).sqrt();
        let row = q.flatten_all()?.to_vec1::<f32>()?;
        let out = crate::ops::attend_f16(&row, &kv.view(), scale);
        self.out
            .forward(&Tensor::from_vec(out, q.dims(), q.device())?)
    }

    /// `[b, t, d]` → `[b, heads, t, d / heads]`, contiguous.
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        x.reshape((b, t, self.n_head, d / self.n_head))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `q` as projected; `k` and `v` already split into heads.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, d) = q.dims3()?;
        let scale = 1.0 / ((d / self.n_head) as f64).sqrt();
        let q = (self.heads(q)? * scale)?;
        if b == 1 && mask.is_none() && t * k.dim(2)? >= PER_HEAD_SCORES {
            // The encoder: one head at a time, so the scores (1500 × 1500,
            // 9 MB a head for whisper-base) stay under glibc's 32 MB mmap
            // threshold and its heap reuses them. All heads at once made a
            // 72 MB buffer, mmapped, faulted in and zeroed by the kernel for
            // every layer: 850 k page faults and 11 % of a transcription's
            // CPU time in the kernel.
            let heads = (0..self.n_head)
                .map(|h| {
                    let scores = q.i((0, h))?.matmul(&k.i((0, h))?.t()?)?;
                    scores.inplace_op1(&crate::ops::SoftmaxRows)?;
                    scores.matmul(&v.i((0, h))?)
                })
                .collect::<Result<Vec<_>>>()?;
            return self.out.forward(&Tensor::cat(&heads, 1)?.unsqueeze(0)?);
        }
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = scores
            .contiguous()?
            .apply_op1_no_bwd(&crate::ops::SoftmaxRows)?;
        let out = weights.matmul(v)?.transpose(1, 2)?.flatten_from(2)?;
        self.out.forward(&out)
    }
}

#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross: Option<(Attention, LayerNorm)>,
    /// `fc1`'s weight alone: its bias goes into `fc1_act`.
    fc1: Proj,
    /// `gelu(x + fc1 bias)` in one pass with a vectorised erf (candle's
    /// `gelu_erf` calls libm's scalar `erf` per value: 4 % of a whole
    /// transcription's CPU in perf).
    fc1_act: BiasGelu,
    fc2: Proj,
    mlp_ln: LayerNorm,
}

impl Block {
    fn load(
        vb: VarBuilder,
        n_state: usize,
        n_head: usize,
        cross: bool,
        quant: Quant,
    ) -> Result<Self> {
        let cross = if cross {
            Some((
                Attention::load(vb.pp("encoder_attn"), n_state, n_head, quant)?,
                layer_norm(vb.pp("encoder_attn_layer_norm"), n_state)?,
            ))
        } else {
            None
        };
        Ok(Block {
            attn: Attention::load(vb.pp("self_attn"), n_state, n_head, quant)?,
            attn_ln: layer_norm(vb.pp("self_attn_layer_norm"), n_state)?,
            cross,
            fc1: Proj::load(&vb.pp("fc1"), n_state, 4 * n_state, false, quant)?,
            fc1_act: BiasGelu {
                bias: vb.pp("fc1").get(4 * n_state, "bias")?.to_vec1::<f32>()?,
            },
            fc2: Proj::load(&vb.pp("fc2"), 4 * n_state, n_state, true, quant)?,
            mlp_ln: layer_norm(vb.pp("final_layer_norm"), n_state)?,
        })
    }

    fn forward(
        &mut self,
        x: &Tensor,
        xa: Option<&Tensor>,
        mask: Option<&Tensor>,
        cached: bool,
    ) -> Result<Tensor> {
        let h = self.attn_ln.forward(x)?;
        let mut x = (x + self.attn.self_attend(&h, mask, cached)?)?;
        if let (Some((attn, ln)), Some(xa)) = (&mut self.cross, xa) {
            let h = ln.forward(&x)?;
            x = (&x + attn.cross_attend(&h, xa)?)?;
        }
        let h = self
            .fc1
            .forward(&self.mlp_ln.forward(&x)?)?
            .contiguous()?
            .apply_op1_no_bwd(&self.fc1_act)?;
        x + self.fc2.forward(&h)?
    }

    fn reset(&mut self) {
        self.attn.cache = None;
        if let Some((attn, _)) = &mut self.cross {
            attn.kv = None;
        }
    }
}

/// The audio encoder: mel spectrogram → audio features.
#[derive(Debug, Clone)]
pub struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
}

impl Encoder {
    fn load(vb: VarBuilder, cfg: &Config, quant: Quant) -> Result<Self> {
        let n = cfg.d_model;
        let conv = |name: &str, n_in: usize, stride: usize| -> Result<Conv1d> {
            let vb = vb.pp(name);
            let cfg = Conv1dConfig {
                padding: 1,
                stride,
                ..Default::default()
            };
            Ok(Conv1d::new(
                vb.get((n, n_in, 3), "weight")?,
                Some(vb.get(n, "bias")?),
                cfg,
            ))
        };
        let positions = if vb.contains_tensor("embed_positions.weight") {
            vb.get((cfg.max_source_positions, n), "embed_positions.weight")?
        } else {
            sinusoids(cfg.max_source_positions, n, vb.device())?
        };
        Ok(Encoder {
            conv1: conv("conv1", cfg.num_mel_bins, 1)?,
            conv2: conv("conv2", n, 2)?,
            positions,
            blocks: (0..cfg.encoder_layers)
                .map(|i| {
                    Block::load(
                        vb.pp(format!("layers.{i}")),
                        n,
                        cfg.encoder_attention_heads,
                        false,
                        quant,
                    )
                })
                .collect::<Result<_>>()?,
            ln: layer_norm(vb.pp("layer_norm"), n)?,
        })
    }

    /// `mel`: `[1, n_mels, frames]` → `[1, frames / 2, d_model]`.
    pub fn forward(&mut self, mel: &Tensor) -> Result<Tensor> {
        let x = self.conv1.forward(mel)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?.transpose(1, 2)?;
        let len = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, len)?)?;
        for block in &mut self.blocks {
            x = block.forward(&x, None, None, false)?;
        }
        self.ln.forward(&x)
    }
}

/// The text decoder: tokens + audio features → next-token logits.
#[derive(Debug, Clone)]
pub struct Decoder {
    embed: Embedding,
    output: Weight,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    /// Tokens already in the self-attention cache.
    cached: usize,
}

impl Decoder {
    fn load(vb: VarBuilder, cfg: &Config, quant: Quant) -> Result<Self> {
        let n = cfg.d_model;
        let embed = vb.get((cfg.vocab_size, n), "embed_tokens.weight")?;
        Ok(Decoder {
            output: Weight::new(embed.clone(), quant)?,
            embed: Embedding::new(embed, n),
            positions: vb.get((cfg.max_target_positions, n), "embed_positions.weight")?,
            blocks: (0..cfg.decoder_layers)
                .map(|i| {
                    Block::load(
                        vb.pp(format!("layers.{i}")),
                        n,
                        cfg.decoder_attention_heads,
                        true,
                        quant,
                    )
                })
                .collect::<Result<_>>()?,
            ln: layer_norm(vb.pp("layer_norm"), n)?,
            cached: 0,
        })
    }

    /// Forget the cached tokens and audio features (before a new window).
    pub fn reset(&mut self) {
        self.cached = 0;
        for block in &mut self.blocks {
            block.reset();
        }
    }

    /// Number of tokens in the cache.
    pub fn cached_len(&self) -> usize {
        self.cached
    }

    /// Run `tokens` (continuing the cached ones) and return the final hidden
    /// states `[1, tokens.len(), d_model]`.
    pub fn forward(&mut self, tokens: &[u32], audio: &Tensor) -> Result<Tensor> {
        let device = audio.device();
        let t = tokens.len();
        let offset = self.cached;
        let ids = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let mut x = self
            .embed
            .forward(&ids)?
            .broadcast_add(&self.positions.narrow(0, offset, t)?)?;
        let mask = if t > 1 {
            Some(causal_mask(t, offset, device)?)
        } else {
            None
        };
        for block in &mut self.blocks {
            x = block.forward(&x, Some(audio), mask.as_ref(), true)?;
        }
        self.cached += t;
        self.ln.forward(&x)
    }

    /// Logits `[vocab]` of one position of `hidden` (`[1, t, d]`).
    pub fn logits(&self, hidden: &Tensor, position: usize) -> Result<Tensor> {
        let h = hidden.i((.., position..position + 1, ..))?.contiguous()?;
        self.output.forward(&h)?.flatten_all()?.to_dtype(DType::F32)
    }
}

fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let s = offset + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..s).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, s), device)
}

fn sinusoids(length: usize, channels: usize, device: &Device) -> Result<Tensor> {
    let half = channels / 2;
    let step = 10000f64.ln() / (half - 1) as f64;
    let mut data = vec![0f32; length * channels];
    for p in 0..length {
        for i in 0..half {
            let angle = p as f64 * (-(i as f64) * step).exp();
            data[p * channels + i] = angle.sin() as f32;
            data[p * channels + half + i] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(data, (length, channels), device)
}

/// Whisper: encoder + decoder.
#[derive(Debug, Clone)]
pub struct Whisper {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub config: Config,
}

impl Whisper {
    /// Build from HF-layout tensors (`model.encoder.*`, `model.decoder.*`).
    pub fn load(vb: VarBuilder, config: Config, precision: Precision) -> Result<Self> {
        let (enc_q, dec_q) = match precision {
            Precision::F32 => (Quant::None, Quant::None),
            Precision::Q8 => (Quant::Q8, Quant::Q8),
            Precision::Mixed => (Quant::None, Quant::F32AndRows),
        };
        Ok(Whisper {
            encoder: Encoder::load(vb.pp("model.encoder"), &config, enc_q)?,
            decoder: Decoder::load(vb.pp("model.decoder"), &config, dec_q)?,
            config,
        })
    }
}
