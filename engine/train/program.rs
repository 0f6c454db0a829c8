//! A step program: the graph traced once for one batch size, differentiated, and
//! scheduled. Running it again only binds new data.

use crate::autodiff::{backward, backward_scaled};
use crate::exec::Program;
use crate::graph::{Graph, GraphError, NodeId};
use crate::memory::MemoryReport;
use crate::memory::{Bytes, MAX_TENSOR_BYTES};
use crate::nn::{LossKind, Mlp};
use crate::plan::{
    self, CheckpointPolicy, HalfLayout, KeepSet, Plan, PlanError, Rates, Request, Schedule, StepKind, Updates,
};
use crate::tensor::DType;
use crate::trace::Tracer;

pub struct StepProgram {
    pub graph: Graph,
    pub schedule: Schedule,
    pub loss: NodeId,
    /// Logits, for evaluation programs.
    pub logits: NodeId,
    /// Parameter names, in the order of their gradients among the outputs.
    pub params: Vec<String>,
    /// A training program's buffers (BatchNorm's running statistics), in the order of
    /// their next values at the end of its outputs.
    pub buffers: Vec<String>,
    /// The checkpoint plan behind a training program's schedule.
    pub plan: Option<Plan>,
    /// Whether backward is seeded by the `loss_scale` input (gradients come out scaled).
    pub loss_scaled: bool,
    /// Whether the schedule updates the parameters inside backward (outputs `[loss, correct]`).
    pub updates_in_backward: bool,
    /// A training program's outputs as planned, `[loss, gradients..., correct]` (the
    /// schedule's own lack the gradients when it updates inside backward), its gradients,
    /// and what its plan was made for: enough to plan it again (`plan --frontier`).
    pub planned: Option<(Vec<NodeId>, Vec<NodeId>, StepKind)>,
    /// Unique to this program as built ([`Program::id`]): a device may keep work it made
    /// for it (a captured GPU step). Whatever changes the schedule gives it a new one.
    pub id: u64,
}

/// A new [`StepProgram::id`].
fn fresh_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What a training program is planned from.
#[derive(Clone, Copy)]
pub enum Planning<'a> {
    Policy(CheckpointPolicy),
    /// The same choice as this plan: its nesting, or the concrete policy a budget took.
    Like(&'a Plan),
}

