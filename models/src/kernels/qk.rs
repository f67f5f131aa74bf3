//! Products against Q4_K and Q6_K weights (the k-quants a Q4_K_M model is
//! made of) with AVX-512 VNNI, for one activation row (a decoding step) or
//! many (a prompt).
//!
//! Why: candle runs k-quants on AVX2 kernels that take one row-by-column
//! dot product at a time and sum each block horizontally. On an AVX-512 CPU
//! the 1.5B Q4_K_M model decoded at half llama.cpp's speed with them, and
//! prompts needed a dense f32 copy of every matrix (4 bytes per weight) to
//! reach even half of llama.cpp's prompt speed.
//!
//! The layout follows [`super::q8`]: rows are taken sixteen at a time (a
//! group), one row per 32-bit lane, and a group's weights are repacked at
//! load time so that one 64-byte line holds four consecutive weights of each
//! of its sixteen rows. `vpdpbusd` multiplies such a line (unsigned bytes) by
//! four activations broadcast to every lane (signed bytes), so each row's sum
//! lands in its own lane and no horizontal sums are needed.
//!
//! - **The weights stay 4- or 6-bit in memory**, as the unsigned numbers the
//!   file holds. For each 32-value block, four lines of nibbles hold the low
//!   four bits of values `4t..4t + 4` (low nibble) and `16 + 4t..` (high
//!   nibble); Q6_K's top two bits follow in two more lines. A decoding step
//!   reads every weight once, so bytes are its cost: 5 bits per weight for
//!   Q4_K (4.5 in the file) and 7 for Q6_K (6.56), scales included.
//! - **Scales per row and block, as f16**: Q4_K's `d·scale` and `dmin·min`
//!   per 32 values, Q6_K's `d·scale` per 16 (its values are offset by 32).
//! - **Activations are quantized to int8 per block of 32**, with the sums of
//!   each half block, which carry Q4_K's minimums and Q6_K's offset:
//!   `Σ (s·q − m)·x = s·Σ q·x − m·Σ x`.
//! - **Prompts** take up to eight activation rows against each unpacked
//!   weight line, so the weights are read and unpacked once per eight
//!   tokens, and a few groups at a time, so a tile of activations is reused
//!   from cache. No dense copy of the weights is needed.
//!
//! Hand-written because no crate offers int8 k-quant products in this
//! layout; the intrinsics need `unsafe`.

use candle_core::{Result, Tensor};
use half::f16;

/// Rows per group (one lane each).
const LANES: usize = 16;
/// Values per packed block and per activation block.
const BLOCK: usize = 32;
/// Values per k-quant super-block.
const SUPER: usize = 256;
/// Bytes of nibbles per group and block (4 lines of 64).
const NIBBLE_BYTES: usize = LANES * BLOCK / 2;
/// Bytes of Q6_K top bits per group and block (2 lines of 64).
const HIGH_BYTES: usize = LANES * BLOCK / 4;
/// Groups of rows per pass over a tile of activation rows.
const GROUP_CHUNK: usize = 4;

mod repack;
#[cfg(target_arch = "x86_64")]
mod vnni;

/// Whether this CPU runs the kernels (AVX-512 F, BW and VNNI).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx512f") && has!("avx512bw") && has!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Q4K,
    Q6K,
}

/// A Q4_K or Q6_K matrix `[rows, cols]` repacked for [`KRows::forward`].
pub(crate) struct KRows {
    kind: Kind,
    rows: usize,
    cols: usize,
    /// Per group, per block: 4 lines of 64 bytes; line `t`, lane `l`, byte
    /// `i` holds the low four bits of value `4t + i` (low nibble) and of
    /// value `16 + 4t + i` (high nibble) of row `l`'s block.
    nibbles: Vec<u8>,
    /// Q6_K only. Per group, per block: 2 lines of 64 bytes; line `h`, lane
    /// `l`, byte `i` holds the top two bits of values `8h + i`, `16 + 8h + i`,
    /// `8h + 4 + i` and `16 + 8h + 4 + i`, from the lowest bits up.
    high: Vec<u8>,
    /// Q4_K: per group, per block, the 16 rows' `d·scale`. Q6_K: per group,
    /// per block, the 16 rows' `d·scale` of values 0..16, then of 16..32.
    scales: Vec<f16>,
    /// Q4_K only: per group, per block, the 16 rows' `dmin·min`.
    mins: Vec<f16>,
}

