//! The reduce family on the GPU (ops/reduce.rs, kernels/reduce.cu): sums over axes (Sum,
//! Mean, SumTo) and broadcasts.

use super::{broadcast_strides, contiguous_strides, grid, launched, pad4};
use crate::backend::cuda::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::plan::Storage;
use crate::tensor::Shape;
use cudarc::driver::LaunchConfig;

/// `Sum` or `Mean` (`mean`) over `axis`, or over everything.
pub fn sum(
    be: &CudaBackend,
    x: &DeviceTensor,
    axis: Option<usize>,
    mean: bool,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let dims = x.shape.dims();
    let reduced: Vec<bool> = (0..dims.len()).map(|i| axis.is_none_or(|a| a == i)).collect();
    let count: usize = dims
        .iter()
        .zip(&reduced)
        .filter(|(_, r)| **r)
        .map(|(d, _)| *d)
        .product();
    let s = if mean { 1.0 / count.max(1) as f32 } else { 1.0 };
    reduce(be, x, &reduced, s, out)
}

/// `SumTo { axis, shape }`: sums a broadcast tensor back down.
pub fn sum_to(
    be: &CudaBackend,
    x: &DeviceTensor,
    axis: Option<usize>,
    shape: &Shape,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    reduce(be, x, &sum_to_axes(x.shape.dims(), axis, shape), 1.0, out)
}

pub fn broadcast(
    be: &CudaBackend,
    x: &DeviceTensor,
    axis: Option<usize>,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let mut from = x.shape.dims().to_vec();
    if let Some(a) = axis {
        from.insert(a, 1);
    }
    let od = out.shape.dims().to_vec();
    let (d, s) = pad4(&od, &broadcast_strides(&from, &od))?;
    let n = out.len() as i64;
    let k = &be.kernels;
    let cfg = grid(n as usize);
    launched(k.strided_copy_f32(
        &be.stream,
        cfg,
        out.slice(),
        x.slice(),
        n,
        d[1],
        d[2],
        d[3],
        s[0],
        s[1],
        s[2],
        s[3],
    ))
}

/// Sums `x` over the axes marked in `reduced`, times `scale`, into `out` (the kept axes in order).
fn reduce(
    be: &CudaBackend,
    x: &DeviceTensor,
    reduced: &[bool],
    scale: f32,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let dims = x.shape.dims();
    if let ([rows, cols], [true, false]) = (dims, reduced) {
        // Column sums (every bias gradient): the dedicated kernel.
        let cfg = LaunchConfig {
            grid_dim: (cols.div_ceil(32).max(1) as u32, 1, 1),
            block_dim: (32, 32, 1),
            shared_mem_bytes: 0,
        };
        let (r, c) = (*rows as i64, *cols as i64);
        let storage = be.element_storage(x);
        return launched(
            be.kernels
                .column_sums(&be.stream, cfg, out.slice(), x.slice(), storage, r, c, scale),
        );
    }
    if x.storage == Storage::Half {
        return Err(ExecError::Device(format!(
            "a 16-bit tensor of shape {} reduced other than by column sums",
            x.shape
        )));
    }
    let strides = contiguous_strides(dims);
    let (mut kd, mut ks, mut rd, mut rs) = (vec![], vec![], vec![], vec![]);
    for i in 0..dims.len() {
        if reduced[i] {
            rd.push(dims[i]);
            rs.push(strides[i]);
        } else {
            kd.push(dims[i]);
            ks.push(strides[i]);
        }
    }
    let (k, ks) = pad4(&kd, &ks)?;
    let (r, rs) = pad4(&rd, &rs)?;
    let n_out: i64 = kd.iter().product::<usize>() as i64;
    let n_red: i64 = rd.iter().product::<usize>() as i64;
    // Many outputs: a thread each (coalesced for column sums). Few: a block each.
    let (o, i, st) = (out.slice(), x.slice(), &be.stream);
    let kernels = &be.kernels;
    launched(if n_out >= 1024 {
        let cfg = grid(n_out as usize);
        kernels.reduce_thread_f32(
            st, cfg, o, i, n_out, n_red, k[1], k[2], k[3], ks[0], ks[1], ks[2], ks[3], r[1], r[2], r[3], rs[0], rs[1],
            rs[2], rs[3], scale,
        )
    } else {
        let mut cfg = grid(1);
        cfg.grid_dim.0 = n_out.clamp(1, 65535) as u32;
        kernels.reduce_block_f32(
            st, cfg, o, i, n_out, n_red, k[1], k[2], k[3], ks[0], ks[1], ks[2], ks[3], r[1], r[2], r[3], rs[0], rs[1],
            rs[2], rs[3], scale,
        )
    })
}

/// Which axes of `input` a `SumTo { axis, shape }` sums away.
fn sum_to_axes(input: &[usize], axis: Option<usize>, shape: &Shape) -> Vec<bool> {
    let mut target = shape.dims().to_vec();
    if let Some(a) = axis {
        target.insert(a, 1);
    }
    let lead = input.len() - target.len();
    (0..input.len())
        .map(|i| i < lead || (target[i - lead] == 1 && input[i] != 1))
        .collect()
}