/// How a training step runs on its device, besides its checkpoint policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepOptions {
    /// Backward is seeded by the `loss_scale` input (f16's dynamic loss scaling).
    pub loss_scaled: bool,
    /// How the device holds 16-bit values (`--dtype`).
    pub layout: HalfLayout,
    /// Each parameter's update runs inside backward (`--update-in-backward`).
    pub update_in_backward: bool,
    /// The device's rates, which turn recomputation into time for the planner.
    pub rates: Rates,
}

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl StepProgram {
    /// Forward, loss, backward: outputs `[loss, grad of each parameter..., correct,
    /// buffers...]`: `correct` the number of rows the step's forward pass classified right
    /// (its training accuracy, free: the logits are there anyway), then each buffer's value
    /// after the step (BatchNorm's running statistics), which the device keeps.
    /// A training program under a checkpoint policy; `resident` is what is live before a
    /// step (parameters, optimizer state), which a budget must count.
    pub fn checkpointed(
        mlp: &Mlp,
        batch: usize,
        policy: CheckpointPolicy,
        resident: &MemoryReport,
    ) -> Result<Self, ProgramError> {
        Self::training(mlp, batch, policy, resident, StepOptions::default())
    }

    /// [`Self::checkpointed`] run as `options` say: for a device that holds 16-bit values as
    /// its layout says (a low-precision step stores what it can in 16 bits), with backward
    /// seeded by the `loss_scale` input, with updates inside backward.
    pub fn training(
        mlp: &Mlp,
        batch: usize,
        policy: CheckpointPolicy,
        resident: &MemoryReport,
        options: StepOptions,
    ) -> Result<Self, ProgramError> {
        Self::planned_as(mlp, batch, Planning::Policy(policy), resident, options)
    }

    /// A training program planned as `planning` says (a policy, or another program's plan:
    /// `--verify-checkpoint` checks the very plan training runs, in a step that hands its
    /// gradients out).
    pub fn planned_as(
        mlp: &Mlp,
        batch: usize,
        planning: Planning,
        resident: &MemoryReport,
        options: StepOptions,
    ) -> Result<Self, ProgramError> {
        let loss_scaled = options.loss_scaled;
        let (mut graph, loss, logits, updates) = trace_loss(mlp, batch, true)?;
        let correct = {
            let labels = graph
                .inputs()
                .into_iter()
                .find(|(_, n)| *n == "labels")
                .map(|(id, _)| id);
            let labels = labels.ok_or_else(|| GraphError::Invalid("the labels were not traced".into()))?;
            match mlp.spec.loss {
                LossKind::CrossEntropy => graph.push(crate::ops::Op::CountCorrect, &[logits, labels])?,
                // A regression classifies nothing: its count is 0 (the loss says all).
                LossKind::Mse => graph.push(crate::ops::Op::Scale(0.0), &[loss])?,
            }
        };
        let names = mlp.parameter_names();
        let traced: std::collections::HashMap<&str, NodeId> =
            graph.parameters().into_iter().map(|(id, p)| (p, id)).collect();
        let ids: Vec<NodeId> = names
            .iter()
            .map(|n| traced.get(n.as_str()).copied())
            .collect::<Option<_>>()
            .ok_or_else(|| GraphError::Invalid("a parameter of the model was not traced".into()))?;
        let grads = if loss_scaled {
            backward_scaled(&mut graph, loss, &ids)?
        } else {
            backward(&mut graph, loss, &ids)?
        };
        let mut outputs = vec![loss];
        outputs.extend(&grads);
        outputs.push(correct);
        outputs.extend(updates.iter().map(|(_, id)| *id));
        let step = StepKind {
            layout: options.layout,
            rates: options.rates,
            updates: options.update_in_backward.then(|| Updates {
                params: ids.iter().copied().zip(grads.iter().copied()).collect(),
                loss,
            }),
        };
        let request = Request {
            graph: &graph,
            outputs: &outputs,
            gradients: &grads,
            resident,
            step: &step,
        };
        let plan = match planning {
            Planning::Policy(policy) => request.plan(policy)?,
            Planning::Like(like) => request.like(like)?,
        };
        let planned = Some((outputs, grads, step));
        Ok(StepProgram {
            graph,
            schedule: plan.schedule.clone(),
            loss,
            logits,
            params: names,
            buffers: updates.into_iter().map(|(name, _)| name).collect(),
            plan: Some(plan),
            loss_scaled,
            updates_in_backward: options.update_in_backward,
            planned,
            id: fresh_id(),
        })
    }

    /// Forward only, no labels: outputs `[logits]` (predicting).
    pub fn inference(mlp: &Mlp, batch: usize) -> Result<Self, GraphError> {
        check_size(mlp, batch)?;
        let tracer = Tracer::evaluating(DType::F32);
        let x = tracer.input("x", [batch, mlp.spec.inputs()]);
        let logits = mlp.forward(&tracer, &x)?.id;
        let graph = tracer.finish();
        let schedule = plan::schedule(&graph, &[logits], &[], &KeepSet::everything(&graph));
        Ok(StepProgram {
            graph,
            schedule,
            loss: logits,
            logits,
            params: mlp.parameter_names(),
            buffers: Vec::new(),
            plan: None,
            loss_scaled: false,
            updates_in_backward: false,
            planned: None,
            id: fresh_id(),
        })
    }

    /// Forward only: outputs `[logits, loss]`.
    pub fn evaluation(mlp: &Mlp, batch: usize) -> Result<Self, GraphError> {
        let (graph, loss, logits, _) = trace_loss(mlp, batch, false)?;
        let schedule = plan::schedule(&graph, &[logits, loss], &[], &KeepSet::everything(&graph));
        Ok(StepProgram {
            graph,
            schedule,
            loss,
            logits,
            params: mlp.parameter_names(),
            buffers: Vec::new(),
            plan: None,
            loss_scaled: false,
            updates_in_backward: false,
            planned: None,
            id: fresh_id(),
        })
    }

    /// A training program's gradients, one per parameter, in `params` order (outputs of its
    /// schedule unless it updates inside backward).
    pub fn gradient_outputs(&self) -> &[NodeId] {
        self.planned.as_ref().map_or(&[], |(_, grads, _)| grads)
    }

    /// What a device runs.
    pub fn program(&self) -> Program<'_> {
        Program {
            graph: &self.graph,
            schedule: &self.schedule,
            params: &self.params,
            buffers: &self.buffers,
            loss_scaled: self.loss_scaled,
            updates_in_backward: self.updates_in_backward,
            id: self.id,
        }
    }

    /// The memory one run will use on top of `resident` (parameters, optimizer state).
    pub fn predict(&self, resident: &MemoryReport) -> MemoryReport {
        self.schedule.predict(&self.graph, resident)
    }

    /// [`Self::predict`] on a device that holds 16-bit values as `layout` says.
    pub fn predict_with(&self, resident: &MemoryReport, layout: HalfLayout) -> MemoryReport {
        self.schedule.predict_with(&self.graph, resident, layout)
    }

    /// This (evaluation or inference) program for a device that holds 16-bit values as
    /// `layout` says: in low precision, what can be is stored in 16 bits. Training programs
    /// are planned for their layout from the start ([`Self::training`]).
    pub fn stored_for(mut self, layout: HalfLayout) -> Self {
        if layout != HalfLayout::None {
            self.schedule = crate::plan::precision::store_16bit(&self.graph, self.schedule, layout);
            self.id = fresh_id();
        }
        self
    }
}

/// The loss of `mlp` on a batch, traced for training or evaluation: the graph, the loss,
/// the logits, and in training each buffer's next value.
type Traced = (Graph, NodeId, NodeId, Vec<(String, NodeId)>);

fn trace_loss(mlp: &Mlp, batch: usize, training: bool) -> Result<Traced, GraphError> {
    check_size(mlp, batch)?;
    let tracer = match training {
        true => Tracer::new(DType::F32),
        false => Tracer::evaluating(DType::F32),
    };
    let x = tracer.input("x", [batch, mlp.spec.inputs()]);
    let logits = mlp.forward(&tracer, &x)?;
    // Classes' labels, one a row; or a regression's targets, one a row per output.
    let loss = match mlp.spec.loss {
        LossKind::CrossEntropy => logits.softmax_cross_entropy(&tracer.input("labels", [batch]))?,
        LossKind::Mse => logits.mse(&tracer.input("labels", [batch, mlp.spec.classes()]))?,
    };
    let (loss, logits) = (loss.id, logits.id);
    let (graph, updates) = tracer.finish_with_updates();
    Ok((graph, loss, logits, updates))
}

/// Checked before tracing, so no size the planner adds up can wrap around.
fn check_size(mlp: &Mlp, batch: usize) -> Result<(), GraphError> {
    let widest = mlp.spec.widest() as u64;
    if (batch as u64)
        .checked_mul(widest * 4)
        .is_none_or(|b| b > MAX_TENSOR_BYTES)
    {
        return Err(GraphError::Invalid(format!(
            "a batch of {batch} at width {widest} needs more than {} for one activation",
            Bytes(MAX_TENSOR_BYTES)
        )));
    }
    Ok(())
}
