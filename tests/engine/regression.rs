//! Regression (`--loss mse`) in the library: a net learns real-valued targets; its loss is
//! the mean squared error over every target of every row, as PyTorch's `MSELoss` takes it;
//! R² is `1 − SSE/SST`; checkpointing leaves its steps bitwise as they are; data-parallel
//! ranks split each batch's targets with its rows; and a run resumes bit for bit.

use crate::common::param_bits;
use crate::data_parallel::on_ranks;
use chainrule::backend;
use chainrule::data::{Batches, Dataset, Normalization};
use chainrule::io::TrainSettings;
use chainrule::nn::{LossKind, MlpSpec};
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::plan::CheckpointPolicy;
use chainrule::rng::KeyedRng;
use chainrule::train::{Control, TrainConfig, Trainer};
use ndarray::Array2;

/// Two targets of four features: a linear one and a product, with a little noise.
fn data(n: usize, seed: u64) -> Dataset {
    let mut rng = KeyedRng::new(seed, 7);
    let features = Array2::from_shape_simple_fn((n, 4), || 2.0 * rng.uniform() as f32 - 1.0);
    let targets = Array2::from_shape_fn((n, 2), |(i, k)| {
        let x = features.row(i);
        match k {
            0 => 2.0 * x[0] - x[1] + 0.5,
            _ => x[2] * x[3],
        }
    });
    Dataset {
        features,
        labels: Vec::new(),
        image_shape: None,
        targets: Some(targets),
    }
}

