//! `chainrule bench`: training-step throughput of an MLP, measured beside the bare matrix
//! products of the same step, in the same process, so their ratio is like for like.

use crate::device;
use chainrule::backend::cuda::CudaBackend;
use chainrule::data::Normalization;
use chainrule::exec::{Backend, Buffer, Cpu};
use chainrule::memory::{Bytes, Category, MemoryTracker};
use chainrule::nn::MlpSpec;
use chainrule::ops::{Op, RunContext};
use chainrule::rng::{stream, KeyedRng};
use chainrule::train::Placement;
use chainrule::train::{Batch, TrainConfig, Trainer};
use chainrule::Shape;
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
    /// Activation checkpointing: none, cheap, sqrt, every:K, budget:SIZE
    #[arg(long, default_value = "none", value_name = "POLICY")]
    checkpoint: String,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    /// Device: auto, cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    device: String,
    /// Compute dtype: f32, bf16 or f16 (GPU only: matrix products on 16-bit copies with f32 accumulation; f32 master weights and optimizer state; f16 with dynamic loss scaling)
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// On a GPU, run f32 matrix products in TF32 on the tensor cores
    #[arg(long)]
    tf32: bool,
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
struct BareMatmuls<B: Backend> {
    layers: Vec<(B::Tensor, B::Tensor, B::Tensor)>,
}

impl<B: Backend> BareMatmuls<B> {
    fn new(
        widths: &[usize],
        batch: usize,
        make: impl Fn(ArrayD<f32>) -> anyhow::Result<B::Tensor>,
    ) -> anyhow::Result<Self> {
        let mut rng = KeyedRng::new(1, stream::TEST_DATA);
        let mut layers = Vec::new();
        for w in widths.windows(2) {
            let (x, wt, g) = (
                random(&mut rng, batch, w[0]),
                random(&mut rng, w[1], w[0]),
                random(&mut rng, batch, w[1]),
            );
            layers.push((make(x)?, make(wt)?, make(g)?));
        }
        Ok(BareMatmuls { layers })
    }

    /// Seconds for one full set; `sync` waits for the device.
    fn time(&self, be: &B, sync: &dyn Fn() -> anyhow::Result<()>) -> anyhow::Result<f64> {
        let ctx = RunContext {
            seed: 0,
            step: 0,
            training: true,
        };
        let mm = |a: &B::Tensor, b: &B::Tensor, ta: bool, tb: bool| -> anyhow::Result<B::Tensor> {
            let (sa, sb) = (B::tensor_shape(a), B::tensor_shape(b));
            let m = if ta { sa[1] } else { sa[0] };
            let n = if tb { sb[0] } else { sb[1] };
            let op = Op::MatMul {
                trans_a: ta,
                trans_b: tb,
            };
            Ok(be.compute(&op, &[a, b], &Shape::new(&[m, n]), &ctx, Category::Temporaries)?)
        };
        sync()?;
        let t = Instant::now();
        for (i, (x, w, g)) in self.layers.iter().enumerate() {
            std::hint::black_box(mm(x, w, false, true)?);
            std::hint::black_box(mm(g, x, true, false)?);
            if i > 0 {
                std::hint::black_box(mm(g, w, false, false)?);
            }
        }
        sync()?;
        Ok(t.elapsed().as_secs_f64())
    }
}

/// The bare products on whichever device the step runs on.
enum BareSet {
    Cpu(Cpu<f32>, BareMatmuls<Cpu<f32>>),
    Cuda(std::sync::Arc<CudaBackend>, BareMatmuls<CudaBackend>),
}

impl BareSet {
    fn new(placement: &Placement, widths: &[usize], batch: usize) -> anyhow::Result<Self> {
        Ok(match placement {
            // Counted apart, so the step's reported peak is the step's alone.
            Placement::Cpu(_) => {
                let side = MemoryTracker::new(None);
                BareSet::Cpu(
                    Cpu::new(side.clone()),
                    BareMatmuls::new(widths, batch, |a| Ok(Buffer::new(&side, Category::Temporaries, a)?))?,
                )
            }
            Placement::Cuda(be) => {
                let side = MemoryTracker::new(None);
                let bare = BareMatmuls::new(widths, batch, |a| {
                    Ok(be.upload_counted(&a, Category::Temporaries, &side)?)
                })?;
                BareSet::Cuda(be.clone(), bare)
            }
        })
    }

