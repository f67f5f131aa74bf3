//! A BERT-family encoder (BERT, XLM-RoBERTa) on candle, shared by every
//! embedder layout.
//!
//! Linear layers are dense f32 run by matrixmultiply's sgemm split over two
//! threads (the default, [`Compute::Sgemm`]: Q4_0 weights from an `E5S1`
//! file are dequantised once at load and stored transposed), dense f16 or
//! f32 through candle's gemm ([`Compute::F16`], [`Compute::F32`]) or candle
//! `QMatMul`s over the Q4_0 blocks ([`Compute::Quantized`]). Hugging Face
//! weights are f32 and take the default path.
//! Bias + GELU and bias + residual + layer norm run as fused custom ops
//! ([`crate::ops`]). Word embeddings stay in their stored form (Q4_0 for
//! `E5S1`: 54 MB instead of 384 MB) and only the rows of the tokens being
//! embedded are expanded.

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};

/// Candle's result type, used inside the forward pass.
type CResult<T> = candle_core::Result<T>;

use super::e5s1::{self, E5s1File, Q4_0_BLOCK_BYTES};
use crate::ops::{self, BiasGelu, BiasResidualNorm};
use crate::{Error, Result};

/// Shape and numerics of an encoder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EncoderConfig {
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub layer_norm_eps: f64,
    /// Position id of the first token: 0 for BERT and `E5S1` (whose table
    /// already starts at XLM-R's first position), `padding_idx + 1` for XLM-R.
    pub position_offset: usize,
    /// Most tokens per input, specials included.
    pub max_tokens: usize,
}

/// Word embedding table, kept as stored.
enum WordTable {
    /// Q4_0 rows (`hidden / 32` blocks each).
    Q4_0(Vec<u8>),
    F32(Vec<f32>),
}

/// A linear layer's weight as the matmul wants it.
enum MatWeight {
    /// Quantised `[out, in]` blocks.
    Quantized(QMatMul),
    /// Dense f32 stored transposed, `[in, out]` contiguous, so `x · w` needs
    /// no repacking of a strided right-hand side.
    Dense(Tensor),
    /// Dense f32 `[in, out]` run by matrixmultiply's sgemm (through ndarray),
    /// its output columns split in two halves computed at once when the
    /// current rayon pool has a second thread.
    Sgemm(ndarray::Array2<f32>),
    /// Dense f16, transposed like [`MatWeight::Dense`]; the activations are
    /// rounded to f16 on the way in and the product widened to f32 on the way
    /// out (gemm accumulates in f32).
    DenseF16(Tensor),
}

impl MatWeight {
    fn matmul(&self, x: &Tensor) -> CResult<Tensor> {
        match self {
            MatWeight::Quantized(w) => w.forward(x),
            MatWeight::Dense(wt) => x.matmul(wt),
            MatWeight::DenseF16(wt) => x.to_dtype(DType::F16)?.matmul(wt)?.to_dtype(DType::F32),
            MatWeight::Sgemm(w) => sgemm(x, w),
        }
    }
}

/// `x · w` for a `[rows, in]` tensor and an `[in, out]` matrix, the output
/// columns split into one part per thread of candle's barrier pool
/// ([`crate::pool::on_each_pool_thread`]). Each part reads only its share of the
/// weights, which splits a short query evenly where gemm's own splitting
/// does not (`benches/query_embed.rs`).
fn sgemm(x: &Tensor, w: &ndarray::Array2<f32>) -> CResult<Tensor> {
    use ndarray::{Array2, linalg::general_mat_mul, s};
    let (rows, inp) = x.dims2()?;
    let out = w.ncols();
    if inp != w.nrows() {
        candle_core::bail!(
            "sgemm: input has {inp} columns, the weight {} rows",
            w.nrows()
        );
    }
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let xv = ndarray::ArrayView2::from_shape((rows, inp), &xs)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let product = |cols: std::ops::Range<usize>| {
        let mut y = Array2::<f32>::zeros((rows, cols.len()));
        general_mat_mul(1.0, &xv, &w.slice(s![.., cols]), 0.0, &mut y);
        y
    };
    // Parts on multiples of 16 columns keep matrixmultiply's packed panels whole.
    let step = out
        .div_ceil(crate::pool::pool_threads())
        .next_multiple_of(16);
    let y = if step < out {
        let cols = |tid: usize| (tid * step).min(out)..((tid + 1) * step).min(out);
        let parts = crate::pool::on_each_pool_thread(|tid| product(cols(tid)));
        // Assembled row-major (ndarray's `concatenate` along columns hands
        // back a column-major array).
        let mut y = Array2::<f32>::zeros((rows, out));
        for (tid, part) in parts.iter().enumerate() {
            y.slice_mut(s![.., cols(tid)]).assign(part);
        }
        y
    } else {
        product(0..out)
    };
    let (data, offset) = y.into_raw_vec_and_offset();
    debug_assert_eq!(offset.unwrap_or(0), 0);
    Tensor::from_vec(data, (rows, out), x.device())
}

