//! A model placed on the CPU: parameters in a [`Session`], the optimizer's state beside
//! them, loss scaling by [`LossScaler`]'s rules on the host. Reading a loss costs
//! nothing here, so a non-finite loss stops the run at its own step.

use super::Buffer;
use super::{run_updating, run_with, CpuOptimizer, InBackward, Session};
use crate::autodiff::LOSS_SCALE_INPUT;
use crate::backend::device::{Batch, EpochSums, PlacedModel, StateTensor};
use crate::backend::Precision;
use crate::data::{augment::Shift, Dataset};
use crate::dist::{group::StepShare, Group};
use crate::exec::{ExecError, Parameters, Program};
use crate::memory::Category;
use crate::ops::RunContext;
use crate::optim::{LossScaler, OptimizerConfig};
use ndarray::{Array1, Array2, ArrayD};

pub struct CpuModel {
    pub(super) session: Session<f32>,
    pub(super) optimizer: CpuOptimizer<f32>,
    /// Dynamic loss scaling, when training with it.
    pub(super) scaler: Option<LossScaler>,
    /// Matrix products' operand rounding (`--dtype`).
    pub(super) precision: Precision,
    /// What the steps since it was last taken add up to.
    pub(super) sums: EpochSums,
    pub(super) last_loss: f32,
}

impl CpuModel {
    /// What `program` binds for a host batch.
    fn inputs(&self, program: &Program, x: Array2<f32>, y: Array1<f32>) -> Vec<(&'static str, ArrayD<f32>)> {
        let mut inputs = vec![("x", x.into_dyn()), ("labels", y.into_dyn())];
        if program.loss_scaled {
            let scale = self.scaler.as_ref().map_or(1.0, |s| s.scale);
            inputs.push((LOSS_SCALE_INPUT, ArrayD::from_elem(vec![], scale)));
        }
        inputs
    }

