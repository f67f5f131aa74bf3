//! One-row products against Q8_0 weights: AVX-512 VNNI, or AVX2.
//!
//! Decoding (an LLM's or Whisper's) multiplies one activation row by every
//! weight matrix; for the 0.5B model perf put 54 % of a decoding step in
//! candle's AVX2 Q8_0 dot product (plus 5 % converting its f16 block scales),
//! one row by one column at a time. [`Q8Rows`] does the same arithmetic
//! sixteen rows at a time: the weights are repacked at load time so that one
//! 64-byte line holds four consecutive weights of sixteen rows, and each
//! row's products land in its own lane. No horizontal sums are needed.
//!
//! - With AVX-512 VNNI, one `vpdpbusd` multiplies the 64 bytes by the same
//!   four activations. It multiplies unsigned by signed bytes, so the
//!   activations are quantized to int8 per block of 32 (as Q8_0 does) and
//!   offset by 128: Σ (x + 128)·w = Σ x·w + 128·Σ w, and the second term is
//!   removed with each block's weight sum, computed at load time.
//! - With AVX2, each 32-byte half goes through `vpmaddubsw` and `vpmaddwd`.
//!   The offset would overflow `vpmaddubsw`'s 16-bit pair sums, so the
//!   signed activation's magnitude is multiplied by the weight carrying the
//!   activation's sign (`vpsignb`): |x|·(±w) stays within 2·127·127.
//!
//! Hand-written because no crate offers an int8 GEMV with this layout; the
//! intrinsics need `unsafe`.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Result, Tensor};
use half::f16;

/// Rows per group (one lane each).
const LANES: usize = 16;
/// Values per Q8_0 block.
const BLOCK: usize = 32;

/// The instruction set a [`Q8Rows`] product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AVX-512 with VNNI (`vpdpbusd`).
    Vnni,
    /// AVX2 and FMA (`vpmaddubsw`, `vpmaddwd`).
    Avx2,
}