    fn time(&self) -> anyhow::Result<f64> {
        match self {
            BareSet::Cpu(be, bare) => bare.time(be, &|| Ok(())),
            BareSet::Cuda(be, bare) => bare.time(be, &|| Ok(be.synchronize()?)),
        }
    }
}

pub fn run(a: BenchArgs) -> anyhow::Result<i32> {
    let placement = device::resolve_with(&a.device, a.tf32, &a.dtype)?;
    if a.batch_size == 0 || a.steps == 0 {
        anyhow::bail!("--batch-size and --steps must be at least 1");
    }
    let spec = MlpSpec::new(&a.layers, &a.activation, 0.0)?;
    let params = spec.parameter_count() as u64;
    let batch = a.batch_size;
    let flops_per_step = 6 * params * batch as u64;

    let config = TrainConfig::sgd_benchmark(batch, a.checkpoint.parse()?);
    let mut trainer = Trainer::new(spec.clone(), config, Normalization::scale_only(1.0), &placement)?;
    let mut rng = KeyedRng::new(2, stream::TEST_DATA);
    let x = Array2::from_shape_simple_fn((batch, spec.inputs()), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(batch, || rng.below(spec.classes() as u64) as f32);
    let bare = BareSet::new(&placement, &spec.widths, batch)?;
    // On a GPU the batch stays there, as a training run's resident dataset does.
    let resident = match &placement {
        Placement::Cuda(be) => Some((
            be.clone(),
            be.upload(&x.clone().into_dyn(), Category::Temporaries)?,
            be.upload(&y.clone().into_dyn(), Category::Temporaries)?,
        )),
        Placement::Cpu(_) => None,
    };
    // Steps and bare products alternate, so machine noise hits both alike.
    let (mut times, mut matmul_times) = (Vec::new(), Vec::new());
    let (mut peak, mut predicted) = (0, 0);
    for s in 0..a.warmup + a.steps {
        let mm = bare.time()?;
        let t = Instant::now();
        // The step reads its loss back, which waits for the device.
        let data = match &resident {
            Some((be, dx, dy)) => Batch::Device(
                be.duplicate(dx, Category::Temporaries)?,
                be.duplicate(dy, Category::Temporaries)?,
            ),
            None => Batch::Host(x.clone(), y.clone()),
        };
        let (_, m, p) = trainer.train_batch(data, 1e-3)?;
        if s >= a.warmup {
            times.push(t.elapsed().as_secs_f64());
            matmul_times.push(mm);
        }
        peak = m.peak_total;
        predicted = p.peak_total;
    }
    let matmul_flops = bare_matmul_flops(&spec.widths, batch);
    let step_s = median(times);
    let matmul_s = median(matmul_times);
    let gflops = flops_per_step as f64 / step_s / 1e9;
    // Same FLOP convention for both, so the ratio is the time ratio of the two.
    let matmul_gflops = flops_per_step as f64 / matmul_s / 1e9;
    let device = placement.describe();
    let threads = rayon::current_num_threads();
    let record = json!({
        "device": device,
        "tf32": a.tf32,
        "dtype": a.dtype,
        "layers": spec.layers_string(),
        "batch_size": batch,
        "threads": threads,
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
        "bench: MLP {} · batch {batch} · {device} · {threads} CPU threads · median of {} steps",
        spec.layers_string(),
        a.steps
    );
    println!("  samples/s            {:>12.0}", batch as f64 / step_s);
    println!("  step (median)        {:>12.3} ms", step_s * 1e3);
    println!(
        "  achieved             {:>12.2} GFLOP/s   (6 x {params} parameters x {batch})",
        gflops
    );
    println!(
        "  bare matmuls         {:>12.3} ms  = {:.2} GFLOP/s same convention ({:.2} counting only the products run)",
        matmul_s * 1e3,
        matmul_gflops,
        matmul_flops as f64 / matmul_s / 1e9
    );
    println!("  step / matmul ratio  {:>12.3}", gflops / matmul_gflops);
    println!(
        "  peak memory          {:>12}   (predicted {})",
        Bytes(peak).to_string(),
        Bytes(predicted)
    );
    Ok(0)
}

/// FLOPs of one set of [`BareMatmuls`].
fn bare_matmul_flops(widths: &[usize], batch: usize) -> u64 {
    widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| 2 * (batch * w[0] * w[1]) as u64 * if i == 0 { 2 } else { 3 })
        .sum()
}
