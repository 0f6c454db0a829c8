//! A model placed on the CPU: parameters in a [`Session`], the optimizer's state beside
//! them, the step guard and loss scaling by [`LossScaler`]'s rules on the host. Its
//! training step is the shared protocol (`backend/step_protocol.rs`) on the primitives
//! of step_primitives.rs.

use super::guard::HostGuard;
use super::{run_with, Buffer, CpuOptimizer, Session};
use crate::autodiff::LOSS_SCALE_INPUT;
use crate::backend::device::{EpochSums, PlacedModel, StateTensor, TrainingStep};
use crate::backend::step_protocol;
use crate::backend::Precision;
use crate::data::{augment::Shift, Dataset};
use crate::exec::{ExecError, Program};
use crate::ops::RunContext;
use crate::optim::{LossScaler, OptimizerConfig};
use ndarray::{Array1, Array2, ArrayD};

pub struct CpuModel {
    pub(super) session: Session<f32>,
    pub(super) optimizer: CpuOptimizer<f32>,
    /// Skips flagged updates, records the first non-finite loss, holds the loss scale.
    pub(super) guard: HostGuard,
    /// Matrix products' operand rounding (`--dtype`).
    pub(super) precision: Precision,
    /// What the steps since it was last taken add up to.
    pub(super) sums: EpochSums,
    pub(super) last_loss: f32,
}

impl CpuModel {
    /// What `program` binds for a host batch.
    pub(super) fn inputs(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
    ) -> Result<Vec<(&'static str, ArrayD<f32>)>, ExecError> {
        let mut inputs = vec![("x", x.into_dyn()), ("labels", program.labels_input(y)?)];
        if program.loss_scaled {
            let scale = self.guard.scaler.as_ref().map_or(1.0, |s| s.scale);
            inputs.push((LOSS_SCALE_INPUT, ArrayD::from_elem(vec![], scale)));
        }
        Ok(inputs)
    }

    /// Runs `program` on a host batch.
    fn run(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<Vec<Buffer<f32>>, ExecError> {
        let inputs = self.inputs(program, x, y)?;
        let (graph, schedule) = (program.graph, program.schedule);
        Ok(run_with(graph, schedule, &self.session, inputs, ctx, self.precision)?.outputs)
    }
}

impl PlacedModel for CpuModel {
    fn param(&self, name: &str) -> Result<Option<ArrayD<f32>>, ExecError> {
        Ok(self.session.param(name).cloned())
    }

    fn set_param(&mut self, name: &str, value: &ArrayD<f32>) -> Result<(), ExecError> {
        Ok(self.session.set_param(name, value.clone())?)
    }

    fn optimizer_config(&self) -> &OptimizerConfig {
        &self.optimizer.config
    }

    fn optimizer_state(&self) -> Result<Vec<StateTensor>, ExecError> {
        Ok(self
            .optimizer
            .state()
            .into_iter()
            .map(|(p, n, d)| (p.to_string(), n, d.clone()))
            .collect())
    }

    fn set_optimizer_state(&mut self, param: &str, name: &str, value: &ArrayD<f32>) -> Result<(), ExecError> {
        let slot = self
            .optimizer
            .state_mut(param, name)
            .filter(|s| s.shape() == value.shape())
            .ok_or_else(|| super::super::no_such_state(param, name, value))?;
        slot.assign(value);
        Ok(())
    }

    fn set_applied_updates(&mut self, updates: u64) -> Result<(), ExecError> {
        self.optimizer.steps = updates;
        Ok(())
    }

    fn loss_scaler(&self) -> Result<Option<LossScaler>, ExecError> {
        Ok(self.guard.scaler.clone())
    }

    fn train(&mut self, step: TrainingStep) -> Result<(), ExecError> {
        step_protocol::train(self, step)
    }

    fn last_loss(&self) -> Result<f32, ExecError> {
        Ok(self.last_loss)
    }

    fn first_nonfinite(&self) -> Result<Option<(u64, f32)>, ExecError> {
        Ok(self.guard.first_nonfinite)
    }

    fn take_epoch_sums(&mut self) -> Result<EpochSums, ExecError> {
        Ok(std::mem::take(&mut self.sums))
    }

    fn gradients(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<Vec<ArrayD<f32>>, ExecError> {
        let out = self.run(program, x, y, ctx)?;
        let unscale = match (program.loss_scaled, &self.guard.scaler) {
            (true, Some(s)) => s.unscale(),
            _ => 1.0,
        };
        let gradients = out[1..=program.params.len()]
            .iter()
            .map(|g| g.data.mapv(|v| v * unscale));
        let buffers = out[program.first_buffer_output()..].iter().map(|b| b.data.clone());
        Ok(gradients.chain(buffers).collect())
    }

    fn evaluate(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<(Vec<Option<usize>>, f32), ExecError> {
        let out = self.run(program, x, y, ctx)?;
        let loss = out[1].scalar();
        let logits = out[0]
            .data
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| ExecError::State(format!("logits of shape {:?}: {e}", out[0].data.shape())))?;
        let predicted = logits
            .rows()
            .into_iter()
            .map(|row| crate::ops::loss::argmax(row.iter().copied()))
            .collect();
        Ok((predicted, loss))
    }

    fn infer(&self, program: &Program, x: Array2<f32>, ctx: &RunContext) -> Result<ArrayD<f32>, ExecError> {
        let inputs = vec![("x", x.into_dyn())];
        let mut out = run_with(
            program.graph,
            program.schedule,
            &self.session,
            inputs,
            ctx,
            self.precision,
        )?
        .outputs;
        Ok(out.remove(0).data)
    }

    fn hold_training_set(&mut self, _data: &Dataset, _shift: Option<&Shift>) -> Result<bool, ExecError> {
        Ok(false)
    }

    fn start_epoch(&mut self, _rows: &[usize], _offsets: &[(isize, isize)]) -> Result<(), ExecError> {
        Ok(())
    }
}
