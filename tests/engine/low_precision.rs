//! `--dtype bf16|f16` on the CPU: the reference of the GPU's low-precision arithmetic. Each
//! matrix product multiplies its operands rounded to the 16-bit type (as the GPU's copies
//! are) with f32 accumulation; checkpoint policies stay bitwise identical within the dtype
//! (fp8's too, on layers whose products take FP8: tests/engine/fp8.rs has the rest of fp8);
//! memory is predicted exactly with the rounded copies counted; f16 overflows like f16.

use crate::common::param_bits;
use chainrule::backend::cpu::{Buffer, Cpu, CpuDevice};
use chainrule::backend::{Device, Precision};
use chainrule::data::Normalization;
use chainrule::exec::{Backend, Out};
use chainrule::graph::NodeId;
use chainrule::memory::MemoryReport;
use chainrule::memory::{Category, MemoryTracker};
use chainrule::nn::Mlp;
use chainrule::nn::{BlockKind, BlockSpec, MlpSpec, NormChoice};
use chainrule::ops::{Op, RunContext};
use chainrule::optim::{LossScaler, OptimizerConfig, OptimizerKind};
use chainrule::plan::fp8::Fp8Format;
use chainrule::plan::{CheckpointPolicy, HalfLayout, Storage};
use chainrule::rng::KeyedRng;
use chainrule::tensor::Shape;
use chainrule::train::StepProgram;
use chainrule::train::{TrainConfig, Trainer};
use ndarray::{Array1, Array2, ArrayD};
use std::sync::Arc;

fn round(v: f32, p: Precision) -> f64 {
    match p {
        Precision::Bf16 | Precision::Fp8 => half::bf16::from_f32(v).to_f32() as f64,
        Precision::F16 => half::f16::from_f32(v).to_f32() as f64,
        Precision::F32 => v as f64,
    }
}

/// max |got - want| / max |want| over a product's elements.
pub(crate) fn relative(got: &ArrayD<f32>, want: &Array2<f64>) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want.iter())
        .fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
    diff / scale
}

/// `a·b` on the CPU in `precision` (on FP8 operands in the formats `fp8` names, in an fp8
/// step), with the tracker that counted its buffers and operand copies.
pub(crate) fn cpu_product(
    precision: Precision,
    a: &Array2<f32>,
    b: &Array2<f32>,
    fp8: Option<[Fp8Format; 2]>,
) -> (ArrayD<f32>, Arc<MemoryTracker>) {
    let tracker = MemoryTracker::new(None);
    let cpu = Cpu::<f32>::with_precision(tracker.clone(), precision);
    let buffer = |x: &Array2<f32>| Buffer::new(&tracker, Category::Temporaries, x.clone().into_dyn()).unwrap();
    let (ba, bb) = (buffer(a), buffer(b));
    let op = Op::MatMul {
        trans_a: false,
        trans_b: false,
    };
    let ctx = RunContext {
        seed: 0,
        step: 0,
        training: true,
        first_row: 0,
    };
    let shape = Shape::new(&[a.nrows(), b.ncols()]);
    let out = Out {
        shape: &shape,
        category: Category::Temporaries,
        storage: Storage::F32,
        fp8,
    };
    let product = cpu.compute(&op, &[&ba, &bb], out, &ctx).unwrap().data.clone();
    (product, tracker)
}

#[test]
fn a_low_precision_product_is_the_exact_product_of_rounded_operands_up_to_f32_sums() {
    let mut rng = KeyedRng::new(21, 21);
    let (m, k, n) = (37, 300, 23);
    let a = Array2::from_shape_simple_fn((m, k), || rng.uniform() as f32 - 0.5);
    let b = Array2::from_shape_simple_fn((k, n), || rng.uniform() as f32 - 0.5);
    for p in [Precision::Bf16, Precision::F16] {
        let (got, tracker) = cpu_product(p, &a, &b, None);
        let exact = |r: &dyn Fn(f32) -> f64| a.mapv(r).dot(&b.mapv(r));
        let of_rounded = exact(&|v| round(v, p));
        let of_unrounded = exact(&|v| v as f64);
        // f32 sums of 300 terms: far below one rounding of an operand (2^-9 for bf16, 2^-12 for f16).
        let sums = relative(&got, &of_rounded);
        assert!(sums < 2e-6, "{p}: {sums:e} from the product of rounded operands");
        let rounding = relative(&got, &of_unrounded);
        assert!(
            rounding > 20.0 * sums,
            "{p}: operands were not rounded ({rounding:e} vs {sums:e})"
        );
        // Both rounded copies were counted while the product ran, then freed.
        let report = tracker.report();
        assert_eq!(
            report.peak.get(Category::Temporaries),
            4 * (2 * m * k + 2 * k * n + m * n) as u64
        );
    }
}

