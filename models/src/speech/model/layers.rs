//! The linear layers of the Whisper model: a weight matrix kept as
//! [`Quant`] says (f32, q8_0, or f32 with a q8_0 copy for one-row products),
//! projections with their bias, and layer norms.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

/// How one part of the model keeps its matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quant {
    /// f32 only.
    None,
    /// q8_0 only.
    Q8,
    /// f32, and a q8_0 copy for one-row products.
    F32AndRows,
}

/// A weight matrix `[out, in]`, as [`Quant`] says.
#[derive(Debug, Clone)]
pub(super) struct Weight {
    w: QMatMul,
    /// Repacked q8_0 for one-row products ([`crate::kernels::q8::Q8Rows`]).
    rows: Option<std::sync::Arc<crate::kernels::q8::Q8Rows>>,
}

impl Weight {
    pub(super) fn new(w: Tensor, quant: Quant) -> Result<Self> {
        let quantizable = w.dim(D::Minus1)? % GgmlDType::Q8_0.block_size() == 0;
        if quant == Quant::None || !quantizable {
            return Ok(Weight {
                w: QMatMul::Tensor(w),
                rows: None,
            });
        }
        let q = QTensor::quantize(&w, GgmlDType::Q8_0)?;
        let rows = if crate::kernels::q8::available() {
            crate::kernels::q8::Q8Rows::from_qtensor(&q)?.map(std::sync::Arc::new)
        } else {
            None
        };
        let w = match quant {
            Quant::Q8 => QMatMul::from_qtensor(q)?,
            _ => QMatMul::Tensor(w),
        };
        Ok(Weight { w, rows })
    }

    /// `x · wᵀ`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.rows {
            Some(rows) if x.elem_count() == x.dim(D::Minus1)? => rows.gemv(x),
            _ => matmul(x, &self.w),
        }
    }
}

/// A linear layer: weight `[out, in]` and optional bias.
#[derive(Debug, Clone)]
pub(super) struct Proj {
    w: Weight,
    b: Option<Tensor>,
}

impl Proj {
    pub(super) fn load(
        vb: &VarBuilder,
        n_in: usize,
        n_out: usize,
        bias: bool,
        quant: Quant,
    ) -> Result<Self> {
        let w = vb.get((n_out, n_in), "weight")?;
        let b = if bias {
            Some(vb.get(n_out, "bias")?)
        } else {
            None
        };
        Ok(Proj {
            w: Weight::new(w, quant)?,
            b,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.w.forward(x)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// `x · wᵀ`. A single row (a decoding step) against dense f32 weights is a
/// matrix-vector product, which gemm runs on one thread and which is bound
/// by reading the weights; the weight rows are then split into one part per
/// thread of candle's barrier pool ([`crate::pool::on_each_pool_thread`]).
fn matmul(x: &Tensor, w: &QMatMul) -> Result<Tensor> {
    let QMatMul::Tensor(wt) = w else {
        return w.forward(x);
    };
    let (out, inp) = wt.dims2()?;
    let parts = crate::pool::pool_threads();
    if parts == 1 || x.elem_count() != inp || out < 64 * parts {
        return w.forward(x);
    }
    let row = x.reshape((1, inp))?;
    // With `out ≥ 64 · parts` every part has rows.
    let step = out.div_ceil(parts);
    let pieces = crate::pool::on_each_pool_thread(|tid| {
        let start = tid * step;
        row.matmul(&wt.narrow(0, start, step.min(out - start))?.t()?)
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("a matrix has dimensions") = out;
    Tensor::cat(&pieces, 1)?.reshape(dims)
}

pub(super) fn layer_norm(vb: VarBuilder, n: usize) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(n, "weight")?,
        vb.get(n, "bias")?,
        1e-5,
    ))
}
