//! The activation family on the GPU (ops/activation.rs, kernels/activation.cu).

use super::{grid, launched};
use crate::backend::cuda::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::ops::Activation;

/// `out = a(x)` elementwise; `out` may be `x` itself.
pub fn forward(be: &CudaBackend, a: Activation, x: &DeviceTensor, out: &DeviceTensor) -> Result<(), ExecError> {
    let (kind, slope) = a.kernel();
    let n = out.len() as i64;
    let cfg = grid(out.len());
    launched(
        be.kernels
            .activation_forward_f32(&be.stream, cfg, out.slice(), x.slice(), n, kind, slope),
    )
}

/// `out = g · a'(saved)`, `saved` the activation's input or output as [`Activation::grad_from_output`] says.
pub fn backward(
    be: &CudaBackend,
    a: Activation,
    saved: &DeviceTensor,
    g: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let (kind, slope) = a.kernel();
    let n = out.len() as i64;
    let (o, saved, g) = (out.slice(), saved.slice(), g.slice());
    launched(
        be.kernels
            .activation_backward_f32(&be.stream, grid(n as usize), o, saved, g, n, kind, slope),
    )
}