fn config(checkpoint: CheckpointPolicy, loss_scaling: bool) -> TrainConfig {
    let mut optimizer = OptimizerConfig::new(OptimizerKind::AdamW);
    optimizer.weight_decay = 0.01;
    TrainConfig {
        checkpoint,
        loss_scaling,
        ..crate::common::one_epoch(48, 0.01, 5, optimizer)
    }
}

fn trainer(precision: Precision, checkpoint: CheckpointPolicy, activation: &str) -> Trainer {
    trainer_with(precision, checkpoint, (activation, 0.25, None), LAYERS)
}

/// The tests' layers and their input width. Under `--dtype fp8` only products whose sides
/// are multiples of 16 take FP8 operands: [`FP8_LAYERS`] has them (batches of 48 rows).
const LAYERS: (&str, usize) = ("30-40-40-40-10", 30);
const FP8_LAYERS: (&str, usize) = ("32-48-48-48-10", 32);

fn layers_for(precision: Precision) -> (&'static str, usize) {
    match precision {
        Precision::Fp8 => FP8_LAYERS,
        _ => LAYERS,
    }
}

/// The nets of the low-precision tests: activation, dropout and block (none: the chain).
type Net<'a> = (&'a str, f64, Option<BlockSpec>);

fn trainer_with(
    precision: Precision,
    checkpoint: CheckpointPolicy,
    (activation, dropout, blocks): Net,
    (layers, _): (&str, usize),
) -> Trainer {
    let device: Arc<dyn Device> = Arc::new(CpuDevice::with_precision(None, precision));
    let loss_scaling = device.needs_loss_scaling();
    let spec = MlpSpec::new(layers, activation, dropout)
        .unwrap()
        .with_blocks(blocks)
        .unwrap();
    Trainer::new(
        spec,
        config(checkpoint, loss_scaling),
        Normalization::scale_only(1.0),
        &device,
    )
    .unwrap()
}

fn batches(n: usize, (_, inputs): (&str, usize)) -> Vec<(Array2<f32>, Array1<f32>)> {
    let mut rng = KeyedRng::new(9, 9);
    (0..n)
        .map(|_| {
            let x = Array2::from_shape_simple_fn((48, inputs), || rng.uniform() as f32);
            let y = Array1::from_shape_simple_fn(48, || rng.below(10) as f32);
            (x, y)
        })
        .collect()
}

#[test]
fn checkpoint_policies_stay_bitwise_identical_within_a_low_precision_and_predict_memory_exactly() {
    let residual = BlockSpec {
        kind: BlockKind::Residual,
        norm: NormChoice::Layer,
        expansion: 2,
    };
    let swiglu = BlockSpec {
        kind: BlockKind::Gated,
        norm: NormChoice::Rms,
        expansion: 2,
    };
    let batch_norm = BlockSpec {
        norm: NormChoice::Batch,
        ..residual
    };
    let nets: [Net; 7] = [
        ("relu", 0.25, None),
        ("gelu", 0.25, None),
        ("relu", 0.0, None),
        ("gelu", 0.0, None),
        ("gelu", 0.25, Some(residual)),
        ("silu", 0.0, Some(swiglu)),
        ("relu", 0.25, Some(batch_norm)),
    ];
    for (activation, dropout, blocks) in nets {
        for precision in [Precision::Bf16, Precision::F16, Precision::Fp8] {
            let layers = layers_for(precision);
            let mut runs = Vec::new();
            for policy in [
                CheckpointPolicy::None,
                CheckpointPolicy::Cheap,
                CheckpointPolicy::Sqrt,
                CheckpointPolicy::Every(2),
            ] {
                let mut t = trainer_with(precision, policy, (activation, dropout, blocks), layers);
                for (x, y) in batches(3, layers) {
                    let (_, measured, predicted) = t.train_step(x, y, 0.01).unwrap();
                    assert_eq!(
                        measured.peak_total, predicted.peak_total,
                        "{activation} {precision} {policy:?}: peak differs from the prediction"
                    );
                }
                runs.push((policy, param_bits(&t)));
            }
            for (policy, bits) in &runs[1..] {
                assert!(
                    bits == &runs[0].1,
                    "{activation} {precision}: {policy:?} differs from none"
                );
            }
            // Rounding happened: the weights differ from f32's, and FP8's from bf16's.
            let coarser = [Precision::F32]
                .into_iter()
                .chain((precision == Precision::Fp8).then_some(Precision::Bf16));
            for other in coarser {
                let mut run = trainer_with(other, CheckpointPolicy::None, (activation, dropout, blocks), layers);
                for (x, y) in batches(3, layers) {
                    run.train_step(x, y, 0.01).unwrap();
                }
                assert!(
                    param_bits(&run) != runs[0].1,
                    "{activation} {precision}: no rounding happened beyond {other}'s"
                );
            }
        }
    }
}