/// The best kernel this CPU runs, if any.
pub(crate) fn kernel() -> Option<Kernel> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
            Some(Kernel::Vnni)
        } else if super::simd::avx2() {
            Some(Kernel::Avx2)
        } else {
            None
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Whether this CPU can run [`Q8Rows`].
pub(crate) fn available() -> bool {
    kernel().is_some()
}

/// Whether `kernel` runs on this CPU (AVX-512 VNNI CPUs run both).
fn runs(kernel: Kernel) -> bool {
    match kernel {
        Kernel::Vnni => self::kernel() == Some(Kernel::Vnni),
        Kernel::Avx2 => self::kernel().is_some(),
    }
}

/// A Q8_0 matrix `[rows, cols]` repacked for [`Q8Rows::gemv`].
pub(crate) struct Q8Rows {
    rows: usize,
    cols: usize,
    /// Per group of 16 rows, per block: 8 × 64 bytes, the j-th 64 holding
    /// weights `4j..4j + 4` of the block for each of the 16 rows.
    quants: Vec<i8>,
    /// Per group, per block: the 16 rows' scales.
    scales: Vec<f32>,
    /// Per group, per block: 128 · scale · Σ weights, for the offset.
    offsets: Vec<f32>,
}

impl std::fmt::Debug for Q8Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q8Rows")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl Q8Rows {
    /// Repack `w` if it is a Q8_0 matrix whose rows are whole blocks.
    pub(crate) fn from_qtensor(w: &QTensor) -> Result<Option<Self>> {
        if w.dtype() != GgmlDType::Q8_0 {
            return Ok(None);
        }
        let (rows, cols) = w.shape().dims2()?;
        if cols % BLOCK != 0 {
            return Ok(None);
        }
        let data = w.data()?;
        let blocks = cols / BLOCK;
        let groups = rows.div_ceil(LANES);
        let mut quants = vec![0i8; groups * blocks * LANES * BLOCK];
        let mut scales = vec![0f32; groups * blocks * LANES];
        let mut offsets = vec![0f32; groups * blocks * LANES];
        let block_bytes = 2 + BLOCK;
        for r in 0..rows {
            let (g, lane) = (r / LANES, r % LANES);
            for b in 0..blocks {
                let at = (r * blocks + b) * block_bytes;
                let d = f16::from_le_bytes([data[at], data[at + 1]]).to_f32();
                let qs = &data[at + 2..at + block_bytes];
                let gb = g * blocks + b;
                let mut sum = 0i32;
                for (k, &q) in qs.iter().enumerate() {
                    let q = q as i8;
                    sum += i32::from(q);
                    let (j, i) = (k / 4, k % 4);
                    quants[gb * LANES * BLOCK + j * LANES * 4 + lane * 4 + i] = q;
                }
                scales[gb * LANES + lane] = d;
                offsets[gb * LANES + lane] = 128.0 * d * sum as f32;
            }
        }
        Ok(Some(Q8Rows {
            rows,
            cols,
            quants,
            scales,
            offsets,
        }))
    }

    /// `x · wᵀ` for one row `x` (`[1, cols]` or `[1, 1, cols]`), split over
    /// the barrier pool's threads by groups of rows, on the best kernel this
    /// CPU has. The caller checks [`available`] first.
    pub(crate) fn gemv(&self, x: &Tensor) -> Result<Tensor> {
        match kernel() {
            Some(k) => self.gemv_on(k, x),
            None => candle_core::bail!("q8 gemv: this CPU has neither AVX2 nor AVX-512 VNNI"),
        }
    }

    /// [`Self::gemv`] on a given kernel, which must [`run`](runs) here.
    fn gemv_on(&self, kernel: Kernel, x: &Tensor) -> Result<Tensor> {
        if !runs(kernel) {
            candle_core::bail!("q8 gemv: the {kernel:?} kernel does not run on this CPU");
        }
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        if xs.len() != self.cols {
            candle_core::bail!("q8 gemv: {} inputs for {} columns", xs.len(), self.cols);
        }
        let (xq, xd) = quantize_row(&xs);
        let groups = self.rows.div_ceil(LANES);
        let parts = crate::pool::pool_threads().min(groups).max(1);
        let per = groups.div_ceil(parts);
        let pieces = crate::pool::on_each_pool_thread(|tid| {
            let start = (tid * per).min(groups);
            let end = ((tid + 1) * per).min(groups);
            let mut out = vec![0f32; (end - start) * LANES];
            self.groups(kernel, start..end, &xq, &xd, &mut out);
            out
        });
        let mut out: Vec<f32> = pieces.into_iter().flatten().collect();
        out.truncate(self.rows);
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("x has dimensions") = self.rows;
        Tensor::from_vec(out, dims, x.device())
    }

    fn groups(
        &self,
        kernel: Kernel,
        range: std::ops::Range<usize>,
        xq: &[u8],
        xd: &[f32],
        out: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `gemv_on` checked that `kernel` runs on this CPU (the only
        // precondition of the target features); the kernels bounds-check the
        // slices' lengths themselves (`check_lengths`) before any raw access.
        unsafe {
            match kernel {
                Kernel::Vnni => self.groups_vnni(range, xq, xd, out),
                Kernel::Avx2 => self.groups_avx2(range, xq, xd, out),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (kernel, range, xq, xd, out);
            unreachable!("Q8Rows is only used where available() is true");
        }
    }

    /// Panics unless the slices fit `range` of this matrix.
    fn check_lengths(&self, range: &std::ops::Range<usize>, xq: &[u8], xd: &[f32], out: &[f32]) {
        let blocks = self.cols / BLOCK;
        assert_eq!(xq.len(), self.cols);
        assert_eq!(xd.len(), blocks);
        assert_eq!(out.len(), range.len() * LANES);
        let groups = self.rows.div_ceil(LANES);
        assert!(range.end <= groups);
        assert_eq!(self.quants.len(), groups * blocks * LANES * BLOCK);
        assert_eq!(self.scales.len(), groups * blocks * LANES);
        assert_eq!(self.offsets.len(), groups * blocks * LANES);
    }

    /// The AVX2 kernel of [`Self::groups`]. Safety: the CPU must have AVX2
    /// and FMA; lengths are checked here.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn groups_avx2(
        &self,
        range: std::ops::Range<usize>,
        xq: &[u8],
        xd: &[f32],
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        self.check_lengths(&range, xq, xd, out);
        let blocks = self.cols / BLOCK;
        let ones = _mm256_set1_epi16(1);
        for (o, g) in range.enumerate() {
            let mut acc_lo = _mm256_setzero_ps();
            let mut acc_hi = _mm256_setzero_ps();
            for (b, &xd) in xd.iter().enumerate() {
                let gb = g * blocks + b;
                // SAFETY: g < groups and b < blocks, so gb < groups · blocks
                // and the 512 weights at gb · 512 lie within `quants`, whose
                // length `check_lengths` asserted.
                let wq = unsafe { self.quants.as_ptr().add(gb * LANES * BLOCK) };
                // SAFETY: b < blocks and xq.len() = cols = blocks · 32
                // (asserted), so the block's 32 bytes lie within `xq`.
                let xb = unsafe { xq.as_ptr().add(b * BLOCK) };
                let mut dot_lo = _mm256_setzero_si256();
                let mut dot_hi = _mm256_setzero_si256();
                for j in 0..BLOCK / 4 {
                    // Back from x + 128 to the signed x, four at a time.
                    // SAFETY: 4j + 4 ≤ 32: bytes of this block of `xq`.
                    let x4 = unsafe { (xb.add(4 * j) as *const u32).read_unaligned() };
                    let x = _mm256_set1_epi32((x4 ^ 0x8080_8080) as i32);
                    let ax = _mm256_abs_epi8(x);
                    // SAFETY: j·64 + 64 ≤ 512: both 32-byte halves of line j
                    // lie within this group and block's weights.
                    let (w_lo, w_hi) = unsafe {
                        (
                            _mm256_loadu_si256(wq.add(j * LANES * 4) as *const _),
                            _mm256_loadu_si256(wq.add(j * LANES * 4 + 32) as *const _),
                        )
                    };
                    let p_lo = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w_lo, x));
                    let p_hi = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w_hi, x));
                    dot_lo = _mm256_add_epi32(dot_lo, _mm256_madd_epi16(p_lo, ones));
                    dot_hi = _mm256_add_epi32(dot_hi, _mm256_madd_epi16(p_hi, ones));
                }
                let d = _mm256_set1_ps(xd);
                // SAFETY: gb < groups · blocks, and `scales` holds 16 floats
                // for each (asserted), so both eight-float loads are in bounds.
                let (s_lo, s_hi) = unsafe {
                    let s = self.scales.as_ptr().add(gb * LANES);
                    (_mm256_loadu_ps(s), _mm256_loadu_ps(s.add(8)))
                };
                // acc += xd · scale · dot
                acc_lo =
                    _mm256_fmadd_ps(_mm256_mul_ps(d, s_lo), _mm256_cvtepi32_ps(dot_lo), acc_lo);
                acc_hi =
                    _mm256_fmadd_ps(_mm256_mul_ps(d, s_hi), _mm256_cvtepi32_ps(dot_hi), acc_hi);
            }
            let dst = &mut out[o * LANES..(o + 1) * LANES];
            // SAFETY: `dst` is a checked slice of 16 floats: two stores of eight.
            unsafe {
                _mm256_storeu_ps(dst.as_mut_ptr(), acc_lo);
                _mm256_storeu_ps(dst.as_mut_ptr().add(8), acc_hi);
            }
        }
    }

    /// The AVX-512 VNNI kernel of [`Self::groups`]. Safety: the CPU must
    /// have AVX-512 F, BW and VNNI; lengths are checked here.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn groups_vnni(
        &self,
        range: std::ops::Range<usize>,
        xq: &[u8],
        xd: &[f32],
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        self.check_lengths(&range, xq, xd, out);
        let blocks = self.cols / BLOCK;
        for (o, g) in range.enumerate() {
            let mut acc = _mm512_setzero_ps();
            for (b, &xd) in xd.iter().enumerate() {
                let gb = g * blocks + b;
                // SAFETY: gb < groups · blocks, so the 512 bytes at gb · 512
                // are within `quants` (length asserted by `check_lengths`).
                let wq = unsafe { self.quants.as_ptr().add(gb * LANES * BLOCK) };
                // SAFETY: xq has `cols` = blocks · 32 bytes (asserted), b < blocks.
                let xb = unsafe { xq.as_ptr().add(b * BLOCK) };
                let mut dot = _mm512_setzero_si512();
                for j in 0..BLOCK / 4 {
                    // SAFETY: 4j + 4 ≤ 32, within this block of `xq`, and
                    // j·64 + 64 ≤ 512, within this group and block's weights.
                    let (x4, w) = unsafe {
                        (
                            (xb.add(4 * j) as *const i32).read_unaligned(),
                            _mm512_loadu_si512(wq.add(j * LANES * 4) as *const _),
                        )
                    };
                    dot = _mm512_dpbusd_epi32(dot, _mm512_set1_epi32(x4), w);
                }
                let d = _mm512_set1_ps(xd);
                // SAFETY: `scales` and `offsets` hold 16 floats per group and
                // block (asserted), and gb < groups · blocks.
                let (scale, offset) = unsafe {
                    (
                        _mm512_loadu_ps(self.scales.as_ptr().add(gb * LANES)),
                        _mm512_loadu_ps(self.offsets.as_ptr().add(gb * LANES)),
                    )
                };
                // acc += xd · (scale · dot − offset)
                let v = _mm512_fmsub_ps(scale, _mm512_cvtepi32_ps(dot), offset);
                acc = _mm512_fmadd_ps(d, v, acc);
            }
            let dst = &mut out[o * LANES..(o + 1) * LANES];
            // SAFETY: `dst` is a checked slice of 16 floats, one 512-bit store.
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), acc) };
        }
    }
}

