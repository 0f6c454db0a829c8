//! Training in the library: resuming from a checkpoint continues bit for bit, the
//! optimizers and schedules behave as specified, and a diverging loss stops cleanly.

use crate::common::param_bits;
use chainrule::backend;
use chainrule::data::{Dataset, Normalization};
use chainrule::io::Snapshot;
use chainrule::io::TrainSettings;
use chainrule::memory::MemoryTracker;
use chainrule::nn::{MlpSpec, NormChoice};
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::rng::KeyedRng;
use chainrule::train::{Control, TrainConfig, TrainError, Trainer};
use ndarray::Array2;
use std::path::Path;

/// Three noisy clusters in 6 dimensions: learnable, never trivially zero.
pub fn clusters(n: usize, seed: u64) -> Dataset {
    let mut rng = KeyedRng::new(seed, 99);
    let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    let features = Array2::from_shape_fn((n, 6), |(i, j)| {
        let c = labels[i] as usize;
        (if j % 3 == c { 1.0 } else { 0.0 }) + 0.4 * (rng.uniform() as f32 - 0.5)
    });
    Dataset {
        features,
        labels,
        image_shape: None,
        targets: None,
    }
}

pub fn config(kind: OptimizerKind, epochs: u64) -> TrainConfig {
    let mut optimizer = OptimizerConfig::new(kind);
    optimizer.weight_decay = 0.01;
    if kind == OptimizerKind::Sgd {
        optimizer.momentum = 0.9;
        optimizer.nesterov = true;
    }
    TrainConfig {
        settings: TrainSettings {
            epochs,
            batch_size: 16,
            lr: if kind == OptimizerKind::Sgd { 0.05 } else { 0.01 },
            schedule: LrSchedule::Step {
                every_epochs: 1,
                gamma: 0.7,
            },
            seed: 42,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer,
        checkpoint: Default::default(),
        loss_scaling: false,
        update_in_backward: false,
    }
}

fn spec() -> MlpSpec {
    MlpSpec::new("6-13-7-3", "gelu", 0.25).unwrap()
}

fn fit(t: &mut Trainer, train: &Dataset, test: &Dataset) -> Control {
    t.fit(train, test, |_, _| Control::Continue, |_, _| Control::Continue)
        .unwrap()
}

#[test]
fn resume_after_two_epochs_equals_four_epochs_bit_for_bit() {
    // 50 examples in batches of 16: every epoch ends with a partial batch.
    let (train, test) = (clusters(50, 1), clusters(30, 2));
    let residual = || {
        let blocks = chainrule::nn::BlockSpec {
            kind: chainrule::nn::BlockKind::Residual,
            norm: chainrule::nn::NormChoice::Rms,
            expansion: 3,
        };
        MlpSpec::new("6-8-8-3", "gelu", 0.25)
            .unwrap()
            .with_blocks(Some(blocks))
            .unwrap()
    };
    let batch_norm = || crate::batch_norm::batch_norm_net(NormChoice::Batch);
    let cases = [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW]
        .map(|kind| (kind, spec as fn() -> MlpSpec))
        .into_iter()
        .chain([
            (OptimizerKind::AdamW, residual as fn() -> MlpSpec),
            (OptimizerKind::Sgd, batch_norm as fn() -> MlpSpec),
        ]);
    for (kind, spec) in cases {
        let norm = Normalization::scale_only(1.0);
        let mut straight = Trainer::new(spec(), config(kind, 4), norm.clone(), &backend::cpu()).unwrap();
        fit(&mut straight, &train, &test);

        let mut first = Trainer::new(spec(), config(kind, 2), norm, &backend::cpu()).unwrap();
        fit(&mut first, &train, &test);
        let bytes = first.to_snapshot().unwrap().to_bytes().unwrap();
        let snapshot = Snapshot::from_bytes(Path::new("mem"), &bytes).unwrap();
        let mut resumed = Trainer::from_snapshot(snapshot, 4, &backend::cpu()).unwrap();
        fit(&mut resumed, &train, &test);

        assert_eq!(resumed.state.step, straight.state.step);
        assert_eq!(
            param_bits(&resumed),
            param_bits(&straight),
            "{kind:?}: resumed weights differ"
        );
        let moved = param_bits(&straight)
            != param_bits(
                &Trainer::new(spec(), config(kind, 4), Normalization::scale_only(1.0), &backend::cpu()).unwrap(),
            );
        assert!(moved, "training changed nothing");
    }
}

#[test]
fn resume_mid_epoch_equals_an_uninterrupted_run() {
    // 70 rows in batches of 16: 5 steps an epoch, 10 in all.
    let (train, test) = (clusters(70, 3), clusters(20, 4));
    let norm = Normalization::scale_only(1.0);
    let mut straight = Trainer::new(spec(), config(OptimizerKind::AdamW, 2), norm.clone(), &backend::cpu()).unwrap();
    fit(&mut straight, &train, &test);
    // Stopped as a signal would stop it: mid-epoch (step 8), at an epoch's last step (5: the
    // epoch closes first, so the save is at its end), at the run's last step (10: done).
    for (stop_at, control, at) in [
        (8, Control::Stop, (1, 3)),
        (5, Control::Stop, (1, 0)),
        (10, Control::Continue, (2, 0)),
    ] {
        let mut first = Trainer::new(spec(), config(OptimizerKind::AdamW, 2), norm.clone(), &backend::cpu()).unwrap();
        let stopped = first
            .fit(
                &train,
                &test,
                |t, _| match t.state.step == stop_at {
                    true => Control::Stop,
                    false => Control::Continue,
                },
                |_, _| Control::Continue,
            )
            .unwrap();
        assert_eq!(stopped, control, "stopped at step {stop_at}");
        assert_eq!(
            (first.state.epoch, first.state.batch_in_epoch),
            at,
            "stopped at step {stop_at}"
        );
        let bytes = first.to_snapshot().unwrap().to_bytes().unwrap();
        let mut resumed = Trainer::from_snapshot(
            Snapshot::from_bytes(Path::new("m"), &bytes).unwrap(),
            2,
            &backend::cpu(),
        )
        .unwrap();
        fit(&mut resumed, &train, &test);
        assert!(
            param_bits(&resumed) == param_bits(&straight),
            "stopped at step {stop_at}"
        );
    }
}

#[test]
fn training_learns_the_clusters() {
    let (train, test) = (clusters(300, 5), clusters(90, 6));
    let mut t = Trainer::new(
        spec(),
        config(OptimizerKind::AdamW, 5),
        Normalization::scale_only(1.0),
        &backend::cpu(),
    )
    .unwrap();
    let before = t.evaluate(&test).unwrap();
    fit(&mut t, &train, &test);
    let after = t.evaluate(&test).unwrap();
    assert!(after.accuracy > 0.95, "accuracy {}", after.accuracy);
    assert!(after.loss < before.loss);
    let total: u64 = after.confusion.iter().flatten().sum();
    assert_eq!(total, 90);
}

#[test]
fn a_diverging_loss_stops_at_its_step_without_applying_the_update() {
    let (train, test) = (clusters(64, 7), clusters(10, 8));
    let mut c = config(OptimizerKind::Sgd, 3);
    c.settings.lr = 1e12;
    c.settings.schedule = LrSchedule::Constant;
    let mut t = Trainer::new(spec(), c, Normalization::scale_only(1.0), &backend::cpu()).unwrap();
    let mut last_good = param_bits(&t);
    let err = t
        .fit(
            &train,
            &test,
            |t, _| {
                last_good = param_bits(t);
                Control::Continue
            },
            |_, _| Control::Continue,
        )
        .unwrap_err();
    match err {
        TrainError::NonFinite { step, .. } => {
            assert!(step >= 2, "the first step starts from finite weights");
            assert_eq!(t.state.step, step - 1);
            assert_eq!(param_bits(&t), last_good, "the failing update was applied");
        }
        other => panic!("expected a non-finite loss, got {other}"),
    }
}

#[test]
fn learning_rate_schedules() {
    let step = LrSchedule::parse("step:2:0.5").unwrap();
    assert_eq!(step.lr(1.0, 0, 10, 100), 1.0);
    assert_eq!(step.lr(1.0, 19, 10, 100), 1.0);
    assert_eq!(step.lr(1.0, 20, 10, 100), 0.5);
    assert_eq!(step.lr(1.0, 45, 10, 100), 0.25);
    let cos = LrSchedule::parse("cosine:1").unwrap();
    assert!(
        (cos.lr(1.0, 0, 10, 100) - 0.1).abs() < 1e-12,
        "warm-up starts at 1/warmup"
    );
    assert!((cos.lr(1.0, 9, 10, 100) - 1.0).abs() < 1e-12);
    assert!((cos.lr(1.0, 10, 10, 100) - 1.0).abs() < 1e-12);
    assert!(
        (cos.lr(1.0, 55, 10, 100) - 0.5).abs() < 1e-12,
        "halfway through the decay"
    );
    assert!(cos.lr(1.0, 99, 10, 100) < 1e-3);
    assert_eq!(LrSchedule::parse("constant").unwrap().lr(0.3, 1000, 10, 100), 0.3);
    for bad in ["", "linear", "step:0", "step:2:2", "cosine:x", "constant:1"] {
        let err = LrSchedule::parse(bad).unwrap_err().to_string();
        assert!(err.contains("--schedule"), "{err}");
    }
}

#[test]
fn one_sgd_and_adamw_step_match_the_textbook_update() {
    use chainrule::backend::cpu::{CpuOptimizer, Session};
    use ndarray::{arr1, ArrayD};
    let names = vec!["p".to_string()];
    let p0 = arr1(&[1.0f64, -2.0]).into_dyn();
    let g: ArrayD<f64> = arr1(&[0.5, 0.25]).into_dyn();

    let mut s = Session::<f64>::new(MemoryTracker::new(None));
    s.set_param("p", p0.clone()).unwrap();
    let mut cfg = OptimizerConfig::new(OptimizerKind::Sgd);
    cfg.momentum = 0.9;
    cfg.weight_decay = 0.1;
    let mut opt = CpuOptimizer::new(cfg, &s, &names).unwrap();
    opt.step(&mut s, &[("p", &g)], 0.1);
    opt.step(&mut s, &[("p", &g)], 0.1);
    // PyTorch: d = g + wd·p; buf = 0.9·buf + d (buf₁ = d₁); p -= lr·buf.
    let mut p = p0.clone();
    let mut buf = p.mapv(|_| 0.0);
    for _ in 0..2 {
        let d = &g + &(&p * 0.1);
        buf = &buf * 0.9 + &d;
        p = &p - &(&buf * 0.1);
    }
    assert!(s
        .param("p")
        .unwrap()
        .iter()
        .zip(p.iter())
        .all(|(a, b)| (a - b).abs() < 1e-15));

    let mut s = Session::<f64>::new(MemoryTracker::new(None));
    s.set_param("p", p0.clone()).unwrap();
    let mut cfg = OptimizerConfig::new(OptimizerKind::AdamW);
    cfg.weight_decay = 0.1;
    let mut opt = CpuOptimizer::new(cfg, &s, &names).unwrap();
    opt.step(&mut s, &[("p", &g)], 0.01);
    // First AdamW step: p·(1 − lr·wd) − lr·sign-ish(g): m̂ = g, v̂ = g², so the step is lr·g/(|g|+ε).
    let expected = p0.mapv(|v| v * (1.0 - 0.01 * 0.1)) - g.mapv(|v| 0.01 * v / (v.abs() + 1e-8));
    assert!(s
        .param("p")
        .unwrap()
        .iter()
        .zip(expected.iter())
        .all(|(a, b)| (a - b).abs() < 1e-12));
}

/// The clusters with every label moved to the next class: fitting the training clusters
/// makes the loss on these worse, epoch after epoch.
fn misleading(n: usize, seed: u64) -> Dataset {
    let mut d = clusters(n, seed);
    d.labels.iter_mut().for_each(|l| *l = (*l + 1) % 3);
    d
}

#[test]
fn early_stopping_stops_at_its_patience_keeps_the_best_epoch_and_resumes_exactly() {
    use chainrule::io::Validation;
    let (train, val, test) = (clusters(60, 5), misleading(30, 6), clusters(20, 7));
    let mut c = config(OptimizerKind::AdamW, 20);
    c.settings.validation = Validation {
        fraction: 0.1,
        patience: Some(2),
    };
    let make =
        |c: &TrainConfig| Trainer::new(spec(), c.clone(), Normalization::scale_only(1.0), &backend::cpu()).unwrap();
    let run = |t: &mut Trainer, improved: &mut Vec<u64>| {
        t.fit_validated(
            &train,
            Some(&val),
            &test,
            |_, _| Control::Continue,
            |_, s| {
                if s.improved {
                    improved.push(s.epoch);
                }
                assert!(s.validation.is_some() && (0.0..=1.0).contains(&s.train_accuracy));
                Control::Continue
            },
        )
        .unwrap()
    };
    let mut straight = make(&c);
    let mut improved = Vec::new();
    assert_eq!(run(&mut straight, &mut improved), Control::Continue);
    let best = straight
        .stopped_early()
        .expect("the validation loss only gets worse: it stops early");
    assert!(straight.state.epoch < 20, "ran all {} epochs", straight.state.epoch);
    assert_eq!(straight.state.epoch, best.epoch + 2, "stopped at its patience");
    assert_eq!(improved.last(), Some(&best.epoch));

    // Interrupted after the first epoch and resumed: the same stop, the same weights.
    let mut first = make(&TrainConfig {
        settings: TrainSettings {
            epochs: 1,
            ..c.settings.clone()
        },
        ..c.clone()
    });
    run(&mut first, &mut Vec::new());
    let bytes = first.to_snapshot().unwrap().to_bytes().unwrap();
    let snapshot = Snapshot::from_bytes(Path::new("mem"), &bytes).unwrap();
    assert_eq!(snapshot.settings.validation, c.settings.validation);
    let mut resumed = Trainer::from_snapshot(snapshot, 20, &backend::cpu()).unwrap();
    run(&mut resumed, &mut Vec::new());
    assert_eq!(resumed.state.epoch, straight.state.epoch);
    assert_eq!(resumed.stopped_early(), Some(best));
    assert_eq!(param_bits(&resumed), param_bits(&straight));
}
