//! `chainrule bench`: training-step throughput of an MLP, measured beside the bare matrix
//! products of the same step, in the same process, so their ratio is like for like.

use crate::configuration::Configuration;
use crate::device;
use crate::model_flags::{CheckpointFlag, ModelFlags, StepFlags, StepSettings};
use crate::product_ceiling;
use crate::timing::Timings;
use crate::train_report::counted;
use crate::voice::Voice;
use chainrule::backend::{Batch, StepGraphs};
use chainrule::data::{Dataset, Normalization};
use chainrule::memory::Bytes;
use chainrule::rng::{stream, KeyedRng};
use chainrule::train::Trainer;
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Timed steps (the median is reported)
    #[arg(long, default_value_t = 50, value_name = "N")]
    steps: usize,
    /// Untimed steps first (thread pools, allocator, caches)
    #[arg(long, default_value_t = 5, value_name = "N")]
    warmup: usize,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    /// Device: auto, cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    device: String,
    /// The GPU to measure on, as train --devices names GPUs (one number, or all on a one-GPU machine); the same as --device cuda:N
    #[arg(long, value_name = "LIST|all")]
    devices: Option<chainrule::dist::DeviceList>,
    /// On a GPU, run f32 matrix products in TF32 on the tensor cores
    #[arg(long)]
    tf32: bool,
    /// Whole-step CUDA graphs, as `train --cuda-graph`: auto, on or off (the warm-up steps capture; the timed steps replay)
    #[arg(long, default_value = "off", value_name = "auto|on|off")]
    cuda_graph: chainrule::backend::StepGraphs,
    /// The products' ceiling: SIZE x SIZE x SIZE products on the same backend and threads,
    /// timed after the steps; the step's products are reported as a share of its rate. 0
    /// skips it [default: 2048 on the CPU, 8192 on a GPU]
    #[arg(long, value_name = "SIZE")]
    ceiling: Option<usize>,
    #[command(flatten)]
    model: ModelFlags,
    #[command(flatten)]
    pub step: StepFlags,
    #[command(flatten)]
    checkpoint: CheckpointFlag,
}

pub fn run(a: BenchArgs) -> anyhow::Result<i32> {
    let spec = a.model.synthetic_spec()?;
    let batch = a.step.batch_for(&spec)?;
    if a.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let (step, policy) = (StepSettings::from_flags(&a.step)?, a.checkpoint.policy()?);
    let device_flag = device::single_gpu(a.devices.as_ref(), &a.device, "bench")?;
    let device = device::resolve_with(&device_flag, a.tf32, a.step.dtype(), None, Voice::Speaks)?;
    let params = spec.parameter_count() as u64;
    let flops_per_step = 6 * params * batch as u64;
    let configuration = Configuration::measured(&spec, &a.step, &step, a.checkpoint.checkpoint.clone());
    let lr = step.lr;
    let mut trainer = Trainer::new(
        spec.clone(),
        step.config(batch, policy),
        Normalization::scale_only(1.0),
        &device,
    )?;
    trainer.set_step_graphs(a.cuda_graph)?;
    if a.cuda_graph != StepGraphs::Off && a.warmup < 2 {
        anyhow::bail!(
            "--cuda-graph {}: give --warmup 2 or more (one step warms up, the next is captured)",
            a.cuda_graph
        );
    }
    let mut rng = KeyedRng::new(2, stream::TEST_DATA);
    let (x, y) = crate::synthetic::batch(&mut rng, batch, spec.inputs(), spec.classes())?;
    // The step's predicted peak must fit before its yardstick's operands are made beside it.
    let resident = device.tracker().report().live.total();
    let need = trainer
        .plan_for(batch)?
        .map_or(0, |p| p.predicted.peak_total.saturating_sub(resident));
    if let Some(room) = device.room()?.or(device.free_memory()?).filter(|&room| need > room) {
        anyhow::bail!(
            "--batch-size {batch}: a step is predicted to need {}, and {} is free; try a smaller --batch-size or a --checkpoint policy",
            Bytes(need),
            Bytes(room)
        );
    }
    let ceiling_size = match a.ceiling {
        Some(size) => size,
        None => product_ceiling::default_size(device.as_ref())?,
    };
    product_ceiling::check_size(device.as_ref(), ceiling_size)?;
    let linears = spec.linears();
    let bare = device.bare_products(&linears, batch)?;
    // On a GPU the batch is held there, as a training run's dataset is.
    let held = trainer.hold_training_set(
        &Dataset {
            features: x.clone(),
            labels: y.iter().map(|&l| l as u32).collect(),
            image_shape: None,
            targets: None,
        },
        None,
    )?;
    if held {
        trainer.start_epoch(&(0..batch).collect::<Vec<_>>(), &vec![(0, 0); batch])?;
    }
    // Steps and bare products alternate, so machine noise hits both alike.
    let (mut steps, mut products) = (Timings::after_warmup(a.warmup), Timings::after_warmup(a.warmup));
    let (mut peak, mut predicted) = (0, 0);
    for _ in 0..a.warmup + a.steps {
        products.record(bare.time()?);
        // The step reads its loss back, which waits for the device.
        let (_, m, p) = steps.time(|| {
            let data = match held {
                true => Batch::Held { start: 0, len: batch },
                false => Batch::Host(x.clone(), y.clone()),
            };
            Ok(trainer.train_batch(data, lr)?)
        })?;
        peak = m.peak_total;
        predicted = p.peak_total;
    }
    let matmul_flops = bare_matmul_flops(&linears, batch);
    let (step_s, matmul_s) = (steps.median(), products.median());
    // FLOP/s of the products the step runs (the first layer's input gradient left out).
    let matmul_rate = matmul_flops as f64 / matmul_s;
    drop(bare);
    let ceiling = product_ceiling::measure(device.as_ref(), ceiling_size, 3, matmul_rate)?;
    // The rates this machine showed, for the checkpoint planner (`plan --rates`).
    let work = trainer.plan_for(batch)?.map(|p| p.work).unwrap_or_default();
    let rates = device.rates().calibrated(matmul_rate, work, step_s);
    let rates = format!("{:.3e},{:.3e},{:.3e}", rates.product, rates.other, rates.memory);
    let gflops = flops_per_step as f64 / step_s / 1e9;
    // Same FLOP convention for both, so the ratio is the time ratio of the two.
    let matmul_gflops = flops_per_step as f64 / matmul_s / 1e9;
    let device = device.describe();
    let threads = rayon::current_num_threads();
    let record = configuration.json_with(json!({
        "device": device,
        "tf32": a.tf32,
        "threads": threads,
        "steps": a.steps,
        "parameters": params,
        "samples_per_sec": batch as f64 / step_s,
        "step_ms_median": step_s * 1e3,
        "gflops": gflops,
        "matmul_ms_median": matmul_s * 1e3,
        "matmul_gflops": matmul_gflops,
        "matmul_gflops_actual": matmul_rate / 1e9,
        "gflops_over_matmul_gflops": gflops / matmul_gflops,
        "ceiling_size": ceiling.as_ref().map(|c| c.size),
        "ceiling_gflops": ceiling.as_ref().map(|c| c.gflops),
        "matmul_over_ceiling": ceiling.as_ref().map(|c| matmul_rate / 1e9 / c.gflops),
        "planner_rates": rates,
        "peak_bytes": peak,
        "predicted_peak_bytes": predicted,
        "cuda_graph": trainer.step_graphs().to_string(),
        "fp8_note": trainer.half_layout().fp8().then(|| crate::fp8_coverage::note(&spec, &[batch], None)),
    }));
    if a.json {
        println!("{record}");
        return Ok(0);
    }
    print_table(&record, &configuration.line(), a.cuda_graph != StepGraphs::Off);
    Ok(0)
}

