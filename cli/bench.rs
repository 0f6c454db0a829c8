//! `chainrule bench`: training-step throughput of an MLP, measured beside the bare matrix
//! products of the same step, in the same process, so their ratio is like for like.

use crate::device;
use chainrule::data::Normalization;
use chainrule::memory::{Bytes, MemoryTracker};
use chainrule::nn::MlpSpec;
use chainrule::ops::matmul;
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::rng::{stream, KeyedRng};
use chainrule::train::{TrainConfig, Trainer};
use clap::Args;
use ndarray::{Array1, Array2, ArrayD};
use serde_json::json;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Layer widths of the MLP, input to classes
    #[arg(long, default_value = "784-1024-1024-1024-10", value_name = "SPEC")]
    layers: String,
    /// Examples per step
    #[arg(long, default_value_t = 256, value_name = "B")]
    batch_size: usize,
    /// Timed steps (the median is reported)
    #[arg(long, default_value_t = 50, value_name = "N")]
    steps: usize,
    /// Untimed steps first (thread pools, allocator, caches)
    #[arg(long, default_value_t = 5, value_name = "N")]
    warmup: usize,
    /// Activation between layers
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    /// Device: auto, cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    device: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn random(rng: &mut KeyedRng, rows: usize, cols: usize) -> ArrayD<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform() as f32 - 0.5).into_dyn()
}

/// The products one training step runs: per layer y = x·Wᵀ, dW = gᵀ·x, and dx = g·W for
/// every layer but the first (the input needs no gradient).
struct BareMatmuls {
    layers: Vec<(ArrayD<f32>, ArrayD<f32>, ArrayD<f32>)>,
    flops: u64,
}

impl BareMatmuls {
    fn new(widths: &[usize], batch: usize) -> Self {
        let mut rng = KeyedRng::new(1, stream::TEST_DATA);
        let layers: Vec<_> = widths
            .windows(2)
            .map(|w| {
                (
                    random(&mut rng, batch, w[0]),
                    random(&mut rng, w[1], w[0]),
                    random(&mut rng, batch, w[1]),
                )
            })
            .collect();
        let flops = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| 2 * (batch * w[0] * w[1]) as u64 * if i == 0 { 2 } else { 3 })
            .sum();
        BareMatmuls { layers, flops }
    }

    /// Seconds for one full set.
    fn time(&self) -> f64 {
        let t = Instant::now();
        for (i, (x, w, g)) in self.layers.iter().enumerate() {
            std::hint::black_box(matmul::forward(x, w, false, true));
            std::hint::black_box(matmul::forward(g, x, true, false));
            if i > 0 {
                std::hint::black_box(matmul::forward(g, w, false, false));
            }
        }
        t.elapsed().as_secs_f64()
    }
}

pub fn run(a: BenchArgs) -> anyhow::Result<i32> {
    let device = device::resolve(&a.device)?;
    if a.batch_size == 0 || a.steps == 0 {
        anyhow::bail!("--batch-size and --steps must be at least 1");
    }
    let spec = MlpSpec::new(&a.layers, &a.activation, 0.0)?;
    let params = spec.parameter_count() as u64;
    let batch = a.batch_size;
    let flops_per_step = 6 * params * batch as u64;

    let bare = BareMatmuls::new(&spec.widths, batch);

    let config = TrainConfig {
        epochs: 1,
        batch_size: batch,
        lr: 1e-3,
        schedule: LrSchedule::Constant,
        seed: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        augment_shift: 0,
    };
    let tracker = MemoryTracker::new(None);
    let mut trainer = Trainer::new(
        spec.clone(),
        config,
        Normalization::scale_only(1.0),
        tracker,
    )?;
    let mut rng = KeyedRng::new(2, stream::TEST_DATA);
    let x = Array2::from_shape_simple_fn((batch, spec.inputs()), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(batch, || rng.below(spec.classes() as u64) as f32);
    // Steps and bare products alternate, so machine noise hits both alike.
    let (mut times, mut matmul_times) = (Vec::new(), Vec::new());
    let (mut peak, mut predicted) = (0, 0);
    for s in 0..a.warmup + a.steps {
        let mm = bare.time();
        let t = Instant::now();
        let (_, m, p) = trainer.train_step(x.clone(), y.clone(), 1e-3)?;
        if s >= a.warmup {
            times.push(t.elapsed().as_secs_f64());
            matmul_times.push(mm);
        }
        peak = m.peak_total;
        predicted = p.peak_total;
    }
    let step_s = median(times);
    let matmul_s = median(matmul_times);
    let matmul_flops = bare.flops;
    let gflops = flops_per_step as f64 / step_s / 1e9;
    // Same FLOP convention for both, so the ratio is the time ratio of the two.
    let matmul_gflops = flops_per_step as f64 / matmul_s / 1e9;
    let record = json!({
        "device": device.to_string(),
        "layers": spec.layers_string(),
        "batch_size": batch,
        "threads": rayon::current_num_threads(),
        "steps": a.steps,
        "parameters": params,
        "samples_per_sec": batch as f64 / step_s,
        "step_ms_median": step_s * 1e3,
        "gflops": gflops,
        "matmul_ms_median": matmul_s * 1e3,
        "matmul_gflops": matmul_gflops,
        "matmul_gflops_actual": matmul_flops as f64 / matmul_s / 1e9,
        "gflops_over_matmul_gflops": gflops / matmul_gflops,
        "peak_bytes": peak,
        "predicted_peak_bytes": predicted,
    });
    if a.json {
        println!("{record}");
        return Ok(0);
    }
    println!(
        "bench: MLP {} · batch {batch} · {} threads · {} · median of {} steps",
        spec.layers_string(),
        rayon::current_num_threads(),
        device,
        a.steps
    );
    println!("  samples/s            {:>12.0}", batch as f64 / step_s);
    println!("  step (median)        {:>12.3} ms", step_s * 1e3);
    println!(
        "  achieved             {:>12.2} GFLOP/s   (6 x {params} parameters x {batch})",
        gflops
    );
    println!("  bare matmuls         {:>12.3} ms  = {:.2} GFLOP/s same convention ({:.2} counting only the products run)", matmul_s * 1e3, matmul_gflops, matmul_flops as f64 / matmul_s / 1e9);
    println!("  step / matmul ratio  {:>12.3}", gflops / matmul_gflops);
    println!(
        "  peak memory          {:>12}   (predicted {})",
        Bytes(peak).to_string(),
        Bytes(predicted)
    );
    Ok(0)
}
