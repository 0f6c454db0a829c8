//! A model placed on one GPU: parameters and optimizer state there, the step guard and the
//! epoch's loss sum there too, so a step reads nothing back; a training set held there
//! feeds [`Batch::Held`] batches.

use super::dataset::{DeviceDataset, EpochRows};
use super::guard::{StepGuard, FLAG_NONFINITE_LOSS, FLAG_OVERFLOW};
use super::{data_parallel, ops_launch, optim, CudaBackend, DeviceTensor};
use crate::autodiff::LOSS_SCALE_INPUT;
use crate::backend::device::{Batch, EpochSums, PlacedModel, StateTensor};
use crate::data::{augment::Shift, Dataset};
use crate::dist::{group::StepShare, Group};
use crate::exec::{self, Backend, ExecError, Parameters, Program};
use crate::memory::Category;
use crate::ops::RunContext;
use crate::optim::{LossScaler, OptimizerConfig};
use crate::plan::Storage;
use ndarray::{Array1, Array2, ArrayD};
use std::collections::HashMap;
use std::sync::Arc;

pub struct GpuModel {
    be: Arc<CudaBackend>,
    params: HashMap<String, DeviceTensor>,
    state: HashMap<String, Vec<DeviceTensor>>,
    config: OptimizerConfig,
    /// Skips flagged updates and holds the loss scale, on the device.
    guard: StepGuard,
    /// Sum of batch · loss since it was last taken, on the device.
    loss_sum: DeviceTensor,
    /// Rows classified right since it was last taken, on the device.
    correct_sum: DeviceTensor,
    last_loss: Option<DeviceTensor>,
    /// The training set and this epoch's order, when held here.
    held: Option<(DeviceDataset, Option<EpochRows>)>,
}

impl GpuModel {
    pub fn new(
        be: &Arc<CudaBackend>,
        config: &OptimizerConfig,
        params: Vec<(String, ArrayD<f32>)>,
        scaler: Option<LossScaler>,
    ) -> Result<Self, ExecError> {
        let mut gpu = GpuModel {
            be: be.clone(),
            params: HashMap::new(),
            state: HashMap::new(),
            config: config.clone(),
            guard: StepGuard::new(be, scaler.is_some(), &scaler.clone().unwrap_or_default())?,
            loss_sum: be.upload(&ArrayD::zeros(vec![]), Category::OptimizerState)?,
            correct_sum: be.upload(&ArrayD::zeros(vec![]), Category::OptimizerState)?,
            last_loss: None,
            held: None,
        };
        for (name, v) in params {
            let zeros = ArrayD::<f32>::zeros(v.raw_dim());
            let state = config
                .state_names()
                .iter()
                .map(|_| be.upload(&zeros, Category::OptimizerState))
                .collect::<Result<Vec<_>, _>>()?;
            let param = be.with_twin(be.upload(&v, Category::Parameters)?)?;
            gpu.params.insert(name.clone(), param);
            gpu.state.insert(name, state);
        }
        Ok(gpu)
    }

    /// Runs `program` on `batch`; outputs stay on the device.
    fn run(&self, program: &Program, batch: Batch, ctx: &RunContext) -> Result<Vec<DeviceTensor>, ExecError> {
        let inputs = self.inputs(program, batch)?;
        let be = &self.be;
        Ok(exec::run_on(be.as_ref(), program.graph, program.schedule, &self.params, inputs, ctx)?.outputs)
    }

