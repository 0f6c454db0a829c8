//! `chainrule plan`: a checkpoint plan and its predicted memory, before anything runs.

use crate::configuration::Configuration;
use crate::model_flags::{CheckpointFlag, ModelFlags, StepFlags, StepSettings};
use chainrule::backend::Precision;
use chainrule::graph::Graph;
use chainrule::memory::{Bytes, Category, MemoryReport};
use chainrule::nn::Mlp;
use chainrule::plan::{
    budget::nested_plan, candidate_plans, chosen_name, fates, forward_runs_by_layer, frontier, layer_runs,
    CheckpointPolicy, Plan, Rates, Request,
};
use chainrule::scale::resident_bytes_for;
use chainrule::train::{StepOptions, StepProgram};
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Rates that turn recomputation into time for budget:SIZE: auto (the --device's), cpu (products 50 GFLOP/s, other ops 10 GFLOP/s, memory 10 GB/s), gpu (400 TFLOP/s, 30 TFLOP/s, 3 TB/s), or your own PRODUCT,OTHER,MEMORY such as 48e9,10e9,12e9 (bench prints the product rate it measures)
    #[arg(long, default_value = "auto", value_name = "RATES", allow_hyphen_values = true)]
    rates: String,
    /// The device the plan is for: cuda or cpu (they hold 16-bit tensors differently, and price recomputation at their own rates), or auto (what every tool's --device auto runs on: a GPU when one is usable, else the CPU)
    #[arg(long, default_value = "auto")]
    device: String,
    /// List every forward tensor with its size and fate
    #[arg(long)]
    explain: bool,
    /// Also print the frontier (peak vs recompute time) of the candidate plans: none, cheap, every:K, and the nested planner's least-memory plan
    #[arg(long)]
    frontier: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelFlags,
    #[command(flatten)]
    pub step: StepFlags,
    #[command(flatten)]
    checkpoint: CheckpointFlag,
}

pub fn by_category(m: &MemoryReport) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    for c in Category::ALL {
        o.insert(c.name().into(), json!(m.at_peak.get(c)));
    }
    serde_json::Value::Object(o)
}

/// The categories that make most of the bytes live at the peak, in words.
fn peak_setters(m: &MemoryReport) -> String {
    let mut big: Vec<(u64, &str)> = Category::ALL
        .iter()
        .map(|&c| (m.at_peak.get(c), c.name()))
        .filter(|(b, _)| *b > 0)
        .collect();
    big.sort_by_key(|b| std::cmp::Reverse(b.0));
    let named: Vec<String> = big
        .iter()
        .take(3)
        .map(|(b, n)| format!("{} {}", n.replace('_', " "), Bytes(*b)))
        .collect();
    named.join(", ")
}

fn summary(p: &Plan, graph: &Graph) -> serde_json::Value {
    json!({
        "policy": p.policy.to_string(), "chosen": chosen_name(p),
        "predicted_peak_bytes": p.predicted.peak_total, "at_peak": by_category(&p.predicted),
        "saved_activation_bytes": p.predicted.peak.saved_activations,
        "recompute_flops": p.recompute_flops, "step_flops": p.flops - p.recompute_flops,
        "recompute_percent": 100.0 * p.recompute_fraction(),
        "recompute_seconds": p.recompute_seconds, "step_seconds": p.seconds - p.recompute_seconds,
        "recompute_time_percent": 100.0 * p.recompute_time_fraction(),
        "nesting": p.nest.as_ref().map(|n| n.brackets()),
        "forward_runs_by_layer": layer_runs(graph, p),
        "layer_boundaries": p.candidates.len(), "kept_boundaries": p.boundaries.iter().map(|b| b.0).collect::<Vec<_>>(),
    })
}

