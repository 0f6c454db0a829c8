//! The CUDA backend against the CPU reference on fresh random inputs: every op forward and
//! its VJP, and whole training steps. Relative error ‖gpu − cpu‖ / ‖cpu‖ must stay under
//! 1e-5 in f32 (cuBLAS in pedantic f32 mode); under 5e-3 with TF32 (10-bit mantissas).
//! Without a usable GPU each test prints why it is skipped and checks nothing else.

use chainrule::autodiff::backward;
use chainrule::backend;
use chainrule::backend::cpu::{self, Session};
use chainrule::backend::cuda::{self, CudaBackend, CudaDevice};
use chainrule::backend::{Device, Precision};
use chainrule::data::Normalization;
use chainrule::memory::{Category, MemoryTracker};
use chainrule::nn::MlpSpec;
use chainrule::ops::RunContext;
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::plan::{self, KeepSet};
use chainrule::rng::KeyedRng;
use chainrule::train::{TrainConfig, Trainer};
use chainrule::{DType, GraphError, Tracer, Var};
use common::param_bits;
use ndarray::{Array1, Array2, ArrayD};
use std::sync::Arc;

mod common;

const F32_BOUND: f64 = 1e-5;
const TF32_BOUND: f64 = 5e-3;
/// bf16 operands keep 8 mantissa bits (relative rounding 2^-9 each); products accumulate in f32.
const BF16_BOUND: f64 = 1e-2;
/// Through a whole net the bf16 errors compound (two products each way and the softmax's
/// cancellation in the loss gradient): 4.4e-2 was measured on an H100 for the net below.
const BF16_NET_BOUND: f64 = 1e-1;
/// Adam and AdamW divide each gradient element by its running RMS, which turns the last-bit
/// differences of tiny gradients into larger relative differences of the update.
const ADAM_PARAM_BOUND: f64 = 1e-4;

/// A trainer's view of `be`.
fn on_gpu(be: Arc<CudaBackend>) -> Arc<dyn Device> {
    Arc::new(CudaDevice::from_backend(be))
}

fn gpu(tf32: bool) -> Option<Arc<CudaBackend>> {
    match cuda::usable().and_then(|_| CudaBackend::open(0, MemoryTracker::new(None), tf32)) {
        Ok(be) => Some(be),
        Err(why) => {
            eprintln!("SKIPPED (no GPU): {why}");
            None
        }
    }
}

fn relative_error(gpu: &ArrayD<f32>, cpu: &ArrayD<f32>) -> f64 {
    assert_eq!(gpu.shape(), cpu.shape());
    let diff: f64 = gpu
        .iter()
        .zip(cpu.iter())
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = cpu.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt();
    if gpu.iter().any(|v| v.is_nan()) {
        return f64::INFINITY;
    }
    diff / norm.max(1e-30)
}

/// Asserts every parameter of `got` is within relative error `bound` of `want`'s.
fn assert_params_close(got: &Trainer, want: &Trainer, bound: f64, context: &str) {
    for name in want.mlp.parameter_names() {
        let err = relative_error(
            &got.parameter(&name).unwrap().unwrap(),
            &want.parameter(&name).unwrap().unwrap(),
        );
        assert!(err <= bound, "{name}: relative error {err:e} ({context})");
    }
}

fn random(rng: &mut KeyedRng, shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(shape, || {
        let m = 0.2 + 1.3 * rng.uniform() as f32;
        if rng.uniform() < 0.5 {
            -m
        } else {
            m
        }
    })
}

