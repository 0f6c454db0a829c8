//! `chainrule scale`'s results: the table on the terminal, and scale.csv, scale.json and the
//! plots in `--out`.

use crate::chart::{svg, Axis, Chart, Guide, GuideKind, Point, Series, Unit};
use crate::scale_args::{ScaleArgs, Vary};
use chainrule::io::write_atomic;
use chainrule::memory::Bytes;

/// The files `write_outputs` may write in `--out`, checked writable before anything runs.
pub const OUTPUTS: [&str; 5] = [
    "scale.csv",
    "scale.json",
    "predicted-peak.svg",
    "throughput.svg",
    "memory.svg",
];

/// One policy's sweep of batch sizes (powers of two up to its largest batch), for the plots.
pub struct Sweep {
    pub policy: String,
    pub max_batch: usize,
    pub points: Vec<SweepPoint>,
}

pub struct SweepPoint {
    pub batch: usize,
    /// None when nothing ran (`--predict-only`).
    pub samples_per_sec: Option<f64>,
    pub peak_bytes: u64,
    /// Whether `peak_bytes` was measured by a step, or only predicted by the planner.
    pub measured: bool,
}

impl SweepPoint {
    pub fn measured(batch: usize, samples_per_sec: f64, peak_bytes: u64) -> Self {
        SweepPoint {
            batch,
            samples_per_sec: Some(samples_per_sec),
            peak_bytes,
            measured: true,
        }
    }

    pub fn predicted(batch: usize, peak_bytes: u64) -> Self {
        SweepPoint {
            batch,
            samples_per_sec: None,
            peak_bytes,
            measured: false,
        }
    }
}

pub fn print_table(
    (a, ranks): (&ScaleArgs, usize),
    header: &str,
    table: &[serde_json::Value],
    limit: u64,
    device: String,
) {
    let what = if a.vary == Vary::Batch { "batch" } else { "depth" };
    println!("scale: {header}");
    println!(
        "  searching the largest {} · memory limit {} · {}{}",
        if a.vary == Vary::Batch {
            "batch (in place of --batch-size)".to_string()
        } else {
            format!(
                "depth of {} of width {} at batch {}",
                if a.model.block == "plain" {
                    "hidden layers"
                } else {
                    "blocks"
                },
                a.model.width.unwrap_or(0),
                a.step.batch_size
            )
        },
        Bytes(limit),
        device,
        if a.predict_only {
            " · predicted only (peaks below are predictions)"
        } else {
            ""
        }
    );
    println!(
        "{:<16} {:>10} {:>9} {:<10} {:>9} {:>14} {:>12} {:>14}",
        "policy",
        format!("max {what}"),
        "vs none",
        "plan",
        "recompute",
        if a.predict_only {
            "predicted peak"
        } else {
            "measured peak"
        },
        "next fits?",
        "samples/s @max"
    );
    for r in table {
        println!(
            "{:<16} {:>10} {:>9} {:<10} {:>9} {:>14} {:>12} {:>14}",
            r["policy"].as_str().unwrap_or(""),
            r[format!("max_{what}").as_str()].as_u64().unwrap_or(0),
            r["ratio_to_none"]
                .as_f64()
                .map_or("-".to_string(), |x| format!("{x:.2}x")),
            r["plan"].as_str().unwrap_or("-"),
            r["recompute_factor"]
                .as_f64()
                .map_or("-".to_string(), |x| format!("{x:.2}x")),
            Bytes(
                r["measured_peak_bytes"]
                    .as_u64()
                    .or(r["predicted_peak_bytes"].as_u64())
                    .unwrap_or(0)
            )
            .to_string(),
            match r["next_size_predicted_to_fit"].as_bool() {
                Some(false) => "no",
                Some(true) => "YES",
                // The search stopped at its own limit.
                None => "-",
            },
            r["samples_per_sec_at_max"]
                .as_f64()
                .filter(|x| x.is_finite())
                .map_or("-".to_string(), |x| format!("{x:.0}"))
        );
    }
    let global = table.iter().filter_map(|r| r["max_global_batch"].as_u64()).max();
    if let Some(most) = global.filter(|_| ranks > 1) {
        let each = most / ranks as u64;
        println!("{ranks} ranks: the largest global batch is {most} ({each} per rank), each at the peak above");
    }
}

/// Each policy's sweep as a series of `value` against batch size, its largest batch ringed
/// and named in the legend (labels on the plot would land on each other).
fn sweep_series(sweeps: &[Sweep], value: impl Fn(&SweepPoint) -> Option<Point>) -> Vec<Series> {
    sweeps
        .iter()
        .map(|s| Series {
            name: s.policy.clone(),
            points: s
                .points
                .iter()
                .filter_map(|p| {
                    let point = value(p)?;
                    Some(Point {
                        ringed: p.batch == s.max_batch,
                        ..point
                    })
                })
                .collect(),
            detail: Some(format!("largest batch: {}", s.max_batch)),
        })
        .collect()
}

