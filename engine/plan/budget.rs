//! `budget:SIZE`: the plan with the least predicted recompute time whose predicted peak
//! fits. The candidates are the exact nested planner's plan ([`super::optimal`]) and the
//! single-level policies (none, cheap, one `every:K` per segment count); `cheap` drops
//! tensors inside a layer, which the chain planner does not, so neither family alone is
//! always best. Every candidate is judged by the exact walk (stage 6), not by a model.

use super::chain::Chain;
use super::nesting::Nest;
use super::optimal::Goal;
use super::profile::Profiles;
use super::{optimal, policy, revolve, CheckpointPolicy, Plan, PlanError, Request};
use rayon::prelude::*;

/// The single-level plans a budget chooses among (see [`policy::budget_candidates`]).
pub fn candidate_plans(request: &Request) -> Vec<Plan> {
    let boundaries = super::layer_boundaries(request.graph, request.outputs).len();
    policy::budget_candidates(boundaries)
        .into_par_iter()
        .map(|p| request.concrete(p))
        .collect()
}

/// Node runs a schedule may hold: a plan that recomputes more (`revolve:1` is quadratic in
/// depth) is refused rather than built (~100 bytes an instruction, several passes).
pub const MAX_NODE_RUNS: usize = 4_000_000;

/// The binomial plans a budget weighs: `revolve:1` to `revolve:REVOLVE_SLOTS`.
pub const REVOLVE_SLOTS: usize = 128;

/// The best nested plan for `budget` (`u64::MAX`: the plan of least memory), if the graph is
/// a chain and one fits: the exact planner's, or a binomial plan (`revolve:S`, S = 1..=128)
/// where it does better (on chains too long for [`optimal::MAX_SPLITS`] the planner
/// works on runs of layers, which the binomial plans do not). Candidates are judged by their
/// summed block effects, which are their exact peaks, and only the winner is built.
pub fn nested_plan(request: &Request, budget: u64) -> Option<Plan> {
    let chain = Chain::of(request.graph, request.outputs)?;
    let profiles = Profiles::measure(request.graph, &chain, request.outputs, request.gradients, request.step);
    let resident = request.resident.live.total() as i64;
    let entry = resident + profiles.prologue.net;
    let goal = match budget {
        u64::MAX => Goal::Smallest,
        b => Goal::FastestWithin(b.min(i64::MAX as u64 / 4) as i64),
    };
    let last = chain.len() - 1;
    let mut nests: Vec<Nest> = optimal::plan(&profiles, chain.len(), entry, goal)
        .into_iter()
        .map(|p| p.0)
        .collect();
    nests.extend((1..=REVOLVE_SLOTS.min(last.max(1))).map(|slots| revolve::plan(0, last, slots)));
    let judged = nests
        .into_iter()
        .filter(|n| n.node_runs(&chain) <= MAX_NODE_RUNS)
        .map(|n| (profiles.effect_of(&n), n));
    let best = match goal {
        Goal::Smallest => judged.min_by_key(|(e, _)| e.most),
        Goal::FastestWithin(b) => judged
            .filter(|(e, _)| resident + e.most.max(0) <= b)
            .min_by(|x, y| x.0.seconds.total_cmp(&y.0.seconds)),
    };
    let mut plan = request.nested(&chain, CheckpointPolicy::Budget(budget), best?.1);
    if budget == u64::MAX {
        // The least memory: the budget that asks for this plan is its own peak.
        plan.policy = CheckpointPolicy::Budget(plan.predicted.peak_total);
    }
    Some(plan)
}

/// The least recompute time among the candidates that fit `budget`.
pub fn plan(request: &Request, budget: u64) -> Result<Plan, PlanError> {
    let policy = CheckpointPolicy::Budget(budget);
    // Nothing recomputes less than keeping everything.
    let none = request.concrete(CheckpointPolicy::None);
    if none.predicted.peak_total <= budget {
        return Ok(Plan { policy, ..none });
    }
    // The two families are planned side by side (each a few hundred ms on a 1,000-layer net).
    let (mut plans, nested) = rayon::join(|| candidate_plans(request), || nested_plan(request, budget));
    plans.extend(nested);
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
