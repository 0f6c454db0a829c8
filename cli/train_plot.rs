//! `train --plot FILE.svg`: loss and accuracy per epoch (train, validation, test), drawn
//! from the run's epoch records with the same charts `remat` and `scale` draw.

use crate::svg::{line_chart, stacked, Series};
use chainrule::io::write_atomic;
use serde_json::Value;
use std::path::Path;

/// Earlier epochs of a resumed run, from its `--metrics-out` file (none if it has none, or
/// if the metrics go to a pipe or a device, which would be read from, not back).
pub fn earlier_epochs(metrics: &Path) -> Vec<Value> {
    if !std::fs::metadata(metrics).is_ok_and(|m| m.is_file()) {
        return Vec::new();
    }
    std::fs::read_to_string(metrics)
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|r| r["kind"] == "epoch")
                .collect()
        })
        .unwrap_or_default()
}

/// One series per record key that some epoch has.
fn series(records: &[Value], keys: &[(&str, &str)], scale: f64) -> Vec<Series> {
    keys.iter()
        .map(|(key, name)| Series {
            name: name.to_string(),
            points: records
                .iter()
                .filter_map(|r| Some((r["epoch"].as_f64()?, r[*key].as_f64()? * scale)))
                .collect(),
            mark: None,
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// Writes the plot of `records` (epoch records, oldest first) to `path`, atomically.
pub fn write(path: &Path, records: &[Value]) -> anyhow::Result<()> {
    let loss = series(
        records,
        &[
            ("train_loss", "train"),
            ("val_loss", "validation"),
            ("test_loss", "test"),
        ],
        1.0,
    );
    let accuracy = series(
        records,
        &[
            ("train_accuracy", "train"),
            ("val_accuracy", "validation"),
            ("test_accuracy", "test"),
        ],
        100.0,
    );
    let svg = stacked(&[
        line_chart("Loss per epoch", "epoch", "loss", &loss, false, false),
        line_chart("Accuracy per epoch", "epoch", "accuracy (%)", &accuracy, false, false),
    ]);
    write_atomic(path, svg.as_bytes()).map_err(|e| anyhow::anyhow!("--plot {e}"))
}