/// The human-readable view of a bench record (the same numbers as `--json`).
fn print_table(r: &serde_json::Value, configuration: &str, graphs: bool) {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let (batch, params) = (f("batch_size"), r["parameters"].as_u64().unwrap_or(0));
    let rates = r["planner_rates"].as_str().unwrap_or("");
    println!("bench: {configuration}");
    if let Some(note) = r["fp8_note"].as_str() {
        println!("  {note}");
    }
    let count = |key: &str, one: &str, many: &str| counted(r[key].as_u64().unwrap_or(0), one, many);
    println!(
        "  {} · {} · median of {}",
        r["device"].as_str().unwrap_or(""),
        count("threads", "CPU thread", "CPU threads"),
        count("steps", "step", "steps")
    );
    println!("  samples/s            {:>12.0}", f("samples_per_sec"));
    println!("  step (median)        {:>12.3} ms", f("step_ms_median"));
    println!(
        "  achieved             {:>12.2} GFLOP/s   (6 x {params} parameters x {batch})",
        f("gflops")
    );
    println!(
        "  bare matmuls         {:>12.3} ms  = {:.2} GFLOP/s same convention ({:.2} counting only the products run)",
        f("matmul_ms_median"),
        f("matmul_gflops"),
        f("matmul_gflops_actual")
    );
    if let Some(size) = r["ceiling_size"].as_u64() {
        let share = f("matmul_over_ceiling");
        println!(
            "  product ceiling      {:>12.2} GFLOP/s   ({size}x{size}x{size} products, same backend and threads: the bare matmuls reach {:.0}% of it{})",
            f("ceiling_gflops"),
            100.0 * share,
            if share > 1.0 { "; they ran faster, so a larger --ceiling measures the limit" } else { "" }
        );
    }
    println!(
        "  matmul / step time   {:>12.3}   (the share of a step its bare products would take)",
        f("gflops_over_matmul_gflops")
    );
    println!(
        "  planner rates        {rates:>12}   (products, other FLOP/s, memory B/s: plan --rates {rates}; the last two scaled together to the step's time outside the products)"
    );
    let bytes = |k: &str| Bytes(r[k].as_u64().unwrap_or(0));
    println!(
        "  peak memory          {:>12}   (predicted {})",
        bytes("peak_bytes").to_string(),
        bytes("predicted_peak_bytes")
    );
    if graphs {
        println!("  cuda graph           {}", r["cuda_graph"].as_str().unwrap_or(""));
    }
}

/// FLOPs of one set of [`BareMatmuls`].
fn bare_matmul_flops(linears: &[(usize, usize)], batch: usize) -> u64 {
    linears
        .iter()
        .enumerate()
        .map(|(i, &(fan_in, fan_out))| 2 * (batch * fan_in * fan_out) as u64 * if i == 0 { 2 } else { 3 })
        .sum()
}
