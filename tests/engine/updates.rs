//! Updates inside backward (`--update-in-backward`): each parameter's optimizer update runs
//! in the schedule once its gradient is complete, and the gradient is freed. The parameters
//! come out bitwise identical to the ordinary step for every optimizer and checkpoint policy
//! (dropout included), the peak is predicted exactly and is lower, a step whose loss is not
//! finite changes nothing, and loss scaling is refused.

use crate::common::param_bits;
use chainrule::backend::cpu::CpuDevice;
use chainrule::backend::{self, Device, Precision};
use chainrule::data::Normalization;
use chainrule::nn::MlpSpec;
use chainrule::optim::{OptimizerConfig, OptimizerKind};
use chainrule::plan::CheckpointPolicy;
use chainrule::rng::KeyedRng;
use chainrule::train::{TrainConfig, TrainError, Trainer};
use ndarray::{Array1, Array2};
use std::sync::Arc;

fn config(optimizer: OptimizerConfig, checkpoint: CheckpointPolicy, update_in_backward: bool) -> TrainConfig {
    TrainConfig {
        checkpoint,
        update_in_backward,
        ..crate::common::one_epoch(24, 0.01, 7, optimizer)
    }
}

fn optimizers() -> Vec<OptimizerConfig> {
    let mut momentum = OptimizerConfig::new(OptimizerKind::Sgd);
    momentum.momentum = 0.9;
    momentum.weight_decay = 0.01;
    let mut adamw = OptimizerConfig::new(OptimizerKind::AdamW);
    adamw.weight_decay = 0.05;
    vec![
        OptimizerConfig::new(OptimizerKind::Sgd),
        momentum,
        OptimizerConfig::new(OptimizerKind::Adam),
        adamw,
    ]
}

fn batches(n: usize, inputs: usize) -> Vec<(Array2<f32>, Array1<f32>)> {
    let mut rng = KeyedRng::new(12, 12);
    (0..n)
        .map(|_| {
            let x = Array2::from_shape_simple_fn((24, inputs), || rng.uniform() as f32);
            let y = Array1::from_shape_simple_fn(24, || rng.below(5) as f32);
            (x, y)
        })
        .collect()
}

/// Trains three steps; returns the parameters' bits and each step's (measured, predicted) peak.
fn three_steps(
    device: &Arc<dyn Device>,
    spec: &str,
    activation: &str,
    c: TrainConfig,
) -> (Vec<Vec<u32>>, Vec<(u64, u64)>) {
    let spec = MlpSpec::new(spec, activation, 0.2).unwrap();
    let mut t = Trainer::new(spec, c, Normalization::scale_only(1.0), device).unwrap();
    let peaks = batches(3, 20)
        .into_iter()
        .map(|(x, y)| {
            let (_, m, p) = t.train_step(x, y, 0.01).unwrap();
            (m.peak_total, p.peak_total)
        })
        .collect();
    (param_bits(&t), peaks)
}

#[test]
fn updates_inside_backward_give_bitwise_the_ordinary_step_with_an_exact_lower_peak() {
    for device in [
        backend::cpu(),
        Arc::new(CpuDevice::with_precision(None, Precision::Bf16)) as Arc<dyn Device>,
    ] {
        for optimizer in optimizers() {
            for activation in ["relu", "gelu"] {
                for policy in [
                    CheckpointPolicy::None,
                    CheckpointPolicy::Cheap,
                    CheckpointPolicy::Sqrt,
                    CheckpointPolicy::Every(2),
                ] {
                    let label = format!("{} {:?} {activation} {policy:?}", device.describe(), optimizer.kind);
                    let spec = "20-64-64-48-5";
                    let (ordinary, before) =
                        three_steps(&device, spec, activation, config(optimizer.clone(), policy, false));
                    let (inside, after) =
                        three_steps(&device, spec, activation, config(optimizer.clone(), policy, true));
                    assert!(
                        inside == ordinary,
                        "{label}: updates inside backward changed the result"
                    );
                    for ((m0, p0), (m1, p1)) in before.iter().zip(&after) {
                        assert_eq!(m1, p1, "{label}: peak differs from its prediction");
                        assert_eq!(m0, p0, "{label}: the ordinary peak differs from its prediction");
                        assert!(m1 < m0, "{label}: no lower peak ({m1} vs {m0})");
                    }
                }
            }
        }
    }
}

#[test]
fn a_deep_net_whose_weight_gradients_set_the_peak_needs_at_most_55_percent() {
    // 32 layers of width 256 at batch 24: parameters and their gradients set the peak of a
    // plain step; with the updates inside backward (and sqrt) the gradients never pile up.
    let layers = format!("{}-5", vec!["256"; 33].join("-"));
    let device = backend::cpu();
    let sgd = OptimizerConfig::new(OptimizerKind::Sgd);
    let peak = |policy, inside| {
        let spec = MlpSpec::new(&layers, "relu", 0.0).unwrap();
        let mut t = Trainer::new(
            spec,
            config(sgd.clone(), policy, inside),
            Normalization::scale_only(1.0),
            &device,
        )
        .unwrap();
        let mut rng = KeyedRng::new(3, 3);
        let x = Array2::from_shape_simple_fn((24, 256), || rng.uniform() as f32);
        let y = Array1::from_shape_simple_fn(24, || rng.below(5) as f32);
        let (_, m, p) = t.train_step(x, y, 0.01).unwrap();
        assert_eq!(m.peak_total, p.peak_total);
        m.peak_total
    };
    let none = peak(CheckpointPolicy::None, false);
    let inside = peak(CheckpointPolicy::Sqrt, true);
    assert!(
        inside as f64 <= 0.55 * none as f64,
        "{inside} bytes is {:.1}% of {none}",
        100.0 * inside as f64 / none as f64
    );
}

#[test]
fn a_step_whose_loss_is_not_finite_changes_nothing_inside_backward() {
    let device = backend::cpu();
    let spec = MlpSpec::new("20-16-5", "relu", 0.0).unwrap();
    let c = config(OptimizerConfig::new(OptimizerKind::Adam), CheckpointPolicy::None, true);
    let mut t = Trainer::new(spec, c, Normalization::scale_only(1.0), &device).unwrap();
    let before = param_bits(&t);
    let x = Array2::from_elem((24, 20), f32::INFINITY);
    let y = Array1::zeros(24);
    let err = t.train_step(x, y, 0.01).unwrap_err();
    assert!(matches!(err, TrainError::NonFinite { .. }), "{err}");
    assert_eq!(param_bits(&t), before, "a non-finite step changed the parameters");
}

#[test]
fn updates_inside_backward_refuse_loss_scaling() {
    let f16: Arc<dyn Device> = Arc::new(CpuDevice::with_precision(None, Precision::F16));
    let spec = MlpSpec::new("20-16-5", "relu", 0.0).unwrap();
    let c = config(OptimizerConfig::new(OptimizerKind::Sgd), CheckpointPolicy::None, true);
    let err = Trainer::new(spec, c, Normalization::scale_only(1.0), &f16)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("--update-in-backward") && err.to_string().contains("loss scaling"),
        "{err}"
    );
}
