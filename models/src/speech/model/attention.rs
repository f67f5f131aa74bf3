//! Multi-head attention of the Whisper model: self-attention with a
//! key/value cache for decoding, and cross-attention to the encoder output,
//! whose keys and values are kept in f16 for the fused kernel.

use candle_core::{Device, IndexOp, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{Proj, Quant};

/// Attention scores per head above which [`Attention::attend`] goes one
/// head at a time (the encoder's 1500 × 1500; not a decoding step's).
const PER_HEAD_SCORES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub(super) struct Attention {
    q: Proj,
    k: Proj,
    v: Proj,
    out: Proj,
    n_head: usize,
    /// Self-attention: keys/values of every position so far,
    /// `[b, heads, t, d / heads]`. (An f16 cache through the fused kernel,
    /// as for the cross-attention, measured 1.5 % slower per call: these
    /// are a few dozen positions, where candle's products are cheap.)
    pub(super) cache: Option<(Tensor, Tensor)>,
    /// Cross-attention: keys/values of the encoder output, in f16.
    pub(super) kv: Option<KvF16>,
}

/// One window's cross-attention keys and values in f16, `[heads, n, d /
/// heads]` each. A decoding step reads all of them for every layer (36 MB
/// per token in f32 for whisper-base), so half the bytes is a shorter step;
/// f16 keeps 11 significant bits, far finer than the attention needs. Steps
/// run the fused kernel ([`crate::ops::attend_f16`]).
#[derive(Debug, Clone)]
pub(super) struct KvF16 {
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
    pub(super) fn load(
        vb: VarBuilder,
        n_state: usize,
        n_head: usize,
        quant: Quant,
    ) -> Result<Self> {
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
    pub(super) fn self_attend(
        &mut self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cached: bool,
    ) -> Result<Tensor> {
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
    pub(super) fn cross_attend(&mut self, x: &Tensor, xa: &Tensor) -> Result<Tensor> {
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
