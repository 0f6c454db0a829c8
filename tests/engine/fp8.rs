//! `--dtype fp8` on the CPU: the reference of FP8 training. A product whose sides are
//! multiples of 16 multiplies operands rounded to FP8 after a per-tensor power-of-two
//! scale (e4m3 for what forward made, e5m2 for gradients), with f32 sums; other products
//! are bf16's. Checkpoint policies staying bitwise identical and memory predicted exactly
//! in fp8 steps are tested with the other low precisions (tests/engine/low_precision.rs).

use crate::low_precision::{cpu_product, relative};
use chainrule::backend::cpu::CpuDevice;
use chainrule::backend::{Device, Precision};
use chainrule::data::{Dataset, Normalization};
use chainrule::graph::{NodeId, Phase};
use chainrule::memory::{Category, MemoryReport};
use chainrule::nn::{Mlp, MlpSpec};
use chainrule::ops::Op;
use chainrule::optim::{OptimizerConfig, OptimizerKind};
use chainrule::plan::fp8::{operand_formats, Fp8Format};
use chainrule::plan::{CheckpointPolicy, HalfLayout, Rates};
use chainrule::rng::KeyedRng;
use chainrule::train::out_of_memory::out_of_memory_advice;
use chainrule::train::scale::{fits_at, max_batch, predicted_peak, resident_bytes_for};
use chainrule::train::{Control, StepOptions, StepProgram, Trainer};
use ndarray::Array2;
use std::sync::Arc;

/// `a` as an FP8 product reads it, computed here from the definition: the power of two
/// that brings the absolute maximum closest to the format's largest value without passing
/// it, then the `float8` crate's rounding (NVIDIA's saturating conversion).
fn quantized(a: &Array2<f32>, format: Fp8Format) -> Array2<f64> {
    let amax = a.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    let scale = 2f64.powf((format.max() as f64 / amax).log2().floor());
    a.mapv(|v| {
        let scaled = (v as f64 * scale) as f32;
        let rounded = match format {
            Fp8Format::E4M3 => float8::F8E4M3::from_f32(scaled).to_f32(),
            Fp8Format::E5M2 => float8::F8E5M2::from_f32(scaled).to_f32(),
        };
        rounded as f64 / scale
    })
}

#[test]
fn an_fp8_product_is_the_exact_product_of_scaled_and_rounded_operands_up_to_f32_sums() {
    let mut rng = KeyedRng::new(8, 8);
    let (m, k, n) = (48, 320, 32);
    // Operands of very different sizes: each gets its own scale.
    let a = Array2::from_shape_simple_fn((m, k), || (rng.uniform() as f32 - 0.5) * 3e-4);
    let b = Array2::from_shape_simple_fn((k, n), || (rng.uniform() as f32 - 0.5) * 900.0);
    for formats in [[Fp8Format::E4M3, Fp8Format::E4M3], [Fp8Format::E5M2, Fp8Format::E4M3]] {
        let (got, tracker) = cpu_product(Precision::Fp8, &a, &b, Some(formats));
        let of_quantized = quantized(&a, formats[0]).dot(&quantized(&b, formats[1]));
        let sums = relative(&got, &of_quantized);
        assert!(
            sums < 2e-6,
            "{formats:?}: {sums:e} from the product of quantized operands"
        );
        let exact = a.mapv(|v| v as f64).dot(&b.mapv(|v| v as f64));
        let rounding = relative(&got, &exact);
        assert!(
            rounding > 100.0 * sums,
            "{formats:?}: operands were not rounded ({rounding:e})"
        );
        // 8-bit operands (e5m2 keeps 2 mantissa bits, 12.5% steps): within 10% of the
        // exact product's largest element, not more.
        assert!(rounding < 0.1, "{formats:?}: {rounding:e} off the exact product");
        // Both copies were counted (as f32, the CPU's widened form) while the product ran.
        assert_eq!(
            tracker.report().peak.get(Category::Temporaries),
            4 * (2 * m * k + 2 * k * n + m * n) as u64
        );
    }
    // A product FP8 cannot take (`fp8: None`) is bf16's: no FP8 rounding.
    assert_eq!(
        cpu_product(Precision::Fp8, &a, &b, None).0,
        cpu_product(Precision::Bf16, &a, &b, None).0
    );
}

#[test]
fn forward_operands_are_e4m3_gradients_e5m2_and_products_off_the_16_grid_stay_bf16() {
    let mlp = Mlp::new(MlpSpec::new("32-48-48-48-10", "gelu", 0.25).unwrap()).unwrap();
    let program = StepProgram::checkpointed(&mlp, 48, CheckpointPolicy::None, &MemoryReport::default()).unwrap();
    let graph = &program.graph;
    let (mut forward, mut backward, mut bf16) = (0, 0, 0);
    for id in (0..graph.len()).map(NodeId) {
        let node = graph.node(id);
        let Op::MatMul { .. } = node.op else { continue };
        let Some(formats) = operand_formats(graph, id) else {
            // Only the 10-wide output layer's products: 48x10, 10x48 and 48x48 over 10.
            assert!(node.shape.dims().contains(&10) || graph.shape(node.inputs[0]).dims().contains(&10));
            bf16 += 1;
            continue;
        };
        for (slot, &x) in node.inputs.iter().enumerate() {
            let want = match graph.node(x).phase {
                Phase::Forward => Fp8Format::E4M3,
                _ => Fp8Format::E5M2,
            };
            assert_eq!(formats[slot], want, "{id} operand {slot}");
        }
        match node.phase {
            Phase::Forward => forward += 1,
            _ => backward += 1,
        }
    }
    // 32-48-48-48-10: three hidden products forward; their weight gradients and two input
    // gradients backward; the output layer's forward, weight and input-gradient products.
    assert_eq!((forward, backward, bf16), (3, 5, 3));
}

