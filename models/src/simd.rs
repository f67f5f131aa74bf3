//! Explicit AVX2 kernels for the element-wise work around the matrix
//! products, where the compiler's auto-vectoriser gave up.
//!
//! perf showed the portable softmax in [`crate::ops`] compiled to scalar
//! `vaddss`/`vmovss` even inside an AVX2 `#[target_feature]` function (the
//! clamped polynomial exp and the running sum defeated the loop vectoriser),
//! and it took 14 % of a Whisper transcription, nearly all of it in the
//! encoder's 1500 × 1500 attention rows. The same arithmetic eight lanes at a
//! time is written out here with intrinsics, which need `unsafe` for the
//! loads, stores and the feature-gated call; this module alone allows it.
#![allow(unsafe_code)]

/// Whether this CPU runs the kernels here.
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Softmax of each row of `n` values of `x` into `out` with AVX2; false
/// (and nothing written) where the CPU lacks AVX2 or FMA.
pub(crate) fn softmax_rows(x: &[f32], out: &mut [f32], n: usize) -> bool {
    assert_eq!(x.len(), out.len());
    assert!(n > 0 && x.len().is_multiple_of(n));
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above); the lengths are
        // checked above and every access below stays within a row.
        unsafe { softmax_rows_avx2(x, out, n) };
        return true;
    }
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(x: &[f32], out: &mut [f32], n: usize) {
    use std::arch::x86_64::*;
    let lanes = n / 8 * 8;
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let (xp, op) = (xr.as_ptr(), or.as_mut_ptr());
        // SAFETY (all loads and stores): i + 8 ≤ lanes ≤ n, the row's length.
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        for i in (0..lanes).step_by(8) {
            vmax = _mm256_max_ps(vmax, unsafe { _mm256_loadu_ps(xp.add(i)) });
        }
        let mut max = hmax(vmax);
        for &v in &xr[lanes..] {
            max = max.max(v);
        }
        if max == f32::NEG_INFINITY {
            // Every value masked: uniform, as the plain formula's NaNs are no use.
            or.fill(1.0 / n as f32);
            continue;
        }
        let vm = _mm256_set1_ps(max);
        let mut vsum = _mm256_setzero_ps();
        for i in (0..lanes).step_by(8) {
            let e = exp8(_mm256_sub_ps(unsafe { _mm256_loadu_ps(xp.add(i)) }, vm));
            unsafe { _mm256_storeu_ps(op.add(i), e) };
            vsum = _mm256_add_ps(vsum, e);
        }
        let mut sum = hsum(vsum);
        for (o, &v) in or[lanes..].iter_mut().zip(&xr[lanes..]) {
            *o = crate::ops::exp(v - max);
            sum += *o;
        }
        let inv = 1.0 / sum;
        let vinv = _mm256_set1_ps(inv);
        for i in (0..lanes).step_by(8) {
            let p = unsafe { op.add(i) };
            unsafe { _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), vinv)) };
        }
        for o in &mut or[lanes..] {
            *o *= inv;
        }
    }
}

/// [`crate::ops::exp`] on eight lanes: the same range reduction, polynomial
/// and exponent-bit scaling, 0 below -87.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0;
    let xc = _mm256_max_ps(
        _mm256_min_ps(x, _mm256_set1_ps(88.0)),
        _mm256_set1_ps(-87.0),
    );
    let round = _mm256_set1_ps(ROUND);
    let t = _mm256_fmadd_ps(xc, _mm256_set1_ps(std::f32::consts::LOG2_E), round);
    let k = _mm256_sub_ps(t, round);
    let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HI), xc);
    let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let ki = _mm256_sub_epi32(
        _mm256_castps_si256(t),
        _mm256_set1_epi32(ROUND.to_bits() as i32),
    );
    let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        ki,
        _mm256_set1_epi32(127),
    )));
    let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.0));
    _mm256_andnot_ps(under, _mm256_mul_ps(p, scale))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn hmax(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
    _mm_cvtss_f32(m)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
    _mm_cvtss_f32(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn avx2_softmax_matches_the_portable_one() {
        if !super::avx2() {
            println!("skipped: no AVX2 on this CPU");
            return;
        }
        // Row lengths with and without a tail; a masked row; large and tiny values.
        for n in [1, 7, 8, 13, 64, 1500] {
            let mut x: Vec<f32> = (0..3 * n)
                .map(|i| ((i * 7919 % 211) as f32 - 105.0) * 0.37)
                .collect();
            x[n..2 * n].fill(f32::NEG_INFINITY);
            if n > 2 {
                x[2 * n + 1] = f32::NEG_INFINITY;
                x[2 * n + 2] = -200.0;
            }
            let mut want = vec![0f32; x.len()];
            crate::ops::softmax_rows_portable(&x, &mut want, n);
            let mut got = vec![0f32; x.len()];
            assert!(super::softmax_rows(&x, &mut got, n));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
                    "n {n}, {i}: {g} vs {w}"
                );
            }
        }
    }
}
