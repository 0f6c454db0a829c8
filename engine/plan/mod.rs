//! Planning a step: from a differentiated graph to the [`Schedule`] the executor follows,
//! with its memory known before anything runs. A chain of passes, each a free function of
//! (graph, what the pass before made) that reads nothing after it, called in this order by
//! [`Request::plan`] ([`Request::concrete`] and [`Request::nested`], then [`Request::complete`]):
//!
//! 1. [`policy::keep_for`]: choose which forward outputs to keep for backward;
//! 2. [`Schedule::build`]: the instruction list: recompute what was dropped right before
//!    backward reads it, free every buffer after its last use;
//! 3. [`fusion::fuse_linear`]: matrix product + bias (+ ReLU) as one Linear instruction;
//! 4. [`precision::store_16bit`]: in a low-precision step, which tensors are stored in 16 bits;
//! 5. [`updates::place_updates`]: with `--update-in-backward`, each parameter's update inside
//!    backward;
//! 6. [`Schedule::predict_with`]: walk the schedule with sizes instead of data: the peak,
//!    exactly.
//!
//! Nested plans ([`nesting`]: `revolve:S`, and what `budget:SIZE` finds) replace stages 1-2
//! with an instruction order lowered from a plan over the graph's [`chain`] of layers. A
//! byte budget takes the least recompute time among the exact planner's plan
//! ([`optimal`], over [`profile`]s read off probe plans) and the single-level policies,
//! with stage 6 as the judge. [`report`] reads plans back to a person.

pub mod budget;
pub mod chain;
pub mod cost_model;
pub mod fp8;
pub mod fusion;
pub mod nesting;
pub mod optimal;
pub mod policy;
pub mod precision;
pub mod predict;
pub mod profile;
pub mod report;
pub mod revolve;
pub mod schedule;
pub mod updates;

pub use budget::candidate_plans;
pub use cost_model::Rates;
pub use nesting::Nest;
pub use policy::{layer_boundaries, CheckpointPolicy, PlanError};
pub use predict::{HalfLayout, Level};
pub use report::{chosen_name, fates, forward_runs_by_layer, frontier, layer_runs, Fate};
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
    /// Predicted seconds of one step's ops, and of its recomputations alone ([`Rates`]).
    pub seconds: f64,
    pub recompute_seconds: f64,
    /// The nested plan, for plans made from one (`revolve:S`, most budgets).
    pub nest: Option<Nest>,
    /// What one step does, by kind of work (to calibrate [`Rates`] from a timed step).
    pub work: cost_model::Work,
    /// How the device the plan is for holds 16-bit values (`None`: an f32 step).
    pub layout: HalfLayout,
}

impl Plan {
    pub fn recompute_fraction(&self) -> f64 {
        self.recompute_flops as f64 / (self.flops - self.recompute_flops).max(1) as f64
    }

    /// A step's FLOPs over those of the same step without recomputation (1 for none).
    pub fn recompute_factor(&self) -> f64 {
        self.flops as f64 / (self.flops - self.recompute_flops).max(1) as f64
    }

    /// Recompute time over the time of the same step without recomputation.
    pub fn recompute_time_fraction(&self) -> f64 {
        self.recompute_seconds / (self.seconds - self.recompute_seconds).max(f64::MIN_POSITIVE)
    }

    /// How many times the step runs the forward op of each node (1 plus its recomputations).
    pub fn forward_runs(&self, graph: &Graph) -> Vec<usize> {
        let mut runs = vec![0usize; graph.len()];
        for instr in &self.schedule.instrs {
            for id in instr.runs() {
                runs[id.0] += 1;
            }
        }
        runs
    }
}

/// Passes 2 and 3: the fused schedule that keeps `keep`. With
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
    /// The device's rates, which turn recomputation into time.
    pub rates: Rates,
}

/// Passes 3 to 5, in order, on a schedule made by pass 2 (or lowered from a nested plan):
/// what the device runs.
pub(crate) fn fuse_store_and_update(graph: &Graph, schedule: Schedule, step: &StepKind) -> Schedule {
    let fused = fusion::fuse_linear(graph, schedule);
    let stored = precision::store_16bit(graph, fused, step.layout);
    updates::place_updates(graph, stored, step.updates.as_ref())
}

