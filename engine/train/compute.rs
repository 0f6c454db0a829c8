//! Where a trainer's parameters live and its steps run: the CPU or one GPU. Everything
//! above this file is the same for both.

use super::program::StepProgram;
use super::trainer::TrainError;
use crate::autodiff::LOSS_SCALE_INPUT;
use crate::backend::cuda::guard::{StepGuard, FLAG_NONFINITE_LOSS, FLAG_OVERFLOW};
use crate::backend::cuda::{self, CudaBackend, DeviceTensor, LowPrecision};
use crate::exec::{self, Backend, Session};
use crate::memory::{Category, MemoryTracker};
use crate::ops::RunContext;
use crate::optim::{LossScaler, Optimizer, OptimizerConfig};
use ndarray::{Array1, Array2, ArrayD};
use std::collections::HashMap;
use std::sync::Arc;

/// One optimizer state tensor: (parameter, state name, value).
pub type StateTensor = (String, &'static str, ArrayD<f32>);

/// One batch: features `[b, f]` and labels `[b]`, on the host or already on the GPU.
pub enum Batch {
    Host(Array2<f32>, Array1<f32>),
    Device(DeviceTensor, DeviceTensor),
}

impl Batch {
    pub fn len(&self) -> usize {
        match self {
            Batch::Host(x, _) => x.nrows(),
            Batch::Device(x, _) => x.shape.dims()[0],
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which device a trainer runs on.
#[derive(Clone)]
pub enum Placement {
    Cpu(Arc<MemoryTracker>),
    Cuda(Arc<CudaBackend>),
}

impl Placement {
    pub fn cpu() -> Self {
        Placement::Cpu(MemoryTracker::new(None))
    }
    pub fn describe(&self) -> String {
        match self {
            Placement::Cpu(_) => "cpu".into(),
            Placement::Cuda(be) => format!("cuda:{} ({})", be.ordinal, be.name),
        }
    }
    /// Whether training here needs loss scaling (f16 matrix products).
    pub fn needs_loss_scaling(&self) -> bool {
        matches!(self, Placement::Cuda(be) if be.low == LowPrecision::F16)
    }
}

/// A step's loss, where it was computed. Reading a GPU loss waits for the device, so a
/// training loop reads it only when it reports.
pub enum StepLoss {
    Host(f32),
    Device(DeviceTensor),
}

/// A run's outputs, where they were computed.
enum Outputs {
    Cpu(Vec<crate::exec::Buffer<f32>>),
    Cuda(Vec<DeviceTensor>),
}

pub(super) enum Compute {
    Cpu {
        session: Session<f32>,
        optimizer: Optimizer<f32>,
        /// Dynamic loss scaling, when training with it.
        scaler: Option<LossScaler>,
        /// Sum of batch · loss since it was last taken.
        loss_sum: f64,
    },
    Cuda(Box<OnGpu>),
}

pub(super) struct OnGpu {
    be: Arc<CudaBackend>,
    params: HashMap<String, DeviceTensor>,
    state: HashMap<String, Vec<DeviceTensor>>,
    config: OptimizerConfig,
    /// Skips flagged updates and holds the loss scale, on the device.
    guard: StepGuard,
    /// Sum of batch · loss since it was last taken, on the device.
    loss_sum: DeviceTensor,
}

impl Compute {
    /// Places `params` (name, value) and zeroed optimizer state; `scaler` turns on dynamic
    /// loss scaling from that state.
    pub fn new(
        placement: &Placement,
        config: &OptimizerConfig,
        params: Vec<(String, ArrayD<f32>)>,
        scaler: Option<LossScaler>,
    ) -> Result<Self, TrainError> {
        let names: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
        match placement {
            Placement::Cpu(tracker) => {
                let mut session = Session::new(tracker.clone());
                for (name, v) in params {
                    session.set_param(&name, v)?;
                }
                let optimizer = Optimizer::new(config.clone(), &session, &names)?;
                Ok(Compute::Cpu {
                    session,
                    optimizer,
                    scaler,
                    loss_sum: 0.0,
                })
            }
            Placement::Cuda(be) => {
                let mut gpu = OnGpu {
                    be: be.clone(),
                    params: HashMap::new(),
                    state: HashMap::new(),
                    config: config.clone(),
                    guard: StepGuard::new(be, scaler.is_some(), &scaler.clone().unwrap_or_default())?,
                    loss_sum: be.upload(&ArrayD::zeros(vec![]), Category::OptimizerState)?,
                };
                for (name, v) in params {
                    let zeros = ArrayD::<f32>::zeros(v.raw_dim());
                    let state = config
                        .state_names()
                        .iter()
                        .map(|_| be.upload(&zeros, Category::OptimizerState))
                        .collect::<Result<Vec<_>, _>>()?;
                    gpu.params.insert(name.clone(), be.upload(&v, Category::Parameters)?);
                    gpu.state.insert(name, state);
                }
                Ok(Compute::Cuda(Box::new(gpu)))
            }
        }
    }

    /// The GPU this runs on, if any.
    pub fn gpu(&self) -> Option<&Arc<CudaBackend>> {
        match self {
            Compute::Cpu { .. } => None,
            Compute::Cuda(g) => Some(&g.be),
        }
    }

    pub fn tracker(&self) -> Arc<MemoryTracker> {
        match self {
            Compute::Cpu { session, .. } => session.tracker().clone(),
            Compute::Cuda(g) => g.be.tracker().clone(),
        }
    }

    pub fn param(&self, name: &str) -> Result<Option<ArrayD<f32>>, TrainError> {
        match self {
            Compute::Cpu { session, .. } => Ok(session.param(name).cloned()),
            Compute::Cuda(g) => g
                .params
                .get(name)
                .map(|t| g.be.download(t))
                .transpose()
                .map_err(Into::into),
        }
    }

    pub fn set_param(&mut self, name: &str, v: &ArrayD<f32>) -> Result<(), TrainError> {
        match self {
            Compute::Cpu { session, .. } => Ok(session.set_param(name, v.clone())?),
            Compute::Cuda(g) => {
                let t = g.be.upload(v, Category::Parameters)?;
                g.params.insert(name.to_string(), t);
                Ok(())
            }
        }
    }

    pub fn optimizer_config(&self) -> &OptimizerConfig {
        match self {
            Compute::Cpu { optimizer, .. } => &optimizer.config,
            Compute::Cuda(g) => &g.config,
        }
    }

    /// How many updates have been applied (Adam's bias corrections count them).
    pub fn set_optimizer_steps(&mut self, steps: u64) -> Result<(), TrainError> {
        match self {
            Compute::Cpu { optimizer, .. } => optimizer.steps = steps,
            Compute::Cuda(g) => g.guard.set_applied(&g.be, steps)?,
        }
        Ok(())
    }

    /// Every optimizer state tensor as (parameter, state name, value).
    pub fn optimizer_state(&self) -> Result<Vec<StateTensor>, TrainError> {
        match self {
            Compute::Cpu { optimizer, .. } => Ok(optimizer
                .state()
                .into_iter()
                .map(|(p, n, d)| (p.to_string(), n, d.clone()))
                .collect()),
            Compute::Cuda(g) => {
                let names = g.config.state_names();
                let mut out = Vec::new();
                for (p, bufs) in &g.state {
                    for (b, n) in bufs.iter().zip(names) {
                        out.push((p.clone(), *n, g.be.download(b)?));
                    }
                }
                Ok(out)
            }
        }
    }

    pub fn set_optimizer_state(&mut self, param: &str, name: &str, v: &ArrayD<f32>) -> Result<(), TrainError> {
        let bad = || {
            TrainError::Data(format!(
                "no optimizer state '{name}' for '{param}' with shape {:?}",
                v.shape()
            ))
        };
        match self {
            Compute::Cpu { optimizer, .. } => {
                let slot = optimizer
                    .state_mut(param, name)
                    .filter(|s| s.shape() == v.shape())
                    .ok_or_else(bad)?;
                slot.assign(v);
                Ok(())
            }
            Compute::Cuda(g) => {
                let idx = g.config.state_names().iter().position(|n| *n == name).ok_or_else(bad)?;
                let t = g.be.upload(v, Category::OptimizerState)?;
                let slot = g
                    .state
                    .get_mut(param)
                    .and_then(|s| s.get_mut(idx))
                    .filter(|s| s.shape == t.shape)
                    .ok_or_else(bad)?;
                *slot = t;
                Ok(())
            }
        }
    }

    /// Runs `program` on `batch` where the parameters live; outputs stay there.
    fn run(&self, program: &StepProgram, batch: Batch, ctx: &RunContext) -> Result<Outputs, TrainError> {
        let (graph, schedule) = (&program.graph, &program.schedule);
        match (self, batch) {
            (Compute::Cpu { session, scaler, .. }, Batch::Host(x, y)) => {
                let mut inputs = vec![("x", x.into_dyn()), ("labels", y.into_dyn())];
                if program.loss_scaled {
                    let scale = scaler.as_ref().map_or(1.0, |s| s.scale);
                    inputs.push((LOSS_SCALE_INPUT, ArrayD::from_elem(vec![], scale)));
                }
                Ok(Outputs::Cpu(exec::run(graph, schedule, session, inputs, ctx)?.outputs))
            }
            (Compute::Cpu { .. }, Batch::Device(..)) => {
                Err(TrainError::Data("a GPU batch given to a CPU trainer".into()))
            }
            (Compute::Cuda(g), batch) => {
                let be = &g.be;
                let (x, y) = match batch {
                    Batch::Host(x, y) => (
                        be.upload(&x.into_dyn(), Category::Temporaries)?,
                        be.upload(&y.into_dyn(), Category::Temporaries)?,
                    ),
                    Batch::Device(x, y) => (x, y),
                };
                let mut inputs = vec![("x", x), ("labels", y)];
                if program.loss_scaled {
                    // A device-to-device copy: the scale never visits the host.
                    inputs.push((LOSS_SCALE_INPUT, be.duplicate(&g.guard.scale, Category::Temporaries)?));
                }
                Ok(Outputs::Cuda(
                    exec::run_on(be.as_ref(), graph, schedule, &g.params, inputs, ctx)?.outputs,
                ))
            }
        }
    }

    /// Output `k` of a run, on the host.
    fn fetch(&self, out: &Outputs, k: usize) -> Result<ArrayD<f32>, TrainError> {
        match (out, self) {
            (Outputs::Cpu(o), _) => Ok(o[k].data.clone()),
            (Outputs::Cuda(o), Compute::Cuda(g)) => Ok(g.be.download(&o[k])?),
            (Outputs::Cuda(_), Compute::Cpu { .. }) => unreachable!("GPU outputs come from a GPU run"),
        }
    }

    fn scalar(&self, out: &Outputs, k: usize) -> Result<f32, TrainError> {
        Ok(match (out, self) {
            (Outputs::Cpu(o), _) => o[k].scalar(),
            (Outputs::Cuda(o), Compute::Cuda(g)) => g.be.download_scalar(&o[k])?,
            (Outputs::Cuda(_), Compute::Cpu { .. }) => unreachable!("GPU outputs come from a GPU run"),
        })
    }

    /// Dynamic loss scaling's state (`None` without it). Reads the device on a GPU.
    pub fn loss_scaler(&self) -> Result<Option<LossScaler>, TrainError> {
        match self {
            Compute::Cpu { scaler, .. } => Ok(scaler.clone()),
            Compute::Cuda(g) => Ok(g
                .guard
                .dynamic
                .then(|| g.guard.read(&g.be))
                .transpose()?
                .map(|r| r.scaler)),
        }
    }

    /// Runs training step `step` (1-based) and applies its update unless the step guard
    /// stops it: a non-finite loss (the run must stop; on a GPU the guard keeps every later
    /// update off until [`Self::first_nonfinite`] reports it) or, under loss scaling,
    /// overflowed gradients (skipped, the scale halves). Waits for nothing on a GPU.
    pub fn train(
        &mut self,
        program: &StepProgram,
        batch: Batch,
        ctx: &RunContext,
        lr: f64,
        step: u64,
    ) -> Result<StepLoss, TrainError> {
        let weight = batch.len() as f32;
        let out = self.run(program, batch, ctx)?;
        match (self, out) {
            (
                Compute::Cpu {
                    session,
                    optimizer,
                    scaler,
                    loss_sum,
                },
                Outputs::Cpu(mut o),
            ) => {
                let loss = o[0].scalar();
                *loss_sum += loss as f64 * weight as f64;
                if !loss.is_finite() {
                    return Ok(StepLoss::Host(loss));
                }
                if let Some(scaler) = scaler {
                    let overflowed = o[1..].iter().any(|g| g.data.iter().any(|v| !v.is_finite()));
                    let unscale = scaler.unscale();
                    if !scaler.after_step(overflowed) {
                        return Ok(StepLoss::Host(loss));
                    }
                    for g in &mut o[1..] {
                        g.data.mapv_inplace(|v| v * unscale);
                    }
                }
                let grads: Vec<(&str, &ArrayD<f32>)> = program
                    .params
                    .iter()
                    .zip(&o[1..])
                    .map(|(n, g)| (n.as_str(), &g.data))
                    .collect();
                optimizer.step(session, &grads, lr);
                Ok(StepLoss::Host(loss))
            }
            (Compute::Cuda(g), Outputs::Cuda(mut o)) => {
                let loss = o.remove(0);
                let be = g.be.clone();
                g.guard.flag_nonfinite(&be, &loss, FLAG_NONFINITE_LOSS)?;
                if g.guard.dynamic {
                    for grad in &o {
                        g.guard.flag_nonfinite(&be, grad, FLAG_OVERFLOW)?;
                    }
                }
                for (name, grad) in program.params.iter().zip(&o) {
                    let (Some(p), Some(state)) = (g.params.get_mut(name), g.state.get_mut(name)) else {
                        return Err(TrainError::Data(format!("no parameter '{name}' on the GPU")));
                    };
                    cuda::optim::step(&be, &g.config, lr, p, grad, state, &g.guard)?;
                }
                g.guard.close_step(&be, &loss, step)?;
                cuda::ops_launch::accumulate(&be, &mut g.loss_sum, &loss, weight)?;
                Ok(StepLoss::Device(loss))
            }
            _ => unreachable!("outputs come from the same device"),
        }
    }

    /// A step's loss on the host (waits for the device on a GPU).
    pub fn read_loss(&self, loss: &StepLoss) -> Result<f32, TrainError> {
        match (loss, self) {
            (StepLoss::Host(v), _) => Ok(*v),
            (StepLoss::Device(t), Compute::Cuda(g)) => Ok(g.be.download_scalar(t)?),
            (StepLoss::Device(_), Compute::Cpu { .. }) => unreachable!("GPU losses come from a GPU run"),
        }
    }

    /// The first step whose loss was not finite, and that loss, as the GPU's step guard saw
    /// it (the CPU stops at such a step at once, so it never has one pending).
    pub fn first_nonfinite(&self) -> Result<Option<(u64, f32)>, TrainError> {
        match self {
            Compute::Cpu { .. } => Ok(None),
            Compute::Cuda(g) => Ok(g.guard.read(&g.be)?.nonfinite),
        }
    }

    /// Sum of batch · loss over the steps since the last call, and resets it.
    pub fn take_loss_sum(&mut self) -> Result<f64, TrainError> {
        match self {
            Compute::Cpu { loss_sum, .. } => Ok(std::mem::take(loss_sum)),
            Compute::Cuda(g) => {
                let sum = g.be.download_scalar(&g.loss_sum)?;
                cuda::ops_launch::zero(&g.be, &mut g.loss_sum)?;
                Ok(sum as f64)
            }
        }
    }

    /// Runs a training program without applying its update: the parameters' gradients
    /// (divided by the loss scale, if any).
    pub fn gradients(
        &self,
        program: &StepProgram,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<Vec<ArrayD<f32>>, TrainError> {
        let out = self.run(program, Batch::Host(x, y), ctx)?;
        let unscale = match (program.loss_scaled, self.loss_scaler()?) {
            (true, Some(s)) => s.unscale(),
            _ => 1.0,
        };
        (1..=program.params.len())
            .map(|k| Ok(self.fetch(&out, k)?.mapv(|v| v * unscale)))
            .collect()
    }

    /// Runs an evaluation program: each row's predicted class (the first largest logit) and
    /// the mean loss. A GPU sends back one index per row, not the logits.
    pub fn evaluate(
        &self,
        program: &StepProgram,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<(Vec<usize>, f32), TrainError> {
        let out = self.run(program, Batch::Host(x, y), ctx)?;
        let loss = self.scalar(&out, 1)?;
        let predicted = match (&out, self) {
            (Outputs::Cuda(o), Compute::Cuda(g)) => cuda::ops_launch::argmax_rows(&g.be, &o[0])?
                .into_iter()
                .map(|c| c as usize)
                .collect(),
            _ => {
                let logits = self.fetch(&out, 0)?;
                let logits = logits
                    .view()
                    .into_dimensionality::<ndarray::Ix2>()
                    .map_err(|e| TrainError::Data(format!("logits of shape {:?}: {e}", logits.shape())))?;
                logits
                    .rows()
                    .into_iter()
                    .map(|row| argmax(row.iter().copied()))
                    .collect()
            }
        };
        Ok((predicted, loss))
    }
}

/// The index of the first largest value (NaN never wins), as the GPU's argmax kernel picks.
fn argmax(values: impl Iterator<Item = f32>) -> usize {
    values
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, v)| if v > best.1 { (i, v) } else { best },
        )
        .0
}
