//! Row kernels in plain Rust: the polynomial `exp`, softmax, `ln Σ eˣ` and
//! one query row's attention over f16 keys and values.
//!
//! They are the fallback where the CPU lacks AVX2 and the reference the
//! SIMD versions in [`crate::kernels::simd`] are tested against, so both
//! [`crate::ops`] and the kernels depend on this module and it depends on
//! neither. No `unsafe` here.

/// The portable softmax (and the reference the AVX2 one is tested against).
pub(crate) fn softmax_rows_portable(x: &[f32], out: &mut [f32], n: usize) {
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        // Eight running maxima so the loop vectorises (f32 max is not associative for the compiler).
        let mut m = [f32::NEG_INFINITY; 8];
        let mut chunks = xr.chunks_exact(8);
        for c in &mut chunks {
            for (m, &v) in m.iter_mut().zip(c) {
                *m = m.max(v);
            }
        }
        let mut max = m.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for &v in chunks.remainder() {
            max = max.max(v);
        }
        if max == f32::NEG_INFINITY {
            // Every value masked: uniform, as the plain formula's NaNs are no use.
            or.fill(1.0 / n as f32);
            continue;
        }
        let mut sums = [0f32; 8];
        let mut oc = or.chunks_exact_mut(8);
        let mut xc = xr.chunks_exact(8);
        for (o, x) in (&mut oc).zip(&mut xc) {
            for ((o, &x), s) in o.iter_mut().zip(x).zip(sums.iter_mut()) {
                *o = exp(x - max);
                *s += *o;
            }
        }
        let mut sum: f32 = sums.iter().sum();
        for (o, &x) in oc.into_remainder().iter_mut().zip(xc.remainder()) {
            *o = exp(x - max);
            sum += *o;
        }
        let inv = 1.0 / sum;
        for o in or.iter_mut() {
            *o *= inv;
        }
    }
}

/// The portable [`attend_row_f16`](crate::kernels::simd::attend_row_f16) (and its test's reference).
pub(crate) fn attend_row_f16_portable(
    q: &[f32],
    k: &[half::f16],
    v: &[half::f16],
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let d = q.len();
    for (s, kr) in scores.iter_mut().zip(k.chunks_exact(d)) {
        *s = scale * q.iter().zip(kr).map(|(a, b)| a * b.to_f32()).sum::<f32>();
    }
    let raw = scores.to_vec();
    softmax_rows_portable(&raw, scores, raw.len().max(1));
    out.fill(0.0);
    for (&p, vr) in scores.iter().zip(v.chunks_exact(d)) {
        for (o, b) in out.iter_mut().zip(vr) {
            *o += p * b.to_f32();
        }
    }
}

/// The portable `ln Σ eˣ` (and the reference the AVX2 one is tested against).
pub(crate) fn log_sum_exp_portable(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + x.iter().map(|&v| exp(v - max)).sum::<f32>().ln()
}

/// e^x for f32, branch-free so loops over it vectorise: x = k·ln 2 + r with
/// |r| ≤ ln 2 / 2, e^r by its degree-6 Taylor polynomial (relative error
/// ≤ 2e-7), 2^k through the exponent bits. 0 below -87 (f32's normal range
/// ends there), which is where softmax's masked values go.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that k · LN2_HI is exact for |k| < 2^11.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 · 2^23 rounds to an integer in the default rounding mode.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 88.0);
    let t = xc * LOG2E + ROUND;
    let k = t - ROUND;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + c;
    }
    // k is in the mantissa's low bits of t.
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits(((k + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { p * scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let want = f64::from(x).exp();
            let err = ((f64::from(exp(x)) - want) / want).abs();
            worst = worst.max(err);
        }
        assert!(worst < 4e-7, "max relative exp error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
    }
}
