//! Planning a step: from a differentiated graph to the [`Schedule`] the executor follows,
//! with its memory known before anything runs. Stages, each reading only the ones before
//! it, called in this order by [`plan_step`] (and [`Schedule::in_half`] for a low-precision
//! step):
//!
//! 1. [`policy`]: choose which forward outputs to keep for backward (checkpoint policies);
//! 2. [`schedule`]: build the instruction list: recompute what was dropped right before
//!    backward reads it, free every buffer after its last use;
//! 3. [`fusion`]: fuse matrix product + bias (+ ReLU) into one Linear instruction;
//! 4. [`precision`]: in a low-precision step, which tensors are stored in 16 bits;
//! 5. [`updates`]: with `--update-in-backward`, each parameter's update inside backward;
//! 6. [`predict`]: walk the schedule with sizes instead of data: the peak, exactly.
//!
//! A byte budget is a search over concrete policies with stage 6 as the judge.
//! [`report`] reads plans back to a person.

pub mod fusion;
pub mod policy;
pub mod precision;
pub mod predict;
pub mod report;
pub mod schedule;
pub mod updates;

pub use policy::{layer_boundaries, CheckpointPolicy, PlanError};
pub use predict::HalfLayout;
pub use report::{fates, frontier, Fate};
pub use schedule::{Instr, KeepSet, Schedule, Storage};
pub use updates::Updates;

use crate::graph::{Graph, NodeId};
use crate::memory::MemoryReport;

/// A chosen plan with its predictions.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What was asked for.
    pub policy: CheckpointPolicy,
    /// The concrete plan taken (a budget resolves to one of the others).
    pub chosen: CheckpointPolicy,
    pub keep: KeepSet,
    pub schedule: Schedule,
    /// Segment boundaries kept (segment policies only).
    pub boundaries: Vec<NodeId>,
    /// Every layer boundary the graph offers.
    pub candidates: Vec<NodeId>,
    pub predicted: MemoryReport,
    pub flops: u64,
    pub recompute_flops: u64,
    /// How the device the plan is for holds 16-bit values (`None`: an f32 step).
    pub layout: HalfLayout,
}

impl Plan {
    pub fn recompute_fraction(&self) -> f64 {
        self.recompute_flops as f64 / (self.flops - self.recompute_flops).max(1) as f64
    }
}

/// Stages 2 and 3: the fused schedule that keeps `keep`. With
/// [`KeepSet::everything`] it is the schedule of a step without checkpointing.
pub fn schedule(graph: &Graph, outputs: &[NodeId], gradients: &[NodeId], keep: &KeepSet) -> Schedule {
    fusion::fuse_linear(graph, Schedule::build(graph, outputs, gradients, keep))
}

/// What a step's plan depends on besides its graph and policy.
#[derive(Clone, Debug, Default)]
pub struct StepKind {
    /// How the device holds 16-bit values (`None`: an f32 step).
    pub layout: HalfLayout,
    /// The parameters updated inside backward, if they are.
    pub updates: Option<Updates>,
}

/// Plans one training step: every stage, in order, for a step of kind `step`. `resident`
/// holds the bytes live before the step (parameters, optimizer state), which a budget must
/// include.
pub fn plan_step(
    graph: &Graph,
    outputs: &[NodeId],
    gradients: &[NodeId],
    policy: CheckpointPolicy,
    resident: &MemoryReport,
    step: &StepKind,
) -> Result<Plan, PlanError> {
    let CheckpointPolicy::Budget(budget) = policy else {
        let candidates = layer_boundaries(graph, outputs);
        return Ok(plan_concrete(
            graph,
            outputs,
            gradients,
            resident,
            step,
            policy,
            &candidates,
        ));
    };
    let plans = candidate_plans(graph, outputs, gradients, resident, step);
    let best = plans
        .iter()
        .filter(|p| p.predicted.peak_total <= budget)
        .min_by_key(|p| (p.recompute_flops, p.predicted.peak_total));
    match best {
        Some(p) => Ok(Plan { policy, ..p.clone() }),
        None => {
            let smallest = plans
                .iter()
                .min_by_key(|p| p.predicted.peak_total)
                .expect("none is always a candidate");
            Err(PlanError::OverBudget {
                budget,
                smallest: smallest.predicted.peak_total,
                policy: smallest.chosen.to_string(),
            })
        }
    }
}

/// The plans a budget chooses among (see [`policy::budget_candidates`]).
pub fn candidate_plans(
    graph: &Graph,
    outputs: &[NodeId],
    gradients: &[NodeId],
    resident: &MemoryReport,
    step: &StepKind,
) -> Vec<Plan> {
    let candidates = layer_boundaries(graph, outputs);
    policy::budget_candidates(candidates.len())
        .into_iter()
        .map(|p| plan_concrete(graph, outputs, gradients, resident, step, p, &candidates))
        .collect()
}

/// Every stage for a policy that is not a budget.
fn plan_concrete(
    graph: &Graph,
    outputs: &[NodeId],
    gradients: &[NodeId],
    resident: &MemoryReport,
    step: &StepKind,
    policy: CheckpointPolicy,
    candidates: &[NodeId],
) -> Plan {
    let (keep, boundaries) = policy::keep_for(graph, policy, candidates);
    let layout = step.layout;
    let schedule = schedule(graph, outputs, gradients, &keep);
    let schedule = match layout {
        HalfLayout::None => schedule,
        _ => schedule.in_half(graph),
    };
    let schedule = match &step.updates {
        Some(u) => updates::update_in_backward(graph, schedule, u),
        None => schedule,
    };
    let predicted = schedule.predict_with(graph, resident, layout);
    let (flops, recompute_flops) = schedule.flops(graph);
    Plan {
        policy,
        chosen: policy,
        keep,
        schedule,
        boundaries,
        candidates: candidates.to_vec(),
        predicted,
        flops,
        recompute_flops,
        layout,
    }
}