/// Runs f's output and the gradients of ⟨f(x), r⟩ w.r.t. every input on both backends.
fn check(
    be: &Arc<CudaBackend>,
    bound: f64,
    label: &str,
    shapes: &[&[usize]],
    f: impl for<'t> Fn(&'t Tracer, &[Var<'t>]) -> Result<Var<'t>, GraphError>,
) {
    let mut rng = KeyedRng::new(label.len() as u64 * 31 + 7, 3);
    let tracer = Tracer::new(DType::F32);
    let xs: Vec<Var> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| tracer.input(&format!("x{i}"), *s))
        .collect();
    let out = f(&tracer, &xs).unwrap();
    let r = random(&mut rng, out.shape().dims());
    let r = tracer
        .constant(r.iter().map(|v| *v as f64).collect(), out.shape())
        .unwrap();
    let loss = out.inner(&r).unwrap().id;
    let (out, ids) = (out.id, xs.iter().map(|x| x.id).collect::<Vec<_>>());
    let mut graph = tracer.finish();
    let grads = backward(&mut graph, loss, &ids).unwrap();
    let mut outputs = vec![out];
    outputs.extend(&grads);
    let schedule = plan::schedule(&graph, &outputs, &grads, &KeepSet::everything(&graph));
    let values: Vec<ArrayD<f32>> = shapes.iter().map(|s| random(&mut rng, s)).collect();
    let names: Vec<String> = (0..shapes.len()).map(|i| format!("x{i}")).collect();
    let ctx = RunContext {
        seed: 5,
        step: 9,
        training: true,
    };
    let session = Session::<f32>::new(MemoryTracker::new(None));
    let cpu_in = names.iter().map(|n| n.as_str()).zip(values.iter().cloned()).collect();
    let cpu = cpu::run(&graph, &schedule, &session, cpu_in, &ctx).unwrap();
    let gpu_in = names
        .iter()
        .map(|n| n.as_str())
        .zip(values.iter().map(|v| be.upload(v, Category::Temporaries).unwrap()))
        .collect();
    let params = std::collections::HashMap::new();
    let gpu = chainrule::exec::run_on(be.as_ref(), &graph, &schedule, &params, gpu_in, &ctx).unwrap();
    for (k, (c, g)) in cpu.outputs.iter().zip(&gpu.outputs).enumerate() {
        let err = relative_error(&be.download(g).unwrap(), &c.data);
        let what = if k == 0 {
            "forward".to_string()
        } else {
            format!("d/dx{}", k - 1)
        };
        assert!(err <= bound, "{label} {what}: relative error {err:e} > {bound:e}");
    }
}

#[test]
fn every_op_forward_and_vjp_matches_the_cpu() {
    let Some(be) = gpu(false) else { return };
    let b = F32_BOUND;
    check(&be, b, "mm", &[&[33, 65], &[65, 17]], |_, x| x[0].matmul(&x[1]));
    check(&be, b, "mm_ta", &[&[65, 33], &[65, 17]], |_, x| {
        x[0].matmul_t(&x[1], true, false)
    });
    check(&be, b, "mm_tb", &[&[33, 65], &[17, 65]], |_, x| {
        x[0].matmul_t(&x[1], false, true)
    });
    check(&be, b, "mm_tab", &[&[65, 33], &[17, 65]], |_, x| {
        x[0].matmul_t(&x[1], true, true)
    });
    for (name, a, c) in [
        ("same", &[7usize, 300][..], &[7usize, 300][..]),
        ("bias", &[129, 300][..], &[300][..]),
        ("col", &[40, 3][..], &[40, 1][..]),
        ("scalar", &[5, 6][..], &[][..]),
    ] {
        check(&be, b, &format!("add_{name}"), &[a, c], |_, x| x[0].add(&x[1]));
        check(&be, b, &format!("sub_{name}"), &[a, c], |_, x| x[0].sub(&x[1]));
        check(&be, b, &format!("mul_{name}"), &[a, c], |_, x| x[0].mul(&x[1]));
    }
    check(&be, b, "scale", &[&[50, 7]], |_, x| x[0].scale(-2.5));
    check(&be, b, "neg", &[&[1000]], |_, x| x[0].neg());
    check(&be, b, "sum", &[&[300, 70]], |_, x| x[0].sum());
    check(&be, b, "sum0", &[&[300, 70]], |_, x| x[0].sum_axis(0));
    check(&be, b, "sum1", &[&[300, 2000]], |_, x| x[0].sum_axis(1));
    check(&be, b, "mean0", &[&[2000, 30]], |_, x| x[0].mean_axis(0));
    check(&be, b, "mean3d", &[&[4, 50, 6]], |_, x| x[0].mean_axis(1));
    for shape in [&[129usize, 257][..], &[5][..]] {
        check(&be, b, "relu", &[shape], |_, x| x[0].relu());
        check(&be, b, "leaky", &[shape], |_, x| x[0].leaky_relu(0.1));
        check(&be, b, "gelu", &[shape], |_, x| x[0].gelu());
        check(&be, b, "sigmoid", &[shape], |_, x| x[0].sigmoid());
        check(&be, b, "tanh", &[shape], |_, x| x[0].tanh());
        check(&be, b, "exp_log", &[shape], |_, x| x[0].exp()?.log());
        check(&be, b, "dropout", &[shape], |_, x| x[0].dropout(0.3));
    }
    check(&be, b, "xent", &[&[300, 10]], |t, x| {
        let labels = t.constant((0..300).map(|i| (i * 7 % 10) as f64).collect(), [300])?;
        x[0].scale(4.0)?.softmax_cross_entropy(&labels)
    });
    check(&be, b, "mse", &[&[100, 3], &[100, 3]], |_, x| x[0].mse(&x[1]));
    check(&be, b, "inner", &[&[700, 3], &[700, 3]], |_, x| x[0].inner(&x[1]));
    check(&be, b, "sqnorm", &[&[5000]], |_, x| x[0].squared_norm());
    check(
        &be,
        b,
        "mlp",
        &[&[64, 50], &[40, 50], &[40], &[10, 40], &[10]],
        |t, x| {
            let h = x[0].matmul_t(&x[1], false, true)?.add(&x[2])?.relu()?.dropout(0.2)?;
            let logits = h.matmul_t(&x[3], false, true)?.add(&x[4])?;
            let labels = t.constant((0..64).map(|i| (i % 10) as f64).collect(), [64])?;
            logits.softmax_cross_entropy(&labels)
        },
    );
}

