//! `budget:SIZE`: the plan with the least predicted recompute time whose predicted peak
//! fits. The candidates are the exact nested planner's plan ([`super::optimal`]) and the
//! single-level policies (none, cheap, one `every:K` per segment count); `cheap` drops
//! tensors inside a layer, which the chain planner does not, so neither family alone is
//! always best. Every candidate is judged by the exact walk (stage 6), not by a model.

use super::chain::Chain;
use super::optimal::Goal;
use super::profile::Profiles;
use super::{optimal, policy, CheckpointPolicy, Plan, PlanError, Request, StepKind};
use crate::graph::{Graph, NodeId};
use crate::memory::MemoryReport;

/// The single-level plans a budget chooses among (see [`policy::budget_candidates`]).
pub fn candidate_plans(
    graph: &Graph,
    outputs: &[NodeId],
    gradients: &[NodeId],
    resident: &MemoryReport,
    step: &StepKind,
) -> Vec<Plan> {
    let request = Request {
        graph,
        outputs,
        gradients,
        resident,
        step,
    };
    let boundaries = super::layer_boundaries(graph, outputs).len();
    policy::budget_candidates(boundaries)
        .into_iter()
        .map(|p| request.concrete(p))
        .collect()
}

/// The exact planner's plan for `budget`, if the graph is a chain and a nested plan fits
/// (`u64::MAX`: the plan of least memory).
pub fn nested_plan(request: &Request, budget: u64) -> Option<Plan> {
    let chain = Chain::of(request.graph, request.outputs)?;
    let profiles = Profiles::measure(request.graph, &chain, request.outputs, request.gradients, request.step);
    let resident = request.resident.live.total() as i64;
    let entry = resident + profiles.prologue.net;
    if budget != u64::MAX && resident + profiles.prologue.most > budget as i64 {
        return None;
    }
    let goal = match budget {
        u64::MAX => Goal::Smallest,
        b => Goal::FastestWithin(b.min(i64::MAX as u64 / 4) as i64),
    };
    let (nest, _) = optimal::plan(&profiles, chain.len(), entry, goal)?;
    let plan = request.nested(&chain, CheckpointPolicy::Budget(budget), nest);
    Some(plan)
}

/// The least recompute time among the candidates that fit `budget`.
pub fn plan(request: &Request, budget: u64) -> Result<Plan, PlanError> {
    let policy = CheckpointPolicy::Budget(budget);
    let mut plans = candidate_plans(
        request.graph,
        request.outputs,
        request.gradients,
        request.resident,
        request.step,
    );
    plans.extend(nested_plan(request, budget));
    let best = plans
        .iter()
        .filter(|p| p.predicted.peak_total <= budget)
        .min_by(|a, b| {
            a.recompute_seconds
                .total_cmp(&b.recompute_seconds)
                .then(a.predicted.peak_total.cmp(&b.predicted.peak_total))
        });
    match best {
        Some(p) => Ok(Plan { policy, ..p.clone() }),
        None => {
            plans.extend(nested_plan(request, u64::MAX));
            let smallest = plans
                .iter()
                .min_by_key(|p| p.predicted.peak_total)
                .expect("none is always a candidate");
            Err(PlanError::OverBudget {
                budget,
                smallest: smallest.predicted.peak_total,
                policy: super::chosen_name(smallest),
            })
        }
    }
}