const RINGED: &str = "Ringed: the largest batch that fits.";

fn throughput_chart(sweeps: &[Sweep]) -> Chart {
    Chart {
        title: "Throughput vs batch size".to_string(),
        x: Axis::new("batch size", Unit::Count, true),
        y: Axis::new("samples/s", Unit::Number, false).starting_at_zero(),
        series: sweep_series(sweeps, |p| Some(Point::at(p.batch as f64, p.samples_per_sec?))),
        guides: Vec::new(),
        notes: vec![RINGED.to_string()],
    }
}

/// Peak memory against batch size, under a line at the limit: measured where a step ran,
/// predicted (drawn hollow) where none did.
fn memory_chart(title: &str, sweeps: &[Sweep], limit: u64) -> Chart {
    let mut notes = vec![RINGED.to_string()];
    let predicted = sweeps.iter().flat_map(|s| &s.points).any(|p| !p.measured);
    let measured = sweeps.iter().flat_map(|s| &s.points).any(|p| p.measured);
    if predicted && measured {
        notes.push("Hollow: predicted by the planner; no step ran there.".to_string());
    }
    // Peaks spanning a decade or more read on a log axis; peaks all near the limit (the
    // maxima alone) on a linear one from zero, which shows them filling it rather than a
    // magnified sliver of a MiB.
    let peaks = sweeps.iter().flat_map(|s| &s.points).map(|p| p.peak_bytes as f64);
    let (low, high) = peaks.fold((f64::INFINITY, 0f64), |(l, h), v| (l.min(v), h.max(v)));
    let log = high >= 10.0 * low.max(1.0);
    let y = Axis::new(
        if measured {
            "peak memory"
        } else {
            "predicted peak memory"
        },
        Unit::Bytes,
        log,
    );
    Chart {
        title: title.to_string(),
        x: Axis::new("batch size", Unit::Count, true),
        y: if log { y } else { y.starting_at_zero() },
        series: sweep_series(sweeps, |p| {
            Some(Point {
                hollow: measured && !p.measured,
                ..Point::at(p.batch as f64, p.peak_bytes as f64)
            })
        }),
        guides: vec![Guide {
            at: limit as f64,
            vertical: false,
            label: format!("memory limit {}", Bytes(limit)),
            kind: GuideKind::Limit,
        }],
        notes,
    }
}

/// scale.csv, scale.json and (varying the batch) the plots in `--out`.
pub fn write_outputs(a: &ScaleArgs, table: &[serde_json::Value], sweeps: &[Sweep]) -> anyhow::Result<()> {
    let what = if a.vary == Vary::Batch { "batch" } else { "depth" };
    let mut csv = format!(
        "policy,max_{what},ratio_to_none,plan,recompute_factor,measured_peak_bytes,predicted_peak_bytes,limit_bytes,within_limit,samples_per_sec_at_max,ranks,max_global_batch\n"
    );
    for r in table {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r["policy"].as_str().unwrap_or(""),
            r[format!("max_{what}").as_str()],
            r["ratio_to_none"],
            r["plan"].as_str().unwrap_or(""),
            r["recompute_factor"],
            r["measured_peak_bytes"],
            r["predicted_peak_bytes"],
            r["limit_bytes"],
            r["within_limit"],
            r["samples_per_sec_at_max"],
            r["ranks"],
            r["max_global_batch"]
        ));
    }
    let save = |name: &str, text: &str| -> anyhow::Result<()> {
        let p = a.out.join(name);
        write_atomic(&p, text.as_bytes()).map_err(|e| anyhow::anyhow!("--out {e}"))
    };
    save("scale.csv", &csv)?;
    save("scale.json", &serde_json::to_string_pretty(&table)?)?;
    let limit = table.iter().find_map(|r| r["limit_bytes"].as_u64()).unwrap_or(0);
    if a.vary == Vary::Batch && a.predict_only {
        let title = "Predicted peak memory vs batch size (a prediction; nothing ran)";
        save("predicted-peak.svg", &svg(&[memory_chart(title, sweeps, limit)])?)?;
        println!("wrote {}/scale.csv, scale.json, predicted-peak.svg", a.out.display());
    } else if a.vary == Vary::Batch {
        save("throughput.svg", &svg(&[throughput_chart(sweeps)])?)?;
        save(
            "memory.svg",
            &svg(&[memory_chart("Peak memory vs batch size", sweeps, limit)])?,
        )?;
        println!(
            "wrote {}/scale.csv, scale.json, throughput.svg, memory.svg",
            a.out.display()
        );
    } else {
        println!("wrote {}/scale.csv, scale.json", a.out.display());
    }
    Ok(())
}