/// `r` rounded half away from zero (`f32::round`, Q8_0's rounding) in a
/// form the compiler vectorizes: `round` is a libm call per value on the
/// x86-64 baseline, which has no rounding instruction (1.4 % of a 1.5B
/// model's prompt in perf).
/// (Adding ±0.5 before truncating would round 0.49999997 up: the sum ties.)
fn round_away(r: f32) -> i32 {
    let t = r as i32;
    // Exact for |r| < 2²³, which quantized values are.
    let fraction = r - t as f32;
    if fraction >= 0.5 {
        t + 1
    } else if fraction <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// One block of activations quantized to int8 in `-127..=127` (Q8_0's
/// scale and rounding); returns the scale. Shared by this module's one-row
/// products and [`super::qk`]'s.
pub(crate) fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = amax / 127.0;
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round_away(v * inv).clamp(-127, 127) as i8;
    }
    scale
}

/// `x` quantized per block of 32 to int8 (Q8_0's rounding) and offset by
/// 128 into u8, with the blocks' scales.
fn quantize_row(x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let mut q = vec![0u8; x.len()];
    let mut d = vec![0f32; x.len() / BLOCK];
    let mut block = [0i8; BLOCK];
    for ((xb, qb), d) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .zip(d.iter_mut())
    {
        *d = quantize_block(xb, &mut block);
        for (q, &v) in qb.iter_mut().zip(&block) {
            *q = (i16::from(v) + 128) as u8;
        }
    }
    (q, d)
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    use super::*;

    #[test]
    fn round_away_is_f32_round() {
        for i in -1000..=1000 {
            for r in [i as f32 * 0.25, i as f32 * 0.127 + 0.003, i as f32 + 0.5] {
                assert_eq!(round_away(r), r.round() as i32, "{r}");
            }
        }
        assert_eq!(round_away(0.499_999_97), 0);
        assert_eq!(round_away(-0.5), -1);
    }

    #[test]
    fn matches_candles_q8_0_product_on_every_kernel_this_cpu_runs() {
        let kernels: Vec<Kernel> = [Kernel::Vnni, Kernel::Avx2]
            .into_iter()
            .filter(|&k| runs(k))
            .collect();
        if kernels.is_empty() {
            assist_testkit::skip(
                assist_testkit::Kind::Cpu,
                "neither AVX-512 VNNI nor AVX2 on this CPU",
            );
            return;
        }
        let device = Device::Cpu;
        // 40 rows: two whole groups and a partial one.
        let (rows, cols) = (40, 96);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 0.2)
            .collect();
        let w = Tensor::from_vec(w, (rows, cols), &device).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let ours = Q8Rows::from_qtensor(&q).unwrap().expect("a Q8_0 matrix");
        // Large activations of both signs, and zeros, reach the extremes of
        // the int8 range.
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.3)
            .collect();
        let x = Tensor::from_vec(x, (1, 1, cols), &device).unwrap();
        let want = QMatMul::from_qtensor(q).unwrap().forward(&x).unwrap();
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        for kernel in kernels {
            let got = ours.gemv_on(kernel, &x).unwrap();
            assert_eq!(got.dims(), [1, 1, rows]);
            let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                // candle keeps the activation's block scales in f16, we in f32.
                assert!(
                    (g - w).abs() < 3e-3 * w.abs().max(1.0),
                    "{kernel:?}, row {r}: {g} vs {w}"
                );
            }
        }
        let f16_matrix = QTensor::quantize(&w, GgmlDType::F16).unwrap();
        assert!(Q8Rows::from_qtensor(&f16_matrix).unwrap().is_none());
    }
}