    /// A step whose schedule updates the parameters inside backward: its `(loss, correct)`
    /// (the global batch's in a data-parallel job, `dp`), the loss flagged in the step guard
    /// whether or not an update ran to flag it.
    fn run_updating(
        &mut self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        lr: f64,
        dp: Option<(&Group, StepShare)>,
    ) -> Result<(DeviceTensor, DeviceTensor), ExecError> {
        if self.guard.dynamic {
            return Err(ExecError::State(
                "updates inside backward cannot be combined with loss scaling".into(),
            ));
        }
        let be = self.be.clone();
        let (rows, order) = (batch.len(), crate::backend::update_order(program));
        // Zeros stand in for a rank's outputs when it has no rows (and only then).
        let (nothing, inputs) = match rows {
            0 => (self.nothing_to_add(program)?, Vec::new()),
            _ => (Vec::new(), self.inputs(program, batch)?),
        };
        let mut updates = optim::InBackward {
            be: &be,
            params: &mut self.params,
            state: &mut self.state,
            config: &self.config,
            lr,
            guard: &self.guard,
            loss_checked: false,
            dp,
            global_loss: None,
        };
        let (loss, mut correct) = if rows == 0 {
            // No rows of this (small, last) batch: take part in every sum, in the schedule's
            // order, with zeros (`nothing` holds a zero loss, gradient and count per output).
            let mut nothing = nothing.into_iter();
            let (loss, mut grads) = (nothing.next().expect("a loss"), nothing.collect::<Vec<_>>());
            let correct = grads.pop().expect("a count");
            for name in &order {
                let at = program.params.iter().position(|p| p == name).expect("a parameter");
                updates.update(name, &mut grads[at], &loss)?;
            }
            (loss, correct)
        } else {
            let mut o = exec::run_updating(be.as_ref(), program.graph, program.schedule, &mut updates, inputs, ctx)?;
            (o.outputs.remove(0), o.outputs.remove(0))
        };
        let checked = updates.loss_checked;
        let loss = updates.global_loss.take().unwrap_or(loss);
        if !checked {
            self.guard.flag_nonfinite(&be, &loss, FLAG_NONFINITE_LOSS)?;
        }
        if let Some((group, _)) = dp {
            // The loss was summed at the first update; the right answers remain.
            data_parallel::sum_count(group, &mut correct)?;
        }
        Ok((loss, correct))
    }