    /// Runs `program` on a host batch.
    fn run(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<Vec<Buffer<f32>>, ExecError> {
        let inputs = self.inputs(program, x, y);
        let (graph, schedule) = (program.graph, program.schedule);
        Ok(run_with(graph, schedule, &self.session, inputs, ctx, self.precision)?.outputs)
    }

    /// A step whose schedule updates the parameters inside backward: its `(loss, correct)`,
    /// the global batch's in a data-parallel job (`dp`).
    fn train_in_backward(
        &mut self,
        program: &Program,
        (x, y): (Array2<f32>, Array1<f32>),
        ctx: &RunContext,
        lr: f64,
        dp: Option<(&Group, StepShare)>,
    ) -> Result<(f32, f32), ExecError> {
        if self.scaler.is_some() {
            return Err(ExecError::State(
                crate::optim::loss_scale::NO_UPDATES_INSIDE_BACKWARD.into(),
            ));
        }
        let rows = x.nrows();
        let inputs = self.inputs(program, x, y);
        let tracker = self.session.tracker().clone();
        let counted = |a: ArrayD<f32>| Buffer::new(&tracker, Category::Temporaries, a);
        // No rows of this (small, last) batch: zero gradients in the schedule's update order.
        let zeros = match rows {
            0 => super::super::update_order(program)
                .into_iter()
                .map(|n| Ok((self.zero_gradient(&n)?, n)))
                .collect::<Result<Vec<_>, ExecError>>()?,
            _ => Vec::new(),
        };
        let mut updates = InBackward::new(&mut self.session, &mut self.optimizer, lr, dp);
        let (loss, correct) = if rows == 0 {
            // Take part in every sum, in that order, with the zeros.
            let nothing = counted(ArrayD::zeros(vec![]))?;
            for (zero, name) in zeros {
                updates.update(&name, &mut counted(zero)?, &nothing)?;
            }
            (0.0, 0.0)
        } else {
            let (graph, schedule) = (program.graph, program.schedule);
            let o = run_updating(graph, schedule, &mut updates, &tracker, inputs, ctx, self.precision)?.outputs;
            (o[0].scalar(), o[1].scalar())
        };
        let loss = updates.loss.unwrap_or(loss);
        match dp {
            Some((group, _)) => Ok((loss, group.reduce_sum(correct)?)),
            None => Ok((loss, correct)),
        }
    }

    /// A zero gradient for parameter `name`: what a data-parallel rank with no rows adds.
    fn zero_gradient(&self, name: &str) -> Result<ArrayD<f32>, ExecError> {
        let p = self
            .session
            .param(name)
            .ok_or_else(|| ExecError::MissingParameter(name.to_string()))?;
        Ok(ArrayD::zeros(p.raw_dim()))
    }

    /// A step's loss (a mean over `weight` rows) and right answers, into the epoch's sums.
    fn add_to_sums(&mut self, loss: f32, correct: f32, weight: f64) {
        self.last_loss = loss;
        self.sums.loss += loss as f64 * weight;
        self.sums.correct += correct as f64;
    }

    /// One step on a host batch, alone or (`dp`) as one rank of a data-parallel job.
    fn train_step(
        &mut self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        lr: f64,
        dp: Option<(&Group, StepShare)>,
    ) -> Result<(), ExecError> {
        let Batch::Host(x, y) = batch else {
            return Err(ExecError::Device(
                "the CPU keeps no training set: give it host batches".into(),
            ));
        };
        // The loss is a mean over the global batch in a data-parallel step.
        let weight = dp.map_or(x.nrows(), |(_, share)| share.global_rows) as f64;
        if program.updates_in_backward {
            let (loss, correct) = self.train_in_backward(program, (x, y), ctx, lr, dp)?;
            self.add_to_sums(loss, correct, weight);
            return Ok(());
        }
        let n = program.params.len();
        let (mut loss, mut correct, mut grads) = if x.nrows() == 0 {
            // A rank with no rows of this (last, small) batch adds nothing to the sums.
            let grads = program
                .params
                .iter()
                .map(|n| self.zero_gradient(n))
                .collect::<Result<Vec<_>, ExecError>>()?;
            (0.0, 0.0, grads)
        } else {
            let mut o = self.run(program, x, y, ctx)?;
            let (loss, correct) = (o[0].scalar(), o[n + 1].scalar());
            let grads = o.drain(1..=n).map(|b| b.data).collect();
            (loss, correct, grads)
        };
        if let Some((group, share)) = dp {
            (loss, correct) = group.reduce_loss(share, loss, correct)?;
            for g in grads.iter_mut().filter(|g| !g.is_standard_layout()) {
                *g = g.as_standard_layout().into_owned();
            }
            let slices = grads.iter_mut().map(|g| g.as_slice_mut().expect("standard layout"));
            group.reduce_gradients(share, slices)?;
        }
        self.add_to_sums(loss, correct, weight);
        if !loss.is_finite() {
            return Ok(());
        }
        if let Some(scaler) = &mut self.scaler {
            let overflowed = grads.iter().any(|g| g.iter().any(|v| !v.is_finite()));
            let unscale = scaler.unscale();
            if !scaler.after_step(overflowed) {
                return Ok(());
            }
            for g in grads.iter_mut() {
                g.mapv_inplace(|v| v * unscale);
            }
        }
        let grads: Vec<(&str, &ArrayD<f32>)> = program.params.iter().map(String::as_str).zip(grads.iter()).collect();
        self.optimizer.step(&mut self.session, &grads, lr);
        Ok(())
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
        Ok(self.scaler.clone())
    }

    fn train(
        &mut self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        lr: f64,
        _step: u64,
    ) -> Result<(), ExecError> {
        self.train_step(program, batch, ctx, lr, None)
    }

    fn train_shard(
        &mut self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        lr: f64,
        _step: u64,
        group: &Group,
        share: StepShare,
    ) -> Result<(), ExecError> {
        self.train_step(program, batch, ctx, lr, Some((group, share)))
    }

    fn loss_is_free(&self) -> bool {
        true
    }

    fn last_loss(&self) -> Result<f32, ExecError> {
        Ok(self.last_loss)
    }

    fn first_nonfinite(&self) -> Result<Option<(u64, f32)>, ExecError> {
        // A trainer reads every CPU loss and stops at a non-finite one itself.
        Ok(None)
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
        let unscale = match (program.loss_scaled, &self.scaler) {
            (true, Some(s)) => s.unscale(),
            _ => 1.0,
        };
        Ok(out[1..=program.params.len()]
            .iter()
            .map(|g| g.data.mapv(|v| v * unscale))
            .collect())
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
