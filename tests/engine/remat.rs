//! Checkpointing: every policy gives gradients bitwise identical to keeping everything
//! (dropout included, since masks are keyed, not drawn), the predicted peak equals the
//! measured one, and the segment policies really keep fewer bytes.

use chainrule::memory::MemoryReport;
use chainrule::nn::{Mlp, MlpSpec};
use chainrule::plan::{candidate_plans, frontier, layer_boundaries, CheckpointPolicy, Request, StepKind};
use chainrule::train::StepProgram;

/// An MLP of `depth` Linear layers of odd widths, with dropout.
fn spec(depth: usize) -> MlpSpec {
    let mut widths = vec![13];
    widths.extend((0..depth - 1).map(|i| 17 + (i % 3) * 2));
    widths.push(5);
    let layers = widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-");
    MlpSpec::new(&layers, "gelu", 0.3).unwrap()
}

#[test]
fn every_policy_gives_bitwise_identical_gradients_and_exact_predictions() {
    for depth in [1usize, 2, 7, 64] {
        let mlp = Mlp::new(spec(depth)).unwrap();
        let batch = 11;
        let reference = crate::common::step_under(&mlp, batch, CheckpointPolicy::None);
        let halfway = {
            let sqrt = crate::common::step_under(&mlp, batch, CheckpointPolicy::Sqrt);
            (sqrt.predicted.peak_total + reference.predicted.peak_total) / 2
        };
        let policies = [
            CheckpointPolicy::None,
            CheckpointPolicy::Cheap,
            CheckpointPolicy::Sqrt,
            CheckpointPolicy::Every(1),
            CheckpointPolicy::Every(2),
            CheckpointPolicy::Every(5),
            CheckpointPolicy::Budget(halfway),
        ];
        crate::common::assert_policies_match(&mlp, batch, &reference, &policies, &format!("depth {depth}"));
    }
}

#[test]
fn segment_policies_keep_sublinear_activation_bytes() {
    let saved = |depth: usize, policy| {
        let mlp = Mlp::new(MlpSpec::new(&format!("32{}-10", "-32".repeat(depth - 1)), "relu", 0.0).unwrap()).unwrap();
        crate::common::step_under(&mlp, 16, policy)
            .measured
            .peak
            .saved_activations as f64
    };
    let (none_64, none_16) = (saved(64, CheckpointPolicy::None), saved(16, CheckpointPolicy::None));
    let (sqrt_64, sqrt_16) = (saved(64, CheckpointPolicy::Sqrt), saved(16, CheckpointPolicy::Sqrt));
    // Fitted exponents between depth 16 and 64: about 1 for none, about 0.5 for sqrt.
    let exponent = |a: f64, b: f64| (a / b).ln() / 4f64.ln();
    let (e_none, e_sqrt) = (exponent(none_64, none_16), exponent(sqrt_64, sqrt_16));
    assert!((e_none - 1.0).abs() < 0.1, "none grows with exponent {e_none}");
    assert!((e_sqrt - 0.5).abs() < 0.2, "sqrt grows with exponent {e_sqrt}");
    assert!(
        sqrt_64 * 4.0 < none_64,
        "sqrt keeps {sqrt_64} of none's {none_64} bytes"
    );
    // With ReLU, none already keeps one tensor per layer (ReLU's derivative reads its output),
    // so cheap can only swap it for the matmul output: the planner predicts no saving.
    assert_eq!(saved(64, CheckpointPolicy::Cheap), none_64);
    // GELU with dropout keeps two per layer without checkpointing; cheap keeps one.
    let gelu = |policy| {
        let mlp = Mlp::new(MlpSpec::new(&format!("32{}-10", "-32".repeat(15)), "gelu", 0.2).unwrap()).unwrap();
        crate::common::step_under(&mlp, 16, policy)
            .measured
            .peak
            .saved_activations
    };
    let (none_gelu, cheap_gelu) = (gelu(CheckpointPolicy::None), gelu(CheckpointPolicy::Cheap));
    assert!(
        cheap_gelu * 10 < none_gelu * 6,
        "cheap keeps {cheap_gelu} of none's {none_gelu}"
    );
}

#[test]
fn a_budget_between_sqrt_and_none_fits_and_recomputes_no_more_than_sqrt() {
    let mlp = Mlp::new(MlpSpec::new(&format!("64{}-10", "-64".repeat(31)), "relu", 0.0).unwrap()).unwrap();
    let sqrt_program = StepProgram::checkpointed(&mlp, 512, CheckpointPolicy::Sqrt, &MemoryReport::default()).unwrap();
    let sqrt_plan = sqrt_program.plan.as_ref().unwrap();
    let sqrt_peak = sqrt_program.predict(&MemoryReport::default()).peak_total;
    let none_peak = StepProgram::checkpointed(&mlp, 512, CheckpointPolicy::None, &MemoryReport::default())
        .unwrap()
        .predict(&MemoryReport::default())
        .peak_total;
    assert!(sqrt_peak < none_peak);
    let budget = (sqrt_peak + none_peak) / 2;
    let program =
        StepProgram::checkpointed(&mlp, 512, CheckpointPolicy::Budget(budget), &MemoryReport::default()).unwrap();
    let plan = program.plan.as_ref().unwrap();
    assert!(plan.predicted.peak_total <= budget);
    assert!(
        plan.recompute_flops <= sqrt_plan.recompute_flops,
        "{} > {}",
        plan.recompute_flops,
        sqrt_plan.recompute_flops
    );
    // Too small a budget names the smallest that fits.
    let err = StepProgram::checkpointed(&mlp, 512, CheckpointPolicy::Budget(1000), &MemoryReport::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("smallest predicted peak"), "{err}");
}

#[test]
fn the_planner_finds_one_boundary_per_layer_and_a_monotone_frontier() {
    let mlp = Mlp::new(spec(9)).unwrap();
    let program = StepProgram::checkpointed(&mlp, 256, CheckpointPolicy::None, &MemoryReport::default()).unwrap();
    let outputs = program.schedule.outputs.clone();
    let grads: Vec<_> = program.gradient_outputs().to_vec();
    assert_eq!(
        layer_boundaries(&program.graph, &outputs).len(),
        8,
        "one boundary between each two of 9 layers"
    );
    let plans = candidate_plans(&Request {
        graph: &program.graph,
        outputs: &outputs,
        gradients: &grads,
        resident: &MemoryReport::default(),
        step: &StepKind::default(),
    });
    let f = frontier(&plans);
    assert!(f.len() >= 2);
    for w in f.windows(2) {
        assert!(
            w[0].predicted.peak_total <= w[1].predicted.peak_total && w[0].recompute_seconds > w[1].recompute_seconds
        );
    }
}

#[test]
fn policies_parse_and_bad_ones_are_named() {
    assert_eq!(
        "budget:1.5GiB".parse::<CheckpointPolicy>().unwrap(),
        CheckpointPolicy::Budget(1610612736)
    );
    assert_eq!(
        "every:3".parse::<CheckpointPolicy>().unwrap(),
        CheckpointPolicy::Every(3)
    );
    // The error names the policy as given; each command adds its flag (--checkpoint, --policies).
    for bad in ["", "every:0", "budget:lots", "half", "budget:1.5"] {
        let err = bad.parse::<CheckpointPolicy>().unwrap_err().to_string();
        assert!(err.contains(&format!("'{bad}'")), "{err}");
    }
}
