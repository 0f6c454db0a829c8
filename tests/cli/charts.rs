//! The charts as a reader sees them: whole-number ticks on counting axes, bytes in the
//! tables' binary units, the memory limit drawn and named, coinciding policies named
//! together, each policy's largest batch in the legend rather than over the plot.

use super::*;

/// The words of every <text> element with this `text-anchor` (plotters writes x ticks
/// "middle", y ticks "end"), or of all of them.
pub fn svg_texts(svg: &str, anchor: Option<&str>) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter(|t| anchor.is_none_or(|a| t.contains(&format!("text-anchor=\"{a}\""))))
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
        .collect()
}

/// The x axis' tick labels: middle-anchored texts that are numbers (titles are not).
pub fn x_ticks(svg: &str) -> Vec<String> {
    svg_texts(svg, Some("middle"))
        .into_iter()
        .filter(|t| t.parse::<f64>().is_ok())
        .collect()
}

fn in_binary_units(tick: &str) -> bool {
    ["B", "KiB", "MiB", "GiB"].iter().any(|u| {
        tick.strip_suffix(&format!(" {u}"))
            .is_some_and(|n| n.parse::<f64>().is_ok())
    })
}

#[test]
fn remat_charts_name_coinciding_policies_together_and_count_depth_in_whole_layers() {
    let d = tmp();
    let out = d.path().join("remat");
    let o = chainrule(&[
        "remat",
        "--depths",
        "2,4,8",
        "--width",
        "16",
        "--batch-size",
        "8",
        "--policies",
        "none,cheap,sqrt",
        "--steps",
        "1",
        "--device",
        "cpu",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&fs::read_to_string(out.join("remat.json")).unwrap()).unwrap();
    let peaks = |policy: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| r["policy"] == policy)
            .map(|r| r["measured_peak_bytes"].as_f64().unwrap())
            .collect()
    };
    let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 0.005 * x.max(*y));
    let memory = fs::read_to_string(out.join("memory.svg")).unwrap();
    assert!(memory.starts_with("<svg") && memory.trim_end().ends_with("</svg>"));
    let texts = svg_texts(&memory, None);
    // What the legend says follows the measured peaks: equal ones are one line, named together.
    let expected = match (
        same(&peaks("none"), &peaks("cheap")),
        same(&peaks("none"), &peaks("sqrt")),
    ) {
        (true, true) => vec!["none = cheap = sqrt"],
        (true, false) => vec!["none = cheap", "sqrt"],
        (false, true) => vec!["none = sqrt", "cheap"],
        (false, false) => vec!["none", "cheap", "sqrt"],
    };
    for name in expected {
        assert!(texts.iter().any(|t| t == name), "{name} in {texts:?}");
    }
    assert_eq!(x_ticks(&memory), ["2", "4", "8"]);
    assert!(
        texts.iter().any(|t| t == "depth (hidden layers) (log scale)"),
        "{texts:?}"
    );
    let y_ticks = svg_texts(&memory, Some("end"));
    assert!(
        !y_ticks.is_empty() && y_ticks.iter().all(|t| in_binary_units(t)),
        "{y_ticks:?}"
    );

    let overhead = fs::read_to_string(out.join("overhead.svg")).unwrap();
    let texts = svg_texts(&overhead, None);
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Hollow: within that noise, marked ≈")),
        "{texts:?}"
    );
    for name in ["none", "cheap", "sqrt"] {
        assert!(texts.iter().any(|t| t == name), "{name} in {texts:?}");
    }
}

#[test]
fn scale_draws_peak_memory_under_the_limit_and_names_each_largest_batch_in_the_legend() {
    let d = tmp();
    let out = d.path().join("scale");
    let args = [
        "--depth",
        "24",
        "--width",
        "32",
        "--memory-limit",
        "2MiB",
        "--steps",
        "1",
        "--sweep-from",
        "64",
    ];
    let (o, rows) = scale_rows(&out, &[&args[..], &["--policies", "none,sqrt"]].concat());
    assert!(String::from_utf8_lossy(&o.stdout).contains("memory.svg"));
    let memory = fs::read_to_string(out.join("memory.svg")).unwrap();
    let texts = svg_texts(&memory, None);
    // The limit is on the plot and in the legend, in the table's own words.
    assert_eq!(
        texts.iter().filter(|t| *t == "memory limit 2.00 MiB").count(),
        2,
        "{texts:?}"
    );
    let y_ticks = svg_texts(&memory, Some("end"));
    assert!(y_ticks.iter().any(|t| t == "2 MiB"), "{y_ticks:?}");
    assert!(y_ticks.iter().all(|t| in_binary_units(t)), "{y_ticks:?}");
    for chart in ["memory.svg", "throughput.svg"] {
        let svg = fs::read_to_string(out.join(chart)).unwrap();
        let texts = svg_texts(&svg, None);
        assert!(
            texts.iter().any(|t| t == "batch size (log scale)"),
            "{chart}: {texts:?}"
        );
        let ticks = x_ticks(&svg);
        assert!(
            !ticks.is_empty() && ticks.iter().all(|t| t.parse::<u64>().is_ok()),
            "{chart}: {ticks:?}"
        );
        for r in &rows {
            let detail = format!("largest batch: {}", r["max_batch"]);
            assert_eq!(
                texts.iter().filter(|t| **t == detail).count(),
                1,
                "{chart}: {detail} in {texts:?}"
            );
        }
    }
}