fn trainer(policy: CheckpointPolicy, epochs: u64) -> Trainer {
    let mut spec = MlpSpec::new("4-32-16-2", "gelu", 0.0).unwrap();
    spec.loss = LossKind::Mse;
    let config = TrainConfig {
        settings: TrainSettings {
            epochs,
            batch_size: 16,
            lr: 0.01,
            schedule: LrSchedule::Constant,
            seed: 5,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer: OptimizerConfig::new(OptimizerKind::AdamW),
        checkpoint: policy,
        loss_scaling: false,
        update_in_backward: false,
    };
    Trainer::new(spec, config, Normalization::scale_only(1.0), &backend::cpu()).unwrap()
}

fn fit(t: &mut Trainer, train: &Dataset, test: &Dataset) -> Vec<chainrule::train::EpochSummary> {
    let mut epochs = Vec::new();
    t.fit(
        &train.clone(),
        test,
        |_, _| Control::Continue,
        |_, s| {
            epochs.push(s.clone());
            Control::Continue
        },
    )
    .unwrap();
    epochs
}

#[test]
fn a_regression_learns_its_targets_and_reports_rmse_and_r2() {
    let (train, test) = (data(256, 1), data(64, 2));
    let mut t = trainer(CheckpointPolicy::None, 30);
    let epochs = fit(&mut t, &train, &test);
    let last = epochs.last().unwrap();
    assert!(last.regression && last.test.targets.len() == 2);
    let r2 = last.test.r2.unwrap();
    assert!(r2 > 0.95, "test R² {r2} after 30 epochs");
    assert!(
        epochs[0].test.loss > 3.0 * last.test.loss,
        "{} then {}",
        epochs[0].test.loss,
        last.test.loss
    );
    // The loss is the mean over every target of every row, R² is 1 − SSE/SST per column mean.
    let predicted = t.predict(&test.features).unwrap();
    let targets = test.targets.as_ref().unwrap();
    let diff = &predicted.mapv(f64::from) - &targets.mapv(f64::from);
    let mse = diff.mapv(|d| d * d).mean().unwrap();
    assert!(
        (mse - last.test.loss).abs() <= 1e-5 * mse,
        "{mse} against {}",
        last.test.loss
    );
    // R² is each target's 1 − SSE/SST about its own mean, averaged over the targets.
    let fits: Vec<(f64, f64)> = targets
        .columns()
        .into_iter()
        .zip(diff.columns())
        .map(|(y, d)| {
            let m = y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64;
            let sst = y.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>();
            let sse = d.mapv(|e| e * e).sum();
            ((sse / y.len() as f64).sqrt(), 1.0 - sse / sst)
        })
        .collect();
    for (fit, (rmse, r2)) in last.test.targets.iter().zip(&fits) {
        assert!(
            (fit.rmse - rmse).abs() < 1e-6 && (fit.r2 - r2).abs() < 1e-6,
            "{fit:?} against {rmse}, {r2}"
        );
    }
    let mean_r2 = (fits[0].1 + fits[1].1) / 2.0;
    assert!((mean_r2 - r2).abs() < 1e-6, "{mean_r2} against {r2}");
}

#[test]
fn a_target_that_does_not_vary_scores_as_scikit_learn_scores_it() {
    let mut test = data(40, 8);
    let targets = test.targets.as_mut().unwrap();
    targets.column_mut(1).fill(7.0);
    let mut t = trainer(CheckpointPolicy::None, 1);
    let r = t.evaluate(&test).unwrap();
    // Not predicted exactly: 0, and the average counts it.
    assert_eq!(r.targets[1].r2, 0.0);
    let first = r.targets[0].r2;
    assert!((r.r2.unwrap() - first / 2.0).abs() < 1e-12, "{r:?}");
    // The overall RMSE is the targets' pooled, from the same f64 sums.
    let pooled = ((r.targets[0].rmse.powi(2) + r.targets[1].rmse.powi(2)) / 2.0).sqrt();
    assert!((r.rmse() - pooled).abs() < 1e-12);
}

#[test]
fn checkpointing_leaves_regression_steps_bitwise_as_they_are() {
    let (train, test) = (data(80, 3), data(16, 4));
    let run = |policy| {
        let mut t = trainer(policy, 2);
        fit(&mut t, &train, &test);
        param_bits(&t)
    };
    let reference = run(CheckpointPolicy::None);
    for policy in [
        CheckpointPolicy::Cheap,
        CheckpointPolicy::Sqrt,
        CheckpointPolicy::Revolve(1),
    ] {
        assert!(run(policy) == reference, "{policy:?}");
    }
}

#[test]
fn data_parallel_ranks_split_each_batchs_targets_with_its_rows() {
    let all = data(67, 6);
    let batches: Vec<_> = Batches::sequential(&all, 24).collect();
    // 24, 24 and 19 rows; at 4 ranks, shares of 6 and 5 rows: targets come 2 a row.
    let train = |t: &mut Trainer| {
        for (x, y) in &batches {
            t.train_step(x.clone(), y.clone(), 0.01).unwrap();
        }
        param_bits(t)
    };
    let one = train(&mut trainer(CheckpointPolicy::None, 1));
    let mut plain = trainer(CheckpointPolicy::None, 1);
    let one_params = {
        train(&mut plain);
        plain
            .mlp
            .parameter_names()
            .iter()
            .flat_map(|n| plain.parameter(n).unwrap().unwrap().into_raw_vec_and_offset().0)
            .collect::<Vec<f32>>()
    };
    assert!(
        on_ranks(1, || trainer(CheckpointPolicy::None, 1), train)[0] == one,
        "one rank is the plain run"
    );
    for world in [2, 4] {
        let ranked = on_ranks(
            world,
            || trainer(CheckpointPolicy::None, 1),
            |t| {
                train(t);
                t.mlp
                    .parameter_names()
                    .iter()
                    .flat_map(|n| t.parameter(n).unwrap().unwrap().into_raw_vec_and_offset().0)
                    .collect::<Vec<f32>>()
            },
        );
        let scale = one_params.iter().fold(0f32, |m, v| m.max(v.abs()));
        for p in &ranked {
            let d = one_params.iter().zip(p).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
            // Rows misaligned with their targets would end far away (the reduction order
            // alone moves them ~1e-7).
            assert!(d <= 1e-5, "{world} ranks end {d} from one");
        }
    }
}