struct Layer {
    /// Query, key and value projections fused into one `[3 * hidden, hidden]` matmul.
    qkv: MatWeight,
    qkv_bias: Tensor,
    attn_out: MatWeight,
    /// Attention output bias, residual and layer norm.
    attn_tail: BiasResidualNorm,
    ffn_in: MatWeight,
    ffn_act: BiasGelu,
    ffn_out: MatWeight,
    /// FFN output bias, residual and layer norm.
    ffn_tail: BiasResidualNorm,
}

/// The encoder's weights.
pub(crate) struct Encoder {
    pub config: EncoderConfig,
    words: WordTable,
    vocab: usize,
    /// `max_positions × hidden`, row `p` for position id `p`.
    positions: Vec<f32>,
    /// Token type 0's embedding (every input is a single segment).
    token_type: Vec<f32>,
    /// Embedding layer norm (weight, bias).
    emb_norm: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    device: Device,
}

/// Tensors of one layer by role, used by the loaders.
pub(crate) struct LayerWeights {
    /// `q`, `k`, `v`, attention output, FFN in, FFN out: (weight, bias).
    pub linears: [(Weight, Vec<f32>); 6],
    pub attn_norm: (Vec<f32>, Vec<f32>),
    pub ffn_norm: (Vec<f32>, Vec<f32>),
}

/// A linear layer's weight, `[out, in]` row-major.
pub(crate) enum Weight {
    Q4_0 {
        bytes: Vec<u8>,
        out: usize,
        inp: usize,
    },
    F32 {
        values: Vec<f32>,
        out: usize,
        inp: usize,
    },
}

impl Weight {
    fn out(&self) -> usize {
        match self {
            Weight::Q4_0 { out, .. } | Weight::F32 { out, .. } => *out,
        }
    }

    fn inp(&self) -> usize {
        match self {
            Weight::Q4_0 { inp, .. } | Weight::F32 { inp, .. } => *inp,
        }
    }
}

/// How the linear layers of a Q4_0 model compute.
///
/// Measured on a 2-core AVX2 machine (no VNNI), 12-layer e5-small: f32 is
/// faster for single queries and about 3× faster for batches, because
/// candle's Q4_0 × Q8_0 kernel on AVX2 is a per-(row, column) dot product
/// while gemm's f32 microkernels are well blocked. The price is memory:
/// 85 MB of f32 layer weights instead of 19 MB.
///
/// For a short query (≈ 17 tokens) the f32 matmuls are bound by reading those
/// 85 MB, which do not stay in cache between queries: the same matmuls over
/// cache-resident weights take half the time. f16 weights halve the bytes
/// read, which pays for gemm widening them to f32 while packing ([`Compute::F16`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// Q4_0 weights × Q8_0-quantised activations (candle's quantized matmul),
    /// numerically what the reference reader does.
    Quantized,
    /// Weights dequantised to f32 once at load (85 MB).
    F32,
    /// Weights dequantised to f16 once at load (43 MB); activations rounded
    /// to f16 at each matmul, accumulation in f32 (cosine with the reference
    /// reader ≥ 0.9999). The previous default: a query costs 10–16 % less CPU and
    /// its p50 is 1.15–1.2× better than f32, on the embedder's one-thread pool
    /// and on candle's two threads alike (`benches/query_embed.rs`, load 5–7 on
    /// 2 cores); passage batches of 32 run at 0.7–1.0× f32's rate.
    F16,
    /// Weights dequantised to f32 once at load (85 MB) and run by
    /// matrixmultiply's sgemm with the output columns split over candle's
    /// barrier-pool threads (see `sgemm`). The default: on 2 cores a query's
    /// p50 / p95 is 0.68× / 0.69× the f16 path's (17.8 / 25.1 ms against
    /// 26.2 / 36.3 ms, `benches/query_embed.rs`, interleaved, load about 1)
    /// and passage batches of 32 run 1.4× faster. It spends more CPU per
    /// query (36 ms against 29: the second thread waits by spinning between
    /// matmuls). Candle's own Q8_0 kernel (weights requantised from Q4_0) was
    /// measured too: p50 32.8 ms on two threads, slower than f16.
    #[default]
    Sgemm,
}

