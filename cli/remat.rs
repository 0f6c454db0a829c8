//! `chainrule remat`: training steps for each depth and checkpoint policy, measured beside
//! the planner's prediction; a table, CSV and JSON rows, and two SVG plots.

use crate::chart::{svg, Axis, Chart, Point, Series, Unit};
use crate::configuration::Configuration;
use crate::device;
use crate::model_flags::{ModelFlags, StepFlags, StepSettings, SYNTHETIC_CLASSES, SYNTHETIC_FEATURES};
use crate::timing::Timings;
use crate::voice::Voice;
use chainrule::backend::Device;
use chainrule::data::Normalization;
use chainrule::io::write_atomic;
use chainrule::memory::Bytes;
use chainrule::nn::MlpSpec;
use chainrule::plan::CheckpointPolicy;
use chainrule::rng::{stream, KeyedRng};
use chainrule::train::Trainer;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct RematArgs {
    /// Checkpoint policies, comma-separated: none, cheap, sqrt, every:K, revolve:S, budget:SIZE (--checkpoint names it too); overheads are against the first
    #[arg(long, default_value = "none,cheap,sqrt", value_delimiter = ',', alias = "checkpoint")]
    policies: Vec<String>,
    /// Timed steps per (depth, policy); the median is reported
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Device: auto, cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    device: String,
    /// The GPU to measure on, as train --devices names GPUs (one number, or all on a one-GPU machine); the same as --device cuda:N
    #[arg(long, value_name = "LIST|all")]
    devices: Option<chainrule::dist::DeviceList>,
    /// Folder for remat.csv, remat.json, memory.svg and overhead.svg
    #[arg(long, default_value = "remat-out", value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    model: ModelFlags,
    #[command(flatten)]
    pub step: StepFlags,
}

struct Row {
    spec: MlpSpec,
    policy: String,
    chosen: String,
    measured_peak: u64,
    predicted_peak: u64,
    saved_bytes: u64,
    recompute_percent: f64,
    step_ms: f64,
    overhead: f64,
    /// The timing noise the overhead is read against: this policy's and the first's run
    /// spreads ([`Timings::relative_spread`]) added.
    noise: f64,
}

/// The models measured: one per `--depth`, or the one `--layers` (or the default) gives.
fn models(a: &RematArgs) -> anyhow::Result<Vec<MlpSpec>> {
    crate::lists::each_once("--depth", &a.model.depth)?;
    match a.model.depths()? {
        [] => Ok(vec![a.model.synthetic_spec()?]),
        depths => depths
            .iter()
            .map(|&d| a.model.spec_at_depth(d, SYNTHETIC_FEATURES, SYNTHETIC_CLASSES))
            .collect(),
    }
}

/// What every row shares, and its model: the configuration measured.
fn configuration<'a>(a: &'a RematArgs, step: &'a StepSettings, spec: &'a MlpSpec) -> Configuration<'a> {
    Configuration::measured(spec, &a.step, step, a.policies.join(","))
}

