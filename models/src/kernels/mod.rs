//! Hand-written SIMD kernels.

pub(crate) mod q8;
pub(crate) mod qk;
pub(crate) mod simd;