impl Encoder {
    /// Build the encoder from an `E5S1` file.
    pub fn from_e5s1(file: &E5s1File, compute: Compute) -> Result<Self> {
        let h = *file.header();
        let config = EncoderConfig {
            hidden: h.hidden,
            heads: h.heads,
            layers: h.layers,
            layer_norm_eps: f64::from(h.layer_norm_eps),
            position_offset: 0,
            max_tokens: h.max_positions,
        };
        let mut layers = Vec::with_capacity(h.layers);
        for l in 0..h.layers {
            let f = |s: &str| file.f32s(&format!("l{l}.{s}"));
            let w = |s: &str, out: usize, inp: usize| -> Result<(Weight, Vec<f32>)> {
                let bytes = file.q4_0(&format!("l{l}.{s}.w"))?.to_vec();
                Ok((Weight::Q4_0 { bytes, out, inp }, f(&format!("{s}.b"))?))
            };
            let (d, ff) = (h.hidden, h.intermediate);
            layers.push(LayerWeights {
                linears: [
                    w("q", d, d)?,
                    w("k", d, d)?,
                    w("v", d, d)?,
                    w("ao", d, d)?,
                    w("fi", ff, d)?,
                    w("fo", d, ff)?,
                ],
                attn_norm: (f("aln.w")?, f("aln.b")?),
                ffn_norm: (f("oln.w")?, f("oln.b")?),
            });
        }
        let words = file.q4_0("emb.word")?.to_vec();
        let token_type = file.f32s("emb.type")?[..h.hidden].to_vec();
        Self::build(
            config,
            WordSource::Q4_0(words),
            h.vocab,
            file.f32s("emb.pos")?,
            token_type,
            (file.f32s("emb.ln.w")?, file.f32s("emb.ln.b")?),
            layers,
            compute,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn build(
        config: EncoderConfig,
        words: WordSource,
        vocab: usize,
        positions: Vec<f32>,
        token_type: Vec<f32>,
        emb_norm: (Vec<f32>, Vec<f32>),
        layers: Vec<LayerWeights>,
        compute: Compute,
    ) -> Result<Self> {
        let device = Device::Cpu;
        let d = config.hidden;
        let words = match words {
            WordSource::Q4_0(bytes) => WordTable::Q4_0(bytes),
            WordSource::F32(values) => WordTable::F32(values),
        };
        let eps = config.layer_norm_eps as f32;
        let tail = |bias: Vec<f32>, (weight, beta): (Vec<f32>, Vec<f32>)| BiasResidualNorm {
            bias,
            weight,
            beta,
            eps,
        };
        let mut built = Vec::with_capacity(layers.len());
        for lw in layers {
            let [q, k, v, ao, fi, fo] = lw.linears;
            let (qkv, qkv_bias) = fuse([q, k, v])?;
            built.push(Layer {
                qkv: matmul_weight(qkv, compute, &device).map_err(load_err)?,
                qkv_bias: Tensor::from_vec(qkv_bias, 3 * d, &device).map_err(load_err)?,
                attn_out: matmul_weight(ao.0, compute, &device).map_err(load_err)?,
                attn_tail: tail(ao.1, lw.attn_norm),
                ffn_in: matmul_weight(fi.0, compute, &device).map_err(load_err)?,
                ffn_act: BiasGelu { bias: fi.1 },
                ffn_out: matmul_weight(fo.0, compute, &device).map_err(load_err)?,
                ffn_tail: tail(fo.1, lw.ffn_norm),
            });
        }
        Ok(Encoder {
            emb_norm,
            config,
            words,
            vocab,
            positions,
            token_type,
            layers: built,
            device,
        })
    }

    /// Run a batch of token sequences, all padded to `seq` with `lens[i]`
    /// real tokens each, and return the last hidden states `[batch, seq, hidden]`
    /// flattened.
    pub fn forward(&self, ids: &[u32], lens: &[usize], seq: usize) -> Result<Vec<f32>> {
        let c = &self.config;
        let (d, batch) = (c.hidden, lens.len());
        debug_assert_eq!(ids.len(), batch * seq);
        let mut x = vec![0f32; batch * seq * d];
        for (b, &len) in lens.iter().enumerate() {
            for t in 0..seq {
                let row = &mut x[(b * seq + t) * d..(b * seq + t + 1) * d];
                let id = ids[b * seq + t] as usize;
                if id >= self.vocab {
                    return Err(self.error(format!("token id {id} is outside the vocabulary")));
                }
                self.word_row(id, row);
                // Padding positions are masked out; give them any valid row.
                let pos = c.position_offset + t.min(len.saturating_sub(1));
                let Some(prow) = self.positions.get(pos * d..(pos + 1) * d) else {
                    return Err(self.error(format!("position {pos} is past the position table")));
                };
                for ((r, p), ty) in row.iter_mut().zip(prow).zip(&self.token_type) {
                    *r += p + ty;
                }
            }
        }
        self.run(x, lens, seq)
            .map_err(|e| self.error(e.to_string()))
    }

    fn run(&self, x: Vec<f32>, lens: &[usize], seq: usize) -> CResult<Vec<f32>> {
        let c = &self.config;
        let batch = lens.len();
        let mut normed = vec![0f32; x.len()];
        let (w, b) = &self.emb_norm;
        ops::layer_norm_rows(&x, w, b, c.layer_norm_eps as f32, &mut normed);
        let mut x = Tensor::from_vec(normed, (batch * seq, c.hidden), &self.device)?;
        let mask = if lens.iter().all(|&l| l == seq) {
            None
        } else {
            let mut m = vec![0f32; batch * seq];
            for (b, &len) in lens.iter().enumerate() {
                m[b * seq + len..(b + 1) * seq].fill(f32::NEG_INFINITY);
            }
            Some(Tensor::from_vec(m, (batch, 1, 1, seq), &self.device)?)
        };
        for layer in &self.layers {
            x = self.layer(layer, &x, batch, seq, mask.as_ref())?;
        }
        x.flatten_all()?.to_vec1::<f32>()
    }

    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        batch: usize,
        seq: usize,
        mask: Option<&Tensor>,
    ) -> CResult<Tensor> {
        let c = &self.config;
        let (d, heads) = (c.hidden, c.heads);
        let hd = d / heads;
        // [b*s, 3d] -> [3, b, heads, s, hd]
        let qkv = layer
            .qkv
            .matmul(x)?
            .broadcast_add(&layer.qkv_bias)?
            .reshape((batch, seq, 3, heads, hd))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let q = qkv.get(0)?;
        let k = qkv.get(1)?;
        let v = qkv.get(2)?;
        let scores = q.matmul(&k.t()?)?.affine(1.0 / (hd as f64).sqrt(), 0.0)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch * seq, d))?;
        let x = layer
            .attn_out
            .matmul(&ctx)?
            .apply_op2_no_bwd(x, &layer.attn_tail)?;
        let mid = layer.ffn_in.matmul(&x)?.apply_op1_no_bwd(&layer.ffn_act)?;
        layer
            .ffn_out
            .matmul(&mid)?
            .apply_op2_no_bwd(&x, &layer.ffn_tail)
    }

    fn word_row(&self, id: usize, row: &mut [f32]) {
        let d = row.len();
        match &self.words {
            WordTable::Q4_0(bytes) => {
                let per_row = d / e5s1::Q4_0_BLOCK_WEIGHTS * Q4_0_BLOCK_BYTES;
                e5s1::dequantize_q4_0(&bytes[id * per_row..(id + 1) * per_row], row);
            }
            WordTable::F32(values) => row.copy_from_slice(&values[id * d..(id + 1) * d]),
        }
    }

    fn error(&self, reason: String) -> Error {
        Error::Inference {
            model: "embedder".into(),
            reason,
        }
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .field("vocab", &self.vocab)
            .field("quantized_words", &matches!(self.words, WordTable::Q4_0(_)))
            .finish_non_exhaustive()
    }
}

