//! `--dtype fp8` on the GPU against the CPU's reference of the same FP8 arithmetic: products
//! in each layout cuBLASLt's FP8 kernels are fed (transposed copies where they need them),
//! whole steps, and the peak as the planner predicts it with the FP8 copies counted.

use super::*;
use chainrule::backend::cpu::{Buffer, Cpu};
use chainrule::exec::{Backend, Out};
use chainrule::ops::Op;
use chainrule::plan::fp8::Fp8Format::{self, E4M3, E5M2};
use chainrule::plan::Storage;
use chainrule::tensor::Shape;

/// A GPU FP8 product against the CPU's: both multiply the same FP8 values (the same scales,
/// the same rounding), so only the order of the f32 sums differs.
const FP8_PRODUCT_BOUND: f64 = 1e-5;
/// Whole FP8 steps against the CPU's (the change three steps made to each parameter): a sum
/// that lands on the other side of an FP8 rounding boundary moves that value by a whole
/// FP8 step (1/16 or 1/8 of it) in the next product, so the bound is looser than bf16's.
const FP8_REFERENCE_BOUND: f64 = 1e-2;

fn ctx() -> RunContext {
    RunContext {
        seed: 0,
        step: 0,
        training: true,
        first_row: 0,
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn fp8_products_equal_the_cpu_reference_in_every_layout_up_to_f32_sums() {
    let be = gpu(false);
    let fp8 = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, Precision::Fp8).unwrap();
    let tracker = MemoryTracker::new(None);
    let cpu = Cpu::<f32>::with_precision(tracker.clone(), Precision::Fp8);
    let (m, k, n) = (64, 96, 48);
    let mut rng = KeyedRng::new(31, 31);
    let formats: [[Fp8Format; 2]; 3] = [[E4M3, E4M3], [E5M2, E4M3], [E4M3, E5M2]];
    for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
        for formats in formats {
            let label = format!("trans_a {trans_a}, trans_b {trans_b}, {formats:?}");
            let a_shape = if trans_a { [k, m] } else { [m, k] };
            let b_shape = if trans_b { [n, k] } else { [k, n] };
            // Operands far apart in size: each gets a scale of its own.
            let a = random(&mut rng, &a_shape) * 40.0;
            let b = random(&mut rng, &b_shape) * 1e-3;
            let shape = Shape::new(&[m, n]);
            let out = Out {
                shape: &shape,
                category: Category::Temporaries,
                storage: Storage::F32,
                fp8: Some(formats),
            };
            let op = Op::MatMul { trans_a, trans_b };
            let (ga, gb) = (
                fp8.upload(&a, Category::Temporaries).unwrap(),
                fp8.upload(&b, Category::Temporaries).unwrap(),
            );
            let got = fp8
                .download(&fp8.compute(&op, &[&ga, &gb], out, &ctx()).unwrap())
                .unwrap();
            let buffer = |x: &ArrayD<f32>| Buffer::new(&tracker, Category::Temporaries, x.clone()).unwrap();
            let (ca, cb) = (buffer(&a), buffer(&b));
            let want = cpu.compute(&op, &[&ca, &cb], out, &ctx()).unwrap().data;
            let error = relative_error(&got, &want);
            println!("fp8 product {label}: {error:.3e} from the CPU reference");
            assert!(error <= FP8_PRODUCT_BOUND, "{label}: {error:e} from the CPU reference");
        }
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn fp8_gpu_steps_match_the_cpu_reference_and_the_predicted_peak() {
    for (activation, dropout) in [("relu", 0.0), ("gelu", 0.25)] {
        // Sides that are multiples of 16, so every product but the 10-class layer's is FP8.
        let spec = MlpSpec::new("64-64-48-10", activation, dropout).unwrap();
        let label = format!("fp8 {activation} dropout {dropout}");
        super::low_precision::steps_match_the_cpu_reference(Precision::Fp8, &spec, FP8_REFERENCE_BOUND, &label);
    }
}