    /// What `program` binds for `batch`.
    fn inputs(&self, program: &Program, batch: Batch) -> Result<Vec<(&'static str, DeviceTensor)>, ExecError> {
        let be = &self.be;
        // A batch only 16-bit products read is gathered or uploaded in 16 bits.
        let storage = program.input_storage("x");
        let (x, y) = match batch {
            Batch::Host(x, y) => (
                match storage {
                    Storage::Half => be.upload_half(&x.into_dyn(), Category::Temporaries)?,
                    Storage::F32 => be.upload(&x.into_dyn(), Category::Temporaries)?,
                },
                be.upload(&y.into_dyn(), Category::Temporaries)?,
            ),
            Batch::Held { start, len } => match &self.held {
                Some((data, Some(epoch))) => data.gather(epoch, start, len, storage)?,
                _ => return Err(ExecError::Device("a held batch before start_epoch".into())),
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

    /// One step, alone or (`dp`) as one rank of a data-parallel job whose gradients, loss
    /// and right answers NCCL sums on the stream before the guard and the update see them.
    fn train_step(
        &mut self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        lr: f64,
        step: u64,
        dp: Option<(&Group, StepShare)>,
    ) -> Result<(), ExecError> {
        let weight = dp.map_or(batch.len(), |(_, share)| share.global_rows) as f32;
        let be = self.be.clone();
        if program.updates_in_backward {
            let (loss, correct) = self.run_updating(program, batch, ctx, lr, dp)?;
            return self.close_step(loss, correct, weight, step);
        }
        let mut o = match dp {
            None => self.run(program, batch, ctx)?,
            Some((group, share)) => self.run_shard(program, batch, ctx, group, share)?,
        };
        let loss = o.remove(0);
        let correct = o.pop().expect("a training program counts its correct rows last");
        self.guard.flag_nonfinite(&be, &loss, FLAG_NONFINITE_LOSS)?;
        if self.guard.dynamic {
            for grad in &o {
                self.guard.flag_nonfinite(&be, grad, FLAG_OVERFLOW)?;
            }
        }
        for (name, grad) in program.params.iter().zip(&o) {
            let (Some(p), Some(state)) = (self.params.get_mut(name), self.state.get_mut(name)) else {
                return Err(ExecError::MissingParameter(name.clone()));
            };
            optim::step(&be, &self.config, lr, p, grad, state, &self.guard)?;
        }
        self.close_step(loss, correct, weight, step)
    }

    /// The end of every step: the guard closes it, its loss (times `weight` rows) and right
    /// answers join the epoch's sums, and its loss is the last one.
    fn close_step(
        &mut self,
        loss: DeviceTensor,
        correct: DeviceTensor,
        weight: f32,
        step: u64,
    ) -> Result<(), ExecError> {
        let be = &self.be;
        self.guard.close_step(be, &loss, step)?;
        ops_launch::accumulate(be, &mut self.loss_sum, &loss, weight)?;
        ops_launch::accumulate(be, &mut self.correct_sum, &correct, 1.0)?;
        self.last_loss = Some(loss);
        Ok(())
    }

    /// This rank's part of a data-parallel step: its outputs with every gradient, the loss
    /// and the right answers summed over the ranks, each gradient's sum started as backward
    /// makes it final. A rank with no rows starts its zeros' sums in the same order.
    fn run_shard(
        &self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        group: &Group,
        share: StepShare,
    ) -> Result<Vec<DeviceTensor>, ExecError> {
        let be = self.be.as_ref();
        let mut o = if batch.is_empty() {
            let mut o = self.nothing_to_add(program)?;
            let gradients = 1..=program.params.len();
            for k in exec::output_ready_points(program.graph, program.schedule)
                .into_iter()
                .flatten()
            {
                if gradients.contains(&k) {
                    data_parallel::start_mean(be, group, share, &mut o[k])?;
                }
            }
            o
        } else {
            let inputs = self.inputs(program, batch)?;
            let mut listening = data_parallel::Overlapping {
                params: &self.params,
                be,
                group,
                share,
                gradients: program.params.len(),
            };
            exec::run_updating(be, program.graph, program.schedule, &mut listening, inputs, ctx)?.outputs
        };
        data_parallel::finish(be, group, share, &mut o)?;
        Ok(o)
    }

    /// A rank's outputs for a step it has no rows of: loss 0, zero gradients, 0 right.
    fn nothing_to_add(&self, program: &Program) -> Result<Vec<DeviceTensor>, ExecError> {
        let zero = |shape: &crate::tensor::Shape| -> Result<DeviceTensor, ExecError> {
            let mut t = self.be.alloc(shape, Category::Temporaries)?;
            ops_launch::zero(&self.be, &mut t)?;
            Ok(t)
        };
        let scalar = crate::tensor::Shape::new(&[]);
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
}

impl PlacedModel for GpuModel {
    fn param(&self, name: &str) -> Result<Option<ArrayD<f32>>, ExecError> {
        self.params.get(name).map(|t| self.be.download(t)).transpose()
    }

    fn set_param(&mut self, name: &str, value: &ArrayD<f32>) -> Result<(), ExecError> {
        let t = self.be.with_twin(self.be.upload(value, Category::Parameters)?)?;
        self.params.insert(name.to_string(), t);
        Ok(())
    }

    fn optimizer_config(&self) -> &OptimizerConfig {
        &self.config
    }

    fn optimizer_state(&self) -> Result<Vec<StateTensor>, ExecError> {
        let names = self.config.state_names();
        let mut out = Vec::new();
        for (p, bufs) in &self.state {
            for (b, n) in bufs.iter().zip(names) {
                out.push((p.clone(), *n, self.be.download(b)?));
            }
        }
        Ok(out)
    }

    fn set_optimizer_state(&mut self, param: &str, name: &str, value: &ArrayD<f32>) -> Result<(), ExecError> {
        let bad = || crate::backend::no_such_state(param, name, value);
        let idx = self
            .config
            .state_names()
            .iter()
            .position(|n| *n == name)
            .ok_or_else(bad)?;
        let t = self.be.upload(value, Category::OptimizerState)?;
        let slot = self
            .state
            .get_mut(param)
            .and_then(|s| s.get_mut(idx))
            .filter(|s| s.shape == t.shape)
            .ok_or_else(bad)?;
        *slot = t;
        Ok(())
    }

    fn set_applied_updates(&mut self, updates: u64) -> Result<(), ExecError> {
        self.guard.set_applied(&self.be, updates)
    }

    fn loss_scaler(&self) -> Result<Option<LossScaler>, ExecError> {
        Ok(self
            .guard
            .dynamic
            .then(|| self.guard.read(&self.be))
            .transpose()?
            .map(|r| r.scaler))
    }

    fn train(
        &mut self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        lr: f64,
        step: u64,
    ) -> Result<(), ExecError> {
        self.train_step(program, batch, ctx, lr, step, None)
    }

    fn train_shard(
        &mut self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        lr: f64,
        step: u64,
        group: &Group,
        share: StepShare,
    ) -> Result<(), ExecError> {
        self.train_step(program, batch, ctx, lr, step, Some((group, share)))
    }

    fn loss_is_free(&self) -> bool {
        false
    }

    fn last_loss(&self) -> Result<f32, ExecError> {
        match &self.last_loss {
            Some(t) => self.be.download_scalar(t),
            None => Ok(f32::NAN),
        }
    }

    fn first_nonfinite(&self) -> Result<Option<(u64, f32)>, ExecError> {
        Ok(self.guard.read(&self.be)?.nonfinite)
    }

    fn take_epoch_sums(&mut self) -> Result<EpochSums, ExecError> {
        let sums = EpochSums {
            loss: self.be.download_scalar(&self.loss_sum)? as f64,
            correct: self.be.download_scalar(&self.correct_sum)? as f64,
        };
        ops_launch::zero(&self.be, &mut self.loss_sum)?;
        ops_launch::zero(&self.be, &mut self.correct_sum)?;
        Ok(sums)
    }

    fn gradients(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<Vec<ArrayD<f32>>, ExecError> {
        let out = self.run(program, Batch::Host(x, y), ctx)?;
        let unscale = match (program.loss_scaled, self.loss_scaler()?) {
            (true, Some(s)) => s.unscale(),
            _ => 1.0,
        };
        out[1..=program.params.len()]
            .iter()
            .map(|g| Ok(self.be.download(g)?.mapv(|v| v * unscale)))
            .collect()
    }

    fn evaluate(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<(Vec<Option<usize>>, f32), ExecError> {
        let out = self.run(program, Batch::Host(x, y), ctx)?;
        let loss = self.be.download_scalar(&out[1])?;
        // One index per row comes back, not the logits (-1: no class wins).
        let predicted = ops_launch::argmax_rows(&self.be, &out[0])?
            .into_iter()
            .map(|c| usize::try_from(c).ok())
            .collect();
        Ok((predicted, loss))
    }

    fn infer(&self, program: &Program, x: Array2<f32>, ctx: &RunContext) -> Result<ArrayD<f32>, ExecError> {
        let be = &self.be;
        let x = be.upload(&x.into_dyn(), Category::Temporaries)?;
        let out = exec::run_on(
            be.as_ref(),
            program.graph,
            program.schedule,
            &self.params,
            vec![("x", x)],
            ctx,
        )?
        .outputs;
        be.download(&out[0])
    }

    fn hold_training_set(&mut self, data: &Dataset, shift: Option<&Shift>) -> Result<bool, ExecError> {
        self.held = Some((DeviceDataset::upload(&self.be, data, shift)?, None));
        Ok(true)
    }

    fn start_epoch(&mut self, rows: &[usize], offsets: &[(isize, isize)]) -> Result<(), ExecError> {
        let Some((data, epoch)) = &mut self.held else {
            return Err(ExecError::Device("start_epoch without a held training set".into()));
        };
        *epoch = Some(data.upload_epoch(rows, offsets)?);
        Ok(())
    }
}
