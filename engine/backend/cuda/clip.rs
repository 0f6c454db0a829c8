//! Gradient clipping by global norm on the device (kernels/clip.cu; the rule is
//! optim/clip.rs's): a slot per gradient for its sum of squares and the factor, allocated
//! once where the model is placed, so a step allocates nothing for it and a captured step
//! replays it as it is.

use super::launch::{grid, launched, single_block};
use super::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::memory::Category;
use cudarc::driver::CudaSlice;

/// Threads of the squares-sum block (`CLIP_THREADS` in kernels/clip.cu).
const CLIP_THREADS: u32 = 512;

pub struct GradientClip {
    max_norm: f64,
    /// One f64 sum of squares per gradient of a step.
    slots: CudaSlice<f64>,
    /// The step's factor.
    factor: DeviceTensor,
}

impl GradientClip {
    /// Room for `gradients` gradients a step, clipped to `max_norm`.
    pub fn new(be: &CudaBackend, max_norm: f64, gradients: usize) -> Result<Self, ExecError> {
        Ok(GradientClip {
            max_norm,
            slots: be.stream.alloc_zeros::<f64>(gradients.max(1)).map_err(driver_err)?,
            factor: be.upload(&ndarray::ArrayD::zeros(vec![]), Category::OptimizerState)?,
        })
    }

    /// Multiplies every one of `grads` by the factor of their global norm; `scale` is the
    /// loss scale they carry.
    pub fn clip(&self, be: &CudaBackend, grads: &mut [DeviceTensor], scale: &DeviceTensor) -> Result<(), ExecError> {
        if grads.len() > self.slots.len() {
            return Err(ExecError::Device(format!(
                "{} gradients to clip, room for {}",
                grads.len(),
                self.slots.len()
            )));
        }
        let k = &be.kernels;
        for (i, g) in grads.iter().enumerate() {
            let slot = self.slots.slice(i..i + 1);
            launched(k.squares_sum_f32(&be.stream, single_block(CLIP_THREADS), &slot, g.slice(), g.len() as i64))?;
        }
        launched(k.clip_factor_f32(
            &be.stream,
            single_block(1),
            self.factor.slice(),
            &self.slots,
            grads.len() as i32,
            scale.slice(),
            self.max_norm,
        ))?;
        for g in grads.iter_mut() {
            let n = g.len();
            launched(k.scale_by_factor_f32(&be.stream, grid(n), g.slice(), n as i64, self.factor.slice()))?;
        }
        Ok(())
    }
}
