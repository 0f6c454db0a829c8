//! `budget:SIZE`: the plan with the least predicted recompute time whose predicted peak
//! fits. The candidates are the exact nested planner's plan ([`super::optimal`]) and the
//! single-level policies (none, cheap, one `every:K` per segment count); `cheap` drops
//! tensors inside a layer, which the chain planner does not, so neither family alone is
//! always best. Every candidate is judged by the exact walk (stage 6), not by a model.

use super::chain::Chain;
use super::nesting::Nest;
use super::profile::{Effect, Profiles};
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

/// The nested plans a budget weighs, over the graph's chain: the exact planner's (its
/// least-memory plan and its fastest within the budget) and the binomial plans (`revolve:S`,
/// S = 1..=128), which do better on chains too long for [`optimal::MAX_SPLITS`], where the
/// planner works on runs of layers. Each is judged by its summed block effects, which are its
/// exact peak and time, and only the one chosen is built.
struct Nested {
    chain: Chain,
    resident: i64,
    judged: Vec<(Effect, Nest)>,
}

impl Nested {
    fn of(request: &Request, budget: u64) -> Option<Nested> {
        let chain = Chain::of(request.graph, request.outputs)?;
        let profiles = Profiles::measure(request.graph, &chain, request.outputs, request.gradients, request.step);
        let resident = request.resident.live.total() as i64;
        let entry = resident + profiles.prologue.net;
        let last = chain.len() - 1;
        let budget = budget.min(i64::MAX as u64 / 4) as i64;
        let mut nests = optimal::nests_within(&profiles, chain.len(), entry, budget);
        nests.extend((1..=REVOLVE_SLOTS.min(last.max(1))).map(|slots| revolve::binomial_nest(0, last, slots)));
        let judged = nests
            .into_iter()
            .filter(|n| n.node_runs(&chain) <= MAX_NODE_RUNS)
            .map(|n| (profiles.effect_of(&n), n))
            .collect();
        Some(Nested {
            chain,
            resident,
            judged,
        })
    }

    /// The fastest that fits `budget`, built.
    fn fastest_within(&self, request: &Request, budget: u64) -> Option<Plan> {
        let fits = |e: &Effect| (self.resident + e.most.max(0)) as u64 <= budget;
        let best = self.judged.iter().filter(|(e, _)| fits(e));
        let best = best.min_by(|x, y| x.0.seconds.total_cmp(&y.0.seconds))?;
        Some(request.nested(&self.chain, CheckpointPolicy::Budget(budget), best.1.clone()))
    }

    /// The least memory, built; the budget that asks for it is its own peak.
    fn smallest(&self, request: &Request) -> Option<Plan> {
        let (_, nest) = self.judged.iter().min_by_key(|(e, _)| e.most)?;
        let mut plan = request.nested(&self.chain, CheckpointPolicy::Budget(u64::MAX), nest.clone());
        plan.policy = CheckpointPolicy::Budget(plan.predicted.peak_total);
        Some(plan)
    }
}

/// The best nested plan for `budget` (`u64::MAX`: the plan of least memory), if the graph is
/// a chain and one fits: the exact planner's, or a binomial plan where it does better.
pub fn nested_plan(request: &Request, budget: u64) -> Option<Plan> {
    let nested = Nested::of(request, budget)?;
    match budget {
        u64::MAX => nested.smallest(request),
        b => nested.fastest_within(request, b),
    }
}

/// The least recompute time among the candidates that fit `budget`.
pub fn cheapest_within(request: &Request, budget: u64) -> Result<Plan, PlanError> {
    let policy = CheckpointPolicy::Budget(budget);
    // Nothing recomputes less than keeping everything.
    let none = request.concrete(CheckpointPolicy::None);
    if none.predicted.peak_total <= budget {
        return Ok(Plan { policy, ..none });
    }
    // The two families are planned side by side (each a few hundred ms on a 1,000-layer net).
    let (mut plans, nested) = rayon::join(|| candidate_plans(request), || Nested::of(request, budget));
    plans.extend(nested.as_ref().and_then(|n| n.fastest_within(request, budget)));
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
            plans.extend(nested.as_ref().and_then(|n| n.smallest(request)));
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
