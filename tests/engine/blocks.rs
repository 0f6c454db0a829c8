//! Residual and gated block nets: checkpointed exactly as the plain chain (every policy,
//! nested plans included, gives gradients bitwise identical to `none` with the predicted
//! peak the measured one), read as a chain at the residual stream, and named as the
//! equivalent PyTorch module names its parameters.

use chainrule::nn::{BlockKind, BlockSpec, Mlp, MlpSpec, NormChoice};
use chainrule::plan::CheckpointPolicy;
use chainrule::train::StepProgram;

fn block_net(depth: usize, kind: BlockKind, norm: NormChoice, activation: &str, dropout: f64) -> Mlp {
    let spec = MlpSpec::with_depth(13, (depth, 6), 5, activation, dropout)
        .unwrap()
        .with_blocks(Some(BlockSpec {
            kind,
            norm,
            expansion: 3,
        }))
        .unwrap();
    Mlp::new(spec).unwrap()
}

/// The nets every policy is checked on: residual (LayerNorm, GELU, dropout), gated
/// (SwiGLU, RMSNorm), residual without a norm, and residual with BatchNorm (whose running
/// statistics, among the outputs compared, must come out of every policy bitwise too).
fn nets(depth: usize) -> Vec<(&'static str, Mlp)> {
    vec![
        (
            "residual",
            block_net(depth, BlockKind::Residual, NormChoice::Layer, "gelu", 0.2),
        ),
        (
            "swiglu",
            block_net(depth, BlockKind::Gated, NormChoice::Rms, "silu", 0.0),
        ),
        (
            "no norm",
            block_net(depth, BlockKind::Residual, NormChoice::None, "relu", 0.1),
        ),
        (
            "batchnorm",
            block_net(depth, BlockKind::Residual, NormChoice::Batch, "relu", 0.1),
        ),
    ]
}

#[test]
fn every_policy_on_block_nets_gives_bitwise_identical_gradients_and_exact_predictions() {
    let batch = 7;
    for depth in [1usize, 3, 8] {
        for (name, mlp) in nets(depth) {
            let reference = crate::common::step_under(&mlp, batch, CheckpointPolicy::None);
            let smallest = crate::common::step_under(&mlp, batch, CheckpointPolicy::Revolve(1))
                .predicted
                .peak_total;
            let halfway = (smallest + reference.predicted.peak_total) / 2;
            let policies = [
                CheckpointPolicy::None,
                CheckpointPolicy::Cheap,
                CheckpointPolicy::Sqrt,
                CheckpointPolicy::Every(1),
                CheckpointPolicy::Every(2),
                CheckpointPolicy::Revolve(1),
                CheckpointPolicy::Revolve(2),
                CheckpointPolicy::Budget(smallest),
                CheckpointPolicy::Budget(halfway),
            ];
            let label = format!("{name} depth {depth}");
            crate::common::assert_policies_match(&mlp, batch, &reference, &policies, &label);
        }
    }
}

#[test]
fn a_block_net_is_cut_at_the_residual_stream_once_per_block() {
    for (name, mlp) in nets(5) {
        let program = StepProgram::checkpointed(&mlp, 4, CheckpointPolicy::None, &Default::default()).unwrap();
        let cuts = program.plan.as_ref().unwrap().candidates.clone();
        // The input projection's output, then each block's.
        assert_eq!(cuts.len(), 6, "{name}: {cuts:?}");
        let shapes: Vec<_> = cuts.iter().map(|c| program.graph.shape(*c).0.clone()).collect();
        assert!(shapes.iter().all(|s| s == &[4, 6]), "{name}: cut shapes {shapes:?}");
    }
}

#[test]
fn cheap_drops_norms_and_activations_and_keeps_the_residual_stream() {
    // Expansion 4 and GELU, as in the figures: none keeps the stream, the norm's output, the
    // pre-activation and the activation (1 + 1 + 4 + 4 widths a block); cheap keeps the
    // stream and the product (1 + 4), about half.
    let spec = MlpSpec::with_depth(32, (16, 32), 10, "gelu", 0.0)
        .unwrap()
        .with_blocks(Some(BlockSpec {
            kind: BlockKind::Residual,
            norm: NormChoice::Layer,
            expansion: 4,
        }))
        .unwrap();
    let mlp = Mlp::new(spec).unwrap();
    let saved = |policy| {
        crate::common::step_under(&mlp, 64, policy)
            .measured
            .peak
            .saved_activations as f64
    };
    let (none, cheap, sqrt) = (
        saved(CheckpointPolicy::None),
        saved(CheckpointPolicy::Cheap),
        saved(CheckpointPolicy::Sqrt),
    );
    assert!(cheap <= 0.55 * none, "cheap keeps {cheap} of none's {none}");
    assert!(sqrt <= 0.3 * none, "sqrt keeps {sqrt} of none's {none}");
}

