//! Gradient clipping by global norm (`--clip-grad-norm`, optim/clip.rs), on the CPU: a
//! clipped SGD step moves the weights by exactly `lr · max_norm` in norm, in the direction of
//! the unclipped step; a maximum above the norm changes nothing, bit for bit; checkpointing
//! leaves clipped runs bitwise as they are under `none`; under loss scaling the norm is the
//! true gradients'; data-parallel ranks clip the summed gradients alike (a rank with no rows
//! too); and updates inside backward, which cannot know the norm, are refused.

use crate::common::param_bits;
use crate::data_parallel::{batches, on_ranks};
use chainrule::backend;
use chainrule::data::Normalization;
use chainrule::nn::MlpSpec;
use chainrule::optim::{OptimizerConfig, OptimizerKind};
use chainrule::plan::CheckpointPolicy;
use chainrule::train::{TrainConfig, Trainer};

const LR: f64 = 0.1;

fn trainer(clip: Option<f64>, checkpoint: CheckpointPolicy, loss_scaling: bool) -> Trainer {
    let mut optimizer = OptimizerConfig::new(OptimizerKind::Sgd);
    optimizer.clip_grad_norm = clip;
    let config = TrainConfig {
        checkpoint,
        loss_scaling,
        ..crate::common::one_epoch(24, LR, 4, optimizer)
    };
    let spec = MlpSpec::new("16-32-24-5", "gelu", 0.0).unwrap();
    Trainer::new(spec, config, Normalization::scale_only(1.0), &backend::cpu()).unwrap()
}

fn params(t: &Trainer) -> Vec<f64> {
    t.mlp
        .parameter_names()
        .iter()
        .flat_map(|n| {
            t.parameter(n)
                .unwrap()
                .unwrap()
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One step's move of every parameter.
fn step_move(clip: Option<f64>) -> Vec<f64> {
    let mut t = trainer(clip, CheckpointPolicy::None, false);
    let before = params(&t);
    let (x, y) = batches().remove(0);
    t.train_step(x, y, LR).unwrap();
    params(&t).iter().zip(&before).map(|(a, b)| a - b).collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|d| d * d).sum::<f64>().sqrt()
}

#[test]
fn a_clipped_sgd_step_moves_by_lr_times_the_maximum_along_the_unclipped_step() {
    let free = step_move(None);
    let gradient_norm = norm(&free) / LR;
    assert!(gradient_norm > 0.1, "a step that moves: {gradient_norm}");
    let max_norm = gradient_norm / 4.0;
    let clipped = step_move(Some(max_norm));
    // f32 parameters of size ~0.3 moved by ~1e-2: each move is good to ~1e-8 absolute.
    let moved = norm(&clipped) / LR;
    assert!(
        (moved - max_norm).abs() <= 1e-4 * max_norm,
        "moved {moved}, max {max_norm}"
    );
    let factor = max_norm / (gradient_norm + 1e-6);
    for (c, f) in clipped.iter().zip(&free) {
        assert!((c - factor * f).abs() <= 1e-7, "{c} against {factor} x {f}");
    }
}

#[test]
fn a_maximum_above_the_norm_changes_nothing_bit_for_bit() {
    let (x, y) = batches().remove(0);
    let mut free = trainer(None, CheckpointPolicy::None, false);
    let mut roomy = trainer(Some(1e6), CheckpointPolicy::None, false);
    free.train_step(x.clone(), y.clone(), LR).unwrap();
    roomy.train_step(x, y, LR).unwrap();
    assert!(param_bits(&free) == param_bits(&roomy));
}

#[test]
fn checkpointing_and_loss_scaling_leave_clipped_steps_bitwise_as_they_are() {
    let run = |checkpoint, loss_scaling| {
        let mut t = trainer(Some(0.5), checkpoint, loss_scaling);
        for (x, y) in batches() {
            t.train_step(x, y, LR).unwrap();
        }
        param_bits(&t)
    };
    let reference = run(CheckpointPolicy::None, false);
    for policy in [
        CheckpointPolicy::Cheap,
        CheckpointPolicy::Sqrt,
        CheckpointPolicy::Every(2),
        CheckpointPolicy::Revolve(1),
    ] {
        assert!(run(policy, false) == reference, "{policy:?}");
    }
    // Powers-of-two loss scales make scaled gradients exact multiples, and the norm is taken
    // of the true gradients: the same steps, bit for bit. Clipping the scaled gradients'
    // norm instead would shrink every step by the scale.
    assert!(run(CheckpointPolicy::None, true) == reference, "under loss scaling");
}

#[test]
fn data_parallel_ranks_clip_the_summed_gradients_alike() {
    let data = batches();
    let train = |t: &mut Trainer| {
        for (x, y) in &data {
            t.train_step(x.clone(), y.clone(), LR).unwrap();
        }
        params(t)
    };
    let one = train(&mut trainer(Some(0.5), CheckpointPolicy::None, false));
    // Four ranks: the last batch of 3 rows leaves one rank none, which clips the sum too.
    for world in [2, 4] {
        let ranked = on_ranks(world, || trainer(Some(0.5), CheckpointPolicy::None, false), train);
        for (rank, p) in ranked.iter().enumerate() {
            assert_eq!(p, &ranked[0], "{world} ranks: rank {rank} differs from rank 0");
        }
        // The norm of the summed gradients is one rank's norm, to the reduction's order.
        let scale = one.iter().fold(0f64, |m, v| m.max(v.abs()));
        let d = one.iter().zip(&ranked[0]).fold(0f64, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(d <= 1e-6, "{world} ranks end {d} from one");
    }
}

#[test]
fn updates_inside_backward_are_refused_beside_clipping() {
    let mut t = trainer(Some(1.0), CheckpointPolicy::None, false);
    let err = t.set_update_in_backward(true).unwrap_err().to_string();
    assert!(
        err.contains("--clip-grad-norm") && err.contains("every gradient"),
        "{err}"
    );
}
