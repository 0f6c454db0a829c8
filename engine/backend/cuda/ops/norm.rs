//! The normalization family on the GPU (ops/norm.rs, ops/standardize.rs, kernels/norm.cu):
//! a block per row, or for BatchNorm a thread per column.

use super::launched;
use crate::backend::cuda::launch::grid;
use crate::backend::cuda::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::ops::Norm;
use cudarc::driver::LaunchConfig;

/// Threads a block (`NORM_THREADS` in kernels/norm.cu).
const NORM_THREADS: u32 = 256;

/// (rows, columns) of `t` read as rows of its last axis, and a block per row (a grid-stride
/// loop over rows past the grid's limit).
fn rows_of(t: &DeviceTensor) -> (i64, i32, LaunchConfig) {
    let cols = t.shape.dims().last().copied().unwrap_or(1).max(1);
    let rows = t.len() / cols;
    let cfg = LaunchConfig {
        grid_dim: (rows.clamp(1, 1 << 20) as u32, 1, 1),
        block_dim: (NORM_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    (rows as i64, cols as i32, cfg)
}

/// (rows, columns) of a `[batch, features]` tensor, and a thread per column.
fn columns_of(t: &DeviceTensor) -> (i64, i32, LaunchConfig) {
    let cols = t.shape.dims().last().copied().unwrap_or(1).max(1);
    ((t.len() / cols) as i64, cols as i32, grid(cols))
}

/// `out = normalize(x)` row by row (column by column for BatchNorm).
pub fn forward(be: &CudaBackend, norm: Norm, eps: f64, x: &DeviceTensor, out: &DeviceTensor) -> Result<(), ExecError> {
    if norm == Norm::Batch {
        let (rows, cols, cfg) = columns_of(x);
        let (o, x) = (out.slice(), x.slice());
        return launched(
            be.kernels
                .normalize_cols_f32(&be.stream, cfg, o, x, rows, cols, eps as f32),
        );
    }
    let (rows, cols, cfg) = rows_of(x);
    let (o, x) = (out.slice(), x.slice());
    launched(
        be.kernels
            .normalize_rows_f32(&be.stream, cfg, o, x, rows, cols, norm.kernel(), eps as f32),
    )
}

/// `out = J(x) v` row by row, or column by column (the VJP and the JVP alike).
pub fn backward(
    be: &CudaBackend,
    norm: Norm,
    eps: f64,
    x: &DeviceTensor,
    v: &DeviceTensor,
    out: &DeviceTensor,
) -> Result<(), ExecError> {
    if norm == Norm::Batch {
        let (rows, cols, cfg) = columns_of(x);
        let (o, x, v) = (out.slice(), x.slice(), v.slice());
        return launched(
            be.kernels
                .normalize_grad_cols_f32(&be.stream, cfg, o, x, v, rows, cols, eps as f32),
        );
    }
    let (rows, cols, cfg) = rows_of(x);
    let (o, x, v) = (out.slice(), x.slice(), v.slice());
    launched(
        be.kernels
            .normalize_grad_rows_f32(&be.stream, cfg, o, x, v, rows, cols, norm.kernel(), eps as f32),
    )
}

/// BatchNorm's evaluation form: `out = (x - mean) / sqrt(var + eps)` column by column.
pub fn standardize(
    be: &CudaBackend,
    eps: f64,
    [x, mean, var]: [&DeviceTensor; 3],
    out: &DeviceTensor,
) -> Result<(), ExecError> {
    let (_, cols, _) = columns_of(x);
    let n = x.len();
    let (o, x, mean, var) = (out.slice(), x.slice(), mean.slice(), var.slice());
    launched(
        be.kernels
            .standardize_cols_f32(&be.stream, grid(n), o, x, mean, var, n as i64, cols, eps as f32),
    )
}
