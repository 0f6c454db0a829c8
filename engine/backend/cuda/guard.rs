//! The step guard on the device (kernels/guard.cu): flags a step whose loss is not finite
//! or, under dynamic loss scaling, whose gradients overflowed; the optimizer kernels then
//! skip the update, and the loss scale moves, all without the host reading anything. The
//! host reads the guard only when it reports (a logged step, an epoch's end, a save).

use super::launch::{grid, launched};
use super::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::kernels::{ClockWord, GuardFlag, GuardWord};
use crate::memory::Category;
use crate::optim::loss_scale::{LossScaler, MAX_LOSS_SCALE, MIN_LOSS_SCALE};
use crate::tensor::Shape;
use cudarc::driver::CudaSlice;

pub struct StepGuard {
    /// The loss scale (1 without loss scaling): the optimizer kernels divide it out, and a
    /// scaled backward is seeded with a copy of it.
    pub scale: DeviceTensor,
    /// One int per [`GuardWord`] (kernels/common.cuh says what each holds).
    status: CudaSlice<i32>,
    /// Dynamic loss scaling (f16) or a fixed scale of 1.
    pub dynamic: bool,
    growth_interval: i32,
}

/// What the guard has seen, read back from the device.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardReport {
    /// The first step whose loss was not finite, and that loss.
    pub nonfinite: Option<(u64, f32)>,
    pub scaler: LossScaler,
}

impl StepGuard {
    /// A guard starting from `scaler` when `dynamic`, else with the scale fixed at 1.
    pub fn new(be: &CudaBackend, dynamic: bool, scaler: &LossScaler) -> Result<Self, ExecError> {
        let value = if dynamic { scaler.scale } else { 1.0 };
        let scale = be.upload(
            &ndarray::ArrayD::from_elem(Shape::scalar().dims(), value),
            Category::OptimizerState,
        )?;
        let clean = if dynamic { scaler.clean_steps as i32 } else { 0 };
        let mut words = [0; GuardWord::Words as usize];
        words[GuardWord::CleanSteps as usize] = clean;
        let status = be.stream.clone_htod(&words).map_err(driver_err)?;
        Ok(StepGuard {
            scale,
            status,
            dynamic,
            growth_interval: scaler.growth_interval.max(1) as i32,
        })
    }

    pub fn status(&self) -> &CudaSlice<i32> {
        &self.status
    }

    /// Sets how many updates have been applied (Adam's bias corrections count them): a
    /// resumed run's.
    pub fn set_applied(&mut self, be: &CudaBackend, updates: u64) -> Result<(), ExecError> {
        let n = i32::try_from(updates)
            .map_err(|_| ExecError::Device(format!("{updates} updates do not fit the step guard")))?;
        let at = GuardWord::Updates as usize;
        let mut slot = self.status.slice_mut(at..at + 1);
        be.stream.memcpy_htod(&[n], &mut slot).map_err(driver_err)
    }

    /// Sets `flag` for this step if any element of `t` is NaN or infinite.
    pub fn flag_nonfinite(&self, be: &CudaBackend, t: &DeviceTensor, flag: GuardFlag) -> Result<(), ExecError> {
        let n = t.len() as i64;
        launched(
            be.kernels
                .flag_nonfinite_f32(&be.stream, grid(t.len()), &self.status, t.slice(), n, flag),
        )
    }

    /// `dst = src` unless this step's loss was not finite (a buffer's next value).
    pub fn keep_unless_nonfinite(
        &self,
        be: &CudaBackend,
        dst: &DeviceTensor,
        src: &DeviceTensor,
    ) -> Result<(), ExecError> {
        let n = src.len();
        launched(be.kernels.keep_unless_nonfinite_f32(
            &be.stream,
            grid(n),
            dst.slice(),
            src.slice(),
            n as i64,
            &self.status,
        ))
    }

    /// Closes step `step` (1-based) after its updates: records a non-finite loss, moves the scale.
    pub fn close_step(&self, be: &CudaBackend, loss: &DeviceTensor, step: u64) -> Result<(), ExecError> {
        let (k, cfg) = (&be.kernels, grid(1));
        let (dynamic, interval) = (i32::from(self.dynamic), self.growth_interval);
        let clock = be.hold_clock(&[(ClockWord::GuardStep, step)])?;
        launched(k.guard_update(
            &be.stream,
            cfg,
            self.scale.slice(),
            &self.status,
            loss.slice(),
            dynamic,
            interval,
            clock,
            MIN_LOSS_SCALE,
            MAX_LOSS_SCALE,
        ))
    }

    /// Reads the guard back (waits for the device).
    pub fn read(&self, be: &CudaBackend) -> Result<GuardReport, ExecError> {
        let s = be.download_i32(&self.status)?;
        let scale = be.download_scalar(&self.scale)?;
        let word = |w: GuardWord| s[w as usize];
        let first_nonfinite = word(GuardWord::NonfiniteStep);
        Ok(GuardReport {
            nonfinite: (first_nonfinite != 0).then(|| {
                let loss = f32::from_bits(word(GuardWord::NonfiniteLoss) as u32);
                (first_nonfinite as u64, loss)
            }),
            scaler: LossScaler {
                scale,
                growth_interval: self.growth_interval as u32,
                clean_steps: word(GuardWord::CleanSteps).max(0) as u32,
                skipped: word(GuardWord::Skipped).max(0) as u64,
            },
        })
    }
}