pub fn run(a: RematArgs) -> anyhow::Result<i32> {
    crate::lists::each_once("--policies", &a.policies)?;
    let policies: Vec<CheckpointPolicy> = a
        .policies
        .iter()
        .map(|p| p.parse().map_err(|e| anyhow::anyhow!("--policies {e}")))
        .collect::<anyhow::Result<_>>()?;
    let models = models(&a)?;
    let step = StepSettings::from_flags(&a.step)?;
    for spec in &models {
        a.step.batch_for(spec)?;
    }
    if a.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let device_flag = device::single_gpu(a.devices.as_ref(), &a.device, "remat")?;
    let device = device::resolve_with(&device_flag, false, a.step.dtype(), None, Voice::Speaks)?;
    crate::paths::check_out_folder(&a.out, &["remat.csv", "remat.json", "memory.svg", "overhead.svg"])?;
    let bar = ProgressBar::new((models.len() * policies.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("remat [{bar:30}] {pos}/{len} {msg} · eta {eta}")
            .expect("valid")
            .progress_chars("=> "),
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut rng = KeyedRng::new(3, stream::TEST_DATA);
    for spec in &models {
        rows.extend(measure_model(&a, &step, spec, &policies, &device, &bar, &mut rng)?);
    }
    bar.finish_and_clear();
    if rows.is_empty() {
        anyhow::bail!("nothing ran: no policy could plan any of the depths (see the messages above)");
    }
    let device = format!("{} · {}", device.describe(), device.precision());
    print_table(&a, &step, &rows, device.clone());
    write_outputs(&a, &step, &rows, device)?;
    Ok(0)
}

/// Every policy's steps on `spec`, in turn, so machine noise hits them alike. A budget
/// that nothing fits at this depth is said and skipped.
fn measure_model(
    a: &RematArgs,
    step: &StepSettings,
    spec: &MlpSpec,
    policies: &[CheckpointPolicy],
    device: &Arc<dyn Device>,
    bar: &ProgressBar,
    rng: &mut KeyedRng,
) -> anyhow::Result<Vec<Row>> {
    let (depth, batch) = (spec.depth(), a.step.batch_size);
    let (x, y) = crate::synthetic::batch(rng, batch, spec.inputs(), spec.classes())?;
    let mut runs = Vec::new();
    for (name, &policy) in a.policies.iter().zip(policies) {
        let config = step.config(batch, policy);
        // Each run counts its own memory.
        let own = device.with_memory_limit(None)?;
        let mut t = Trainer::new(spec.clone(), config, Normalization::scale_only(1.0), &own)?;
        let facts = match t.plan_for(batch) {
            Ok(plan) => {
                let plan = plan.expect("training programs carry their plan");
                (chainrule::plan::chosen_name(plan), 100.0 * plan.recompute_fraction())
            }
            Err(e) => {
                bar.suspend(|| eprintln!("depth {depth}, {policy}: {e}"));
                continue;
            }
        };
        runs.push((name, t, facts, Timings::after_warmup(1), (0, 0, 0)));
    }
    for s in 0..=a.steps {
        for (_, t, _, times, mem) in runs.iter_mut() {
            let (_, m, p) = times.time(|| Ok(t.train_step(x.clone(), y.clone(), step.lr)?))?;
            *mem = (m.peak_total, p.peak_total, m.peak.saved_activations);
        }
        bar.set_message(format!("depth {depth} step {s}/{}", a.steps));
    }
    let Some((baseline, baseline_spread)) = runs.first().map(|r| (r.3.median(), r.3.relative_spread())) else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for (name, _, (chosen, recompute_percent), times, (measured, predicted, saved)) in runs {
        let step = times.median();
        rows.push(Row {
            spec: spec.clone(),
            policy: name.clone(),
            chosen,
            measured_peak: measured,
            predicted_peak: predicted,
            saved_bytes: saved,
            recompute_percent,
            step_ms: step * 1e3,
            overhead: step / baseline - 1.0,
            noise: times.relative_spread() + baseline_spread,
        });
        bar.inc(1);
    }
    Ok(rows)
}

/// Whether timing noise could account for a row's overhead (the first policy's own row,
/// exactly 0, is the reference and is not judged).
fn within_noise(r: &Row) -> bool {
    r.overhead != 0.0 && r.overhead.abs() <= r.noise
}

/// The overhead as a percentage, marked ≈ when timing noise could account for it (a policy
/// that recomputes can time faster than `none` by chance, never by design).
fn overhead_cell(r: &Row) -> String {
    let mark = if within_noise(r) { "≈" } else { "" };
    format!("{mark}{:.1}%", 100.0 * r.overhead)
}

/// A row's policy, with the plan a budget chose.
fn policy_cell(r: &Row) -> String {
    if r.chosen != r.policy {
        format!("{} ({})", r.policy, r.chosen)
    } else {
        r.policy.clone()
    }
}

fn print_table(a: &RematArgs, step: &StepSettings, rows: &[Row], device: String) {
    let policy_width = rows
        .iter()
        .map(|r| policy_cell(r).chars().count())
        .max()
        .unwrap_or(0)
        .max(24);
    let configuration = configuration(a, step, &rows[0].spec);
    let header = match a.model.depth.as_slice() {
        [] | [_] => configuration.line(),
        depths => configuration.line_with_model(&rows[0].spec.describe_depths(&format!(
            "at depths {}",
            depths.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
        ))),
    };
    println!("remat: {header}");
    println!(
        "  {device} · median of {} steps · overhead vs the first policy ({})",
        a.steps, a.policies[0]
    );
    println!(
        "{:>6}  {:<w$} {:>12} {:>12} {:>14} {:>10} {:>10} {:>9}",
        "depth",
        "policy",
        "peak",
        "predicted",
        "saved activ.",
        "recompute",
        "step ms",
        "overhead",
        w = policy_width
    );
    for r in rows {
        println!(
            "{:>6}  {:<w$} {:>12} {:>12} {:>14} {:>9.1}% {:>10.1} {:>9}",
            r.spec.depth(),
            policy_cell(r),
            Bytes(r.measured_peak).to_string(),
            Bytes(r.predicted_peak).to_string(),
            Bytes(r.saved_bytes).to_string(),
            r.recompute_percent,
            r.step_ms,
            overhead_cell(r),
            w = policy_width
        );
    }
    if rows.iter().any(within_noise) {
        println!("        (≈: within the spread of the timed steps, so timing noise; --steps more to narrow it)");
    }
    // Fitted exponent of saved-activation bytes against depth, per policy (least squares in log-log).
    for name in &a.policies {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| &r.policy == name && r.saved_bytes > 0)
            .map(|r| ((r.spec.depth() as f64).ln(), (r.saved_bytes as f64).ln()))
            .collect();
        if pts.len() >= 2 && pts.iter().any(|p| p.0 != pts[0].0) {
            let n = pts.len() as f64;
            let (mx, my) = (
                pts.iter().map(|p| p.0).sum::<f64>() / n,
                pts.iter().map(|p| p.1).sum::<f64>() / n,
            );
            let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
                / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
            println!("saved activations ~ depth^{slope:.2} for {name}");
        }
    }
}

/// remat.csv, remat.json and the two plots in `--out`.
fn write_outputs(a: &RematArgs, step: &StepSettings, rows: &[Row], device: String) -> anyhow::Result<()> {
    let mut csv = String::from("depth,policy,chosen,measured_peak_bytes,predicted_peak_bytes,saved_activation_bytes,recompute_percent,step_ms,overhead\n");
    let mut json_rows = Vec::new();
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{:.3},{:.3},{:.4}\n",
            r.spec.depth(),
            r.policy,
            r.chosen,
            r.measured_peak,
            r.predicted_peak,
            r.saved_bytes,
            r.recompute_percent,
            r.step_ms,
            r.overhead
        ));
        json_rows.push(configuration(a, step, &r.spec).json_with(
            json!({"policy": r.policy, "chosen": r.chosen, "measured_peak_bytes": r.measured_peak,
            "predicted_peak_bytes": r.predicted_peak, "saved_activation_bytes": r.saved_bytes, "recompute_percent": r.recompute_percent,
            "step_ms": r.step_ms, "overhead": r.overhead, "overhead_noise": r.noise, "device": device}),
        ));
    }
    let (memory, overhead) = charts(&a.policies, rows);
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        let p = a.out.join(name);
        write_atomic(&p, text.as_bytes()).map_err(|e| anyhow::anyhow!("--out {e}"))
    };
    write("remat.csv", &csv)?;
    write("remat.json", &serde_json::to_string_pretty(&json_rows)?)?;
    write("memory.svg", &svg(&[memory])?)?;
    write("overhead.svg", &svg(&[overhead])?)?;
    println!(
        "wrote {}/remat.csv, remat.json, memory.svg, overhead.svg",
        a.out.display()
    );
    Ok(())
}

