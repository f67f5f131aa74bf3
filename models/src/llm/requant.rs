//! Re-quantizing GGUF weights whose block type candle multiplies slowly.
//!
//! candle 0.11's CPU backend has AVX2 (and NEON) dot products for Q4_0, Q8_0
//! and the k-quants, but only scalar code for Q4_1, Q5_0 and Q5_1. llama.cpp's
//! converter falls back to Q5_0 whenever a row length is not a multiple of 256
//! (Qwen2.5-0.5B's hidden size is 896), so most matrices of the store's 0.5B
//! model are Q5_0, and decoding ran about ten times slower than it should.
//! Those tensors are re-quantized to Q8_0 at load time: Q8_0's grid (255
//! levels per 32 values) is finer than Q5_0's (32 levels), so the weights
//! barely change, at the price of 8.5 instead of 5.5 bits per weight.

use std::io::{Cursor, Read, Seek};
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};

use crate::{Error, Result};

/// Block types with no SIMD dot product in candle's CPU backend.
pub(crate) fn is_slow(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// Tensors used as matrix-multiply weights that have a slow block type.
/// `token_embd.weight` only counts when it doubles as the output projection
/// (no `output.weight`): otherwise it is only looked up, never multiplied.
pub(crate) fn slow_tensors(content: &gguf_file::Content) -> Vec<String> {
    let tied = !content.tensor_infos.contains_key("output.weight");
    let mut names: Vec<String> = content
        .tensor_infos
        .iter()
        .filter(|(name, info)| {
            is_slow(info.ggml_dtype)
                && info.shape.dims().len() == 2
                && (tied || name.as_str() != "token_embd.weight")
        })
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

/// A GGUF image in memory with the tensors in `slow` re-quantized to Q8_0
/// and every other tensor and all metadata as they were.
pub(crate) fn requantize<R: Read + Seek>(
    content: &gguf_file::Content,
    reader: &mut R,
    slow: &[String],
    path: &Path,
) -> Result<Cursor<Vec<u8>>> {
    let fail = |e: candle_core::Error| Error::ModelFormat {
        path: path.to_path_buf(),
        reason: format!("re-quantizing to Q8_0: {e}"),
    };
    let device = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(reader, name, &device).map_err(fail)?;
        let tensor = if slow.iter().any(|s| s == name) {
            let values = tensor.dequantize(&device).map_err(fail)?;
            QTensor::quantize(&values, GgmlDType::Q8_0).map_err(fail)?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let size: usize = tensors
        .iter()
        .map(|(_, t)| t.storage_size_in_bytes() + 32)
        .sum();
    let mut image = Cursor::new(Vec::with_capacity(size + (16 << 20)));
    gguf_file::write(&mut image, &metadata, &refs).map_err(fail)?;
    image.set_position(0);
    Ok(image)
}
