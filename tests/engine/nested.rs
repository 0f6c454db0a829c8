//! Nested checkpointing: the block effects the exact planner sums are the exact walk's
//! peak for every nested plan; brute force over every nested plan of random heterogeneous
//! chains finds none that fits a budget with less recompute time than the planner's; and
//! nested plans (`revolve:S`, budgets) give gradients bitwise identical to `none`, with the
//! measured peak equal to the predicted one.

use chainrule::memory::{Category, MemoryReport};
use chainrule::nn::{Mlp, MlpSpec};
use chainrule::plan::budget::nested_plan;
use chainrule::plan::chain::Chain;
use chainrule::plan::profile::Profiles;
use chainrule::plan::{layer_runs, CheckpointPolicy, HalfLayout, Nest, Request, StepKind};
use chainrule::train::{StepOptions, StepProgram};

/// Every nested plan of stages `s..=t`.
fn every_nest(s: usize, t: usize) -> Vec<Nest> {
    if s == t {
        return vec![Nest::Last(s)];
    }
    let mut out: Vec<Nest> = every_nest(s + 1, t)
        .into_iter()
        .map(|r| Nest::Keep(s, Box::new(r)))
        .collect();
    for at in s + 1..=t {
        let lefts = every_nest(s, at - 1);
        for right in every_nest(at, t) {
            for left in &lefts {
                out.push(Nest::Split {
                    from: s,
                    at,
                    right: Box::new(right.clone()),
                    left: Box::new(left.clone()),
                });
            }
        }
    }
    out
}

/// A small deterministic generator for the random chains.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A random heterogeneous MLP of `depth` layers, and the options its step is planned with.
fn random_case(rng: &mut Lcg, depth: usize) -> (Mlp, StepOptions) {
    let widths: Vec<String> = (0..=depth).map(|_| (2 + rng.below(40)).to_string()).collect();
    let activation = ["relu", "gelu"][rng.below(2) as usize];
    let dropout = [0.0, 0.3][rng.below(2) as usize];
    let mlp = Mlp::new(MlpSpec::new(&widths.join("-"), activation, dropout).unwrap()).unwrap();
    let options = StepOptions {
        layout: [HalfLayout::None, HalfLayout::Packed, HalfLayout::Widened][rng.below(3) as usize],
        update_in_backward: rng.below(2) == 1,
        ..Default::default()
    };
    (mlp, options)
}

fn resident() -> MemoryReport {
    let mut r = MemoryReport::default();
    r.add(Category::Parameters, 4096);
    r
}

/// Runs `f` with the planning request of `mlp`'s step at `batch`.
fn with_request<T>(mlp: &Mlp, batch: usize, options: StepOptions, f: impl FnOnce(&Request) -> T) -> T {
    let resident = resident();
    let program = StepProgram::training(mlp, batch, CheckpointPolicy::None, &resident, options).unwrap();
    let (outputs, gradients, step): &(_, _, StepKind) = program.planned.as_ref().unwrap();
    let request = Request {
        graph: &program.graph,
        outputs,
        gradients,
        resident: &resident,
        step,
    };
    f(&request)
}

#[test]
fn summed_block_effects_are_the_exact_peak_of_every_nested_plan() {
    let mut rng = Lcg(7);
    for case in 0..12 {
        let depth = 1 + case % 6;
        let (mlp, options) = random_case(&mut rng, depth);
        let batch = 1 + rng.below(9) as usize;
        with_request(&mlp, batch, options, |request| {
            let chain = Chain::of(request.graph, request.outputs).expect("an MLP is a chain");
            assert_eq!(chain.len(), depth, "one stage per layer");
            let profiles = Profiles::measure(request.graph, &chain, request.outputs, request.gradients, request.step);
            for nest in every_nest(0, depth - 1) {
                let plan = request.nested(&chain, CheckpointPolicy::None, nest.clone());
                let mut blocks = Vec::new();
                nest.blocks(&mut blocks);
                let effect = blocks.iter().fold(profiles.prologue, |e, &b| e.then(profiles.of(b)));
                let modeled = request.resident.live.total() + effect.most.max(0) as u64;
                assert_eq!(
                    modeled,
                    plan.predicted.peak_total,
                    "case {case} ({} {options:?}), {}",
                    mlp.spec.widths.len(),
                    nest.brackets()
                );
                let seconds: f64 = effect.seconds;
                assert!(
                    (seconds - plan.seconds).abs() <= 1e-9 * plan.seconds,
                    "{seconds} against {}",
                    plan.seconds
                );
            }
        });
    }
}