#[test]
fn block_parameters_are_named_and_shaped_as_the_pytorch_module_names_them() {
    let mlp = block_net(2, BlockKind::Gated, NormChoice::Layer, "silu", 0.0);
    let names: Vec<(String, Vec<usize>)> = mlp.parameters();
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("input.weight", vec![6, 13]),
        ("input.bias", vec![6]),
        ("blocks.0.norm.weight", vec![6]),
        ("blocks.0.norm.bias", vec![6]),
        ("blocks.0.fc1.weight", vec![18, 6]),
        ("blocks.0.fc1.bias", vec![18]),
        ("blocks.0.fc3.weight", vec![18, 6]),
        ("blocks.0.fc3.bias", vec![18]),
        ("blocks.0.fc2.weight", vec![6, 18]),
        ("blocks.0.fc2.bias", vec![6]),
    ];
    for (i, (name, shape)) in want.iter().enumerate() {
        assert_eq!((names[i].0.as_str(), &names[i].1), (*name, shape));
    }
    let tail: Vec<&str> = names[names.len() - 4..].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(tail, ["norm.weight", "norm.bias", "output.weight", "output.bias"]);
    assert_eq!(names.len(), 2 + 2 * 8 + 2 + 2);
    // RMSNorm has a weight alone; a net without norms has none.
    let rms = block_net(1, BlockKind::Residual, NormChoice::Rms, "gelu", 0.0);
    assert!(rms.parameter_names().contains(&"blocks.0.norm.weight".to_string()));
    assert!(!rms.parameter_names().iter().any(|n| n.ends_with("norm.bias")));
    let bare = block_net(1, BlockKind::Residual, NormChoice::None, "gelu", 0.0);
    assert!(!bare.parameter_names().iter().any(|n| n.contains("norm")));
    // Norm weights start at one and biases at zero, as PyTorch's do.
    let init = mlp.initial_parameters(3);
    let value = |n: &str| init.iter().find(|(name, _)| name == n).unwrap().1.clone();
    assert!(value("blocks.1.norm.weight").iter().all(|&v| v == 1.0));
    assert!(value("blocks.1.norm.bias").iter().all(|&v| v == 0.0));
    assert_eq!(
        mlp.spec.parameter_count(),
        names.iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>()
    );
}

#[test]
fn block_specs_refuse_what_makes_no_residual_stream() {
    let block = BlockSpec {
        kind: BlockKind::Residual,
        norm: NormChoice::Layer,
        expansion: 4,
    };
    let blocks = Some(block);
    let err = MlpSpec::new("784-256-128-10", "relu", 0.0)
        .unwrap()
        .with_blocks(blocks)
        .unwrap_err()
        .to_string();
    assert!(err.contains("256 and 128"), "{err}");
    let err = MlpSpec::new("784-10", "relu", 0.0)
        .unwrap()
        .with_blocks(blocks)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no hidden width"), "{err}");
    let huge = Some(BlockSpec {
        expansion: usize::MAX / 2,
        ..block
    });
    let err = MlpSpec::new("784-256-10", "relu", 0.0)
        .unwrap()
        .with_blocks(huge)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than"), "{err}");
}

/// A gated block net (SwiGLU, LayerNorm, dropout) for the data-parallel tests' data (16
/// features, 5 classes): its norms are per row, so a rank's share of the batch computes what
/// one process computes for those rows.
pub(super) fn data_parallel_net() -> MlpSpec {
    let blocks = BlockSpec {
        kind: BlockKind::Gated,
        norm: NormChoice::Layer,
        expansion: 2,
    };
    MlpSpec::new("16-12-12-12-5", "silu", 0.25)
        .unwrap()
        .with_blocks(Some(blocks))
        .unwrap()
}
