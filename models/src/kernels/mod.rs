//! Hand-written SIMD kernels: the only `unsafe` code of the crate.
//!
//! - [`simd`]: AVX2 row kernels around the matrix products (softmax,
//!   `ln Σ eˣ`, one query row's attention over f16 keys and values), where
//!   the compiler's auto-vectoriser gave up.
//! - [`q8`]: one-row products against Q8_0 weights (AVX-512 VNNI or AVX2),
//!   and the activation quantizer the k-quant kernels share.
//! - [`qk`]: products against Q4_K and Q6_K weights with AVX-512 VNNI, for
//!   one activation row or many.
//!
//! Why `unsafe` is allowed here, and only here: the intrinsics are `unsafe`
//! to call (raw-pointer loads and stores, and instructions the CPU must be
//! checked to have), and no crate offers these products in these layouts.
//! Every kernel follows the same pattern: a safe entry point checks the CPU's
//! features at run time and asserts the lengths the kernel relies on, then
//! calls a `#[target_feature]` `unsafe fn` whose loads and stores stay within
//! those lengths. Every `unsafe` block carries a `// SAFETY:` comment saying
//! why (`clippy::undocumented_unsafe_blocks` is denied for the crate), and
//! each kernel is tested against the plain Rust of [`crate::portable`] or
//! against candle's own product.
//!
//! Dependencies run one way: [`crate::ops`] and the models call in here, the
//! kernels call only [`crate::portable`] and [`crate::pool`].

pub(crate) mod q8;
pub(crate) mod qk;
pub(crate) mod simd;
