//! Launchers for the data kernels (kernels/data.cu) and the device's own bookkeeping:
//! gathering batches from a held training set, the epoch's loss sum, argmax.

use super::{grid, launched};
use crate::backend::cuda::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use cudarc::driver::{CudaSlice, LaunchConfig};

/// Rows of `data` (the epoch's indices `rows` from the clock's batch start on), each image
/// shifted by (`dy`, `dx`), into `out` (as it is stored: f32, or 16 bits).
#[allow(clippy::too_many_arguments)]
pub fn gather_rows(
    be: &CudaBackend,
    out: &mut DeviceTensor,
    data: &DeviceTensor,
    [rows, dy, dx]: [&CudaSlice<i32>; 3],
    clock: &CudaSlice<u64>,
    fill: &DeviceTensor,
    batch: usize,
    height: i32,
    width: i32,
) -> Result<(), ExecError> {
    // Rows along y, a row's features (eight a thread access) along x: kernels/data.cu.
    let features = out.len() / batch.max(1);
    let cfg = LaunchConfig {
        grid_dim: (
            features
                .div_ceil(super::VECTOR * super::THREADS as usize)
                .clamp(1, 1 << 16) as u32,
            batch.clamp(1, 65535) as u32,
            1,
        ),
        block_dim: (super::THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let storage = be.element_storage(out);
    let (o, d, f) = (out.slice(), data.slice(), fill.slice());
    launched(be.kernels.gather_rows(
        &be.stream,
        cfg,
        o,
        storage,
        d,
        rows,
        dy,
        dx,
        clock,
        f,
        batch as i32,
        height,
        width,
    ))
}

/// `sum += weight · x` for scalars: a loss summed on the device.
pub fn accumulate(be: &CudaBackend, sum: &mut DeviceTensor, x: &DeviceTensor, weight: f32) -> Result<(), ExecError> {
    launched(
        be.kernels
            .axpy_f32(&be.stream, grid(1), sum.slice(), x.slice(), 1, weight),
    )
}

/// Sets every element of `t` to zero.
pub fn zero(be: &CudaBackend, t: &mut DeviceTensor) -> Result<(), ExecError> {
    super::arith::fill(be, t, 0.0)
}

/// Each row's first largest value's index, on the host: one i32 per row comes back.
pub fn argmax_rows(be: &CudaBackend, logits: &DeviceTensor) -> Result<Vec<i32>, ExecError> {
    let (rows, classes) = (logits.shape.dims()[0], logits.shape.dims()[1]);
    // SAFETY: the kernel writes every row's index before it is read back.
    let out = unsafe { be.stream.alloc::<i32>(rows.max(1)) }.map_err(driver_err)?;
    let (r, c) = (rows as i32, classes as i32);
    launched(
        be.kernels
            .argmax_rows_f32(&be.stream, grid(rows), &out, logits.slice(), r, c),
    )?;
    let mut v = be.download_i32(&out)?;
    v.truncate(rows);
    Ok(v)
}

/// `out[i] = data[rows[start + i]]`, `start` the clock's batch start.
pub fn gather(
    be: &CudaBackend,
    out: &mut DeviceTensor,
    data: &DeviceTensor,
    rows: &CudaSlice<i32>,
    clock: &CudaSlice<u64>,
    batch: usize,
) -> Result<(), ExecError> {
    let (o, d) = (out.slice(), data.slice());
    let cfg = grid(batch);
    launched(be.kernels.gather_f32(&be.stream, cfg, o, d, rows, clock, batch as i32))
}
