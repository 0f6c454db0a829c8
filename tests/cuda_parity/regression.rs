//! A regression (`--loss mse`) on the GPU against the CPU: steps on host batches of
//! targets `[b, k]` (a regression's training set is not held on the device), the peak as
//! predicted, and the evaluation's loss and R².

use super::*;
use chainrule::data::Dataset;
use chainrule::nn::LossKind;
use chainrule::train::Control;

fn regression(placement: &Arc<dyn Device>) -> Trainer {
    let mut spec = MlpSpec::new("12-64-33-3", "gelu", 0.25).unwrap();
    spec.loss = LossKind::Mse;
    let config = TrainConfig {
        settings: TrainSettings {
            epochs: 2,
            batch_size: 40,
            lr: 0.01,
            schedule: LrSchedule::Constant,
            seed: 3,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        checkpoint: Default::default(),
        loss_scaling: false,
        update_in_backward: false,
    };
    Trainer::new(spec, config, Normalization::scale_only(1.0), placement).unwrap()
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn regression_epochs_match_the_cpu_with_the_peak_as_predicted() {
    let mut rng = KeyedRng::new(5, 5);
    let features = Array2::from_shape_simple_fn((130, 12), || rng.uniform() as f32);
    let targets = Array2::from_shape_fn((130, 3), |(i, k)| features[[i, k]] * 2.0 - features[[i, k + 3]]);
    let data = Dataset {
        features,
        labels: Vec::new(),
        image_shape: None,
        targets: Some(targets),
    };
    let run = |placement: &Arc<dyn Device>| {
        let mut t = regression(placement);
        let mut peaks = Vec::new();
        let mut tests = Vec::new();
        t.fit(
            &data,
            &data,
            |_, ev| {
                peaks.push((ev.memory.peak_total, ev.predicted.peak_total));
                Control::Continue
            },
            |_, s| {
                tests.push((s.test.loss, s.test.r2.unwrap()));
                Control::Continue
            },
        )
        .unwrap();
        (t, peaks, tests)
    };
    let (cpu, _, cpu_tests) = run(&backend::cpu());
    let (gpu, gpu_peaks, gpu_tests) = run(&on_gpu(gpu(false)));
    for (measured, predicted) in gpu_peaks {
        assert_eq!(measured, predicted, "GPU peak differs from the prediction");
    }
    for ((lc, rc), (lg, rg)) in cpu_tests.iter().zip(&gpu_tests) {
        assert!(((lc - lg) / lc).abs() < 1e-5, "test loss {lg} vs {lc}");
        assert!((rc - rg).abs() < 1e-5, "R² {rg} vs {rc}");
    }
    assert_params_close(&gpu, &cpu, F32_BOUND, "regression, after 2 epochs");
}
