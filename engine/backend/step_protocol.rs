//! A training step's protocol, written once for every device: bind the batch; run forward
//! and backward; in a data-parallel job sum the gradients, the loss and the right answers
//! over the ranks (a rank with no rows of the batch sums zeros, so every rank starts the same
//! sums in the same order); guard the step (flag a non-finite loss and, under loss scaling,
//! overflowed gradients); clip the gradients by their global norm when the optimizer says
//! so (every one complete first); apply each parameter's update unless the guard says skip, after
//! backward or inside it as each gradient is complete; keep the buffers' next values
//! (BatchNorm's running statistics: once a step, from the step's outputs, so no
//! recomputation moves them twice; each rank its own, from its own rows, as PyTorch's
//! DistributedDataParallel keeps them without SyncBatchNorm); close the step (the guard's
//! verdict, the epoch's sums, the last loss).
//!
//! A device supplies the primitives ([`StepPrimitives`]): the CPU on the host, a GPU as
//! launches on its stream with nothing read back, so a GPU step can still be captured whole
//! (`cuda/step_graph.rs`).

use super::device::{Batch, TrainingStep};
use crate::dist::{group::StepShare, Group};
use crate::exec::{self, Backend, ExecError, ParameterAccess, Program};
use crate::graph::Leaf;
use crate::kernels::GuardFlag;
use crate::ops::Op;
use crate::optim::clip::NO_CLIPPING_INSIDE_BACKWARD;
use crate::optim::loss_scale::NO_UPDATES_INSIDE_BACKWARD;
use crate::plan::Instr;
use std::sync::Arc;

/// A tensor where `P`'s steps run.
pub type Tensor<P> = <<P as StepPrimitives>::Backend as Backend>::Tensor;
/// Data bound to a program's input where `P`'s steps run.
pub type Input<P> = <<P as StepPrimitives>::Backend as Backend>::Input;

