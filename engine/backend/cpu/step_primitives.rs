//! The step protocol's primitives on the CPU (`backend/step_protocol.rs`): everything on the
//! host, the guard included (guard.rs); a data-parallel rank's sums are the collective's,
//! done by the time they are started.

use super::{Buffer, Cpu, CpuModel};
use crate::backend::device::Batch;
use crate::backend::step_protocol::StepPrimitives;
use crate::dist::Group;
use crate::exec::{ExecError, ParameterAccess, Program};
use crate::kernels::GuardFlag;
use crate::memory::Category;
use crate::optim::clip::clip_factor;
use crate::tensor::DType;
use ndarray::ArrayD;
use std::sync::Arc;

impl StepPrimitives for CpuModel {
    type Backend = Cpu<f32>;

    fn backend(&self) -> Arc<Cpu<f32>> {
        Arc::new(Cpu::with_precision(self.session.tracker().clone(), self.precision))
    }

    fn bind_batch(&self, program: &Program, batch: Batch) -> Result<Vec<(&'static str, ArrayD<f32>)>, ExecError> {
        let Batch::Host(x, y) = batch else {
            return Err(ExecError::Device(
                "the CPU keeps no training set: give it host batches".into(),
            ));
        };
        if program.graph.dtype() != DType::F32 {
            return Err(ExecError::DType {
                graph: program.graph.dtype(),
                session: DType::F32,
            });
        }
        self.inputs(program, x, y)
    }

    fn parameter(&self, name: &str) -> Option<&Buffer<f32>> {
        self.session.get_param(name)
    }

    fn zeros_for_no_rows(&self, program: &Program) -> Result<Vec<Buffer<f32>>, ExecError> {
        let zeros = |shape: &[usize]| -> Result<Buffer<f32>, ExecError> {
            Ok(self.session.allocate(Category::Temporaries, ArrayD::zeros(shape))?)
        };
        let mut out = vec![zeros(&[])?];
        for name in program.params {
            let p = self
                .session
                .param(name)
                .ok_or_else(|| ExecError::MissingParameter(name.clone()))?;
            out.push(zeros(p.shape())?);
        }
        out.push(zeros(&[])?);
        Ok(out)
    }

    fn scale_in_place(&self, t: &mut Buffer<f32>, factor: f32) -> Result<(), ExecError> {
        t.data.mapv_inplace(|v| v * factor);
        Ok(())
    }

    fn start_sum(&self, group: &Group, t: &mut Buffer<f32>) -> Result<(), ExecError> {
        if !t.data.is_standard_layout() {
            t.data = t.data.as_standard_layout().into_owned();
        }
        let values = t.data.as_slice_mut().expect("standard layout");
        Ok(group.collective.all_reduce_sum(values)?)
    }

    fn wait_for_sums(&self, _group: &Group) -> Result<(), ExecError> {
        // Every sum is done by the time start_sum returns.
        Ok(())
    }

    fn flag_nonfinite(&mut self, t: &Buffer<f32>, flag: GuardFlag) -> Result<(), ExecError> {
        self.guard.flag_nonfinite(&t.data, flag);
        Ok(())
    }

    fn loss_scaled(&self) -> bool {
        self.guard.scaler.is_some()
    }

    fn clips_gradients(&self) -> bool {
        self.optimizer.config.clip_grad_norm.is_some()
    }

    /// Squares summed in f64, each gradient in order, then the factor (optim/clip.rs).
    fn clip_gradients(&mut self, grads: &mut [Buffer<f32>]) -> Result<(), ExecError> {
        let Some(max_norm) = self.optimizer.config.clip_grad_norm else {
            return Ok(());
        };
        let squares: f64 = grads
            .iter()
            .map(|g| g.data.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>())
            .sum();
        let scale = self.guard.scaler.as_ref().map_or(1.0, |s| f64::from(s.scale));
        let factor = clip_factor(squares, scale, max_norm);
        for g in grads {
            g.data.mapv_inplace(|v| v * factor);
        }
        Ok(())
    }

    fn apply_update(&mut self, name: &str, grad: &mut Buffer<f32>, lr: f64) -> Result<(), ExecError> {
        if self.guard.skips_update() {
            return Ok(());
        }
        if let Some(scaler) = &self.guard.scaler {
            let unscale = scaler.unscale();
            grad.data.mapv_inplace(|v| v * unscale);
        }
        self.optimizer.update_one(&mut self.session, name, &grad.data, lr);
        Ok(())
    }

    fn keep_buffer(&mut self, name: &str, value: &Buffer<f32>) -> Result<(), ExecError> {
        if self.guard.loss_was_nonfinite() {
            return Ok(());
        }
        let slot = self
            .session
            .param_mut(name)
            .filter(|b| b.shape() == value.data.shape())
            .ok_or_else(|| ExecError::MissingParameter(name.to_string()))?;
        // In place: no buffer the plan does not count.
        slot.assign(&value.data);
        Ok(())
    }

    fn close_step(&mut self, loss: Buffer<f32>, correct: Buffer<f32>, rows: usize, step: u64) -> Result<(), ExecError> {
        let (loss, correct) = (loss.scalar(), correct.scalar());
        if self.guard.close_step(loss, step) {
            self.optimizer.count_update();
        }
        self.last_loss = loss;
        self.sums.loss += loss as f64 * rows as f64;
        self.sums.correct += correct as f64;
        Ok(())
    }
}
