//! Fused CPU kernels for the embedder's encoder and Whisper, as candle custom ops: each replaces
//! two or three candle ops (and their intermediate tensors) on the hot path.
//!
//! - [`BiasGelu`]: `gelu(x + bias)` with exact-erf GELU (BERT's `gelu`), using
//!   a rational erf approximation accurate to a few f32 ulps that the
//!   compiler vectorises, instead of a scalar libm call per element.
//! - [`BiasResidualNorm`]: `layer_norm(y + bias + residual)`, the tail of
//!   every attention and FFN block.
//! - [`SoftmaxRows`]: softmax over the last dimension with a polynomial exp,
//!   eight lanes at a time with AVX2 ([`crate::kernels::simd`]; candle's calls libm's
//!   scalar `expf` per value: ~8 % of a Whisper transcription's CPU in perf).
//! - [`attend_f16`], [`log_sum_exp`]: Whisper decoding's attention over f16
//!   keys and values, and its log-probabilities.
//!
//! Each picks the SIMD kernel where the CPU has it and falls back to
//! [`crate::portable`]; the arrows run ops → kernels → portable.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape};

use crate::kernels::simd;
use crate::pool::{on_each_pool_thread, pool_threads};
use crate::portable::{attend_row_f16_portable, log_sum_exp_portable, softmax_rows_portable};

type CResult<T> = candle_core::Result<T>;

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> CResult<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: input is not contiguous"),
    }
}

/// `gelu(x + bias)` over rows of `bias.len()` values.
#[derive(Debug, Clone)]
pub(crate) struct BiasGelu {
    pub bias: Vec<f32>,
}

impl CustomOp1 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        if x.len() % self.bias.len() != 0 {
            candle_core::bail!("bias-gelu: {} values, rows of {}", x.len(), self.bias.len());
        }
        let mut out = vec![0f32; x.len()];
        bias_gelu(x, &self.bias, &mut out);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// `layer_norm(y + bias + residual) * weight + beta` over rows of `bias.len()`;