#[test]
fn tf32_matmul_stays_within_its_documented_bound() {
    let Some(be) = gpu(true) else { return };
    check(&be, TF32_BOUND, "mm_tf32", &[&[256, 512], &[512, 128]], |_, x| {
        x[0].matmul(&x[1])
    });
    check(
        &be,
        TF32_BOUND,
        "mlp_tf32",
        &[&[128, 256], &[64, 256], &[64]],
        |_, x| x[0].matmul_t(&x[1], false, true)?.add(&x[2])?.gelu(),
    );
}

fn trainer(placement: &Arc<dyn Device>, kind: OptimizerKind) -> Trainer {
    trainer_with(placement, kind, false)
}

fn trainer_with(placement: &Arc<dyn Device>, kind: OptimizerKind, loss_scaling: bool) -> Trainer {
    let mut optimizer = OptimizerConfig::new(kind);
    optimizer.weight_decay = 0.01;
    if kind == OptimizerKind::Sgd {
        optimizer.momentum = 0.9;
        optimizer.nesterov = true;
    }
    let config = TrainConfig {
        epochs: 1,
        batch_size: 96,
        lr: 0.01,
        schedule: LrSchedule::Constant,
        seed: 3,
        optimizer,
        augment_shift: 0,
        checkpoint: Default::default(),
        loss_scaling,
    };
    Trainer::new(
        MlpSpec::new("50-64-33-10", "gelu", 0.25).unwrap(),
        config,
        Normalization::scale_only(1.0),
        placement,
    )
    .unwrap()
}

