//! Each op's forward rule on the GPU: cuBLAS for matmul, our kernels for the rest, one
//! launcher file per op family. Kernels see tensors of rank ≤ 4 (padded on the left),
//! through explicit strides.

pub mod activation;
pub mod arith;
pub mod data;
mod dropout;
mod inner;
mod loss;
mod norm;
mod reduce;

use super::{blas, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::ops::{self, Op, RunContext};
use crate::plan::Storage;

// How launches are shaped, for this folder's launchers.
pub(super) use super::launch::{grid, grid_chunks, launched, single_block, THREADS, VECTOR};

fn unsupported(why: String) -> ExecError {
    ExecError::Device(format!("not supported on the CUDA backend: {why}"))
}

pub(super) fn contiguous_strides(dims: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as i64;
    }
    s
}

/// Left-pads (dims, strides) to rank 4 with unit dims of stride 0.
pub(super) fn pad4(dims: &[usize], strides: &[i64]) -> Result<([i32; 4], [i64; 4]), ExecError> {
    if dims.len() > 4 {
        return Err(unsupported(format!("tensors of rank {} (at most 4)", dims.len())));
    }
    let mut d = [1i32; 4];
    let mut s = [0i64; 4];
    let off = 4 - dims.len();
    for i in 0..dims.len() {
        d[off + i] = dims[i] as i32;
        s[off + i] = strides[i];
    }
    Ok((d, s))
}

/// Strides that read `input` (right-aligned) as if broadcast to `out` dims.
pub(super) fn broadcast_strides(input: &[usize], out: &[usize]) -> Vec<i64> {
    let cs = contiguous_strides(input);
    let lead = out.len() - input.len();
    (0..out.len())
        .map(|i| {
            if i < lead {
                0
            } else {
                let j = i - lead;
                if input[j] == 1 && out[i] != 1 {
                    0
                } else {
                    cs[j]
                }
            }
        })
        .collect()
}

/// Runs a non-leaf op into `out`: each family's launcher, one file each, mirroring
/// ops/<family>.rs and kernels/<family>.cu.
pub fn forward(
    be: &CudaBackend,
    op: &Op,
    x: &[&DeviceTensor],
    out: &mut DeviceTensor,
    ctx: &RunContext,
) -> Result<(), ExecError> {
    let half = out.storage == Storage::Half || x.iter().any(|t| t.storage == Storage::Half);
    let allowed = matches!(
        op,
        Op::MatMul { .. } | Op::Add | Op::Unary(_) | Op::UnaryGrad(_) | Op::SumTo { .. }
    );
    if half && !allowed {
        // plan/precision.rs stores in 16 bits only what these ops read and write.
        return Err(unsupported(format!("{} on 16-bit tensors", op.name())));
    }
    match op {
        Op::Leaf(_) => unreachable!("leaves are bound, not computed"),
        Op::MatMul { trans_a, trans_b } => blas::matmul(be, x[0], x[1], *trans_a, *trans_b, out),
        Op::Add | Op::Sub | Op::Mul => arith::binary(be, ops::arith::binary_kernel(op), x[0], x[1], out),
        Op::Scale(s) => arith::scale(be, x[0], *s as f32, out),
        Op::Neg => arith::scale(be, x[0], -1.0, out),
        Op::Sum { axis } => reduce::sum(be, x[0], *axis, false, out),
        Op::Mean { axis } => reduce::sum(be, x[0], *axis, true, out),
        Op::SumTo { axis, shape } => reduce::sum_to(be, x[0], *axis, shape, out),
        Op::Broadcast { axis, .. } => reduce::broadcast(be, x[0], *axis, out),
        Op::Unary(a) => activation::forward(be, *a, x[0], out),
        Op::UnaryGrad(a) => activation::backward(be, *a, x[0], x[1], out),
        Op::Dropout { p, key } => dropout::forward(be, *p, *key, ctx, x[0], out),
        Op::Normalize { norm: n, eps } => norm::forward(be, *n, *eps, x[0], out),
        Op::NormalizeGrad { norm: n, eps } => norm::backward(be, *n, *eps, x[0], x[1], out),
        Op::Standardize { eps } => norm::standardize(be, *eps, [x[0], x[1], x[2]], out),
        Op::SoftmaxCrossEntropy => loss::xent_forward(be, x[0], x[1], out),
        Op::SoftmaxCrossEntropyGrad => loss::xent_backward(be, x[0], x[1], x[2], out),
        Op::CountCorrect => loss::count_correct(be, x[0], x[1], out),
        Op::MeanSquaredError => loss::mse(be, x[0], x[1], out),
        Op::Inner => inner::dot(be, x[0], x[1], ops::inner::dot_kernel(op), 1.0, out),
        Op::SquaredNorm => inner::dot(be, x[0], x[0], ops::inner::dot_kernel(op), 1.0, out),
    }
}
