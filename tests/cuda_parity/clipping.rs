//! Gradient clipping by global norm on the GPU (kernels/clip.cu) against the CPU's
//! (optim/clip.rs): clipped steps match, under f16's loss scaling too, with the peak as
//! predicted; a replayed step clips as the eager one, bit for bit.

use super::*;
use chainrule::backend::{GraphStatus, StepGraphs};
use chainrule::data::Dataset;
use chainrule::train::Control;

fn clipped(placement: &Arc<dyn Device>, kind: OptimizerKind, loss_scaling: bool) -> Trainer {
    let mut optimizer = OptimizerConfig::new(kind);
    optimizer.weight_decay = 0.01;
    // Well under the norm of these gradients, so every step clips.
    optimizer.clip_grad_norm = Some(0.05);
    let config = TrainConfig {
        settings: TrainSettings {
            epochs: 3,
            batch_size: 96,
            lr: 0.05,
            schedule: LrSchedule::Constant,
            seed: 3,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer,
        checkpoint: Default::default(),
        loss_scaling,
        update_in_backward: false,
    };
    let spec = MlpSpec::new("50-64-33-10", "gelu", 0.25).unwrap();
    Trainer::new(spec, config, Normalization::scale_only(1.0), placement).unwrap()
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn clipped_steps_match_the_cpu_with_the_peak_as_predicted() {
    let be = gpu(false);
    let mut rng = KeyedRng::new(8, 9);
    for (kind, scaled) in [
        (OptimizerKind::Sgd, false),
        (OptimizerKind::AdamW, false),
        (OptimizerKind::Sgd, true),
    ] {
        let mut cpu = clipped(&backend::cpu(), kind, scaled);
        let mut gpu = clipped(&on_gpu(be.clone()), kind, scaled);
        for step in 0..3 {
            let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
            let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
            let (lc, _, _) = cpu.train_step(x.clone(), y.clone(), 0.05).unwrap();
            let (lg, measured, predicted) = gpu.train_step(x, y, 0.05).unwrap();
            assert!(((lc - lg) / lc).abs() < 1e-5, "{kind:?} step {step}: loss {lg} vs {lc}");
            assert_eq!(measured.peak_total, predicted.peak_total, "{kind:?}: GPU peak");
        }
        let bound = if kind == OptimizerKind::Sgd {
            F32_BOUND
        } else {
            ADAM_PARAM_BOUND
        };
        assert_params_close(&gpu, &cpu, bound, &format!("{kind:?} scaled {scaled}, clipped"));
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn a_replayed_clipped_step_equals_the_eager_one_bit_for_bit() {
    let mut rng = KeyedRng::new(41, 42);
    let labels: Vec<u32> = (0..200).map(|_| rng.below(10) as u32).collect();
    let data = Dataset {
        features: Array2::from_shape_simple_fn((200, 50), || rng.uniform() as f32),
        labels,
        image_shape: None,
        targets: None,
    };
    let run = |graphs: StepGraphs| {
        let mut t = clipped(&on_gpu(gpu(false)), OptimizerKind::AdamW, false);
        t.set_step_graphs(graphs).unwrap();
        t.fit(&data, &data, |_, _| Control::Continue, |_, _| Control::Continue)
            .unwrap();
        (param_bits(&t), t.step_graphs())
    };
    let (eager, _) = run(StepGraphs::Off);
    let (replayed, status) = run(StepGraphs::On);
    assert!(matches!(status, GraphStatus::Replaying { .. }), "{status:?}");
    assert!(replayed == eager, "replayed clipped steps differ from eager ones");
}
