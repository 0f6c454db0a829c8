//! The arith family on the GPU (ops/arith.rs, kernels/arith.cu): broadcasting add, sub
//! and mul, scaling, and fill.

use super::{broadcast_strides, grid, launched, pad4};
use crate::backend::cuda::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::kernels::BinaryOp;

pub fn fill(be: &CudaBackend, out: &mut DeviceTensor, v: f32) -> Result<(), ExecError> {
    let n = out.len() as i64;
    launched(be.kernels.fill_f32(&be.stream, grid(n as usize), out.slice(), n, v))
}

pub fn scale(be: &CudaBackend, x: &DeviceTensor, s: f32, out: &mut DeviceTensor) -> Result<(), ExecError> {
    let n = out.len() as i64;
    launched(
        be.kernels
            .scale_f32(&be.stream, grid(n as usize), out.slice(), x.slice(), n, s),
    )
}

/// `t *= s`, in place.
pub fn scale_in_place(be: &CudaBackend, t: &mut DeviceTensor, s: f32) -> Result<(), ExecError> {
    let n = t.len() as i64;
    let v = t.slice();
    launched(be.kernels.scale_f32(&be.stream, grid(n as usize), v, v, n, s))
}

/// `out = a (op) x` with broadcasting, each read and written as stored. `out` may be `a`
/// itself when both are stored alike (each thread reads and writes only its own element).
pub fn binary(
    be: &CudaBackend,
    code: BinaryOp,
    a: &DeviceTensor,
    x: &DeviceTensor,
    out: &DeviceTensor,
) -> Result<(), ExecError> {
    let od = out.shape.dims().to_vec();
    let (d, sa) = pad4(&od, &broadcast_strides(a.shape.dims(), &od))?;
    let (_, sb) = pad4(&od, &broadcast_strides(x.shape.dims(), &od))?;
    let n = out.len() as i64;
    let (so, sa_, sx) = (be.element_storage(out), be.element_storage(a), be.element_storage(x));
    launched(be.kernels.binary(
        &be.stream,
        grid(n as usize),
        out.slice(),
        so,
        a.slice(),
        sa_,
        x.slice(),
        sx,
        n,
        code,
        d[1],
        d[2],
        d[3],
        sa[0],
        sa[1],
        sa[2],
        sa[3],
        sb[0],
        sb[1],
        sb[2],
        sb[3],
    ))
}
