//! Explicit AVX2 kernels for the element-wise work around the matrix
//! products, where the compiler's auto-vectoriser gave up.
//!
//! perf showed the portable softmax in [`crate::portable`] compiled to scalar
//! `vaddss`/`vmovss` even inside an AVX2 `#[target_feature]` function (the
//! clamped polynomial exp and the running sum defeated the loop vectoriser),
//! and it took 14 % of a Whisper transcription, nearly all of it in the
//! encoder's 1500 × 1500 attention rows. The same arithmetic eight lanes at a
//! time is written out here with intrinsics, which need `unsafe` for the
//! loads, stores and the feature-gated call.

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

/// [`softmax_rows`]' kernel. Safety: the CPU must have AVX2 and FMA, and
/// `x` and `out` must be rows of `n` values (both checked by the caller).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(x: &[f32], out: &mut [f32], n: usize) {
    use std::arch::x86_64::*;
    let lanes = n / 8 * 8;
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let (xp, op) = (xr.as_ptr(), or.as_mut_ptr());
        let max = max_avx2(xr);
        if max == f32::NEG_INFINITY {
            // Every value masked: uniform, as the plain formula's NaNs are no use.
            or.fill(1.0 / n as f32);
            continue;
        }
        // SAFETY: `xp` and `op` address rows of `n` values (`chunks_exact(n)`
        // of slices of equal length), distinct ones, as `exp_shifted` needs;
        // this function's AVX2 and FMA are the ones `exp_shifted` enables.
        let sum = unsafe { exp_shifted(xp, op, n, max) };
        let inv = 1.0 / sum;
        let vinv = _mm256_set1_ps(inv);
        for i in (0..lanes).step_by(8) {
            // SAFETY: i + 8 ≤ lanes ≤ n, so `op + i` and the eight values
            // after it lie within the row `or`.
            let p = unsafe { op.add(i) };
            // SAFETY: `p` addresses eight values of `or` (above), which this
            // function holds as `&mut`; unaligned loads and stores are allowed.
            unsafe { _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), vinv)) };
        }
        for o in &mut or[lanes..] {
            *o *= inv;
        }
    }
}

/// `ln Σ eˣ` over `x` with AVX2 (max first, so nothing overflows); `None`
/// where the CPU lacks AVX2 or FMA. −∞ for an empty or fully masked slice.
pub(crate) fn log_sum_exp(x: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above); every access
        // below stays within `x`.
        return Some(unsafe { log_sum_exp_avx2(x) });
    }
    let _ = x;
    None
}

/// [`log_sum_exp`]'s kernel. Safety: the CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn log_sum_exp_avx2(x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let lanes = x.len() / 8 * 8;
    let xp = x.as_ptr();
    let max = max_avx2(x);
    if max == f32::NEG_INFINITY {
        return max;
    }
    let vm = _mm256_set1_ps(max);
    let mut vsum = _mm256_setzero_ps();
    for i in (0..lanes).step_by(8) {
        // SAFETY: i + 8 ≤ lanes ≤ x.len(), so the eight values read are in `x`.
        let v = unsafe { _mm256_loadu_ps(xp.add(i)) };
        vsum = _mm256_add_ps(vsum, exp8(_mm256_sub_ps(v, vm)));
    }
    let mut sum = hsum(vsum);
    for &v in &x[lanes..] {
        sum += crate::portable::exp(v - max);
    }
    max + sum.ln()
}

/// Whether this CPU runs [`attend_row_f16`] (AVX2, FMA and F16C).
pub(crate) fn avx2_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2() && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One query row's attention over one head's f16 keys and values:
/// `out = softmax(scale · k · q) · v`, with `k` and `v` `[n, d]` row-major,
/// `d = q.len()` a multiple of 8, and `scores` scratch of `n`. False (and
/// nothing written) where the CPU lacks AVX2, FMA or F16C.
pub(crate) fn attend_row_f16(
    q: &[f32],
    k: &[half::f16],
    v: &[half::f16],
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) -> bool {
    let d = q.len();
    assert!(d > 0 && d.is_multiple_of(8) && out.len() == d);
    assert!(k.len() == scores.len() * d && v.len() == k.len());
    #[cfg(target_arch = "x86_64")]
    if avx2_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); the
        // lengths are checked above and every access below stays within them.
        unsafe { attend_row_f16_avx2(q, k, v, scale, scores, out) };
        return true;
    }
    let _ = (q, k, v, scale, scores, out);
    false
}