/// Where word embeddings come from.
pub(crate) enum WordSource {
    Q4_0(Vec<u8>),
    F32(Vec<f32>),
}

/// Concatenate `[out_i, in]` weights (and biases) along the output dimension.
fn fuse(parts: [(Weight, Vec<f32>); 3]) -> Result<(Weight, Vec<f32>)> {
    let inp = parts[0].0.inp();
    let mut out = 0;
    let mut bias = Vec::new();
    let mut q4 = Vec::new();
    let mut dense = Vec::new();
    for (w, b) in parts {
        if w.inp() != inp {
            return Err(load_err_msg(
                "fused projections disagree on their input size",
            ));
        }
        out += w.out();
        bias.extend(b);
        match w {
            // Rows never share a Q4_0 block, so the row-major blocks concatenate.
            Weight::Q4_0 { bytes, .. } => q4.extend(bytes),
            Weight::F32 { values, .. } => dense.extend(values),
        }
    }
    let weight = match (q4.is_empty(), dense.is_empty()) {
        (false, true) => Weight::Q4_0 {
            bytes: q4,
            out,
            inp,
        },
        (true, false) => Weight::F32 {
            values: dense,
            out,
            inp,
        },
        _ => {
            return Err(load_err_msg(
                "fused projections mix quantised and dense weights",
            ));
        }
    };
    Ok((weight, bias))
}