#[test]
fn fp8_copies_are_counted_at_one_byte_a_value_on_the_gpu_and_as_f32_on_the_cpu() {
    assert_eq!(HalfLayout::PackedFp8.fp8_copy_bytes(48 * 32), 48 * 32 + 4);
    assert_eq!(HalfLayout::PackedFp8.fp8_copy_bytes(5), 8 + 4);
    assert_eq!(HalfLayout::WidenedFp8.fp8_copy_bytes(10), 40);
    assert_eq!(HalfLayout::Packed.fp8_copy_bytes(10), 0);
    // 16-bit values are held as in bf16 steps.
    assert_eq!(HalfLayout::PackedFp8.bytes(5), HalfLayout::Packed.bytes(5));
    assert!(HalfLayout::PackedFp8.packed() && !HalfLayout::WidenedFp8.packed());
}

#[test]
fn the_largest_fp8_batch_is_found_though_a_multiple_of_16_needs_more_than_the_batch_after_it() {
    // A batch that is a multiple of 16 makes FP8 copies that the next batch does not: the
    // peak falls from 208 rows to 209, so a search that assumes it only grows stops early.
    let mlp = Mlp::new(MlpSpec::new("784-256-256-10", "relu", 0.1).unwrap()).unwrap();
    let optimizer = OptimizerConfig::new(OptimizerKind::AdamW);
    let options = StepOptions {
        layout: HalfLayout::WidenedFp8,
        rates: Rates::CPU,
        ..Default::default()
    };
    let resident = resident_bytes_for(&mlp.spec, &optimizer, options.layout);
    let peak = |b| predicted_peak(&mlp, b, CheckpointPolicy::None, &resident, options).unwrap();
    assert!(peak(208) > peak(209), "the FP8 copies at 208 rows");
    for limit in [5 << 20, 6 << 20, peak(208), peak(209)] {
        let fits = |b| fits_at(&mlp, b, CheckpointPolicy::None, limit, &resident, options, 4.0);
        let best = max_batch(&mlp, CheckpointPolicy::None, limit, &resident, options, 4.0).unwrap();
        assert!(fits(best), "limit {limit}: {best} does not fit");
        // No larger batch fits, of either kind, for two multiples of 16 past it.
        assert!(
            (best + 1..best + 33).all(|b| !fits(b)),
            "limit {limit}: a batch past {best} fits"
        );
    }
}

#[test]
fn an_fp8_epoch_whose_shorter_last_batch_needs_more_memory_fails_before_its_first_step() {
    // 330 rows in batches of 170: full batches of 170 rows (no FP8 products) and a last one
    // of 160 (FP8 copies), which needs more.
    let spec = MlpSpec::new("64-64-64-10", "relu", 0.0).unwrap();
    let mlp = Mlp::new(spec.clone()).unwrap();
    let mut optimizer = OptimizerConfig::new(OptimizerKind::AdamW);
    optimizer.weight_decay = 0.0;
    let options = StepOptions {
        layout: HalfLayout::WidenedFp8,
        rates: Rates::CPU,
        ..Default::default()
    };
    let resident = resident_bytes_for(&spec, &optimizer, options.layout);
    let peak = |b| predicted_peak(&mlp, b, CheckpointPolicy::None, &resident, options).unwrap();
    assert!(peak(160) > peak(170));
    let limit = (peak(160) + peak(170)) / 2;
    let device: Arc<dyn Device> = Arc::new(CpuDevice::with_precision(Some(limit), Precision::Fp8));
    let config = crate::common::one_epoch(170, 0.01, 1, optimizer);
    let mut t = Trainer::new(spec, config, Normalization::scale_only(1.0), &device).unwrap();
    let mut rng = KeyedRng::new(3, 3);
    let data = Dataset {
        features: Array2::from_shape_simple_fn((330, 64), || rng.uniform() as f32),
        labels: (0..330).map(|i| (i % 10) as u32).collect(),
        image_shape: None,
        targets: None,
    };
    let err = t
        .fit(&data, &data, |_, _| Control::Continue, |_, _| Control::Continue)
        .unwrap_err();
    assert!(err.to_string().contains("shorter training step"), "{err}");
    assert_eq!(t.state.step, 0, "no step ran before the refusal");
    // The advice does not offer the batch that just failed.
    let advice = out_of_memory_advice(
        &t.mlp.spec,
        &t.config,
        limit,
        (HalfLayout::WidenedFp8, false),
        Some((330, 1)),
    );
    assert!(!advice.contains("fits --batch-size 170"), "{advice}");
    // 112 training rows at --batch-size 128 make one step of 112 rows (FP8 copies), which
    // does not fit; 111 rows (no FP8 products, and a last batch of 1) do.
    let spec = MlpSpec::new("784-64-64-10", "relu", 0.1).unwrap();
    let mut config = t.config.clone();
    config.settings.batch_size = 128;
    config.optimizer = OptimizerConfig::new(OptimizerKind::AdamW);
    let advice = out_of_memory_advice(
        &spec,
        &config,
        1_600_000,
        (HalfLayout::WidenedFp8, false),
        Some((112, 1)),
    );
    assert!(
        advice.contains("--checkpoint none --batch-size 111 is the largest"),
        "{advice}"
    );
}
