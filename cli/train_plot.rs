//! `train --plot FILE.svg`: loss and accuracy (a regression's R²) per epoch (train, validation, test), drawn
//! from the run's epoch records, with the best epoch marked on both charts.

use crate::chart::{svg, Axis, Chart, Guide, GuideKind, Point, Series, Unit};
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

/// One series per record key, empty where no epoch has it (kept, so that train,
/// validation and test look the same whichever a run has; the chart leaves it out).
fn series(records: &[Value], keys: &[(&str, &str)], scale: f64) -> Vec<Series> {
    keys.iter()
        .map(|(key, name)| Series {
            name: name.to_string(),
            points: records
                .iter()
                .filter_map(|r| Some(Point::at(r["epoch"].as_f64()?, r[*key].as_f64()? * scale)))
                .collect(),
            detail: None,
        })
        .collect()
}

/// The epoch to mark as best: the trainer's own choice (lowest validation loss, the one
/// `--save-best` keeps) when there is validation; else the lowest test loss, which is said
/// as such, since choosing by test data would be a peek; else none.
fn best_epoch(records: &[Value]) -> Option<Guide> {
    let (epoch, why) = match records.last().and_then(|r| r["best_epoch"].as_f64()) {
        Some(e) => (e, "lowest validation loss"),
        None => {
            let tested = records
                .iter()
                .filter_map(|r| Some((r["epoch"].as_f64()?, r["test_loss"].as_f64()?)));
            (tested.min_by(|a, b| a.1.total_cmp(&b.1))?.0, "lowest test loss")
        }
    };
    Some(Guide {
        at: epoch,
        vertical: true,
        label: format!("best epoch {epoch} ({why})"),
        kind: GuideKind::Reference,
    })
}

fn per_epoch(title: &str, y: Axis, series: Vec<Series>, best: Option<Guide>) -> Chart {
    Chart {
        title: title.to_string(),
        x: Axis::new("epoch", Unit::Count, false),
        y,
        series,
        guides: best.into_iter().collect(),
        notes: Vec::new(),
    }
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
    // A regression's second panel is R² (of the held-out splits: no record has a train_r2,
    // so train's series stays empty and each split keeps its colour), a classifier's
    // accuracy.
    let regression = records.iter().any(|r| r["train_rmse"].is_number());
    let (second, second_axis, keys, factor) = match regression {
        true => (
            "R² per epoch",
            "R² (1: every target predicted)",
            [("train_r2", "train"), ("val_r2", "validation"), ("test_r2", "test")].as_slice(),
            1.0,
        ),
        false => (
            "Accuracy per epoch",
            "accuracy (%)",
            [
                ("train_accuracy", "train"),
                ("val_accuracy", "validation"),
                ("test_accuracy", "test"),
            ]
            .as_slice(),
            100.0,
        ),
    };
    let accuracy = series(records, keys, factor);
    let text = svg(&[
        per_epoch(
            "Loss per epoch",
            Axis::new("loss", Unit::Number, false),
            loss,
            best_epoch(records),
        ),
        per_epoch(
            second,
            Axis::new(second_axis, Unit::Number, false),
            accuracy,
            best_epoch(records),
        ),
    ])?;
    write_atomic(path, text.as_bytes()).map_err(|e| anyhow::anyhow!("--plot {e}"))
}
