//! Dynamic loss scaling (the f16 path's scaler), checked on the CPU where f32 makes it
//! exact: scales are powers of two, so a scaled step must equal an unscaled one bit for
//! bit; an overflowing step must change nothing but the scale; and a saved run resumes
//! with the scale it had. The GPU runs the same rules on the device (tests/cuda_parity.rs).

use crate::common::param_bits;
use chainrule::backend;
use chainrule::data::{Dataset, Normalization};
use chainrule::io::Snapshot;
use chainrule::io::TrainSettings;
use chainrule::nn::MlpSpec;
use chainrule::optim::{LossScaler, LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::rng::KeyedRng;
use chainrule::train::{Control, TrainConfig, Trainer};
use ndarray::{Array1, Array2};
use std::path::Path;

fn data(n: usize, seed: u64) -> Dataset {
    let mut rng = KeyedRng::new(seed, 5);
    Dataset {
        features: Array2::from_shape_simple_fn((n, 8), || rng.uniform() as f32),
        labels: (0..n).map(|i| (i % 4) as u32).collect(),
        image_shape: None,
        targets: None,
    }
}

fn config(kind: OptimizerKind, loss_scaling: bool) -> TrainConfig {
    let mut optimizer = OptimizerConfig::new(kind);
    optimizer.weight_decay = 0.01;
    TrainConfig {
        settings: TrainSettings {
            epochs: 2,
            batch_size: 16,
            lr: 0.01,
            schedule: LrSchedule::Constant,
            seed: 3,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer,
        checkpoint: Default::default(),
        loss_scaling,
        update_in_backward: false,
    }
}

fn trainer(kind: OptimizerKind, loss_scaling: bool) -> Trainer {
    let spec = MlpSpec::new("8-24-16-4", "relu", 0.2).unwrap();
    Trainer::new(
        spec,
        config(kind, loss_scaling),
        Normalization::scale_only(1.0),
        &backend::cpu(),
    )
    .unwrap()
}

fn fit(t: &mut Trainer) {
    let (train, test) = (data(70, 1), data(20, 2));
    t.fit(&train, &test, |_, _| Control::Continue, |_, _| Control::Continue)
        .unwrap();
}

fn reload(t: &Trainer, edit: impl FnOnce(&mut Snapshot), epochs: u64) -> Trainer {
    let bytes = t.to_snapshot().unwrap().to_bytes().unwrap();
    let mut snapshot = Snapshot::from_bytes(Path::new("mem"), &bytes).unwrap();
    edit(&mut snapshot);
    Trainer::from_snapshot(snapshot, epochs, &backend::cpu()).unwrap()
}

#[test]
fn a_loss_scaled_run_equals_an_unscaled_one_bit_for_bit() {
    for kind in [OptimizerKind::Sgd, OptimizerKind::AdamW] {
        let (mut plain, mut scaled) = (trainer(kind, false), trainer(kind, true));
        fit(&mut plain);
        fit(&mut scaled);
        assert_eq!(param_bits(&plain), param_bits(&scaled), "{kind:?}");
        let s = scaled.to_snapshot().unwrap().state.loss_scaler.unwrap();
        assert_eq!((s.scale, s.skipped), (65536.0, 0), "no step overflowed in f32");
        assert_eq!(s.clean_steps, 10, "2 epochs of 5 steps");
    }
}

#[test]
fn an_overflowing_step_changes_nothing_but_halves_the_scale() {
    // A scale so large that the scaled gradients overflow f32, as f16's do at 65504.
    let t = trainer(OptimizerKind::AdamW, true);
    let mut t = reload(
        &t,
        |c| {
            c.state.loss_scaler = Some(LossScaler {
                scale: 1e38,
                ..LossScaler::default()
            })
        },
        1,
    );
    let before = param_bits(&t);
    let mut rng = KeyedRng::new(4, 4);
    let x = Array2::from_shape_simple_fn((16, 8), || rng.uniform() as f32 * 10.0);
    let y = Array1::from_shape_fn(16, |i| (i % 4) as f32);
    let (loss, _, _) = t.train_step(x.clone(), y.clone(), 0.01).unwrap();
    assert!(loss.is_finite(), "the loss itself is not scaled");
    assert_eq!(param_bits(&t), before, "an overflowing step updated the parameters");
    let s = t.to_snapshot().unwrap().state.loss_scaler.unwrap();
    assert_eq!((s.scale, s.skipped, s.clean_steps), (5e37, 1, 0));
    // With the scale halved enough, steps apply again.
    for _ in 0..200 {
        t.train_step(x.clone(), y.clone(), 0.01).unwrap();
    }
    assert_ne!(param_bits(&t), before);
    let s = t.to_snapshot().unwrap().state.loss_scaler.unwrap();
    assert!(s.scale <= 2.5e37 && s.skipped >= 2 && s.clean_steps > 0, "{s:?}");
}

#[test]
fn a_resumed_loss_scaled_run_continues_with_its_scale() {
    let mut straight = trainer(OptimizerKind::Adam, true);
    straight.config.settings.epochs = 2;
    fit(&mut straight);
    let mut first = trainer(OptimizerKind::Adam, true);
    first.config.settings.epochs = 1;
    fit(&mut first);
    let mut resumed = reload(&first, |c| assert!(c.state.loss_scaler.is_some()), 2);
    fit(&mut resumed);
    assert_eq!(param_bits(&straight), param_bits(&resumed));
    assert_eq!(
        straight.to_snapshot().unwrap().state.loss_scaler,
        resumed.to_snapshot().unwrap().state.loss_scaler
    );
}

#[test]
fn gradients_for_verification_are_unscaled() {
    let mut scaled = trainer(OptimizerKind::Sgd, true);
    scaled.set_checkpoint("sqrt".parse().unwrap());
    let mut rng = KeyedRng::new(9, 9);
    let x = Array2::from_shape_simple_fn((16, 8), || rng.uniform() as f32);
    let y = Array1::from_shape_fn(16, |i| (i % 4) as f32);
    let (worst, _) = scaled.verify_checkpoint(x, y).unwrap();
    assert_eq!(worst, 0.0);
}

#[test]
fn a_run_with_skipped_steps_resumes_bit_for_bit() {
    // Inputs of size ~10 and a scale near f32's largest: the first steps' gradients overflow.
    let mut train = data(70, 1);
    train.features.mapv_inplace(|v| v * 10.0);
    let fit_big = |t: &mut Trainer| {
        t.fit(&train, &data(20, 2), |_, _| Control::Continue, |_, _| Control::Continue)
            .unwrap();
    };
    let huge = |c: &mut Snapshot| {
        c.state.loss_scaler = Some(LossScaler {
            scale: 3e38,
            ..LossScaler::default()
        })
    };
    let fresh = trainer(OptimizerKind::AdamW, true);
    let mut straight = reload(&fresh, huge, 4);
    fit_big(&mut straight);
    let s = straight.to_snapshot().unwrap().state.loss_scaler.unwrap();
    assert!(
        s.skipped >= 2 && s.clean_steps >= 2,
        "some steps overflow, later ones apply: {s:?}"
    );
    let mut first = reload(&fresh, huge, 2);
    fit_big(&mut first);
    // Resuming counts only the applied updates for AdamW's bias corrections.
    let mut resumed = reload(&first, |_| {}, 4);
    fit_big(&mut resumed);
    assert_eq!(param_bits(&straight), param_bits(&resumed));
    assert_eq!(s, resumed.to_snapshot().unwrap().state.loss_scaler.unwrap());
}