/// [`attend_row_f16`]'s kernel. Safety: the CPU must have AVX2, FMA and
/// F16C, and the lengths must be those [`attend_row_f16`] asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_row_f16_avx2(
    q: &[f32],
    k: &[half::f16],
    v: &[half::f16],
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let d = q.len();
    let n = scores.len();
    let (qp, kp, vp) = (q.as_ptr(), k.as_ptr().cast::<__m128i>(), v.as_ptr());
    // Scores: two accumulators per key so the FMAs do not wait on each other.
    // The caller checked k.len() = n·d and d a multiple of 8, so key row j's
    // group of eight values at column c (c + 8 ≤ d) ends at j·d + c + 8 ≤ n·d.
    for (j, s) in scores.iter_mut().enumerate() {
        // SAFETY: j < n, so row j starts within `k` (2 bytes per f16).
        let row = unsafe { kp.byte_add(j * d * 2) };
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut c = 0;
        while c + 16 <= d {
            // SAFETY: c + 16 ≤ d: keys c..c + 16 of row j and query values
            // c..c + 16 are in bounds (see above; q.len() = d).
            let (k0, k1, q0, q1) = unsafe {
                (
                    _mm_loadu_si128(row.byte_add(c * 2)),
                    _mm_loadu_si128(row.byte_add(c * 2 + 16)),
                    _mm256_loadu_ps(qp.add(c)),
                    _mm256_loadu_ps(qp.add(c + 8)),
                )
            };
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(k0), q0, a0);
            a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(k1), q1, a1);
            c += 16;
        }
        if c < d {
            // SAFETY: d is a multiple of 8, so c + 8 ≤ d here: keys c..c + 8
            // of row j and query values c..c + 8 are in bounds.
            let (k0, q0) = unsafe {
                (
                    _mm_loadu_si128(row.byte_add(c * 2)),
                    _mm256_loadu_ps(qp.add(c)),
                )
            };
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(k0), q0, a0);
        }
        *s = hsum(_mm256_add_ps(a0, a1)) * scale;
    }
    // Softmax numerators; the division is applied to the output once.
    let max = max_avx2(scores);
    let sp = scores.as_mut_ptr();
    // SAFETY: in place over the n scores (`exp_shifted` allows x = out); the
    // features it enables are this function's.
    let sum = unsafe { exp_shifted(sp, sp, n, max) };
    // out = Σ_j p_j · v_j: 64 output lanes (eight registers) per pass over
    // the values, then any remaining lanes eight at a time.
    let inv = 1.0 / sum;
    let mut c = 0;
    while c + 64 <= d {
        // SAFETY: c + 64 ≤ d; `v` holds n = scores.len() rows of d values and
        // `out` holds d (checked by the caller); same target features.
        unsafe { weighted_sum::<8>(scores, vp, d, c, inv, out) };
        c += 64;
    }
    while c < d {
        // SAFETY: c < d and both are multiples of 8, so c + 8 ≤ d; `v` and
        // `out` as above.
        unsafe { weighted_sum::<1>(scores, vp, d, c, inv, out) };
        c += 8;
    }
}

/// `out[c..c + 8N] = inv · Σ_j p_j · v[j, c..c + 8N]`, with N registers of
/// accumulators. Safety: the caller guarantees `c + 8N ≤ d`, `v` holds
/// `p.len()` rows of `d` values, `out` holds `d`, and the CPU has AVX2, FMA
/// and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_sum<const N: usize>(
    p: &[f32],
    v: *const half::f16,
    d: usize,
    c: usize,
    inv: f32,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); N];
    for (j, &pj) in p.iter().enumerate() {
        let w = _mm256_set1_ps(pj);
        // SAFETY: the caller's bounds: j·d + c + 8N ≤ p.len()·d, the values' length.
        let row = unsafe { v.add(j * d + c) };
        for (a, acc) in acc.iter_mut().enumerate() {
            // SAFETY: a < N, so values 8a..8a + 8 after `row` end at or before
            // j·d + c + 8N, within `v` (above).
            let vv = unsafe { _mm_loadu_si128(row.add(8 * a).cast()) };
            *acc = _mm256_fmadd_ps(_mm256_cvtph_ps(vv), w, *acc);
        }
    }
    let inv = _mm256_set1_ps(inv);
    for (a, acc) in acc.iter().enumerate() {
        // SAFETY: c + 8a + 8 ≤ c + 8N ≤ d = out.len(), and `out` is ours to write.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c + 8 * a), _mm256_mul_ps(*acc, inv)) };
    }
}

/// [`crate::portable::exp`] on eight lanes: the same range reduction, polynomial
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