#[test]
fn brute_force_finds_no_nested_plan_cheaper_than_the_planner_within_its_budget() {
    let mut rng = Lcg(11);
    for case in 0..8 {
        let depth = [6, 7, 8, 9][case % 4];
        let (mlp, options) = random_case(&mut rng, depth);
        let batch = 1 + rng.below(16) as usize;
        with_request(&mlp, batch, options, |request| {
            let chain = Chain::of(request.graph, request.outputs).unwrap();
            let all: Vec<(u64, f64)> = every_nest(0, depth - 1)
                .into_iter()
                .map(|nest| {
                    let plan = request.nested(&chain, CheckpointPolicy::None, nest);
                    (plan.predicted.peak_total, plan.recompute_seconds)
                })
                .collect();
            let (lo, hi) = (
                all.iter().map(|a| a.0).min().unwrap(),
                all.iter().map(|a| a.0).max().unwrap(),
            );
            for k in 0..=6u64 {
                let budget = lo + (hi - lo) * k / 6;
                let brute = all
                    .iter()
                    .filter(|a| a.0 <= budget)
                    .map(|a| a.1)
                    .fold(f64::INFINITY, f64::min);
                let planned = nested_plan(request, budget).expect("the smallest plan fits");
                assert!(planned.predicted.peak_total <= budget);
                assert!(
                    planned.recompute_seconds <= brute * (1.0 + 1e-9),
                    "case {case}, budget {budget}: planner {} s, brute force {brute} s ({})",
                    planned.recompute_seconds,
                    planned.nest.as_ref().unwrap().brackets()
                );
            }
        });
    }
}

#[test]
fn nested_plans_give_bitwise_identical_gradients_and_exact_predictions() {
    let mlp = Mlp::new(MlpSpec::new("13-40-7-33-7-40-21-9-30-5", "gelu", 0.3).unwrap()).unwrap();
    let batch = 11;
    let reference = crate::common::step_under(&mlp, batch, CheckpointPolicy::None);
    let smallest = crate::common::step_under(&mlp, batch, CheckpointPolicy::Revolve(1))
        .predicted
        .peak_total;
    for policy in [
        CheckpointPolicy::Revolve(1),
        CheckpointPolicy::Revolve(2),
        CheckpointPolicy::Revolve(3),
        CheckpointPolicy::Budget(smallest),
        CheckpointPolicy::Budget((smallest + reference.predicted.peak_total) / 2),
    ] {
        let run = crate::common::step_under(&mlp, batch, policy);
        assert_eq!(run.outputs, reference.outputs, "{policy}: gradients differ from none");
        assert_eq!(
            run.predicted, run.measured,
            "{policy}: prediction differs from measurement"
        );
    }
}

#[test]
fn revolve_keeps_logarithmic_checkpoints_and_bounds_the_forward_runs() {
    let mlp = Mlp::new(MlpSpec::new(&format!("16{}-4", "-16".repeat(63)), "relu", 0.0).unwrap()).unwrap();
    for slots in [1usize, 2, 3, 6] {
        let program =
            StepProgram::checkpointed(&mlp, 8, CheckpointPolicy::Revolve(slots), &MemoryReport::default()).unwrap();
        let runs = layer_runs(&program.graph, program.plan.as_ref().unwrap());
        assert_eq!(runs.len(), 64);
        // With r the least whole number such that C(slots + r, slots) >= 64, no stage runs
        // forward more than r + 1 times.
        let binomial = |r: u64| (1..=slots as u64).fold(1u64, |b, i| b * (r + i) / i);
        let r = (0..).find(|&r| binomial(r) >= 64).unwrap() as usize;
        assert!(runs.iter().all(|&x| x <= r + 1), "slots {slots}: runs {runs:?}, r {r}");
        assert!(runs.iter().all(|&x| x >= 1));
    }
}

fn plan_of(mlp: &Mlp, batch: usize, policy: CheckpointPolicy) -> Result<chainrule::plan::Plan, String> {
    StepProgram::checkpointed(mlp, batch, policy, &MemoryReport::default())
        .map(|p| p.plan.unwrap())
        .map_err(|e| e.to_string())
}

