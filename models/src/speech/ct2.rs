//! Reader for CTranslate2 model files (`model.bin`).
//!
//! The layout, all integers little-endian:
//!
//! ```text
//! u32 binary_version                      (1 ..= 6 understood here)
//! if version >= 2: string spec_name, u32 spec_revision
//! u32 variable_count
//! per variable:
//!     string name
//!     u8 rank, rank × u32 dims
//!     version >= 4: u8 dtype, u32 byte_count
//!     version <  4: u8 item_size, u32 element_count
//!     byte_count bytes of row-major data
//! if version >= 3: u32 alias_count, per alias: string alias, string target
//! ```
//!
//! A `string` is a u16 byte length followed by that many bytes, the last of
//! which is a NUL. `dtype` is CTranslate2's `DataType` enum in declaration
//! order: 0 FLOAT32, 1 INT8, 2 INT16, 3 INT32, 4 FLOAT16, 5 BFLOAT16.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// The newest binary version this reader understands.
pub const MAX_BINARY_VERSION: u32 = 6;

/// Element type of a CTranslate2 variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2DType {
    /// From CTranslate2's `DataType` numbering.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2DType::F32,
            1 => Ct2DType::I8,
            2 => Ct2DType::I16,
            3 => Ct2DType::I32,
            4 => Ct2DType::F16,
            5 => Ct2DType::BF16,
            _ => return None,
        })
    }

    /// CTranslate2's `DataType` number.
    pub fn id(self) -> u8 {
        match self {
            Ct2DType::F32 => 0,
            Ct2DType::I8 => 1,
            Ct2DType::I16 => 2,
            Ct2DType::I32 => 3,
            Ct2DType::F16 => 4,
            Ct2DType::BF16 => 5,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Ct2DType::I8 => 1,
            Ct2DType::I16 | Ct2DType::F16 | Ct2DType::BF16 => 2,
            Ct2DType::F32 | Ct2DType::I32 => 4,
        }
    }

    /// Pre-version-4 files store an item size instead of a type.
    fn from_item_size(size: u8) -> Option<Self> {
        Some(match size {
            1 => Ct2DType::I8,
            2 => Ct2DType::I16,
            4 => Ct2DType::F32,
            _ => return None,
        })
    }
}

/// One variable of a CTranslate2 model.
#[derive(Clone, PartialEq)]
pub struct Ct2Variable {
    pub shape: Vec<usize>,
    pub dtype: Ct2DType,
    /// Row-major little-endian element bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Ct2Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ct2Variable")
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl Ct2Variable {
    /// The value of a scalar integer or boolean variable (`num_heads`, `pre_norm`).
    pub fn scalar_i64(&self) -> Option<i64> {
        if self.shape.iter().product::<usize>() != 1 {
            return None;
        }
        let d = &self.data;
        Some(match self.dtype {
            Ct2DType::I8 => d[0] as i8 as i64,
            Ct2DType::I16 => i16::from_le_bytes([d[0], d[1]]) as i64,
            Ct2DType::I32 => i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
            Ct2DType::F32 => f32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
            Ct2DType::F16 | Ct2DType::BF16 => return None,
        })
    }

    /// The variable as a candle tensor of its own element type (INT16 is
    /// widened to i64, INT8 to u8 bit patterns are not meaningful and refused).
    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        let shape = self.shape.clone();
        match self.dtype {
            Ct2DType::F32 => Tensor::from_raw_buffer(&self.data, DType::F32, &shape, device),
            Ct2DType::F16 => Tensor::from_raw_buffer(&self.data, DType::F16, &shape, device),
            Ct2DType::BF16 => Tensor::from_raw_buffer(&self.data, DType::BF16, &shape, device),
            Ct2DType::I32 => {
                let v: Vec<i64> = self
                    .data
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect();
                Tensor::from_vec(v, shape, device)
            }
            Ct2DType::I16 => {
                let v: Vec<i64> = self
                    .data
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                    .collect();
                Tensor::from_vec(v, shape, device)
            }
            Ct2DType::I8 => Err(candle_core::Error::Msg(
                "int8 CTranslate2 weights need their scales; convert the model to float16 first"
                    .into(),
            )),
        }
    }
}

/// A whole CTranslate2 model file in memory.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    pub binary_version: u32,
    /// The model specification name (`WhisperSpec`), empty before version 2.
    pub spec: String,
    pub spec_revision: u32,
    pub variables: BTreeMap<String, Ct2Variable>,
    /// Alias name → name of the variable it shares data with.
    pub aliases: BTreeMap<String, String>,
}