impl std::fmt::Debug for KRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KRows")
            .field("kind", &self.kind)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl KRows {
    /// `x · wᵀ` for every row of `x` (`[.., cols]`), split over the barrier
    /// pool's threads by groups of rows. The caller checks [`available`].
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !available() {
            candle_core::bail!("k-quant product: this CPU lacks AVX-512 VNNI");
        }
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        if xs.is_empty() || xs.len() % self.cols != 0 {
            candle_core::bail!(
                "k-quant product: {} inputs for {} columns",
                xs.len(),
                self.cols
            );
        }
        let n = xs.len() / self.cols;
        let acts = Acts::quantize(&xs, self.cols);
        let groups = self.rows.div_ceil(LANES);
        let parts = crate::pool::pool_threads().min(groups).max(1);
        let per = groups.div_ceil(parts);
        let pieces = crate::pool::on_each_pool_thread(|tid| {
            let range = (tid * per).min(groups)..((tid + 1) * per).min(groups);
            let mut out = vec![0f32; n * range.len() * LANES];
            self.groups(range.clone(), &acts, &mut out);
            (range, out)
        });
        let mut y = vec![0f32; n * self.rows];
        for (range, piece) in pieces {
            let width = range.len() * LANES;
            if width == 0 {
                continue;
            }
            let start = range.start * LANES;
            let take = width.min(self.rows - start);
            for (dst, src) in y.chunks_exact_mut(self.rows).zip(piece.chunks_exact(width)) {
                dst[start..start + take].copy_from_slice(&src[..take]);
            }
        }
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("x has dimensions") = self.rows;
        Tensor::from_vec(y, dims, x.device())
    }

    /// Groups `range` for every activation row; `out` is `[n, range.len()·16]`.
    fn groups(&self, range: std::ops::Range<usize>, acts: &Acts, out: &mut [f32]) {
        let blocks = self.cols / BLOCK;
        let groups = self.rows.div_ceil(LANES);
        let scales_per_block = if self.kind == Kind::Q6K { 2 } else { 1 };
        // What the kernels read without bounds checks.
        assert!(range.end <= groups);
        assert_eq!(acts.cols, self.cols);
        assert_eq!(out.len(), acts.n * range.len() * LANES);
        assert_eq!(self.nibbles.len(), groups * blocks * NIBBLE_BYTES);
        assert_eq!(
            self.scales.len(),
            groups * blocks * LANES * scales_per_block
        );
        match self.kind {
            Kind::Q4K => assert_eq!(self.mins.len(), groups * blocks * LANES),
            Kind::Q6K => assert_eq!(self.high.len(), groups * blocks * HIGH_BYTES),
        }
        let width = range.len() * LANES;
        let mut g0 = range.start;
        while g0 < range.end {
            let g1 = (g0 + GROUP_CHUNK).min(range.end);
            let mut r0 = 0;
            while r0 < acts.n {
                let left = acts.n - r0;
                let tile = match (self.kind, left) {
                    (Kind::Q4K, 8..) => 8,
                    (_, 4..) => 4,
                    (_, 2..) => 2,
                    _ => 1,
                };
                for g in g0..g1 {
                    let mut sums = [[0f32; LANES]; 8];
                    self.tile(tile, g, acts, r0, &mut sums);
                    let col = (g - range.start) * LANES;
                    for (k, s) in sums[..tile].iter().enumerate() {
                        let at = (r0 + k) * width + col;
                        out[at..at + LANES].copy_from_slice(s);
                    }
                }
                r0 += tile;
            }
            g0 = g1;
        }
    }

    /// Rows `r0..r0 + tile` of `acts` against group `g`, into `sums[..tile]`.
    fn tile(&self, tile: usize, g: usize, acts: &Acts, r0: usize, sums: &mut [[f32; LANES]; 8]) {
        assert!(r0 + tile <= acts.n && tile <= 8);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `forward` checked that the CPU has AVX-512 F, BW and VNNI;
        // `groups` asserted the weights' lengths for every group up to `g`
        // (g < range.end ≤ groups) and that `acts` has `cols` columns, and
        // rows r0..r0 + tile exist (asserted above): what the kernels read.
        unsafe {
            match (self.kind, tile) {
                (Kind::Q4K, 8) => self.q4k::<8>(g, acts, r0, sums),
                (Kind::Q4K, 4) => self.q4k::<4>(g, acts, r0, sums),
                (Kind::Q4K, 2) => self.q4k::<2>(g, acts, r0, sums),
                (Kind::Q4K, _) => self.q4k::<1>(g, acts, r0, sums),
                (Kind::Q6K, 4) => self.q6k::<4>(g, acts, r0, sums),
                (Kind::Q6K, 2) => self.q6k::<2>(g, acts, r0, sums),
                (Kind::Q6K, _) => self.q6k::<1>(g, acts, r0, sums),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (tile, g, acts, r0, sums);
            unreachable!("KRows is only used where available() is true");
        }
    }
}

/// Activation rows quantized to int8 per block of 32 (Q8_0's rounding).
struct Acts {
    n: usize,
    cols: usize,
    /// `[n, cols]`.
    q: Vec<i8>,
    /// Per row and block: the scale.
    d: Vec<f32>,
    /// Per row and block: Σ q over values 0..16, then over 16..32.
    half: Vec<i32>,
}

