//! Repacking a file's Q4_K / Q6_K super-blocks into [`KRows`]' layout of
//! sixteen-row groups (see the [parent module](super)).

use candle_core::Result;
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use super::{BLOCK, HIGH_BYTES, KRows, Kind, LANES, NIBBLE_BYTES, SUPER};

/// One super-block of Q4_K as numbers: `value = scale[v / 32]·q[v] − min[v / 32]`.
fn unpack_q4k(block: &[u8], q: &mut [u8; SUPER], scale: &mut [f32; 8], min: &mut [f32; 8]) {
    // block_q4_K: d (f16), dmin (f16), 12 bytes of 6-bit scales and mins, 128 of nibbles.
    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
    let dmin = f16::from_le_bytes([block[2], block[3]]).to_f32();
    let sc = &block[4..16];
    let qs = &block[16..144];
    for j in 0..8 {
        let (s, m) = if j < 4 {
            (sc[j] & 63, sc[j + 4] & 63)
        } else {
            (
                (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4),
                (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4),
            )
        };
        scale[j] = d * f32::from(s);
        min[j] = dmin * f32::from(m);
    }
    for p in 0..4 {
        for l in 0..32 {
            let byte = qs[32 * p + l];
            q[64 * p + l] = byte & 0xF;
            q[64 * p + 32 + l] = byte >> 4;
        }
    }
}

/// One super-block of Q6_K as numbers: `value = scale[v / 16]·(q[v] − 32)`.
fn unpack_q6k(block: &[u8], q: &mut [u8; SUPER], scale: &mut [f32; 16]) {
    // block_q6_K: 128 bytes of low nibbles, 64 of top bit pairs, 16 int8 scales, d (f16).
    let (ql, qh, sc) = (&block[0..128], &block[128..192], &block[192..208]);
    let d = f16::from_le_bytes([block[208], block[209]]).to_f32();
    for n in 0..2 {
        let (ql, qh) = (&ql[64 * n..], &qh[32 * n..]);
        let q = &mut q[128 * n..];
        for l in 0..32 {
            q[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            q[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            q[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            q[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    for (s, &c) in scale.iter_mut().zip(sc) {
        *s = d * f32::from(c as i8);
    }
}

impl KRows {
    /// Repack `w` if it is a Q4_K or Q6_K matrix.
    pub(crate) fn from_qtensor(w: &QTensor) -> Result<Option<Self>> {
        let (kind, block_bytes) = match w.dtype() {
            GgmlDType::Q4K => (Kind::Q4K, 144),
            GgmlDType::Q6K => (Kind::Q6K, 210),
            _ => return Ok(None),
        };
        let (rows, cols) = w.shape().dims2()?;
        if cols % SUPER != 0 {
            return Ok(None);
        }
        let data = w.data()?;
        let supers = cols / SUPER;
        if data.len() != rows * supers * block_bytes {
            candle_core::bail!("k-quant matrix: {} bytes for {rows}×{cols}", data.len());
        }
        let blocks = cols / BLOCK;
        let groups = rows.div_ceil(LANES);
        let scales_per_block = if kind == Kind::Q6K { 2 } else { 1 };
        let mut out = KRows {
            kind,
            rows,
            cols,
            nibbles: vec![0; groups * blocks * NIBBLE_BYTES],
            high: if kind == Kind::Q6K {
                vec![0; groups * blocks * HIGH_BYTES]
            } else {
                Vec::new()
            },
            scales: vec![f16::ZERO; groups * blocks * LANES * scales_per_block],
            mins: if kind == Kind::Q4K {
                vec![f16::ZERO; groups * blocks * LANES]
            } else {
                Vec::new()
            },
        };
        let mut q = [0u8; SUPER];
        let (mut s8, mut m8, mut s16) = ([0f32; 8], [0f32; 8], [0f32; 16]);
        for r in 0..rows {
            let (g, lane) = (r / LANES, r % LANES);
            for sb in 0..supers {
                let at = (r * supers + sb) * block_bytes;
                let block = &data[at..at + block_bytes];
                match kind {
                    Kind::Q4K => unpack_q4k(block, &mut q, &mut s8, &mut m8),
                    Kind::Q6K => unpack_q6k(block, &mut q, &mut s16),
                }
                for k in 0..SUPER / BLOCK {
                    let gb = g * blocks + sb * (SUPER / BLOCK) + k;
                    let v = &q[k * BLOCK..(k + 1) * BLOCK];
                    let nib = &mut out.nibbles[gb * NIBBLE_BYTES..(gb + 1) * NIBBLE_BYTES];
                    for t in 0..4 {
                        for i in 0..4 {
                            nib[t * 64 + lane * 4 + i] =
                                (v[4 * t + i] & 0xF) | ((v[16 + 4 * t + i] & 0xF) << 4);
                        }
                    }
                    match kind {
                        Kind::Q4K => {
                            out.scales[gb * LANES + lane] = f16::from_f32(s8[k]);
                            out.mins[gb * LANES + lane] = f16::from_f32(m8[k]);
                        }
                        Kind::Q6K => {
                            let high = &mut out.high[gb * HIGH_BYTES..(gb + 1) * HIGH_BYTES];
                            for h in 0..2 {
                                for i in 0..4 {
                                    let top = |at: usize| v[at] >> 4;
                                    high[h * 64 + lane * 4 + i] = top(8 * h + i)
                                        | (top(16 + 8 * h + i) << 2)
                                        | (top(8 * h + 4 + i) << 4)
                                        | (top(16 + 8 * h + 4 + i) << 6);
                                }
                            }
                            let s = &mut out.scales[gb * 2 * LANES..(gb + 1) * 2 * LANES];
                            s[lane] = f16::from_f32(s16[2 * k]);
                            s[LANES + lane] = f16::from_f32(s16[2 * k + 1]);
                        }
                    }
                }
            }
        }
        Ok(Some(out))
    }
}
