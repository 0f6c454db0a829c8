//! `chainrule scale`'s results: the table on the terminal, and scale.csv, scale.json and the
//! plot in `--out`.

use crate::scale_args::{ScaleArgs, Vary};
use crate::svg::{line_chart, Series};
use chainrule::io::write_atomic;
use chainrule::memory::Bytes;

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
                "depth of hidden layers of width {} at batch {}",
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
            if r["next_size_predicted_to_fit"].as_bool() == Some(false) {
                "no"
            } else {
                "YES"
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

/// scale.csv, scale.json and (varying the batch) the throughput plot in `--out`.
pub fn write_outputs(a: &ScaleArgs, table: &[serde_json::Value], series: &[Series]) -> anyhow::Result<()> {
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
    if a.vary == Vary::Batch && a.predict_only {
        save(
            "predicted-peak.svg",
            &line_chart(
                "Predicted peak memory vs batch size (a prediction; nothing ran)",
                "batch size",
                "predicted peak bytes",
                series,
                true,
                true,
            ),
        )?;
        println!("wrote {}/scale.csv, scale.json, predicted-peak.svg", a.out.display());
    } else if a.vary == Vary::Batch {
        save(
            "throughput.svg",
            &line_chart(
                "Throughput vs batch size (last point: largest batch that fits)",
                "batch size",
                "samples/s",
                series,
                true,
                false,
            ),
        )?;
        println!("wrote {}/scale.csv, scale.json, throughput.svg", a.out.display());
    } else {
        println!("wrote {}/scale.csv, scale.json", a.out.display());
    }
    Ok(())
}