#[test]
fn whole_training_steps_match_the_cpu_and_predict_gpu_memory_exactly() {
    let Some(be) = gpu(false) else { return };
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
fn an_epoch_from_a_gpu_resident_dataset_matches_the_cpu() {
    let Some(be) = gpu(false) else { return };
    use chainrule::data::Dataset;
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
    };
    let make = |placement: &Arc<dyn Device>| {
        let mut optimizer = OptimizerConfig::new(OptimizerKind::Sgd);
        optimizer.momentum = 0.9;
        let config = TrainConfig {
            epochs: 2,
            batch_size: 32,
            lr: 0.05,
            schedule: LrSchedule::Constant,
            seed: 4,
            optimizer,
            augment_shift: 1,
            checkpoint: Default::default(),
            loss_scaling: false,
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
fn checkpoint_policies_on_the_gpu_match_none_and_predict_memory_exactly() {
    let Some(be) = gpu(false) else { return };
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
fn bf16_matrix_products_stay_within_their_documented_bound() {
    let Some(be) = gpu(false) else { return };
    let be = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, Precision::Bf16).unwrap();
    check(&be, BF16_BOUND, "mm_bf16", &[&[256, 512], &[512, 128]], |_, x| {
        x[0].matmul(&x[1])
    });
    check(&be, BF16_BOUND, "mm_bf16_tb", &[&[64, 300], &[100, 300]], |_, x| {
        x[0].matmul_t(&x[1], false, true)
    });
    check(
        &be,
        BF16_NET_BOUND,
        "mlp_bf16",
        &[&[128, 256], &[64, 256], &[64], &[10, 64], &[10]],
        |t, x| {
            let h = x[0].matmul_t(&x[1], false, true)?.add(&x[2])?.relu()?;
            let labels = t.constant((0..128).map(|i| (i % 10) as f64).collect(), [128])?;
            h.matmul_t(&x[3], false, true)?
                .add(&x[4])?
                .softmax_cross_entropy(&labels)
        },
    );
}

#[test]
fn f16_products_and_loss_scaled_steps_match_the_cpu_and_an_overflow_skips_the_update() {
    let Some(be) = gpu(false) else { return };
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
    let mut ckpt = gpu16.to_snapshot().unwrap();
    ckpt.state.loss_scaler = Some(chainrule::optim::LossScaler {
        scale: 1e30,
        ..Default::default()
    });
    let mut t = Trainer::from_snapshot(ckpt, 1, &on_gpu(f16())).unwrap();
    let before = param_bits(&t);
    let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
    t.train_step(x, y, 0.01).unwrap();
    assert_eq!(param_bits(&t), before, "an overflowing step changed the parameters");
    let s = t.to_snapshot().unwrap().state.loss_scaler.unwrap();
    assert_eq!((s.scale, s.skipped), (5e29, 1));
}

#[test]
fn a_diverging_gpu_run_stops_at_its_step_with_no_read_back_per_step() {
    let Some(be) = gpu(false) else { return };
    let data = |n: usize, seed: u64| {
        let mut rng = KeyedRng::new(seed, 1);
        chainrule::data::Dataset {
            features: Array2::from_shape_simple_fn((n, 50), || rng.uniform() as f32),
            labels: (0..n).map(|i| (i % 10) as u32).collect(),
            image_shape: None,
        }
    };
    let mut t = trainer(&on_gpu(be), OptimizerKind::Sgd);
    t.config.lr = 1e12;
    t.config.epochs = 2;
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
fn fused_linear_relu_layers_match_the_cpu_in_f32_and_bf16() {
    let Some(be) = gpu(false) else { return };
    let relu_trainer = |placement: &Arc<dyn Device>| {
        let config = trainer(&backend::cpu(), OptimizerKind::Sgd).config;
        let spec = MlpSpec::new("50-64-33-10", "relu", 0.25).unwrap();
        Trainer::new(spec, config, Normalization::scale_only(1.0), placement).unwrap()
    };
    let bf16 = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, Precision::Bf16).unwrap();
    for (label, placement, bound) in [
        ("f32", on_gpu(be.clone()), F32_BOUND),
        ("bf16", on_gpu(bf16), BF16_NET_BOUND),
    ] {
        let mut cpu = relu_trainer(&backend::cpu());
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
fn casts_round_to_nearest_even_exactly_as_the_half_crate_does() {
    let Some(be) = gpu(false) else { return };
    // Ordinary values, ties, subnormals, overflow past f16's 65504, infinities, NaN.
    let mut rng = KeyedRng::new(23, 23);
    let mut values: Vec<f32> = (0..4096)
        .map(|_| ((rng.uniform() - 0.5) * 2f64.powi(rng.below(80) as i32 - 40)) as f32)
        .collect();
    values.extend([
        0.0,
        -0.0,
        1.0 + f32::EPSILON,
        1.0 + 2f32.powi(-11),
        65504.0,
        65520.0,
        1e6,
        -1e6,
        5.96e-8,
        1e-40,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ]);
    let host = ArrayD::from_shape_vec(vec![values.len()], values.clone()).unwrap();
    for (low, reference) in [
        (
            Precision::Bf16,
            (|v: f32| half::bf16::from_f32(v).to_f32()) as fn(f32) -> f32,
        ),
        (Precision::F16, |v: f32| half::f16::from_f32(v).to_f32()),
    ] {
        let b = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, low).unwrap();
        let t = b.upload(&host, Category::Temporaries).unwrap();
        let got = b.download(&cuda::blas::rounded(&b, &t).unwrap()).unwrap();
        for (&v, &g) in values.iter().zip(got.iter()) {
            let want = reference(v);
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "{low:?}: {v:e} became {g:e}, the half crate gives {want:e}"
            );
        }
    }
}

#[test]
fn gpu_evaluation_picks_the_same_classes_as_the_cpu() {
    let Some(be) = gpu(false) else { return };
    let (mut cpu, mut gpu) = (
        trainer(&backend::cpu(), OptimizerKind::Sgd),
        trainer(&on_gpu(be), OptimizerKind::Sgd),
    );
    let mut rng = KeyedRng::new(29, 29);
    let data = chainrule::data::Dataset {
        features: Array2::from_shape_simple_fn((2500, 50), || rng.uniform() as f32),
        labels: (0..2500).map(|_| rng.below(10) as u32).collect(),
        image_shape: None,
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
