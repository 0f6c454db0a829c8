//! The inner family on the GPU (ops/inner.rs, kernels/inner.cu): whole-tensor sums of
//! products, one block each.

use super::{launched, single_block};
use crate::backend::cuda::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::kernels::DotMode;

/// `scale · Σ` over every element of what `mode` says (see [`crate::ops::inner::dot_kernel`]).
pub fn dot(
    be: &CudaBackend,
    a: &DeviceTensor,
    x: &DeviceTensor,
    mode: DotMode,
    scale: f32,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let n = a.len() as i64;
    let cfg = single_block(1024);
    launched(
        be.kernels
            .dot_f32(&be.stream, cfg, out.slice(), a.slice(), x.slice(), n, mode, scale),
    )
}