/// The two plots: measured peak memory, and step-time overhead with its timing noise (an
/// error bar of ± noise; a point within it hollow, as the table marks it ≈).
fn charts(policies: &[String], rows: &[Row]) -> (Chart, Chart) {
    // The policies measured (a budget nothing fits has no row).
    let policies: Vec<String> = policies
        .iter()
        .filter(|p| rows.iter().any(|r| &r.policy == *p))
        .cloned()
        .collect();
    let series = |point: &dyn Fn(&Row) -> Point| -> Vec<Series> {
        policies
            .iter()
            .map(|p| Series {
                name: p.clone(),
                points: rows.iter().filter(|r| &r.policy == p).map(point).collect(),
                detail: None,
            })
            .collect()
    };
    // One depth: the policies side by side. Several: against depth, where a log axis has no
    // place for a net without hidden layers (depth 0).
    let counted = if rows[0].spec.blocks.is_some() {
        "blocks"
    } else {
        "hidden layers"
    };
    let one_depth = rows.iter().all(|r| r.spec.depth() == rows[0].spec.depth());
    let (x, against) = if one_depth {
        let words = format!("policy (depth {}: {counted})", rows[0].spec.depth());
        (Axis::categorical(&words, policies.clone()), "by policy")
    } else {
        let log_depth = rows.iter().all(|r| r.spec.depth() > 0);
        (
            Axis::new(&format!("depth ({counted})"), Unit::Count, log_depth),
            "vs depth",
        )
    };
    let at = |r: &Row| match one_depth {
        true => policies.iter().position(|p| p == &r.policy).unwrap_or(0) as f64,
        false => r.spec.depth() as f64,
    };
    let memory = Chart {
        title: format!("Measured peak memory {against}"),
        x: x.clone(),
        y: Axis::new("measured peak", Unit::Bytes, true),
        series: series(&|r| Point::at(at(r), r.measured_peak as f64)),
        guides: Vec::new(),
        notes: Vec::new(),
    };
    let reference = &policies[0];
    let overhead = Chart {
        title: format!("Step time overhead {against}"),
        x,
        y: Axis::new(
            &format!("step time vs {reference}, + slower"),
            Unit::PercentChange,
            false,
        ),
        series: series(&|r| Point {
            spread: (&r.policy != reference).then_some(100.0 * r.noise),
            hollow: within_noise(r),
            ..Point::at(at(r), 100.0 * r.overhead)
        }),
        guides: Vec::new(),
        notes: vec![
            "Bars: ± timing noise (the spread of the timed steps).".to_string(),
            "Hollow: within that noise, marked ≈ in the table; --steps more to narrow it.".to_string(),
        ],
    };
    (memory, overhead)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(policy: &str, overhead: f64, noise: f64) -> Row {
        Row {
            spec: MlpSpec::with_depth(784, (8, 16), 10, "relu", 0.0).unwrap(),
            policy: policy.to_string(),
            chosen: policy.to_string(),
            measured_peak: 1 << 20,
            predicted_peak: 1 << 20,
            saved_bytes: 0,
            recompute_percent: 0.0,
            step_ms: 1.0,
            overhead,
            noise,
        }
    }

    #[test]
    fn an_overhead_within_noise_is_drawn_hollow_with_its_noise_as_an_error_bar() {
        let policies = ["none".to_string(), "cheap".into(), "sqrt".into()];
        let rows = [row("none", 0.0, 0.2), row("cheap", -0.48, 0.6), row("sqrt", 0.5, 0.1)];
        let (_, overhead) = charts(&policies, &rows);
        let point = |i: usize| overhead.series[i].points[0];
        assert_eq!(point(0).spread, None, "the reference is not judged");
        assert!(point(1).hollow && point(1).spread == Some(60.0), "{:?}", point(1));
        assert!(!point(2).hollow && (point(2).y - 50.0).abs() < 1e-9, "{:?}", point(2));
    }
}