/// `y` is the op's first argument, `residual` its second.
#[derive(Debug, Clone)]
pub(crate) struct BiasResidualNorm {
    pub bias: Vec<f32>,
    pub weight: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

impl CustomOp2 for BiasResidualNorm {
    fn name(&self) -> &'static str {
        "bias-residual-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let y = contiguous(s1, l1, self.name())?;
        let r = contiguous(s2, l2, self.name())?;
        if y.len() != r.len() || y.len() % self.bias.len() != 0 {
            candle_core::bail!(
                "bias-residual-norm: shapes {:?} and {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let mut out = vec![0f32; y.len()];
        bias_residual_norm(y, r, self, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

pub(crate) fn bias_gelu(x: &[f32], bias: &[f32], out: &mut [f32]) {
    for (xr, or) in x
        .chunks_exact(bias.len())
        .zip(out.chunks_exact_mut(bias.len()))
    {
        for ((o, &v), &b) in or.iter_mut().zip(xr).zip(bias) {
            let v = v + b;
            *o = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Layer norm of each row of `x` into `out`.
pub(crate) fn layer_norm_rows(x: &[f32], weight: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        or.copy_from_slice(xr);
        normalize_row(or, weight, beta, eps);
    }
}

fn normalize_row(row: &mut [f32], weight: &[f32], beta: &[f32], eps: f32) {
    let d = row.len() as f32;
    let mean = row.iter().sum::<f32>() / d;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    let inv = 1.0 / (var + eps).sqrt();
    for ((o, &w), &b) in row.iter_mut().zip(weight).zip(beta) {
        *o = (*o - mean) * inv * w + b;
    }
}

fn bias_residual_norm(y: &[f32], r: &[f32], p: &BiasResidualNorm, out: &mut [f32]) {
    let d = p.bias.len();
    for ((yr, rr), or) in y
        .chunks_exact(d)
        .zip(r.chunks_exact(d))
        .zip(out.chunks_exact_mut(d))
    {
        for (((o, &a), &b), &c) in or.iter_mut().zip(yr).zip(rr).zip(&p.bias) {
            *o = a + b + c;
        }
        normalize_row(or, &p.weight, &p.beta, p.eps);
    }
}

/// Softmax over the last dimension of a contiguous f32 tensor. Rows are
/// split over the barrier pool's threads when there are enough of them to
/// pay for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SoftmaxRows;

/// Values below which a row is done on the calling thread.
const SOFTMAX_PARALLEL_MIN: usize = 1 << 15;

impl CustomOp1 for SoftmaxRows {
    fn name(&self) -> &'static str {
        "softmax-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let n = l.shape().dims().last().copied().unwrap_or(1).max(1);
        let parts = pool_threads();
        let rows = x.len() / n;
        if x.len() < SOFTMAX_PARALLEL_MIN || parts == 1 || rows < parts {
            let mut out = vec![0f32; x.len()];
            softmax_rows(x, &mut out, n);
            return Ok((CpuStorage::F32(out), l.shape().clone()));
        }
        // Whole rows per thread of the barrier pool, the pool the products
        // run on: on rayon, the pool's workers (spinning after the previous
        // product) and rayon's competed for the same cores, and perf put
        // 14 % of a transcription in this softmax.
        let per = rows.div_ceil(parts) * n;
        let mut out = vec![0f32; x.len()];
        let parts: Vec<std::sync::Mutex<(&[f32], &mut [f32])>> = x
            .chunks(per)
            .zip(out.chunks_mut(per))
            .map(std::sync::Mutex::new)
            .collect();
        on_each_pool_thread(|tid| {
            if let Some(part) = parts.get(tid) {
                let mut part = part.lock().unwrap_or_else(|p| p.into_inner());
                let (x, out) = &mut *part;
                softmax_rows(x, out, n);
            }
        });
        drop(parts);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// In place, for the encoder's attention rows: a fresh output as large as
/// the scores (up to 9 MB a head) would be one more allocation to fault in.
impl candle_core::InplaceOp1 for SoftmaxRows {
    fn name(&self) -> &'static str {
        "softmax-rows-in-place"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> CResult<()> {
        let CpuStorage::F32(data) = s else {
            candle_core::bail!("softmax-rows-in-place: f32 only");
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("softmax-rows-in-place: input is not contiguous");
        };
        let x = &mut data[a..b];
        let n = l.shape().dims().last().copied().unwrap_or(1).max(1);
        let parts = pool_threads();
        let rows = x.len() / n;
        if x.len() < SOFTMAX_PARALLEL_MIN || parts == 1 || rows < parts {
            softmax_rows_in_place(x, n);
            return Ok(());
        }
        let per = rows.div_ceil(parts) * n;
        let parts: Vec<std::sync::Mutex<&mut [f32]>> =
            x.chunks_mut(per).map(std::sync::Mutex::new).collect();
        on_each_pool_thread(|tid| {
            if let Some(part) = parts.get(tid) {
                softmax_rows_in_place(&mut part.lock().unwrap_or_else(|p| p.into_inner()), n);
            }
        });
        Ok(())
    }
}

/// [`softmax_rows`] in place, a row at a time through a row-sized copy
/// (which stays in L1).
pub(crate) fn softmax_rows_in_place(x: &mut [f32], n: usize) {
    let mut row = vec![0f32; n];
    for r in x.chunks_exact_mut(n) {
        row.copy_from_slice(r);
        softmax_rows(&row, r, n);
    }
}

/// `softmax` of each row of `n` values of `x` into `out`: eight lanes at a
/// time where the CPU has AVX2 ([`crate::kernels::simd`]), else portable code.
pub(crate) fn softmax_rows(x: &[f32], out: &mut [f32], n: usize) {
    if !simd::softmax_rows(x, out, n) {
        softmax_rows_portable(x, out, n);
    }
}

/// One layer's attention keys and values in f16, `[heads, n, d]` each.
pub(crate) struct F16Heads<'a> {
    pub k: &'a [half::f16],
    pub v: &'a [half::f16],
    pub heads: usize,
    pub d: usize,
    pub n: usize,
}

/// Attention of query rows to keys and values kept in f16 ([`F16Heads`]):
/// Whisper's decoder, whose cross-attention reads the whole encoder output
/// on every step. `q` is `[t, heads · d]` as projected, and so is the
/// result; no mask. The (row, head)
/// pairs are spread over the barrier pool's threads; with AVX2, FMA and
/// F16C each runs [`simd::attend_row_f16`], which reads the f16
/// values directly: half the bytes of f32 on every decoding step.
pub(crate) fn attend_f16(q: &[f32], kv: &F16Heads<'_>, scale: f32) -> Vec<f32> {
    let F16Heads { k, v, heads, d, n } = *kv;
    let width = heads * d;
    assert!(width > 0 && q.len().is_multiple_of(width));
    assert!(n > 0 && k.len() == heads * n * d && v.len() == k.len());
    let t = q.len() / width;
    let units = t * heads;
    let parts = pool_threads().min(units.max(1));
    let run = |part: usize| -> Vec<(usize, Vec<f32>)> {
        let mut scores = vec![0f32; n];
        (part..units)
            .step_by(parts)
            .map(|u| {
                let (row, h) = (u / heads, u % heads);
                let qh = &q[row * width + h * d..][..d];
                let (kh, vh) = (&k[h * n * d..][..n * d], &v[h * n * d..][..n * d]);
                let mut out = vec![0f32; d];
                if !simd::attend_row_f16(qh, kh, vh, scale, &mut scores, &mut out) {
                    attend_row_f16_portable(qh, kh, vh, scale, &mut scores, &mut out);
                }
                (u, out)
            })
            .collect()
    };
    let pieces = if parts == 1 {
        vec![run(0)]
    } else {
        on_each_pool_thread(|tid| if tid < parts { run(tid) } else { Vec::new() })
    };
    let mut out = vec![0f32; q.len()];
    for (u, piece) in pieces.into_iter().flatten() {
        let (row, h) = (u / heads, u % heads);
        out[row * width + h * d..][..d].copy_from_slice(&piece);
    }
    out
}

/// `ln Σ eˣ` over `x` (−∞ when empty or fully masked): eight lanes at a
/// time where the CPU has AVX2 ([`crate::kernels::simd`]), else portable code.
pub(crate) fn log_sum_exp(x: &[f32]) -> f32 {
    simd::log_sum_exp(x).unwrap_or_else(|| log_sum_exp_portable(x))
}

/// erf(x) for f32 as a rational function of x² (odd numerator of degree 13,
/// even denominator of degree 8) on [-4, 4], where |erf| saturates to 1 in
/// f32 beyond. Branch-free so loops over it vectorise.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let z = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for c in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600_1e-3,
        -1.609_603_3e-2,
    ] {
        p = p * z + c;
    }
    let mut q = -1.456_607_2e-5_f32;
    for c in [
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329_3e-3,
        -1.426_473_9e-2,
    ] {
        q = q * z + c;
    }
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its Maclaurin series (|x| ≤ 3) or continued fraction of erfc.
    fn erf_ref(x: f64) -> f64 {
        if x.abs() > 3.0 {
            // erfc(x) = exp(-x²)/(x√π) · 1/(1 + 1/(2x²)/(1 + 2/(2x²)/(1 + …))) via Lentz-free backward evaluation.
            let a = x.abs();
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
            return x.signum() * (1.0 - erfc);
        }
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_rows_match_the_formula() {
        for n in [1usize, 7, 8, 13, 1500] {
            let x: Vec<f32> = (0..3 * n)
                .map(|i| {
                    if i % 11 == 5 {
                        f32::NEG_INFINITY
                    } else {
                        ((i * 37 % 101) as f32 - 50.0) * 0.3
                    }
                })
                .collect();
            let mut got = vec![0f32; x.len()];
            softmax_rows(&x, &mut got, n);
            for (xr, gr) in x.chunks(n).zip(got.chunks(n)) {
                let max = xr
                    .iter()
                    .fold(f64::NEG_INFINITY, |a, &b| a.max(f64::from(b)));
                let sum: f64 = xr.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                for (&v, &g) in xr.iter().zip(gr) {
                    let want = (f64::from(v) - max).exp() / sum;
                    assert!((f64::from(g) - want).abs() < 1e-6, "n={n}: {g} vs {want}");
                }
            }
        }
        let mut out = [0f32; 4];
        softmax_rows(&[f32::NEG_INFINITY; 4], &mut out, 4);
        assert_eq!(out, [0.25; 4]);
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let err = (f64::from(erf(x)) - erf_ref(f64::from(x))).abs();
            worst = worst.max(err);
        }
        assert!(worst < 2e-6, "max |erf error| {worst}");
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn fused_kernels_match_the_plain_formulas() {
        let d = 8;
        let x: Vec<f32> = (0..3 * d).map(|i| (i as f32 - 11.0) * 0.37).collect();
        let r: Vec<f32> = (0..3 * d).map(|i| ((i * 7 % 5) as f32) - 2.0).collect();
        let bias: Vec<f32> = (0..d).map(|i| i as f32 * 0.1 - 0.3).collect();
        let mut g = vec![0f32; x.len()];
        bias_gelu(&x, &bias, &mut g);
        for (i, &v) in g.iter().enumerate() {
            let u = f64::from(x[i] + bias[i % d]);
            let want = 0.5 * u * (1.0 + erf_ref(u / 2f64.sqrt()));
            assert!(
                (f64::from(v) - want).abs() < 1e-5,
                "gelu {u}: {v} vs {want}"
            );
        }
        let p = BiasResidualNorm {
            bias: bias.clone(),
            weight: (0..d).map(|i| 1.0 + i as f32 * 0.5).collect(),
            beta: (0..d).map(|i| i as f32 * -0.2).collect(),
            eps: 1e-12,
        };
        let mut n = vec![0f32; x.len()];
        bias_residual_norm(&x, &r, &p, &mut n);
        for row in 0..3 {
            let s: Vec<f64> = (0..d)
                .map(|j| f64::from(x[row * d + j] + r[row * d + j] + bias[j]))
                .collect();
            let mean = s.iter().sum::<f64>() / d as f64;
            let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            for j in 0..d {
                let want = (s[j] - mean) / (var + 1e-12).sqrt() * f64::from(p.weight[j])
                    + f64::from(p.beta[j]);
                assert!((f64::from(n[row * d + j]) - want).abs() < 1e-4);
            }
        }
    }
}
