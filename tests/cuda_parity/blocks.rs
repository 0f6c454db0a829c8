//! Residual and gated block nets on the GPU against the CPU: whole training steps (the
//! norms' row kernels, BatchNorm's column kernels and its running statistics, SiLU, the
//! gate's product and the residual sum inside them), memory predicted exactly, every
//! checkpoint policy against none on the GPU, bf16 against the CPU reference of the same
//! rounding, and evaluation (BatchNorm's by its running statistics).

use super::*;
use chainrule::nn::{BlockKind, BlockSpec, NormChoice};
use chainrule::plan::CheckpointPolicy;

fn block_nets() -> Vec<(&'static str, MlpSpec)> {
    let net = |kind, norm, activation: &str| {
        MlpSpec::with_depth(50, (4, 32), 10, activation, 0.2)
            .unwrap()
            .with_blocks(Some(BlockSpec {
                kind,
                norm,
                expansion: 4,
            }))
            .unwrap()
    };
    vec![
        (
            "residual LayerNorm gelu",
            net(BlockKind::Residual, NormChoice::Layer, "gelu"),
        ),
        ("SwiGLU RMSNorm", net(BlockKind::Gated, NormChoice::Rms, "silu")),
        (
            "residual BatchNorm relu",
            net(BlockKind::Residual, NormChoice::Batch, "relu"),
        ),
    ]
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn block_net_training_steps_match_the_cpu_under_every_policy() {
    let be = gpu(false);
    for (name, spec) in block_nets() {
        let mut rng = KeyedRng::new(31, 31);
        let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
        let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
        let make = |d: &Arc<dyn Device>, policy| trainer_of(spec.clone(), d, OptimizerKind::AdamW, false, policy);
        let mut cpu = make(&backend::cpu(), CheckpointPolicy::None);
        let mut reference = make(&on_gpu(be.clone()), CheckpointPolicy::None);
        for step in 0..3 {
            let (lc, _, _) = cpu.train_step(x.clone(), y.clone(), 0.01).unwrap();
            let (lg, measured, predicted) = reference.train_step(x.clone(), y.clone(), 0.01).unwrap();
            assert!(((lc - lg) / lc).abs() < 1e-5, "{name} step {step}: loss {lg} vs {lc}");
            assert_eq!(measured.peak_total, predicted.peak_total, "{name}: GPU peak");
        }
        assert_params_close(&reference, &cpu, ADAM_PARAM_BOUND, &format!("{name}, after 3 steps"));
        let logits = (reference.predict(&x).unwrap(), cpu.predict(&x).unwrap());
        let err = relative_error(&logits.0.into_dyn(), &logits.1.into_dyn());
        assert!(err <= 1e-4, "{name}: evaluation logits' relative error {err:e}");
        for policy in [
            CheckpointPolicy::Cheap,
            CheckpointPolicy::Sqrt,
            CheckpointPolicy::Revolve(1),
            CheckpointPolicy::Revolve(2),
        ] {
            let mut t = make(&on_gpu(be.clone()), policy);
            for _ in 0..3 {
                let (_, measured, predicted) = t.train_step(x.clone(), y.clone(), 0.01).unwrap();
                assert_eq!(measured.peak_total, predicted.peak_total, "{name}, {policy}: GPU peak");
            }
            assert_params_close(
                &t,
                &reference,
                1e-7,
                &format!("{name}, {policy} against none on the GPU"),
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn bf16_block_net_steps_match_the_cpu_reference_of_the_same_rounding() {
    let be = gpu(false);
    for (name, spec) in block_nets() {
        let low = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, Precision::Bf16).unwrap();
        let reference: Arc<dyn Device> = Arc::new(cpu::CpuDevice::with_precision(None, Precision::Bf16));
        let make = |d: &Arc<dyn Device>| trainer_of(spec.clone(), d, OptimizerKind::Sgd, false, Default::default());
        let (mut on_gpu, mut on_reference) = (make(&on_gpu(low)), make(&reference));
        let mut rng = KeyedRng::new(37, 37);
        for _ in 0..3 {
            let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
            let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
            let (_, measured, predicted) = on_gpu.train_step(x.clone(), y.clone(), 0.01).unwrap();
            assert_eq!(measured.peak_total, predicted.peak_total, "{name}: bf16 GPU peak");
            on_reference.train_step(x, y, 0.01).unwrap();
        }
        assert_params_close(&on_gpu, &on_reference, LOW_REFERENCE_BOUND, &format!("{name}, bf16"));
    }
}
