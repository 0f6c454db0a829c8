//! The one door to a device. Training, evaluation, `bench`, `scale` and `remat` talk to
//! these two traits and to [`super::open`], never to a backend's own types:
//!
//! - [`Device`]: a place to compute (the CPU, one GPU): its memory accounting and limit,
//!   its numerics, placing a model on it, timing its bare matrix products;
//! - [`PlacedModel`]: a model's parameters and optimizer state living on a device, with
//!   everything a step does there: run a program, guard the step (a non-finite loss,
//!   overflowed gradients under loss scaling), apply the optimizer update, sum the
//!   epoch's loss, gather batches from a training set held on the device, argmax.
//!
//! A backend is one folder that implements both (`cpu/`, `cuda/`) plus one line in
//! [`super::open`].

use super::step_graphs::{GraphStatus, StepGraphs};
use crate::data::{augment::Shift, Dataset};
use crate::dist::{group::StepShare, Collective, Group};
use crate::exec::{ExecError, Program};
use crate::memory::MemoryTracker;
use crate::ops::RunContext;
use crate::optim::{LossScaler, OptimizerConfig};
use crate::plan::{HalfLayout, Rates};
use ndarray::{Array1, Array2, ArrayD};
use std::sync::Arc;

/// One optimizer state tensor: (parameter, state name, value).
pub type StateTensor = (String, &'static str, ArrayD<f32>);

/// A place to compute.
pub trait Device: Send + Sync {
    /// `cpu` or `cuda:N (name)`.
    fn describe(&self) -> String;
    /// What a run's banner says about the device (`cpu, 2 threads`).
    fn banner(&self) -> String {
        self.describe()
    }
    /// The tracker that counts every tensor on this device.
    fn tracker(&self) -> &Arc<MemoryTracker>;
    /// The same device with memory counted afresh, refusing allocations past `limit`
    /// (a run that must count its own memory, or stand in for a smaller device).
    fn with_memory_limit(&self, limit: Option<u64>) -> Result<Arc<dyn Device>, ExecError>;
    /// Free bytes, where the device has a fixed memory (a GPU); `None` on the host.
    fn free_memory(&self) -> Result<Option<u64>, ExecError>;
    /// How many more bytes can be allocated here: what the limit leaves, and on the host
    /// what the machine has available; `None` where nothing says (a GPU without a limit,
    /// whose allocator fails cleanly). Checked before anything large is allocated, so a
    /// model or a batch too large is an error, not an abort.
    fn room(&self) -> Result<Option<u64>, ExecError>;
    /// The compute dtype it was opened with (`--dtype`).
    fn precision(&self) -> crate::backend::Precision;
    /// How this device holds 16-bit values (`--dtype bf16|f16`): programs store what they
    /// can in 16 bits ([`crate::plan::precision`]) and the memory prediction counts it so.
    fn half_layout(&self) -> HalfLayout;
    /// The rates the checkpoint planner prices recomputation at ([`Rates`]).
    fn rates(&self) -> Rates {
        Rates::CPU
    }
    /// Whether training here needs dynamic loss scaling (f16 matrix products).
    fn needs_loss_scaling(&self) -> bool;
    /// Places `params` (name, value) with zeroed optimizer state, and `buffers` (BatchNorm's
    /// running statistics: read by graphs as parameters are, kept by training steps,
    /// never optimized); `scaler` turns on dynamic loss scaling from that state.
    fn place(
        &self,
        optimizer: &OptimizerConfig,
        params: Vec<(String, ArrayD<f32>)>,
        buffers: Vec<(String, ArrayD<f32>)>,
        scaler: Option<LossScaler>,
    ) -> Result<Box<dyn PlacedModel>, ExecError>;
    /// The bare matrix products of one training step of an MLP (`bench`'s yardstick),
    /// counted apart from the step's own memory.
    fn bare_products(&self, linears: &[(usize, usize)], batch: usize) -> Result<Box<dyn BareProducts>, ExecError>;

    /// Whether a data-parallel job can run here: every rank asks before the rendezvous, so
    /// a machine without the collective's library fails at once, not at a timeout.
    fn collective_ready(&self) -> Result<(), ExecError> {
        Err(ExecError::Device(format!(
            "data-parallel jobs run on GPUs through NCCL; {} has no collective",
            self.describe()
        )))
    }
    /// The bytes a data-parallel job on this kind of device is joined with (rank 0 makes
    /// them, the rendezvous hands them to the others): on a GPU, an NCCL id.
    fn collective_id(&self) -> Result<Vec<u8>, ExecError> {
        self.collective_ready().map(|_| Vec::new())
    }
    /// Joins the job `id` names as `rank` of `world`; returns when every rank has.
    fn join_collective(&self, rank: usize, world: usize, id: &[u8]) -> Result<Arc<dyn Collective>, ExecError> {
        let _ = (rank, world, id);
        self.collective_ready()
            .and(Err(ExecError::Device("no collective".into())))
    }
}

/// The products one training step of an MLP runs, ready to be timed.
pub trait BareProducts {
    /// Seconds for one full set, waiting for the device before and after.
    fn time(&self) -> Result<f64, ExecError>;
}

/// One batch: features `[b, f]` and labels `[b]` from the host, or rows `start..start + len`
/// of the epoch order given to [`PlacedModel::start_epoch`], gathered on the device.
pub enum Batch {
    Host(Array2<f32>, Array1<f32>),
    Held { start: usize, len: usize },
}

impl Batch {
    pub fn len(&self) -> usize {
        match self {
            Batch::Host(x, _) => x.nrows(),
            Batch::Held { len, .. } => *len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One training step as a device is asked to run it.
pub struct TrainingStep<'a> {
    /// A training program: outputs `[loss, gradients.., rows classified right]`, or
    /// `[loss, rows classified right]` when it updates inside backward.
    pub program: &'a Program<'a>,
    /// This process's rows of the step's batch (in a data-parallel job, possibly none).
    pub batch: Batch,
    pub ctx: &'a RunContext,
    pub lr: f64,
    /// 1-based, as the step guard records it.
    pub step: u64,
    /// As one rank of a data-parallel job: its group and its share of the global batch.
    /// The gradients, the loss and the right answers are summed over the group before the
    /// guard and the update see them, so every rank applies the global batch's update and
    /// adds the global loss to its sums.
    pub rank: Option<(&'a Group, StepShare)>,
}

/// What a run of training steps adds up to.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochSums {
    /// Σ batch · loss.
    pub loss: f64,
    /// Rows the steps' forward passes classified right.
    pub correct: f64,
}

/// A model's parameters and optimizer state on a device.
pub trait PlacedModel {
    fn param(&self, name: &str) -> Result<Option<ArrayD<f32>>, ExecError>;
    fn set_param(&mut self, name: &str, value: &ArrayD<f32>) -> Result<(), ExecError>;
    fn optimizer_config(&self) -> &OptimizerConfig;
    /// Every optimizer state tensor as (parameter, state name, value).
    fn optimizer_state(&self) -> Result<Vec<StateTensor>, ExecError>;
    fn set_optimizer_state(&mut self, param: &str, name: &str, value: &ArrayD<f32>) -> Result<(), ExecError>;
    /// Sets how many updates have been applied (Adam's bias corrections count them).
    fn set_applied_updates(&mut self, updates: u64) -> Result<(), ExecError>;
    /// Dynamic loss scaling's state (`None` without it). Waits for a GPU.
    fn loss_scaler(&self) -> Result<Option<LossScaler>, ExecError>;

    /// Runs one training step ([`TrainingStep`]) and applies its update unless the step
    /// guard stops it: a non-finite loss (the run must stop; the guard keeps every later
    /// update off until [`Self::first_nonfinite`] reports it) or, under loss scaling,
    /// overflowed gradients (skipped, the scale halves). The protocol is the same on every
    /// device ([`super::step_protocol`]). Waits for nothing on a GPU: the loss stays there
    /// until [`Self::last_loss`].
    fn train(&mut self, step: TrainingStep) -> Result<(), ExecError>;
    /// The last trained step's loss on the host (waits for a GPU).
    fn last_loss(&self) -> Result<f32, ExecError>;
    /// The first step whose loss was not finite, and that loss, as the step guard saw it
    /// (waits for a GPU).
    fn first_nonfinite(&self) -> Result<Option<(u64, f32)>, ExecError>;
    /// What the steps since the last call add up to, and resets it.
    fn take_epoch_sums(&mut self) -> Result<EpochSums, ExecError>;

    /// Runs a training program without applying its update: the parameters' gradients
    /// (divided by the loss scale, if any), then the buffers' next values (the program's
    /// `buffers`), which it does not keep either.
    fn gradients(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<Vec<ArrayD<f32>>, ExecError>;
    /// Runs an evaluation program: each row's predicted class (the first largest logit;
    /// NaN never wins) and the mean loss.
    fn evaluate(
        &self,
        program: &Program,
        x: Array2<f32>,
        y: Array1<f32>,
        ctx: &RunContext,
    ) -> Result<(Vec<Option<usize>>, f32), ExecError>;

    /// Runs an inference program (outputs `[logits]`, input `x` alone): the logits, on the host.
    fn infer(&self, program: &Program, x: Array2<f32>, ctx: &RunContext) -> Result<ArrayD<f32>, ExecError>;

    /// Keeps `data` on the device so batches are gathered (and shifted) there; `false`
    /// where host batches are as good (the CPU), and then [`Batch::Held`] is not taken.
    fn hold_training_set(&mut self, data: &Dataset, shift: Option<&Shift>) -> Result<bool, ExecError>;
    /// An epoch's row order and each row's (dy, dx) shift, for [`Batch::Held`] batches.
    fn start_epoch(&mut self, rows: &[usize], offsets: &[(isize, isize)]) -> Result<(), ExecError>;

    /// Whether steps are captured once and replayed (`--cuda-graph`). A device without
    /// graphs trains eagerly and refuses [`StepGraphs::On`].
    fn set_step_graphs(&mut self, mode: StepGraphs) -> Result<(), ExecError> {
        match mode {
            StepGraphs::On => Err(ExecError::Device(
                "--cuda-graph on: this device has no CUDA graphs (they need a GPU); use auto or off".into(),
            )),
            StepGraphs::Auto | StepGraphs::Off => Ok(()),
        }
    }
    /// What became of step graphs ([`GraphStatus::Off`] on a device without them).
    fn step_graphs(&self) -> GraphStatus {
        GraphStatus::Off
    }
}