#[test]
fn f16_on_the_cpu_scales_the_loss_and_an_overflowing_step_changes_nothing_but_the_scale() {
    let mut t = trainer(Precision::F16, CheckpointPolicy::None, "relu");
    for (x, y) in batches(2, LAYERS) {
        t.train_step(x, y, 0.01).unwrap();
    }
    let s = t.to_snapshot().unwrap().state.loss_scaler.unwrap();
    assert_eq!((s.scale, s.clean_steps, s.skipped), (65536.0, 2, 0));
    // A scale whose scaled gradients overflow f16 (not f32): the rounded copies become
    // infinite, the step is skipped, the scale halves.
    let mut snapshot = t.to_snapshot().unwrap();
    snapshot.state.loss_scaler = Some(LossScaler {
        scale: 1e20,
        ..Default::default()
    });
    let device: Arc<dyn Device> = Arc::new(CpuDevice::with_precision(None, Precision::F16));
    let mut t = Trainer::from_snapshot(snapshot, 1, &device).unwrap();
    let before = param_bits(&t);
    let (x, y) = batches(3, LAYERS).pop().unwrap();
    t.train_step(x, y, 0.01).unwrap();
    assert_eq!(param_bits(&t), before, "an overflowing step changed the parameters");
    let s = t.to_snapshot().unwrap().state.loss_scaler.unwrap();
    assert_eq!((s.scale, s.skipped), (5e19, 1));
}

/// The nodes of a training program stored in 16 bits, by op name.
fn half_ops(activation: &str, dropout: f64) -> Vec<&'static str> {
    let mlp = Mlp::new(MlpSpec::new("30-40-40-40-10", activation, dropout).unwrap()).unwrap();
    let program = StepProgram::checkpointed(&mlp, 8, CheckpointPolicy::None, &MemoryReport::default()).unwrap();
    let program = program.stored_for(HalfLayout::Packed);
    let mut ops: Vec<&str> = (0..program.graph.len())
        .filter(|&i| program.schedule.storage[i] == Storage::Half)
        .map(|i| program.graph.node(NodeId(i)).op.name())
        .collect();
    ops.sort();
    ops
}

#[test]
fn a_low_precision_step_stores_activations_in_16_bits_and_keeps_the_loss_and_gradients_f32() {
    // ReLU layers without dropout: each hidden layer's product, bias add and ReLU (one fused
    // Linear layer) and, in backward, each product feeding a ReLU's derivative and the
    // derivative itself (read by products and a bias gradient's column sums). The logits,
    // loss, bias gradients and weight gradients stay f32.
    let relu = half_ops("relu", 0.0);
    assert_eq!(relu.iter().filter(|&&o| o == "activation_grad").count(), 3, "{relu:?}");
    assert_eq!(relu.iter().filter(|&&o| o == "relu").count(), 3, "{relu:?}");
    assert_eq!(relu.iter().filter(|&&o| o == "add").count(), 3, "{relu:?}");
    assert!(relu.iter().filter(|&&o| o == "matmul").count() >= 6, "{relu:?}");
    // GELU layers alike (the derivative's output feeds a bias sum, so it stays f32).
    let gelu = half_ops("gelu", 0.0);
    assert_eq!(gelu.iter().filter(|&&o| o == "gelu").count(), 3, "{gelu:?}");
    assert_eq!(gelu.iter().filter(|&&o| o == "matmul").count(), 6, "{gelu:?}");
    // Dropout reads f32, so what feeds it stays f32.
    let dropped = half_ops("relu", 0.25);
    assert!(!dropped.contains(&"relu") && !dropped.contains(&"add"), "{dropped:?}");
    // Predicted at 2 bytes a value on a GPU: the no-dropout step needs less than in f32.
    let mlp = Mlp::new(MlpSpec::new("30-40-40-40-10", "relu", 0.0).unwrap()).unwrap();
    let f32_step = StepProgram::checkpointed(&mlp, 64, CheckpointPolicy::None, &MemoryReport::default()).unwrap();
    let peak = |p: &StepProgram, l| p.predict_with(&MemoryReport::default(), l).peak_total;
    let f32_peak = peak(&f32_step, HalfLayout::None);
    let half_step = f32_step.stored_for(HalfLayout::Packed);
    assert!(peak(&half_step, HalfLayout::Packed) < f32_peak);
}
