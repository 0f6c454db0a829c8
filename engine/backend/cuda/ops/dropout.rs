//! Dropout on the GPU (ops/dropout.rs, kernels/dropout.cu): the same keyed mask as the
//! CPU's, so a recomputed node replays it.

use super::{grid, launched};
use crate::backend::cuda::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::ops::{dropout, RunContext};
use crate::rng;

pub fn forward(
    be: &CudaBackend,
    p: f64,
    key: u64,
    ctx: &RunContext,
    x: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    if !ctx.training || p == 0.0 {
        return be.stream.memcpy_dtod(x.slice(), out.slice_mut()).map_err(driver_err);
    }
    let n = out.len() as i64;
    let prefix = rng::prefix(ctx.seed, rng::stream::DROPOUT, dropout::mask_key(key, ctx.step));
    let scale = (1.0 / (1.0 - p)) as f32;
    let first = dropout::first_element(x.shape.dims(), ctx);
    let cfg = grid(n as usize);
    launched(
        be.kernels
            .dropout_f32(&be.stream, cfg, out.slice(), x.slice(), n, first, prefix, p, scale),
    )
}
