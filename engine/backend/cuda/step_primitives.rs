//! The step protocol's primitives on a GPU (`backend/step_protocol.rs`): each one launches
//! on the stream and reads nothing back, so a step can be captured whole (step_graph.rs).
//! The guard's flags and verdict are kernels (guard.rs), the updates one fused kernel per
//! parameter that obeys them (optimizer.rs), a data-parallel rank's sums NCCL's
//! (data_parallel.rs).

use super::model::GpuModel;
use super::ops::arith;
use super::{data_parallel, ops_launch, optimizer, CudaBackend, DeviceTensor};
use crate::autodiff::LOSS_SCALE_INPUT;
use crate::backend::device::Batch;
use crate::backend::step_protocol::StepPrimitives;
use crate::dist::Group;
use crate::exec::{Backend, ExecError, Program};
use crate::kernels::GuardFlag;
use crate::memory::Category;
use crate::plan::Storage;
use crate::tensor::Shape;
use std::sync::Arc;

impl StepPrimitives for GpuModel {
    type Backend = CudaBackend;

    fn backend(&self) -> Arc<CudaBackend> {
        self.be.clone()
    }

    fn bind_batch(&self, program: &Program, batch: Batch) -> Result<Vec<(&'static str, DeviceTensor)>, ExecError> {
        let be = &self.be;
        // A batch only 16-bit products read is gathered or uploaded in 16 bits.
        let storage = program.input_storage("x");
        let (x, y) = match batch {
            Batch::Host(x, y) => (
                match storage {
                    Storage::Half => be.upload_half(&x.into_dyn(), Category::Temporaries)?,
                    Storage::F32 => be.upload(&x.into_dyn(), Category::Temporaries)?,
                },
                be.upload(&program.labels_input(y)?, Category::Temporaries)?,
            ),
            Batch::Held { start, len } => match &self.held {
                Some(data) => data.gather(start, len, storage)?,
                None => return Err(ExecError::Device("a held batch without a held training set".into())),
            },
        };
        let mut inputs = vec![("x", x), ("labels", y)];
        if program.loss_scaled {
            // A device-to-device copy: the scale never visits the host.
            inputs.push((
                LOSS_SCALE_INPUT,
                be.duplicate(&self.guard.scale, Category::Temporaries)?,
            ));
        }
        Ok(inputs)
    }

    fn parameter(&self, name: &str) -> Option<&DeviceTensor> {
        self.params.get(name)
    }

    fn zeros_for_no_rows(&self, program: &Program) -> Result<Vec<DeviceTensor>, ExecError> {
        let zero = |shape: &Shape| -> Result<DeviceTensor, ExecError> {
            let mut t = self.be.alloc(shape, Category::Temporaries)?;
            ops_launch::zero(&self.be, &mut t)?;
            Ok(t)
        };
        let scalar = Shape::new(&[]);
        let mut out = vec![zero(&scalar)?];
        for name in program.params {
            let p = self
                .params
                .get(name)
                .ok_or_else(|| ExecError::MissingParameter(name.clone()))?;
            out.push(zero(&p.shape)?);
        }
        out.push(zero(&scalar)?);
        Ok(out)
    }

    fn scale_in_place(&self, t: &mut DeviceTensor, factor: f32) -> Result<(), ExecError> {
        arith::scale_in_place(&self.be, t, factor)
    }

    fn start_sum(&self, group: &Group, t: &mut DeviceTensor) -> Result<(), ExecError> {
        data_parallel::start_sum(group, t)
    }

    fn wait_for_sums(&self, group: &Group) -> Result<(), ExecError> {
        data_parallel::wait(group)
    }

    fn flag_nonfinite(&mut self, t: &DeviceTensor, flag: GuardFlag) -> Result<(), ExecError> {
        self.guard.flag_nonfinite(&self.be, t, flag)
    }

    fn loss_scaled(&self) -> bool {
        self.guard.dynamic
    }

    fn clips_gradients(&self) -> bool {
        self.clip.is_some()
    }

    fn clip_gradients(&mut self, grads: &mut [DeviceTensor]) -> Result<(), ExecError> {
        match &self.clip {
            Some(clip) => clip.clip(&self.be, grads, &self.guard.scale),
            None => Ok(()),
        }
    }

    fn apply_update(&mut self, name: &str, grad: &mut DeviceTensor, lr: f64) -> Result<(), ExecError> {
        let (Some(p), Some(state)) = (self.params.get_mut(name), self.state.get_mut(name)) else {
            return Err(ExecError::MissingParameter(name.to_string()));
        };
        // The kernel skips the update when the guard flags the step.
        optimizer::step(&self.be, &self.config, lr, p, grad, state, &self.guard)
    }

    fn keep_buffer(&mut self, name: &str, value: &DeviceTensor) -> Result<(), ExecError> {
        let buffer = self
            .params
            .get(name)
            .filter(|b| b.shape == value.shape)
            .ok_or_else(|| ExecError::MissingParameter(name.to_string()))?;
        // A kernel that reads the guard, so a captured step replays it as it is.
        self.guard.keep_unless_nonfinite(&self.be, buffer, value)
    }

    fn close_step(
        &mut self,
        loss: DeviceTensor,
        correct: DeviceTensor,
        rows: usize,
        step: u64,
    ) -> Result<(), ExecError> {
        let be = &self.be;
        self.guard.close_step(be, &loss, step)?;
        ops_launch::accumulate(be, &mut self.loss_sum, &loss, rows as f32)?;
        ops_launch::accumulate(be, &mut self.correct_sum, &correct, 1.0)?;
        // Into a buffer of the model's own: the step's own buffers are the step's (a
        // captured step's are its graph's).
        let last = self.last_loss.0.slice_mut();
        be.stream().memcpy_dtod(loss.slice(), last).map_err(super::driver_err)?;
        self.last_loss.1 = true;
        Ok(())
    }
}
