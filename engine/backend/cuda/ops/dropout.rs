//! Dropout on the GPU (ops/dropout.rs, kernels/dropout.cu): the same keyed mask as the
//! CPU's, so a recomputed node replays it; the step it is keyed by comes from the step
//! clock (clock.rs), so a captured step draws each step's mask.

use super::{grid, launched};
use crate::backend::cuda::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::kernels::ClockWord;
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
    // The kernel mixes the step (from the clock) into the key as `dropout::mask_key` does.
    let stream_prefix = rng::stream_prefix(ctx.seed, rng::stream::DROPOUT);
    let clock = be.hold_clock(&[(ClockWord::DropoutStep, ctx.step)])?;
    let scale = (1.0 / (1.0 - p)) as f32;
    let first = dropout::first_element(x.shape.dims(), ctx);
    let cfg = grid(n as usize);
    let (o, x) = (out.slice(), x.slice());
    launched(
        be.kernels
            .dropout_f32(&be.stream, cfg, o, x, n, first, stream_prefix, key, clock, p, scale),
    )
}