#[test]
fn a_budget_fits_wherever_a_binomial_plan_does_even_past_the_planners_unit_limit() {
    // 130 layers: the exact planner works on runs of layers here, the binomial plans do not.
    let mlp = Mlp::new(MlpSpec::new(&format!("8{}-3", "-8".repeat(129)), "relu", 0.0).unwrap()).unwrap();
    for slots in [1, 2, 3] {
        let least = plan_of(&mlp, 64, CheckpointPolicy::Revolve(slots))
            .unwrap()
            .predicted
            .peak_total;
        let plan = plan_of(&mlp, 64, CheckpointPolicy::Budget(least)).unwrap();
        assert!(plan.predicted.peak_total <= least, "revolve:{slots}");
    }
    // Nothing recomputes less than keeping everything: a budget it fits takes it.
    let none = plan_of(&mlp, 64, CheckpointPolicy::None).unwrap().predicted.peak_total;
    assert_eq!(
        plan_of(&mlp, 64, CheckpointPolicy::Budget(none)).unwrap().chosen,
        CheckpointPolicy::None
    );
}

#[test]
fn layer_runs_count_what_runs_and_revolve_takes_any_slot_count() {
    // ReLU without dropout keeps only the next layer's input: one checkpoint per layer
    // recomputes nothing, and no layer is counted twice.
    let relu = Mlp::new(MlpSpec::new(&format!("16{}-4", "-16".repeat(15)), "relu", 0.0).unwrap()).unwrap();
    let program = StepProgram::checkpointed(&relu, 8, CheckpointPolicy::Revolve(16), &MemoryReport::default()).unwrap();
    let plan = program.plan.as_ref().unwrap();
    assert_eq!(plan.recompute_flops, 0);
    assert_eq!(layer_runs(&program.graph, plan), vec![1; 16]);
    // More slots than layers (up to the largest accepted) is the same as one per boundary.
    let deep = Mlp::new(MlpSpec::new(&format!("16{}-4", "-16".repeat(49)), "gelu", 0.1).unwrap()).unwrap();
    let program = StepProgram::checkpointed(
        &deep,
        8,
        CheckpointPolicy::Revolve(usize::MAX),
        &MemoryReport::default(),
    )
    .unwrap();
    let runs = layer_runs(&program.graph, program.plan.as_ref().unwrap());
    assert!(runs.iter().all(|&r| r <= 2), "{runs:?}");
    // A plan too large to build is refused, naming the policy.
    let deeper = Mlp::new(MlpSpec::new(&format!("4{}-2", "-4".repeat(3000)), "relu", 0.0).unwrap()).unwrap();
    let err = plan_of(&deeper, 1, CheckpointPolicy::Revolve(1)).unwrap_err();
    assert!(err.contains("revolve:1") && err.contains("larger S"), "{err}");
}

#[test]
fn a_larger_budget_never_gets_a_slower_plan_on_an_irregular_net() {
    // Random widths make long frontiers, which the planner thins without looking at the
    // budget: the plans it can choose from only grow with the budget.
    let mut rng = Lcg(5);
    let widths: Vec<String> = (0..=60)
        .map(|_| [1u64, 2, 8, 64, 512][rng.below(5) as usize].to_string())
        .collect();
    let mlp = Mlp::new(MlpSpec::new(&widths.join("-"), "gelu", 0.2).unwrap()).unwrap();
    let least = plan_of(&mlp, 256, CheckpointPolicy::Revolve(1))
        .unwrap()
        .predicted
        .peak_total;
    let none = plan_of(&mlp, 256, CheckpointPolicy::None).unwrap().predicted.peak_total;
    let mut last = f64::INFINITY;
    for k in 0..=8 {
        let plan = plan_of(&mlp, 256, CheckpointPolicy::Budget(least + (none - least) * k / 8)).unwrap();
        assert!(
            plan.recompute_seconds <= last,
            "budget step {k}: {} after {last}",
            plan.recompute_seconds
        );
        last = plan.recompute_seconds;
    }
}

#[test]
fn rates_calibrated_from_a_step_that_ran_at_known_rates_are_those_rates() {
    use chainrule::plan::cost_model::Work;
    use chainrule::plan::Rates;
    let work = Work {
        product_flops: 6_000_000_000,
        other_flops: 50_000_000,
        other_bytes: 400_000_000,
    };
    // A machine twice the default's speed at products and three times at the rest.
    let truth = Rates {
        product: 2.0 * Rates::CPU.product,
        other: 3.0 * Rates::CPU.other,
        memory: 3.0 * Rates::CPU.memory,
    };
    let step = work.product_flops as f64 / truth.product
        + work.other_flops as f64 / truth.other
        + work.other_bytes as f64 / truth.memory;
    let found = Rates::CPU.calibrated(truth.product, work, step);
    for (a, b) in [
        (found.product, truth.product),
        (found.other, truth.other),
        (found.memory, truth.memory),
    ] {
        assert!((a - b).abs() <= 1e-9 * b, "{found:?} against {truth:?}");
    }
}