/// `out[i] = e^(x[i] − max)` for `i < n`, and their sum: softmax's
/// numerators. `x` and `out` may be the same pointer (in place).
///
/// Safety: `x` must be valid for reading and `out` for writing `n` values,
/// and the CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted(x: *const f32, out: *mut f32, n: usize, max: f32) -> f32 {
    use std::arch::x86_64::*;
    let lanes = n / 8 * 8;
    let vm = _mm256_set1_ps(max);
    let mut vsum = _mm256_setzero_ps();
    for i in (0..lanes).step_by(8) {
        // SAFETY: i + 8 ≤ lanes ≤ n, within the caller's bounds for `x`.
        let v = unsafe { _mm256_loadu_ps(x.add(i)) };
        let e = exp8(_mm256_sub_ps(v, vm));
        // SAFETY: i + 8 ≤ n, within the caller's bounds for `out`.
        unsafe { _mm256_storeu_ps(out.add(i), e) };
        vsum = _mm256_add_ps(vsum, e);
    }
    let mut sum = hsum(vsum);
    for i in lanes..n {
        // SAFETY: i < n, within the caller's bounds for `x`.
        let e = crate::portable::exp(unsafe { *x.add(i) } - max);
        // SAFETY: i < n, within the caller's bounds for `out`.
        unsafe { *out.add(i) = e };
        sum += e;
    }
    sum
}

/// The largest value of `x` (−∞ when empty).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn max_avx2(x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let lanes = x.len() / 8 * 8;
    let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
    for i in (0..lanes).step_by(8) {
        // SAFETY: i + 8 ≤ lanes ≤ x.len(), so the eight values read are in `x`.
        let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        vmax = _mm256_max_ps(vmax, v);
    }
    x[lanes..].iter().fold(hmax(vmax), |m, &v| m.max(v))
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
    fn f16_attention_matches_the_portable_one_and_f32() {
        use half::f16;
        // Whisper's head width (64), a wider one with a tail group (72), a narrow one.
        for (n, d) in [(1500, 64), (37, 72), (5, 8)] {
            let q: Vec<f32> = (0..d)
                .map(|i| ((i * 37 % 19) as f32 - 9.0) * 0.11)
                .collect();
            let kf: Vec<f32> = (0..n * d)
                .map(|i| ((i * 7919 % 211) as f32 - 105.0) * 0.013)
                .collect();
            let vf: Vec<f32> = (0..n * d)
                .map(|i| ((i * 104_729 % 97) as f32 - 48.0) * 0.05)
                .collect();
            let k: Vec<f16> = kf.iter().map(|&x| f16::from_f32(x)).collect();
            let v: Vec<f16> = vf.iter().map(|&x| f16::from_f32(x)).collect();
            let scale = 1.0 / (d as f32).sqrt();
            let mut scores = vec![0f32; n];
            let mut want = vec![0f32; d];
            crate::portable::attend_row_f16_portable(&q, &k, &v, scale, &mut scores, &mut want);
            // The f32 arithmetic on the unrounded values stays within f16's rounding.
            let s: Vec<f32> = kf
                .chunks_exact(d)
                .map(|r| scale * r.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())
                .collect();
            let m = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f32 = e.iter().sum();
            for c in 0..d {
                let exact: f32 = e
                    .iter()
                    .zip(vf.chunks_exact(d))
                    .map(|(p, r)| p * r[c])
                    .sum::<f32>()
                    / z;
                assert!(
                    (exact - want[c]).abs() < 5e-3,
                    "n {n} d {d} lane {c}: {exact} vs {}",
                    want[c]
                );
            }
            if !super::avx2_f16c() {
                assist_testkit::skip(
                    assist_testkit::Kind::Cpu,
                    "the AVX2 kernel: no AVX2/F16C on this CPU",
                );
                continue;
            }
            let mut got = vec![0f32; d];
            assert!(super::attend_row_f16(
                &q,
                &k,
                &v,
                scale,
                &mut scores,
                &mut got
            ));
            for (c, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                    "n {n} d {d} lane {c}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn avx2_log_sum_exp_matches_the_portable_one() {
        if !super::avx2() {
            assist_testkit::skip(assist_testkit::Kind::Cpu, "no AVX2 on this CPU");
            return;
        }
        for n in [0, 1, 7, 8, 13, 1501, 51_865] {
            let mut x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 211) as f32 - 105.0) * 0.37)
                .collect();
            if n > 3 {
                x[1] = f32::NEG_INFINITY;
                x[2] = -300.0;
            }
            let want = crate::portable::log_sum_exp_portable(&x);
            let got = super::log_sum_exp(&x).unwrap();
            assert!(
                got == want || (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "n {n}: {got} vs {want}"
            );
        }
        let masked = [f32::NEG_INFINITY; 9];
        assert_eq!(super::log_sum_exp(&masked), Some(f32::NEG_INFINITY));
    }

    #[test]
    fn avx2_softmax_matches_the_portable_one() {
        if !super::avx2() {
            assist_testkit::skip(assist_testkit::Kind::Cpu, "no AVX2 on this CPU");
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
            crate::portable::softmax_rows_portable(&x, &mut want, n);
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
