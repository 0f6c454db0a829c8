//! A model placed on one GPU: parameters and optimizer state there, the step guard and the
//! epoch's loss sum there too, so a step reads nothing back; a training set held there
//! feeds [`Batch::Held`] batches. Its training step is train_step.rs: the shared step
//! protocol on the primitives of step_primitives.rs.

use super::dataset::DeviceDataset;
use super::guard::StepGuard;
use super::step_graph::CapturedSteps;
use super::{ops_launch, CudaBackend, DeviceTensor};
use crate::backend::device::{Batch, EpochSums, PlacedModel, StateTensor, TrainingStep};
use crate::backend::step_graphs::{GraphStatus, StepGraphs};
use crate::backend::step_protocol::StepPrimitives;
use crate::data::{augment::Shift, Dataset};
use crate::exec::{self, ExecError, Program};
use crate::memory::Category;
use crate::ops::RunContext;
use crate::optim::{LossScaler, OptimizerConfig};
use ndarray::{Array1, Array2, ArrayD};
use std::collections::HashMap;
use std::sync::Arc;

pub struct GpuModel {
    pub(super) be: Arc<CudaBackend>,
    pub(super) params: HashMap<String, DeviceTensor>,
    pub(super) state: HashMap<String, Vec<DeviceTensor>>,
    pub(super) config: OptimizerConfig,
    /// Skips flagged updates and holds the loss scale, on the device.
    pub(super) guard: StepGuard,
    /// Sum of batch · loss since it was last taken, on the device.
    pub(super) loss_sum: DeviceTensor,
    /// Rows classified right since it was last taken, on the device.
    pub(super) correct_sum: DeviceTensor,
    /// The last step's loss, copied there by the step, and whether a step has run.
    pub(super) last_loss: (DeviceTensor, bool),
    /// The training set and this epoch's order, when held here.
    pub(super) held: Option<DeviceDataset>,
    /// `--cuda-graph`: steps captured once and replayed.
    pub(super) captured: CapturedSteps,
    /// Clipping's room on the device, when the optimizer clips.
    pub(super) clip: Option<super::clip::GradientClip>,
}

impl GpuModel {
    pub fn new(
        be: &Arc<CudaBackend>,
        config: &OptimizerConfig,
        params: Vec<(String, ArrayD<f32>)>,
        buffers: Vec<(String, ArrayD<f32>)>,
        scaler: Option<LossScaler>,
    ) -> Result<Self, ExecError> {
        // The model's own scalars on the device, zero to start.
        let scalar = || be.upload(&ArrayD::zeros(vec![]), Category::OptimizerState);
        let mut gpu = GpuModel {
            be: be.clone(),
            params: HashMap::new(),
            state: HashMap::new(),
            config: config.clone(),
            guard: StepGuard::new(be, scaler.is_some(), &scaler.clone().unwrap_or_default())?,
            loss_sum: scalar()?,
            correct_sum: scalar()?,
            last_loss: (scalar()?, false),
            held: None,
            captured: CapturedSteps::default(),
            clip: config
                .clip_grad_norm
                .map(|max| super::clip::GradientClip::new(be, max, params.len()))
                .transpose()?,
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
        // Beside the parameters, where graphs read them, but with no optimizer state.
        for (name, v) in buffers {
            gpu.params.insert(name, be.upload(&v, Category::Parameters)?);
        }
        Ok(gpu)
    }

    /// Runs `program` on `batch`; outputs stay on the device.
    pub(super) fn run(
        &self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
    ) -> Result<Vec<DeviceTensor>, ExecError> {
        let inputs = self.bind_batch(program, batch)?;
        let be = &self.be;
        Ok(exec::run_on(be.as_ref(), program.graph, program.schedule, &self.params, inputs, ctx)?.outputs)
    }
}

impl PlacedModel for GpuModel {
    fn param(&self, name: &str) -> Result<Option<ArrayD<f32>>, ExecError> {
        self.params.get(name).map(|t| self.be.download(t)).transpose()
    }

    fn set_param(&mut self, name: &str, value: &ArrayD<f32>) -> Result<(), ExecError> {
        let t = self.be.with_twin(self.be.upload(value, Category::Parameters)?)?;
        self.params.insert(name.to_string(), t);
        self.captured.forget();
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
        self.captured.forget();
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

    fn train(&mut self, step: TrainingStep) -> Result<(), ExecError> {
        self.train_step(step)
    }

    fn last_loss(&self) -> Result<f32, ExecError> {
        match &self.last_loss {
            (t, true) => self.be.download_scalar(t),
            (_, false) => Ok(f32::NAN),
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
        let gradients = out[1..=program.params.len()]
            .iter()
            .map(|g| Ok(self.be.download(g)?.mapv(|v| v * unscale)));
        let buffers = out[program.first_buffer_output()..].iter().map(|b| self.be.download(b));
        gradients.chain(buffers).collect()
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
        // A regression's targets come from the host with each batch (the held set gathers
        // one label a row), so its steps run eagerly.
        if data.targets.is_some() {
            self.held = None;
            return Ok(false);
        }
        self.held = Some(DeviceDataset::upload(&self.be, data, shift)?);
        self.captured.forget();
        Ok(true)
    }

    fn start_epoch(&mut self, rows: &[usize], offsets: &[(isize, isize)]) -> Result<(), ExecError> {
        let Some(data) = &mut self.held else {
            return Err(ExecError::Device("start_epoch without a held training set".into()));
        };
        data.start_epoch(rows, offsets)
    }

    fn set_step_graphs(&mut self, mode: StepGraphs) -> Result<(), ExecError> {
        self.captured.set_mode(mode);
        Ok(())
    }

    fn step_graphs(&self) -> GraphStatus {
        self.captured.status()
    }
}
