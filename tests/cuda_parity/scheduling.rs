//! How a GPU step runs: no allocation and no wait in a steady state; updates inside
//! backward bitwise the same as after it.

use super::*;

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn a_steady_state_gpu_step_allocates_nothing_and_never_waits_for_the_gpu() {
    use chainrule::data::Dataset;
    use chainrule::train::Control;
    let be = gpu(false);
    let mut rng = KeyedRng::new(31, 2);
    let labels: Vec<u32> = (0..640).map(|i| (i % 4) as u32).collect();
    let features = Array2::from_shape_fn((640, 64), |(i, p)| {
        ((p % 4) as u32 == labels[i]) as u8 as f32 + 0.3 * rng.uniform() as f32
    });
    let data = Dataset {
        features,
        labels,
        image_shape: None,
        targets: None,
    };
    for precision in [Precision::F32, Precision::Bf16] {
        let low = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, precision).unwrap();
        let mut config = trainer(&backend::cpu(), OptimizerKind::AdamW).config;
        config.settings.epochs = 3;
        config.settings.batch_size = 32;
        let spec = MlpSpec::new("64-48-48-4", "relu", 0.0).unwrap();
        let mut t = Trainer::new(spec, config, Normalization::scale_only(1.0), &on_gpu(low.clone())).unwrap();
        // The loss is read (a wait) only at the end of each epoch.
        t.log_every = 20;
        // (epoch, whether the loss was read, allocations, host waits) after each step.
        let mut seen = Vec::new();
        t.fit(
            &data,
            &data,
            |_, ev| {
                seen.push((ev.epoch, ev.loss.is_some(), low.device_allocations(), low.host_waits()));
                Control::Continue
            },
            |_, _| Control::Continue,
        )
        .unwrap();
        assert_eq!(seen.len(), 60, "{precision}: 20 steps an epoch");
        let mut quiet = 0;
        for w in seen.windows(2) {
            let ((e0, _, a0, h0), (e1, logged, a1, h1)) = (w[0], w[1]);
            if e1 != e0 {
                continue;
            }
            if e1 > seen[0].0 {
                assert_eq!(a1, a0, "{precision}: a step of epoch {e1} allocated on the device");
            }
            if !logged {
                assert_eq!(h1, h0, "{precision}: an unlogged step of epoch {e1} waited for the GPU");
                quiet += 1;
            }
        }
        assert!(quiet >= 50, "{precision}: only {quiet} unlogged steps were checked");
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn updates_inside_backward_on_the_gpu_give_bitwise_the_ordinary_step() {
    let be = gpu(false);
    for precision in [Precision::F32, Precision::Bf16] {
        for kind in [OptimizerKind::Sgd, OptimizerKind::AdamW] {
            for policy in [plan::CheckpointPolicy::None, plan::CheckpointPolicy::Sqrt] {
                let label = format!("{precision} {kind:?} {policy:?}");
                let run = |inside: bool| {
                    let low = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, precision).unwrap();
                    let spec = MlpSpec::new("50-64-33-10", "gelu", 0.25).unwrap();
                    let mut t = trainer_of(spec, &on_gpu(low), kind, false, policy);
                    t.set_update_in_backward(inside).unwrap();
                    let mut rng = KeyedRng::new(37, 37);
                    let mut peaks = Vec::new();
                    for _ in 0..3 {
                        let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
                        let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
                        let (_, measured, predicted) = t.train_step(x, y, 0.01).unwrap();
                        assert_eq!(
                            measured.peak_total, predicted.peak_total,
                            "{label} inside {inside}: GPU peak"
                        );
                        peaks.push(measured.peak_total);
                    }
                    (param_bits(&t), peaks)
                };
                let ((ordinary, before), (inside, after)) = (run(false), run(true));
                assert!(
                    inside == ordinary,
                    "{label}: updates inside backward changed the result on the GPU"
                );
                assert!(
                    after[0] < before[0],
                    "{label}: no lower peak ({} vs {})",
                    after[0],
                    before[0]
                );
            }
        }
    }
}