pub fn run(a: PlanArgs) -> anyhow::Result<i32> {
    let spec = a.model.synthetic_spec()?;
    let policy = a.checkpoint.policy()?;
    let batch = a.step.batch_for(&spec)?;
    let step = StepSettings::from_flags(&a.step)?;
    let configuration = Configuration::measured(&spec, &a.step, &step, a.checkpoint.checkpoint.clone());
    let optimizer = &step.optimizer;
    // 16-bit tensors as the device holds them: packed on a GPU, rounded f32 on the CPU.
    let precision = crate::device::precision(a.step.dtype())?;
    // auto: the device the other tools' --device auto opens, so the same flags predict the
    // peak they measure.
    let on_cpu = match a.device.as_str() {
        "cpu" => true,
        "cuda" => false,
        "auto" => !chainrule::backend::gpus().is_ok_and(|g| !g.is_empty()),
        d => anyhow::bail!("--device '{d}': expected auto, cuda or cpu (the device whose memory the plan predicts)"),
    };
    let layout = precision.half_layout(!on_cpu);
    let resident = resident_bytes_for(&spec, optimizer, layout);
    let mlp = Mlp::new(spec.clone())?;
    let started = std::time::Instant::now();
    let rates = match (a.rates.as_str(), on_cpu) {
        ("auto", true) => Rates::CPU,
        ("auto", false) => Rates::GPU,
        (r, _) => r.parse::<Rates>().map_err(|e| anyhow::anyhow!("--rates {e}"))?,
    };
    let planned_for = PlannedFor {
        device: if on_cpu { "cpu" } else { "cuda" },
        rates: match rates {
            Rates::CPU => "cpu".to_string(),
            Rates::GPU => "gpu".to_string(),
            r => format!("{:e},{:e},{:e}", r.product, r.other, r.memory),
        },
    };
    let options = StepOptions {
        layout,
        update_in_backward: configuration.update_in_backward,
        rates,
        ..Default::default()
    };
    let program = StepProgram::training(&mlp, batch, policy, &resident, options)?;
    let planning_ms = started.elapsed().as_secs_f64() * 1e3;
    let plan = program.plan.as_ref().expect("training programs carry their plan");
    let (outputs, grads, step) = program
        .planned
        .as_ref()
        .expect("training programs keep what they were planned for");
    let candidates = if a.frontier {
        let request = Request {
            graph: &program.graph,
            outputs,
            gradients: grads,
            resident: &resident,
            step,
        };
        let mut c = candidate_plans(&request);
        // The nested planner's least-memory plan, and the plan chosen, on the same frontier.
        c.extend(nested_plan(&request, u64::MAX));
        c.extend(plan.nest.is_some().then(|| plan.clone()));
        c
    } else {
        Vec::new()
    };
    let front = frontier(&candidates);
    // What the policy buys against keeping everything: nothing, when parameters, gradients
    // and optimizer state set the peak rather than activations.
    let none_peak = match policy {
        CheckpointPolicy::None => plan.predicted.peak_total,
        _ => StepProgram::training(&mlp, batch, CheckpointPolicy::None, &resident, options)?
            .plan
            .map_or(plan.predicted.peak_total, |p| p.predicted.peak_total),
    };
    let saved = none_peak.saturating_sub(plan.predicted.peak_total);
    let fp8_note = (precision == Precision::Fp8).then(|| crate::fp8_coverage::note(&spec, &[batch], None));
    if a.json {
        let mut v = configuration.json_with(summary(plan, &program.graph));
        v["none_peak_bytes"] = json!(none_peak);
        v["saved_bytes_vs_none"] = json!(saved);
        v["planning_ms"] = json!(planning_ms);
        v["device"] = json!(planned_for.device);
        v["fp8_note"] = json!(fp8_note);
        if a.explain {
            v["tensors"] = fates(&program.graph, plan)
                .into_iter()
                .map(
                    |f| json!({"node": f.node.0, "op": f.op, "bytes": f.bytes, "fate": f.fate, "forward_runs": f.runs}),
                )
                .collect();
        }
        if a.frontier {
            v["frontier"] = front.iter().map(|p| summary(p, &program.graph)).collect();
        }
        println!("{v}");
        return Ok(0);
    }
    println!("plan: {}", configuration.line());
    if let Some(note) = &fp8_note {
        println!("  {note}");
    }
    print_text((&a, &planned_for), plan, &program, &front, none_peak, planning_ms);
    Ok(0)
}

/// The device and rates a plan was made for, as `--device` and `--rates` name them
/// (`auto` resolved).
struct PlannedFor {
    device: &'static str,
    rates: String,
}