fn matmul_weight(w: Weight, compute: Compute, device: &Device) -> CResult<MatWeight> {
    let quantized = |bytes: Vec<u8>, dtype, shape: (usize, usize)| -> CResult<MatWeight> {
        let storage = QStorage::from_data(std::borrow::Cow::Owned(bytes), device, dtype)?;
        let qtensor = QTensor::new(storage, shape)?;
        Ok(MatWeight::Quantized(QMatMul::from_arc(
            std::sync::Arc::new(qtensor),
        )?))
    };
    let dense = |values: Vec<f32>, (out, inp): (usize, usize)| -> CResult<MatWeight> {
        let wt = Tensor::from_vec(values, (out, inp), device)?
            .t()?
            .contiguous()?;
        Ok(match compute {
            Compute::F16 => MatWeight::DenseF16(wt.to_dtype(DType::F16)?),
            Compute::F32 | Compute::Quantized | Compute::Sgemm => MatWeight::Dense(wt),
        })
    };
    let sgemm_weight = |values: Vec<f32>, (out, inp): (usize, usize)| -> CResult<MatWeight> {
        // [out, in] row-major → [in, out].
        let w = ndarray::Array2::from_shape_vec((out, inp), values)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(MatWeight::Sgemm(w.t().as_standard_layout().into_owned()))
    };
    match w {
        Weight::Q4_0 { bytes, out, inp } => match compute {
            Compute::Quantized => quantized(bytes, GgmlDType::Q4_0, (out, inp)),
            Compute::F32 | Compute::F16 | Compute::Sgemm => {
                let mut values = vec![0f32; out * inp];
                e5s1::dequantize_q4_0(&bytes, &mut values);
                if compute == Compute::Sgemm {
                    sgemm_weight(values, (out, inp))
                } else {
                    dense(values, (out, inp))
                }
            }
        },
        Weight::F32 { values, out, inp } if compute == Compute::Sgemm => {
            sgemm_weight(values, (out, inp))
        }
        Weight::F32 { values, out, inp } => dense(values, (out, inp)),
    }
}

fn load_err(e: candle_core::Error) -> Error {
    Error::Load {
        model: "embedder".into(),
        reason: e.to_string(),
    }
}

fn load_err_msg(reason: &str) -> Error {
    Error::Load {
        model: "embedder".into(),
        reason: reason.into(),
    }
}