impl Ct2Model {
    /// Read and parse `model.bin`.
    pub fn read(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        Ct2Model::parse(BufReader::with_capacity(1 << 20, file), len, path)
    }

    /// Parse a model from any reader holding `len` bytes (`len` bounds the
    /// allocations a corrupt header could ask for). `path` is for messages.
    pub fn parse<R: Read>(reader: R, len: u64, path: &Path) -> Result<Self> {
        let mut r = Reader {
            inner: reader,
            left: len,
            path: path.to_path_buf(),
        };
        let binary_version = r.u32("binary version")?;
        if binary_version == 0 || binary_version > MAX_BINARY_VERSION {
            return Err(r.bad(format!(
                "binary version {binary_version} is not supported (1 ..= {MAX_BINARY_VERSION})"
            )));
        }
        let (spec, spec_revision) = if binary_version >= 2 {
            (r.string("spec name")?, r.u32("spec revision")?)
        } else {
            (String::new(), 1)
        };
        let count = r.u32("variable count")?;
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let name = r.string("variable name")?;
            let rank = r.u8("rank")? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32("dimension")? as usize);
            }
            let (dtype, bytes) = if binary_version >= 4 {
                let id = r.u8("dtype")?;
                let dtype = Ct2DType::from_id(id)
                    .ok_or_else(|| r.bad(format!("variable {name}: unknown dtype {id}")))?;
                (dtype, r.u32("byte count")? as u64)
            } else {
                let size = r.u8("item size")?;
                let dtype = Ct2DType::from_item_size(size)
                    .ok_or_else(|| r.bad(format!("variable {name}: unknown item size {size}")))?;
                (dtype, r.u32("element count")? as u64 * size as u64)
            };
            let elements: u64 = shape.iter().map(|&d| d as u64).product();
            if elements * dtype.size() as u64 != bytes {
                return Err(r.bad(format!(
                    "variable {name}: shape {shape:?} of {dtype:?} needs {} bytes, the file says {bytes}",
                    elements * dtype.size() as u64
                )));
            }
            let data = r.bytes(bytes, &name)?;
            variables.insert(name, Ct2Variable { shape, dtype, data });
        }
        let mut aliases = BTreeMap::new();
        if binary_version >= 3 {
            let n = r.u32("alias count")?;
            for _ in 0..n {
                let alias = r.string("alias name")?;
                let target = r.string("alias target")?;
                if !variables.contains_key(&target) {
                    return Err(r.bad(format!("alias {alias} points to unknown {target}")));
                }
                aliases.insert(alias, target);
            }
        }
        Ok(Ct2Model {
            binary_version,
            spec,
            spec_revision,
            variables,
            aliases,
        })
    }

    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Ct2Variable> {
        self.variables
            .get(name)
            .or_else(|| self.variables.get(self.aliases.get(name)?))
    }

    /// Write a model in binary version 6 (used by tests to build small files).
    pub fn to_bytes(&self) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, &self.spec);
        out.extend_from_slice(&self.spec_revision.to_le_bytes());
        out.extend_from_slice(&(self.variables.len() as u32).to_le_bytes());
        for (name, v) in &self.variables {
            string(&mut out, name);
            out.push(v.shape.len() as u8);
            for d in &v.shape {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(v.dtype.id());
            out.extend_from_slice(&(v.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&v.data);
        }
        out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
        for (alias, target) in &self.aliases {
            string(&mut out, alias);
            string(&mut out, target);
        }
        out
    }
}

struct Reader<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: Read> Reader<R> {
    fn bad(&self, reason: String) -> Error {
        Error::ModelFormat {
            path: self.path.clone(),
            reason,
        }
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        if buf.len() as u64 > self.left {
            return Err(self.bad(format!("file ends inside the {what} (truncated?)")));
        }
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.bad(format!("file ends inside the {what} (truncated?)"))
            } else {
                Error::io("reading", &self.path, e)
            }
        })?;
        self.left -= buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b, what)?;
        Ok(b[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let mut b = [0u8; 2];
        self.exact(&mut b, what)?;
        Ok(u16::from_le_bytes(b))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.left {
            return Err(self.bad(format!("file ends inside {what} (truncated?)")));
        }
        let mut buf = vec![0u8; n as usize];
        self.exact(&mut buf, what)?;
        Ok(buf)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u16(what)? as u64;
        let mut bytes = self.bytes(n, what)?;
        if bytes.last() == Some(&0) {
            bytes.pop();
        }
        String::from_utf8(bytes).map_err(|_| self.bad(format!("{what} is not UTF-8")))
    }
}