/// The plan for a person: its peak by category, recompute, what it saves, and with
/// `--explain` and `--frontier` each tensor's fate and the other candidates.
fn print_text(
    (a, planned): (&PlanArgs, &PlannedFor),
    plan: &Plan,
    program: &StepProgram,
    front: &[&Plan],
    none_peak: u64,
    planning_ms: f64,
) {
    let policy = plan.policy;
    let saved = none_peak.saturating_sub(plan.predicted.peak_total);
    println!(
        "  planned in {:.1} ms for --device {}{}",
        planning_ms,
        planned.device,
        match (a.step.dtype(), planned.device == "cpu") {
            ("f32", _) => "",
            ("fp8", true) => " (16-bit values and FP8 copies rounded, kept in f32 as the CPU holds them)",
            ("fp8", false) => " (16-bit tensors at 2 bytes a value and FP8 copies at 1, as a GPU holds them)",
            (_, true) => " (16-bit values rounded, kept in f32 as the CPU holds them)",
            _ => " (16-bit tensors at 2 bytes a value, as a GPU holds them)",
        }
    );
    if plan.chosen != policy || plan.nest.is_some() {
        println!("  chosen plan: {}", chosen_name(plan));
    }
    println!(
        "  layer boundaries: {}; kept as segment inputs: {}",
        plan.candidates.len(),
        if plan.boundaries.is_empty() {
            "-".to_string()
        } else {
            shortened(plan.boundaries.iter().map(|b| b.to_string()).collect())
        }
    );
    println!("  predicted peak: {}", Bytes(plan.predicted.peak_total));
    for c in Category::ALL {
        println!(
            "    {:<18} {:>12}   (own peak {})",
            c.name(),
            Bytes(plan.predicted.at_peak.get(c)).to_string(),
            Bytes(plan.predicted.peak.get(c))
        );
    }
    println!(
        "  recompute: {:.1}% of a step's FLOPs ({:.2} of {:.2} GFLOP)",
        100.0 * plan.recompute_fraction(),
        plan.recompute_flops as f64 / 1e9,
        (plan.flops - plan.recompute_flops) as f64 / 1e9
    );
    println!(
        "  recompute time: {:.1}% of a step's (predicted {:.3} of {:.3} ms at --rates {})",
        100.0 * plan.recompute_time_fraction(),
        plan.recompute_seconds * 1e3,
        (plan.seconds - plan.recompute_seconds) * 1e3,
        planned.rates
    );
    if let Some(runs) = forward_runs_by_layer(&program.graph, plan) {
        println!("  forward runs by layer: {runs}");
    }
    if let Some(nest) = &plan.nest {
        if a.explain {
            println!("  nesting (layers from 0; a..b>c [..]: run a..b keeping nothing, checkpoint c's input, plan the brackets, then a..b again; k+ keeps layer k's tape; a lone k is a segment's last layer, whose tape is rebuilt before its backward, which reruns nothing when the tape is empty, as with ReLU and no dropout: the runs above count what runs):");
            println!("    {}", nest.brackets());
        }
    }
    if plan.chosen != CheckpointPolicy::None {
        let costs = match plan.recompute_flops {
            0 => "and recomputes nothing",
            _ => "it only adds recomputation",
        };
        if plan.predicted.peak_total > none_peak {
            println!(
                "  note: --checkpoint {policy} needs {} more than keeping everything ({}): what it recomputes is held beside what it keeps; {costs}",
                Bytes(plan.predicted.peak_total - none_peak),
                Bytes(none_peak)
            );
        } else if saved == 0 {
            println!(
                "  note: --checkpoint {policy} saves no memory here: the peak ({}) is the same as without checkpointing, set by {} rather than by activations; {costs}",
                Bytes(none_peak),
                peak_setters(&plan.predicted)
            );
        } else {
            println!(
                "  saves {} against keeping everything ({})",
                Bytes(saved),
                Bytes(none_peak)
            );
        }
    }
    if a.explain {
        println!("  {:>6}  {:<24} {:>12}  {:>4}  fate", "node", "op", "bytes", "runs");
        for f in fates(&program.graph, plan) {
            println!(
                "  {:>6}  {:<24} {:>12}  {:>4}  {}",
                f.node.to_string(),
                f.op,
                Bytes(f.bytes).to_string(),
                f.runs,
                f.fate
            );
        }
    }
    if a.frontier {
        println!(
            "  frontier (peak vs recompute time; nested: the exact planner's least-memory plan, or the one chosen):"
        );
        for p in front.iter() {
            println!(
                "    {:<10} peak {:>12}  recompute {:6.1}% of the time ({:.1}% of the FLOPs)",
                chosen_name(p),
                Bytes(p.predicted.peak_total).to_string(),
                100.0 * p.recompute_time_fraction(),
                100.0 * p.recompute_fraction()
            );
        }
    }
}

/// A long list cut to its first and last few, with the count.
fn shortened(items: Vec<String>) -> String {
    match items.len() {
        0..=16 => items.join(" "),
        n => format!("{} ... {} ({n} in all)", items[..8].join(" "), items[n - 4..].join(" ")),
    }
}
