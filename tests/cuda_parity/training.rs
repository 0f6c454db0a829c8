//! Whole training steps on the GPU against the CPU: parameters, memory predicted exactly,
//! a held dataset, checkpoint policies, f16 loss scaling, divergence, fused layers, evaluation.

use super::*;

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn whole_training_steps_match_the_cpu_and_predict_gpu_memory_exactly() {
    let be = gpu(false);
    let mut rng = KeyedRng::new(8, 8);
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW] {
        let mut cpu = trainer(&backend::cpu(), kind);
        let mut gpu = trainer(&on_gpu(be.clone()), kind);
        for step in 0..3 {
            let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
            let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
            let (lc, _, _) = cpu.train_step(x.clone(), y.clone(), 0.01).unwrap();
            let (lg, measured, predicted) = gpu.train_step(x, y, 0.01).unwrap();
            assert!(((lc - lg) / lc).abs() < 1e-5, "{kind:?} step {step}: loss {lg} vs {lc}");
            assert_eq!(
                measured.peak_total, predicted.peak_total,
                "GPU peak differs from the prediction"
            );
        }
        let bound = if kind == OptimizerKind::Sgd {
            F32_BOUND
        } else {
            ADAM_PARAM_BOUND
        };
        assert_params_close(&gpu, &cpu, bound, &format!("{kind:?}, after 3 steps"));
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn an_epoch_from_a_gpu_resident_dataset_matches_the_cpu() {
    let be = gpu(false);
    use chainrule::data::Dataset;
    use chainrule::io::TrainSettings;
    use chainrule::train::Control;
    // 8x8 "images" (so the random shifts run on the device) in 4 classes; 150 rows in
    // batches of 32 leave a partial last batch.
    let mut rng = KeyedRng::new(11, 2);
    let labels: Vec<u32> = (0..150).map(|i| (i % 4) as u32).collect();
    let features = Array2::from_shape_fn((150, 64), |(i, p)| {
        ((p % 4) as u32 == labels[i]) as u8 as f32 + 0.3 * rng.uniform() as f32
    });
    let data = Dataset {
        features,
        labels,
        image_shape: Some((8, 8)),
        targets: None,
    };
    let make = |placement: &Arc<dyn Device>| {
        let mut optimizer = OptimizerConfig::new(OptimizerKind::Sgd);
        optimizer.momentum = 0.9;
        let config = TrainConfig {
            settings: TrainSettings {
                epochs: 2,
                batch_size: 32,
                lr: 0.05,
                schedule: LrSchedule::Constant,
                seed: 4,
                augment_shift: 1,
                validation: Default::default(),
            },
            optimizer,
            checkpoint: Default::default(),
            loss_scaling: false,
            update_in_backward: false,
        };
        Trainer::new(
            MlpSpec::new("64-32-4", "relu", 0.2).unwrap(),
            config,
            Normalization::scale_only(1.0),
            placement,
        )
        .unwrap()
    };
    let (mut cpu, mut gpu) = (make(&backend::cpu()), make(&on_gpu(be.clone())));
    cpu.fit(&data, &data, |_, _| Control::Continue, |_, _| Control::Continue)
        .unwrap();
    let mut exact = true;
    gpu.fit(
        &data,
        &data,
        |_, ev| {
            exact &= ev.memory.peak_total == ev.predicted.peak_total;
            Control::Continue
        },
        |_, _| Control::Continue,
    )
    .unwrap();
    assert!(exact, "a GPU step's measured peak differed from its prediction");
    assert_params_close(&gpu, &cpu, F32_BOUND, "after two epochs");
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn checkpoint_policies_on_the_gpu_match_none_and_predict_memory_exactly() {
    let be = gpu(false);
    use chainrule::plan::CheckpointPolicy;
    let make = |policy| {
        let mut t = trainer(&on_gpu(be.clone()), OptimizerKind::Sgd);
        t.set_checkpoint(policy);
        t
    };
    let mut rng = KeyedRng::new(12, 12);
    let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
    let mut reference = make(CheckpointPolicy::None);
    reference.train_step(x.clone(), y.clone(), 0.01).unwrap();
    for policy in [
        CheckpointPolicy::Cheap,
        CheckpointPolicy::Sqrt,
        CheckpointPolicy::Every(1),
        // Nested: layers recomputed more than once.
        CheckpointPolicy::Revolve(1),
        CheckpointPolicy::Revolve(2),
    ] {
        let mut t = make(policy);
        let (_, measured, predicted) = t.train_step(x.clone(), y.clone(), 0.01).unwrap();
        assert_eq!(
            measured.peak_total, predicted.peak_total,
            "{policy}: GPU peak differs from the prediction"
        );
        assert_params_close(&t, &reference, 1e-7, &format!("{policy}, against none on the GPU"));
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn f16_products_and_loss_scaled_steps_match_the_cpu_and_an_overflow_skips_the_update() {
    let be = gpu(false);
    let f16 = || CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, Precision::F16).unwrap();
    // f16 keeps 11 significant bits, more than bf16: bf16's bounds hold.
    let b = f16();
    check(&b, BF16_BOUND, "mm_f16", &[&[256, 512], &[512, 128]], |_, x| {
        x[0].matmul(&x[1])
    });
    // Whole loss-scaled steps (scale 65536 on both) against the CPU's exact f32 ones.
    let mut cpu = trainer_with(&backend::cpu(), OptimizerKind::Sgd, true);
    let mut gpu16 = trainer(&on_gpu(f16()), OptimizerKind::Sgd);
    let mut rng = KeyedRng::new(13, 13);
    for _ in 0..3 {
        let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
        let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
        let (lc, _, _) = cpu.train_step(x.clone(), y.clone(), 0.01).unwrap();
        let (lg, _, _) = gpu16.train_step(x, y, 0.01).unwrap();
        assert!(((lc - lg) / lc).abs() < 1e-2, "f16 loss {lg} vs {lc}");
    }
    assert_params_close(&gpu16, &cpu, BF16_BOUND, "f16, after 3 steps");
    let s = gpu16.to_snapshot().unwrap().state.loss_scaler.unwrap();
    assert_eq!((s.scale, s.clean_steps, s.skipped), (65536.0, 3, 0));
    // A scale whose scaled gradients overflow f16: the update is skipped on the device and
    // the scale halves there.
    let mut snapshot = gpu16.to_snapshot().unwrap();
    snapshot.state.loss_scaler = Some(chainrule::optim::LossScaler {
        scale: 1e30,
        ..Default::default()
    });
    let mut t = Trainer::from_snapshot(snapshot, 1, &on_gpu(f16())).unwrap();
    let before = param_bits(&t);
    let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
    t.train_step(x, y, 0.01).unwrap();
    assert_eq!(param_bits(&t), before, "an overflowing step changed the parameters");
    let s = t.to_snapshot().unwrap().state.loss_scaler.unwrap();
    assert_eq!((s.scale, s.skipped), (5e29, 1));
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn a_diverging_gpu_run_stops_at_its_step_with_no_read_back_per_step() {
    let be = gpu(false);
    let data = |n: usize, seed: u64| {
        let mut rng = KeyedRng::new(seed, 1);
        chainrule::data::Dataset {
            features: Array2::from_shape_simple_fn((n, 50), || rng.uniform() as f32),
            labels: (0..n).map(|i| (i % 10) as u32).collect(),
            image_shape: None,
            targets: None,
        }
    };
    let mut t = trainer(&on_gpu(be), OptimizerKind::Sgd);
    t.config.settings.lr = 1e12;
    t.config.settings.epochs = 2;
    // Losses are read at epoch ends only: the guard must hold every update after the bad step.
    t.log_every = 1_000_000;
    let mut after_each: Vec<Vec<Vec<u32>>> = vec![param_bits(&t)];
    let err = t
        .fit(
            &data(960, 1),
            &data(96, 2),
            |t, _| {
                after_each.push(param_bits(t));
                chainrule::train::Control::Continue
            },
            |_, _| chainrule::train::Control::Continue,
        )
        .unwrap_err();
    match err {
        chainrule::train::TrainError::NonFinite { step, value, .. } => {
            assert!(step >= 2 && !value.is_finite(), "step {step}, loss {value}");
            assert_eq!(t.state.step, step - 1);
            assert_eq!(
                param_bits(&t),
                after_each[step as usize - 1],
                "an update after step {step} applied"
            );
        }
        other => panic!("expected a non-finite loss, got {other}"),
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn fused_linear_relu_layers_match_the_cpu_in_f32_and_bf16() {
    let be = gpu(false);
    let relu_trainer = |placement: &Arc<dyn Device>| {
        let config = trainer(&backend::cpu(), OptimizerKind::Sgd).config;
        let spec = MlpSpec::new("50-64-33-10", "relu", 0.25).unwrap();
        Trainer::new(spec, config, Normalization::scale_only(1.0), placement).unwrap()
    };
    let bf16 = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, Precision::Bf16).unwrap();
    // bf16 against the CPU's reference of the same rounding.
    let reference: Arc<dyn Device> = Arc::new(cpu::CpuDevice::with_precision(None, Precision::Bf16));
    for (label, placement, reference, bound) in [
        ("f32", on_gpu(be.clone()), backend::cpu(), F32_BOUND),
        ("bf16", on_gpu(bf16), reference, LOW_REFERENCE_BOUND),
    ] {
        let mut cpu = relu_trainer(&reference);
        let mut gpu = relu_trainer(&placement);
        let program_fuses = gpu
            .plan_for(96)
            .unwrap()
            .unwrap()
            .schedule
            .instrs
            .iter()
            .any(|i| matches!(i, chainrule::plan::Instr::Linear { act: Some(_), .. }));
        assert!(program_fuses, "the ReLU layers are fused");
        let mut rng = KeyedRng::new(17, 17);
        for _ in 0..3 {
            let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
            let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
            let (lc, _, _) = cpu.train_step(x.clone(), y.clone(), 0.01).unwrap();
            let (lg, m, p) = gpu.train_step(x, y, 0.01).unwrap();
            assert!(((lc - lg) / lc).abs() as f64 <= bound, "{label}: loss {lg} vs {lc}");
            // bf16: the prediction includes the products' 16-bit operand copies.
            assert_eq!(
                m.peak_total, p.peak_total,
                "{label}: GPU peak differs from the prediction"
            );
        }
        assert_params_close(&gpu, &cpu, bound, &format!("{label}, after 3 steps"));
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn gpu_evaluation_picks_the_same_classes_as_the_cpu() {
    let be = gpu(false);
    let (mut cpu, mut gpu) = (
        trainer(&backend::cpu(), OptimizerKind::Sgd),
        trainer(&on_gpu(be), OptimizerKind::Sgd),
    );
    let mut rng = KeyedRng::new(29, 29);
    let data = chainrule::data::Dataset {
        features: Array2::from_shape_simple_fn((2500, 50), || rng.uniform() as f32),
        labels: (0..2500).map(|_| rng.below(10) as u32).collect(),
        image_shape: None,
        targets: None,
    };
    let (c, g) = (cpu.evaluate(&data).unwrap(), gpu.evaluate(&data).unwrap());
    assert_eq!(c.confusion, g.confusion, "argmax on the device");
    assert!(
        ((c.loss - g.loss) / c.loss).abs() < 1e-5,
        "loss {} vs {}",
        g.loss,
        c.loss
    );
}
