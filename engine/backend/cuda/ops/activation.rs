//! The activation family on the GPU (ops/activation.rs, kernels/activation.cu). Each tensor
//! is read and written as stored: f32, or 16 bits in a low-precision step.

use super::{grid_chunks, launched};
use crate::backend::cuda::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::ops::Activation;
use cudarc::driver::LaunchConfig;

/// `out = a(x)` elementwise; `out` may be `x` itself.
pub fn forward(be: &CudaBackend, a: Activation, x: &DeviceTensor, out: &DeviceTensor) -> Result<(), ExecError> {
    let (kind, slope) = a.kernel();
    let n = out.len() as i64;
    let (so, sx) = (be.element_storage(out), be.element_storage(x));
    launched(be.kernels.activation_forward(
        &be.stream,
        grid_chunks(out.len()),
        out.slice(),
        so,
        x.slice(),
        sx,
        n,
        kind,
        slope,
    ))
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
    let (so, ss, sg) = (
        be.element_storage(out),
        be.element_storage(saved),
        be.element_storage(g),
    );
    let (o, saved, g) = (out.slice(), saved.slice(), g.slice());
    launched(be.kernels.activation_backward(
        &be.stream,
        grid_chunks(n as usize),
        o,
        so,
        saved,
        ss,
        g,
        sg,
        n,
        kind,
        slope,
    ))
}

/// A 16-bit Linear layer's output after its product: `out = relu?(out + bias)` in place,
/// rounded again (`bias` one f32 per column).
pub fn bias_in_place(be: &CudaBackend, out: &DeviceTensor, bias: &DeviceTensor, relu: bool) -> Result<(), ExecError> {
    let (rows, cols) = (out.shape.dims()[0], out.shape.dims()[1]);
    let threads = super::THREADS;
    let cfg = LaunchConfig {
        grid_dim: (
            cols.div_ceil(threads as usize * super::VECTOR).clamp(1, 1 << 16) as u32,
            rows.clamp(1, 65535) as u32,
            1,
        ),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    let storage = be.element_storage(out);
    launched(be.kernels.bias_activation_in_place(
        &be.stream,
        cfg,
        out.slice(),
        storage,
        bias.slice(),
        rows as i64,
        cols as i64,
        i32::from(relu),
    ))
}