/// What a device does for the step protocol: a model placed there, with its step guard.
pub trait StepPrimitives {
    /// Where the step's schedule runs.
    type Backend: Backend;
    /// The backend to run a schedule on, held apart from the model so that the model's
    /// parameters can be updated while the schedule runs.
    fn backend(&self) -> Arc<Self::Backend>;
    /// What `program` binds for `batch` (features, labels, and the loss scale when its
    /// backward is scaled).
    fn bind_batch(&self, program: &Program, batch: Batch) -> Result<Vec<(&'static str, Input<Self>)>, ExecError>;
    fn parameter(&self, name: &str) -> Option<&Tensor<Self>>;
    /// A training program's outputs for a rank with no rows of a step: loss 0, a zero
    /// gradient per parameter, 0 right.
    fn zeros_for_no_rows(&self, program: &Program) -> Result<Vec<Tensor<Self>>, ExecError>;
    /// Multiplies `t` by `factor`, in place.
    fn scale_in_place(&self, t: &mut Tensor<Self>, factor: f32) -> Result<(), ExecError>;
    /// Starts replacing `t` by its sum over `group`'s ranks, in place.
    fn start_sum(&self, group: &Group, t: &mut Tensor<Self>) -> Result<(), ExecError>;
    /// Makes the step's later work wait for every sum started so far.
    fn wait_for_sums(&self, group: &Group) -> Result<(), ExecError>;
    /// Flags this step in the guard (`flag`) if any element of `t` is NaN or infinite.
    fn flag_nonfinite(&mut self, t: &Tensor<Self>, flag: GuardFlag) -> Result<(), ExecError>;
    /// Whether the guard scales the loss dynamically (and so watches for overflow).
    fn loss_scaled(&self) -> bool;
    /// Whether the optimizer clips the gradients by their global norm (optim/clip.rs).
    fn clips_gradients(&self) -> bool;
    /// Multiplies every gradient of the step (all of them, complete and summed over the
    /// ranks) by the clipping factor of their global norm, in place; only when
    /// [`Self::clips_gradients`].
    fn clip_gradients(&mut self, grads: &mut [Tensor<Self>]) -> Result<(), ExecError>;
    /// Updates parameter `name` with its complete gradient (divided by the loss scale),
    /// unless the guard flags the step. Nothing reads `grad` after this.
    fn apply_update(&mut self, name: &str, grad: &mut Tensor<Self>, lr: f64) -> Result<(), ExecError>;
    /// Replaces buffer `name` by `value`, its value after this step, unless the guard has
    /// flagged this step as not finite (its loss or a buffer's next value: the run stops
    /// there, its model as it was). A
    /// step that loss scaling skips for overflowed gradients still moves them, as PyTorch's
    /// forward pass does.
    fn keep_buffer(&mut self, name: &str, value: &Tensor<Self>) -> Result<(), ExecError>;
    /// The end of every step `step`: the guard closes it (records a first non-finite loss,
    /// counts the update or moves the loss scale), its loss times `rows` and its right
    /// answers join the epoch's sums, and its loss is the last one.
    fn close_step(
        &mut self,
        loss: Tensor<Self>,
        correct: Tensor<Self>,
        rows: usize,
        step: u64,
    ) -> Result<(), ExecError>;
}

/// Runs one training step on `model`.
pub fn train<P: StepPrimitives>(model: &mut P, step: TrainingStep) -> Result<(), ExecError> {
    // The loss is a mean over the global batch in a data-parallel step.
    let rows = step.rank.map_or(step.batch.len(), |(_, share)| share.global_rows);
    let number = step.step;
    let buffers = step.program.buffers;
    let (loss, correct, next) = match step.program.updates_in_backward {
        true => updating_inside_backward(model, step)?,
        false => updating_after_backward(model, step)?,
    };
    // A rank with no rows of the step has no statistics to move its buffers by.
    for (name, value) in buffers.iter().zip(&next) {
        model.keep_buffer(name, value)?;
    }
    model.close_step(loss, correct, rows, number)
}

/// What a step's schedule leaves for the protocol's end: its loss, its right answers and
/// its buffers' next values (none for a rank with no rows).
type StepEnd<P> = (Tensor<P>, Tensor<P>, Vec<Tensor<P>>);

/// The step whose updates follow backward.
fn updating_after_backward<P: StepPrimitives>(model: &mut P, step: TrainingStep) -> Result<StepEnd<P>, ExecError> {
    let TrainingStep {
        program,
        batch,
        ctx,
        lr,
        rank,
        ..
    } = step;
    let mut outputs = if batch.is_empty() {
        let mut zeros = model.zeros_for_no_rows(program)?;
        if let Some(rank) = rank {
            // The other ranks start each gradient's sum as backward makes it final: the same
            // sums, in the same order.
            let gradients = 1..=program.params.len();
            for k in exec::output_ready_points(program.graph, program.schedule)
                .into_iter()
                .flatten()
                .filter(|k| gradients.contains(k))
            {
                start_mean(model, rank, &mut zeros[k])?;
            }
        }
        zeros
    } else {
        let inputs = model.bind_batch(program, batch)?;
        let backend = model.backend();
        let mut listening = Listener::new(model, program, lr, rank);
        exec::run_updating(
            backend.as_ref(),
            program.graph,
            program.schedule,
            &mut listening,
            inputs,
            ctx,
        )?
        .outputs
    };
    // A rank with no rows has zeros for `[loss, gradients..., correct]` alone.
    let next = outputs.split_off(program.first_buffer_output().min(outputs.len()));
    let mut correct = outputs
        .pop()
        .expect("a training program counts its right rows after its gradients");
    let mut loss = outputs.remove(0);
    if let Some(rank @ (group, _)) = rank {
        start_mean(model, rank, &mut loss)?;
        model.start_sum(group, &mut correct)?;
        model.wait_for_sums(group)?;
    }
    model.flag_nonfinite(&loss, GuardFlag::NonfiniteLoss)?;
    if model.loss_scaled() {
        for grad in &outputs {
            model.flag_nonfinite(grad, GuardFlag::Overflow)?;
        }
    }
    if model.clips_gradients() {
        model.clip_gradients(&mut outputs)?;
    }
    for (name, grad) in program.params.iter().zip(&mut outputs) {
        model.apply_update(name, grad, lr)?;
    }
    Ok((loss, correct, next))
}

/// The step whose schedule updates each parameter inside backward, as soon as its gradient
/// is complete, the loss flagged in the guard whether or not an update ran to flag it.
fn updating_inside_backward<P: StepPrimitives>(model: &mut P, step: TrainingStep) -> Result<StepEnd<P>, ExecError> {
    let TrainingStep {
        program,
        batch,
        ctx,
        lr,
        rank,
        ..
    } = step;
    if model.loss_scaled() {
        return Err(ExecError::State(NO_UPDATES_INSIDE_BACKWARD.into()));
    }
    if model.clips_gradients() {
        return Err(ExecError::State(NO_CLIPPING_INSIDE_BACKWARD.into()));
    }
    let backend = model.backend();
    let (loss, mut correct, next, checked) = if batch.is_empty() {
        // No rows of this (small, last) batch: take part in every sum, in the schedule's
        // order, with zeros.
        let mut zeros = model.zeros_for_no_rows(program)?.into_iter();
        let mut loss = zeros.next().expect("a loss");
        let mut grads: Vec<_> = zeros.collect();
        let correct = grads.pop().expect("a count");
        let mut listening = Listener::new(model, program, lr, rank);
        for name in update_order(program) {
            let at = program.params.iter().position(|p| *p == name).expect("a parameter");
            listening.update(&name, &mut grads[at], &mut loss)?;
        }
        let checked = listening.loss_checked;
        (loss, correct, Vec::new(), checked)
    } else {
        let inputs = model.bind_batch(program, batch)?;
        let mut listening = Listener::new(model, program, lr, rank);
        let run = exec::run_updating(
            backend.as_ref(),
            program.graph,
            program.schedule,
            &mut listening,
            inputs,
            ctx,
        );
        let checked = listening.loss_checked;
        let mut o = run?.outputs;
        let next = o.split_off(program.first_buffer_output());
        let correct = o.pop().expect("a count");
        (o.pop().expect("a loss"), correct, next, checked)
    };
    if !checked {
        model.flag_nonfinite(&loss, GuardFlag::NonfiniteLoss)?;
    }
    if let Some((group, _)) = rank {
        // The loss was summed at the first update; the right answers remain.
        model.start_sum(group, &mut correct)?;
        model.wait_for_sums(group)?;
    }
    Ok((loss, correct, next))
}

/// Starts replacing this rank's mean `t` by the global batch's: weighted by the rank's
/// share, then summed over the ranks.
fn start_mean<P: StepPrimitives>(
    model: &P,
    (group, share): (&Group, StepShare),
    t: &mut Tensor<P>,
) -> Result<(), ExecError> {
    let weight = share.weight();
    if weight != 1.0 {
        model.scale_in_place(t, weight)?;
    }
    model.start_sum(group, t)
}

/// The parameters a schedule that updates inside backward updates, in its order: a rank
/// with no rows of a step sums zeros for them in this order, as the others sum their
/// gradients while their schedules run (every local batch size's schedule runs backward
/// from the last layer, so the order is the same for each).
fn update_order(program: &Program) -> Vec<String> {
    program
        .schedule
        .instrs
        .iter()
        .filter_map(|i| match i {
            Instr::Update { param, .. } => match &program.graph.node(*param).op {
                Op::Leaf(Leaf::Parameter { name }) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// What the executor hears from while a step's schedule runs: the parameters, read and
/// (inside backward) updated; in a data-parallel step each gradient's sum, started as soon
/// as backward makes it final (after backward's updates) or just before its update (inside).
struct Listener<'m, 'a, P: StepPrimitives> {
    model: &'m mut P,
    program: &'a Program<'a>,
    lr: f64,
    rank: Option<(&'a Group, StepShare)>,
    /// Whether the guard has seen the step's loss (at the first update inside backward; in
    /// a data-parallel step, the loss summed over the ranks in place there).
    loss_checked: bool,
}

impl<'m, 'a, P: StepPrimitives> Listener<'m, 'a, P> {
    fn new(model: &'m mut P, program: &'a Program<'a>, lr: f64, rank: Option<(&'a Group, StepShare)>) -> Self {
        Listener {
            model,
            program,
            lr,
            rank,
            loss_checked: false,
        }
    }
}

impl<P: StepPrimitives> ParameterAccess<Tensor<P>> for Listener<'_, '_, P> {
    fn get_param(&self, name: &str) -> Option<&Tensor<P>> {
        self.model.parameter(name)
    }

    /// The first update flags a non-finite loss in the guard, which every update then
    /// obeys; in a job it first replaces the loss, in place, by the global batch's (no
    /// buffer the plan does not count).
    fn update(&mut self, name: &str, grad: &mut Tensor<P>, loss: &mut Tensor<P>) -> Result<(), ExecError> {
        if !self.loss_checked {
            if let Some(rank @ (group, _)) = self.rank {
                start_mean(self.model, rank, loss)?;
                self.model.wait_for_sums(group)?;
            }
            self.model.flag_nonfinite(loss, GuardFlag::NonfiniteLoss)?;
            self.loss_checked = true;
        }
        if let Some(rank @ (group, _)) = self.rank {
            start_mean(self.model, rank, grad)?;
            self.model.wait_for_sums(group)?;
        }
        self.model.apply_update(name, grad, self.lr)
    }

    fn wants_outputs(&self) -> bool {
        let summing = self.rank.is_some() && !self.program.updates_in_backward;
        summing || !self.program.buffers.is_empty()
    }

    /// A gradient's sum starts as backward makes it final (after backward's updates). A
    /// buffer's next value is final in forward, before any update: one that is not finite
    /// (a running variance overflowed) stops the step there, as a non-finite loss does.
    fn output_ready(&mut self, k: usize, value: &mut Tensor<P>) -> Result<(), ExecError> {
        let program = self.program;
        if k >= program.first_buffer_output() {
            return self.model.flag_nonfinite(value, GuardFlag::NonfiniteLoss);
        }
        match self.rank {
            Some(rank) if !program.updates_in_backward && (1..=program.params.len()).contains(&k) => {
                start_mean(self.model, rank, value)
            }
            _ => Ok(()),
        }
    }
}