/// What a step is planned from: the graph, its outputs and the step's kind.
pub struct Request<'a> {
    pub graph: &'a Graph,
    pub outputs: &'a [NodeId],
    pub gradients: &'a [NodeId],
    pub resident: &'a MemoryReport,
    pub step: &'a StepKind,
}

impl Request<'_> {
    /// Plans one training step: every stage, in order, under `policy`. `resident` holds the
    /// bytes live before the step (parameters, optimizer state), which a budget must include.
    pub fn plan(&self, policy: CheckpointPolicy) -> Result<Plan, PlanError> {
        match policy {
            CheckpointPolicy::Budget(budget) => budget::cheapest_within(self, budget),
            CheckpointPolicy::Revolve(slots) => {
                let chain = self.chain(policy)?;
                let nest = revolve::binomial_nest(0, chain.len() - 1, slots);
                let runs = nest.node_runs(&chain);
                if runs > budget::MAX_NODE_RUNS {
                    return Err(PlanError::TooMuchRecompute { policy, runs });
                }
                Ok(self.nested(&chain, policy, nest))
            }
            _ => Ok(self.concrete(policy)),
        }
    }

    /// The plan `like` chose (its nesting, or the concrete policy a budget took), for this
    /// graph and step kind: the same recomputation in a step of another kind (one that hands
    /// its gradients out instead of updating inside backward).
    pub fn like(&self, like: &Plan) -> Result<Plan, PlanError> {
        match &like.nest {
            None => self.plan(like.chosen),
            Some(nest) => Ok(self.nested(&self.chain(like.policy)?, like.policy, nest.clone())),
        }
    }

    /// The graph as a chain of layers, which a nested `policy` needs.
    fn chain(&self, policy: CheckpointPolicy) -> Result<chain::Chain, PlanError> {
        chain::Chain::of(self.graph, self.outputs).ok_or(PlanError::NotAChain { policy })
    }

    /// Passes 1 and 2 for a single-level policy (not a budget, not nested), then the rest (not a budget, not nested).
    pub fn concrete(&self, policy: CheckpointPolicy) -> Plan {
        let candidates = layer_boundaries(self.graph, self.outputs);
        let (keep, boundaries) = policy::keep_for(self.graph, policy, &candidates);
        let built = Schedule::build(self.graph, self.outputs, self.gradients, &keep);
        let plan = self.complete(policy, built, None);
        Plan {
            keep,
            boundaries,
            candidates,
            ..plan
        }
    }

    /// The plan that runs `nest` over `chain`.
    pub fn nested(&self, chain: &chain::Chain, policy: CheckpointPolicy, nest: Nest) -> Plan {
        let (order, _) = nesting::lower(self.graph, chain, &nest);
        let built = Schedule::from_order(self.graph, order, self.outputs, self.gradients);
        let mut plan = self.complete(policy, built, Some(nest));
        plan.candidates = layer_boundaries(self.graph, self.outputs);
        let mut cuts = Vec::new();
        plan.nest.as_ref().expect("set above").checkpoints(&mut cuts);
        cuts.sort_unstable();
        cuts.dedup();
        plan.boundaries = cuts.iter().map(|&at| plan.candidates[at - 1]).collect();
        plan
    }

    /// Passes 3 to 6 on a built schedule.
    pub fn complete(&self, policy: CheckpointPolicy, built: Schedule, nest: Option<Nest>) -> Plan {
        let schedule = fuse_store_and_update(self.graph, built, self.step);
        let work = cost_model::Work::of(self.graph, &schedule);
        let layout = self.step.layout;
        let predicted = schedule.predict_with(self.graph, self.resident, layout);
        let (flops, recompute_flops) = schedule.flops(self.graph);
        let (seconds, recompute_seconds) = self.step.rates.schedule_seconds(self.graph, &schedule);
        Plan {
            policy,
            chosen: policy,
            keep: KeepSet::everything(self.graph),
            schedule,
            boundaries: Vec::new(),
            candidates: Vec::new(),
            predicted,
            flops,
            recompute_flops,
            seconds,
            recompute_seconds,
            nest,
            work,
            layout,
        }
    }
}