impl Acts {
    fn quantize(x: &[f32], cols: usize) -> Self {
        let n = x.len() / cols;
        let blocks = x.len() / BLOCK;
        let mut q = vec![0i8; x.len()];
        let mut d = vec![0f32; blocks];
        let mut half = vec![0i32; 2 * blocks];
        for (i, (xb, qb)) in x
            .chunks_exact(BLOCK)
            .zip(q.chunks_exact_mut(BLOCK))
            .enumerate()
        {
            d[i] = super::q8::quantize_block(xb, qb);
            let sum = |s: &[i8]| s.iter().map(|&v| i32::from(v)).sum::<i32>();
            half[2 * i] = sum(&qb[..BLOCK / 2]);
            half[2 * i + 1] = sum(&qb[BLOCK / 2..]);
        }
        Acts {
            n,
            cols,
            q,
            d,
            half,
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::*;

    /// A matrix with rows of different magnitudes and offsets, so that the
    /// k-quants' per-block scales and minimums all vary.
    fn matrix(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                let wave = ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * (0.05 + 0.01 * r as f32);
                wave + if c % 64 < 32 { 0.02 } else { -0.01 }
            })
            .collect()
    }

    fn reference(w: &[f32], x: &[f32], cols: usize) -> Vec<f32> {
        x.chunks_exact(cols)
            .flat_map(|x| {
                w.chunks_exact(cols)
                    .map(|w| w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `w` quantized to `dtype`, repacked, and the file's numbers (candle's
    /// dequantization of the same blocks).
    fn repacked(w: &Tensor, dtype: GgmlDType) -> (KRows, Vec<f32>) {
        let q = QTensor::quantize(w, dtype).unwrap();
        let numbers = q.dequantize(w.device()).unwrap();
        let numbers = numbers.flatten_all().unwrap().to_vec1().unwrap();
        let k = KRows::from_qtensor(&q).unwrap().expect("a k-quant matrix");
        (k, numbers)
    }

    #[test]
    fn repacked_k_quants_hold_the_files_numbers() {
        let device = Device::Cpu;
        let (rows, cols) = (19, 512);
        let w = Tensor::from_vec(matrix(rows, cols), (rows, cols), &device).unwrap();
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let (k, want) = repacked(&w, dtype);
            // Undo the packing in scalar code.
            let blocks = cols / BLOCK;
            for r in 0..rows {
                let (g, lane) = (r / LANES, r % LANES);
                for b in 0..blocks {
                    let gb = g * blocks + b;
                    for v in 0..BLOCK {
                        let (t, i) = ((v % 16) / 4, v % 4);
                        let byte = k.nibbles[gb * NIBBLE_BYTES + t * 64 + lane * 4 + i];
                        let low = if v < 16 { byte & 0xF } else { byte >> 4 };
                        // The value and the magnitude of the terms it is made of.
                        let (got, size) = match dtype {
                            GgmlDType::Q4K => {
                                let scaled = f32::from(low) * k.scales[gb * LANES + lane].to_f32();
                                let min = k.mins[gb * LANES + lane].to_f32();
                                (scaled - min, scaled.abs() + min.abs())
                            }
                            _ => {
                                let (h, shift) = (t / 2, 4 * (t % 2) + 2 * (v / 16));
                                let top =
                                    (k.high[gb * HIGH_BYTES + h * 64 + lane * 4 + i] >> shift) & 3;
                                let q = i32::from(low | (top << 4)) - 32;
                                let s = k.scales[gb * 2 * LANES + (v / 16) * LANES + lane];
                                (q as f32 * s.to_f32(), (q as f32 * s.to_f32()).abs())
                            }
                        };
                        let want = want[r * cols + b * BLOCK + v];
                        // The scales are kept as f16 (11 significant bits).
                        assert!(
                            (got - want).abs() <= 1e-3 * size + 1e-7,
                            "{dtype:?} row {r} value {}: {got} vs {want}",
                            b * BLOCK + v
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn matches_the_dense_product_for_one_row_and_many() {
        if !available() {
            assist_testkit::skip(assist_testkit::Kind::Cpu, "no AVX-512 VNNI on this CPU");
            return;
        }
        let device = Device::Cpu;
        // 40 rows: two whole groups and a partial one; 15 activation rows
        // reach every tile size (8 + 4 + 2 + 1).
        let (rows, cols) = (40, 512);
        let w = Tensor::from_vec(matrix(rows, cols), (rows, cols), &device).unwrap();
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let (k, dense) = repacked(&w, dtype);
            for n in [1, 15] {
                let x: Vec<f32> = (0..n * cols)
                    .map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.3)
                    .collect();
                let want = reference(&dense, &x, cols);
                let xt = Tensor::from_vec(x.clone(), (1, n, cols), &device).unwrap();
                let got = k.forward(&xt).unwrap();
                assert_eq!(got.dims(), [1, n, rows]);
                let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
                // Only the activations' int8 rounding separates the two.
                let norm: f32 = x.iter().map(|v| v.abs()).sum::<f32>() / n as f32;
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() < 2e-4 * norm,
                        "{dtype:?} n={n} output {i}: {g} vs {w}"
                    );
                }
            }
        }
        let f16_matrix = QTensor::quantize(&w, GgmlDType::F16).unwrap();
        assert!(KRows::from_qtensor(&f16_matrix).unwrap().is_none());
    }
}
