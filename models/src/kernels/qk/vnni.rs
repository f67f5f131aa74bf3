//! The AVX-512 VNNI products of [`KRows`] against a tile of activation rows.

use super::{Acts, BLOCK, HIGH_BYTES, KRows, LANES, NIBBLE_BYTES};

impl KRows {
    /// Q4_K group `g` against activation rows `r0..r0 + T`. Safety: the CPU
    /// has AVX-512 F, BW and VNNI, and the lengths are those
    /// [`KRows::groups`](super::KRows) asserts, with `g` below its groups
    /// and `r0 + T ≤ acts.n`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn q4k<const T: usize>(
        &self,
        g: usize,
        acts: &Acts,
        r0: usize,
        sums: &mut [[f32; LANES]; 8],
    ) {
        use std::arch::x86_64::*;
        let blocks = self.cols / BLOCK;
        let low4 = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..blocks {
            let gb = g * blocks + b;
            // SAFETY: gb < groups · blocks, and `nibbles` holds NIBBLE_BYTES
            // per group and block (asserted by `groups`).
            let w = unsafe { self.nibbles.as_ptr().add(gb * NIBBLE_BYTES) };
            let mut dot = [_mm512_setzero_si512(); T];
            for t in 0..4 {
                // SAFETY: t·64 + 64 ≤ NIBBLE_BYTES = 256: line t of this block.
                let line = unsafe { _mm512_loadu_si512(w.add(t * 64) as *const _) };
                let lo = _mm512_and_si512(line, low4);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(line), low4);
                for (k, dot) in dot.iter_mut().enumerate() {
                    // SAFETY: row r0 + k < acts.n (the caller's bound) and
                    // b < blocks, so the block's 32 bytes lie within `acts.q`
                    // (n · cols); 4t + 4 ≤ 16 and 16 + 4t + 4 ≤ 32 stay in it.
                    let (xa, xb) = unsafe {
                        let x = acts.q.as_ptr().add((r0 + k) * self.cols + b * BLOCK);
                        (
                            (x.add(4 * t) as *const i32).read_unaligned(),
                            (x.add(16 + 4 * t) as *const i32).read_unaligned(),
                        )
                    };
                    *dot = _mm512_dpbusd_epi32(*dot, lo, _mm512_set1_epi32(xa));
                    *dot = _mm512_dpbusd_epi32(*dot, hi, _mm512_set1_epi32(xb));
                }
            }
            // SAFETY: `scales` and `mins` hold 16 f16 per group and block
            // (asserted by `groups`) and gb < groups · blocks: one 256-bit load each.
            let (scale, min) = unsafe {
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(
                        self.scales.as_ptr().add(gb * LANES) as *const _
                    )),
                    _mm512_cvtph_ps(_mm256_loadu_si256(
                        self.mins.as_ptr().add(gb * LANES) as *const _
                    )),
                )
            };
            for (k, (acc, dot)) in acc.iter_mut().zip(dot).enumerate() {
                let at = (r0 + k) * blocks + b;
                let d = _mm512_set1_ps(acts.d[at]);
                let sum = acts.half[2 * at] + acts.half[2 * at + 1];
                let total = _mm512_set1_ps(sum as f32);
                // acc += d · (scale · dot − min · Σx)
                let v = _mm512_fmsub_ps(scale, _mm512_cvtepi32_ps(dot), _mm512_mul_ps(min, total));
                *acc = _mm512_fmadd_ps(d, v, *acc);
            }
        }
        for (s, acc) in sums.iter_mut().zip(acc) {
            // SAFETY: `s` is a `[f32; 16]` borrowed mutably: one 512-bit store.
            unsafe { _mm512_storeu_ps(s.as_mut_ptr(), acc) };
        }
    }

    /// Q6_K group `g` against activation rows `r0..r0 + T`. Safety: as
    /// for [`Self::q4k`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn q6k<const T: usize>(
        &self,
        g: usize,
        acts: &Acts,
        r0: usize,
        sums: &mut [[f32; LANES]; 8],
    ) {
        use std::arch::x86_64::*;
        let blocks = self.cols / BLOCK;
        let low4 = _mm512_set1_epi8(0x0F);
        let top2 = _mm512_set1_epi8(0x30);
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..blocks {
            let gb = g * blocks + b;
            // SAFETY: gb < groups · blocks, and `nibbles` holds NIBBLE_BYTES,
            // `high` HIGH_BYTES per group and block (asserted by `groups`).
            let (w, wh) = unsafe {
                (
                    self.nibbles.as_ptr().add(gb * NIBBLE_BYTES),
                    self.high.as_ptr().add(gb * HIGH_BYTES),
                )
            };
            // Values 0..16 of the block (low nibbles) and 16..32 (high).
            let mut dot_a = [_mm512_setzero_si512(); T];
            let mut dot_b = [_mm512_setzero_si512(); T];
            for h in 0..2 {
                // SAFETY: h·64 + 64 ≤ HIGH_BYTES = 128: line h of this block.
                let top = unsafe { _mm512_loadu_si512(wh.add(h * 64) as *const _) };
                for u in 0..2 {
                    let t = 2 * h + u;
                    // SAFETY: t = 2h + u < 4, so t·64 + 64 ≤ NIBBLE_BYTES: line t.
                    let line = unsafe { _mm512_loadu_si512(w.add(t * 64) as *const _) };
                    // The top bits of line t sit at bit 4u (values 4t..) and
                    // 4u + 2 (values 16 + 4t..); moved to bits 4 and 5.
                    let (top_a, top_b) = if u == 0 {
                        (_mm512_slli_epi16::<4>(top), _mm512_slli_epi16::<2>(top))
                    } else {
                        (top, _mm512_srli_epi16::<2>(top))
                    };
                    let qa = _mm512_or_si512(
                        _mm512_and_si512(line, low4),
                        _mm512_and_si512(top_a, top2),
                    );
                    let qb = _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(line), low4),
                        _mm512_and_si512(top_b, top2),
                    );
                    for k in 0..T {
                        // SAFETY: as in `q4k`: row r0 + k < acts.n, b < blocks,
                        // and both four-byte reads stay within the block's 32.
                        let (xa, xb) = unsafe {
                            let x = acts.q.as_ptr().add((r0 + k) * self.cols + b * BLOCK);
                            (
                                (x.add(4 * t) as *const i32).read_unaligned(),
                                (x.add(16 + 4 * t) as *const i32).read_unaligned(),
                            )
                        };
                        dot_a[k] = _mm512_dpbusd_epi32(dot_a[k], qa, _mm512_set1_epi32(xa));
                        dot_b[k] = _mm512_dpbusd_epi32(dot_b[k], qb, _mm512_set1_epi32(xb));
                    }
                }
            }
            // SAFETY: Q6_K's `scales` hold 2 · 16 f16 per group and block
            // (asserted by `groups`) and gb < groups · blocks: two 256-bit loads.
            let (scale_a, scale_b) = unsafe {
                let s = self.scales.as_ptr().add(gb * 2 * LANES);
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(s as *const _)),
                    _mm512_cvtph_ps(_mm256_loadu_si256(s.add(LANES) as *const _)),
                )
            };
            for k in 0..T {
                let at = (r0 + k) * blocks + b;
                // Σ (q − 32)·x = Σ q·x − 32·Σ x, per half block.
                let a = _mm512_sub_epi32(dot_a[k], _mm512_set1_epi32(32 * acts.half[2 * at]));
                let c = _mm512_sub_epi32(dot_b[k], _mm512_set1_epi32(32 * acts.half[2 * at + 1]));
                let v = _mm512_fmadd_ps(
                    scale_a,
                    _mm512_cvtepi32_ps(a),
                    _mm512_mul_ps(scale_b, _mm512_cvtepi32_ps(c)),
                );
                acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(acts.d[at]), v, acc[k]);
            }
        }
        for (s, acc) in sums.iter_mut().zip(acc) {
            // SAFETY: `s` is a `[f32; 16]` borrowed mutably: one 512-bit store.
            unsafe { _mm512_storeu_ps(s.as_mut_ptr(), acc) };
        }
    }
}
