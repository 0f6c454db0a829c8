//! `chainrule eval`: a saved model's loss, accuracy and confusion matrix (a regression's
//! loss, RMSE and R², overall and per target).

use crate::device;
use anyhow::bail;
use anyhow::Context;
use chainrule::data::mnist;
use chainrule::io::Snapshot;
use chainrule::train::Trainer;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model saved by `chainrule train --save`
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Folder with MNIST IDX files; the test split (t10k-/test-) is evaluated [default: the built-in MNIST subset's test split]
    #[arg(long, value_name = "DIR", conflicts_with = "csv")]
    data: Option<PathBuf>,
    /// CSV file to evaluate: a label, then the features (a regression: its target columns where its run read them, the rest features). If it is the file the model's run split with --test-fraction (checked by its saved hash), only the rows that run held out for test are evaluated
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// With --csv: evaluate every row of the file, even of one the model's run split into training and test rows
    #[arg(long, requires = "csv", conflicts_with = "data")]
    all_rows: bool,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    /// Device: auto, cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    device: String,
    /// Arithmetic: f32, bf16, f16 or fp8 [default: the dtype the model was trained in, so the figures are those its run reported]
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,
}

pub fn run(a: EvalArgs) -> anyhow::Result<i32> {
    let snapshot = Snapshot::load(&a.model)?;
    let (device, dtype) = device::for_saved(&a.device, a.dtype.as_deref(), &snapshot)?;
    let regression = snapshot.model.loss.is_regression();
    if regression && a.csv.is_none() {
        bail!(
            "{}: a regression (--loss mse) model: evaluate it on a --csv file of its targets and features",
            a.model.display()
        );
    }
    let (mut data, source, rows) = match (&a.data, &a.csv) {
        (Some(dir), _) => (
            mnist::load_test(dir).context("--data")?,
            format!("MNIST test split in {}", dir.display()),
            "all",
        ),
        (None, Some(csv)) => {
            let r = crate::eval_rows::of_csv(csv, &snapshot, a.all_rows)?;
            (r.data, r.source, r.which)
        }
        (None, None) => (
            mnist::builtin()?.1,
            "built-in MNIST subset, test split".to_string(),
            "all",
        ),
    };
    if data.is_empty() {
        bail!("the data ({source}) has no examples: nothing to evaluate");
    }
    let spec = &snapshot.model;
    if data.feature_count() != spec.inputs() {
        let whole = regression_width(&snapshot)?;
        bail!(
            "{}: the model takes {} features ({}), the data ({source}) has {}{whole}",
            a.model.display(),
            spec.inputs(),
            spec.layers_string(),
            data.feature_count()
        );
    }
    if !regression && data.class_count() > spec.classes() {
        bail!(
            "{}: the model has {} classes, the data ({source}) has labels up to {}",
            a.model.display(),
            spec.classes(),
            data.class_count() - 1
        );
    }
    snapshot.normalization.apply(&mut data.features);
    let mut trainer = Trainer::for_evaluation(snapshot, &device)?;
    let r = trainer.evaluate(&data)?;
    if regression && !r.loss.is_finite() {
        eprintln!(
            "warning: the loss is {} (the squared errors overflowed {dtype}: the model's outputs or the targets are too large; scale the targets{})",
            r.loss,
            if dtype == "f32" { "" } else { ", or try --dtype f32" }
        );
    }
    if r.without_class > 0 {
        eprintln!(
            "warning: {} of {} rows have NaN or infinite logits (the model's output overflowed or diverged in {dtype}{}): they predict no class, count as wrong, and are in no column of the confusion matrix",
            r.without_class,
            r.examples,
            if dtype == "f32" { "" } else { "; try --dtype f32" }
        );
    }
    if a.json {
        let record = match regression {
            true => json!({"model": a.model.display().to_string(), "data": source, "rows": rows, "dtype": dtype,
                           "examples": r.examples, "loss": r.loss, "rmse": r.rmse(), "r2": r.r2,
                           "loss_finite": r.loss.is_finite(),
                           "targets": r.targets.iter().map(|f| json!({"rmse": f.rmse, "r2": f.r2})).collect::<Vec<_>>()}),
            false => json!({"model": a.model.display().to_string(), "data": source, "rows": rows, "dtype": dtype,
                            "examples": r.examples, "loss": r.loss, "accuracy": r.accuracy,
                            "rows_without_class": r.without_class, "confusion": r.confusion}),
        };
        println!("{record}");
        return Ok(0);
    }
    println!(
        "model {} · {} · {dtype} · data: {source}",
        a.model.display(),
        trainer.mlp.spec.describe()
    );
    if regression {
        crate::eval_rows::print_regression(&r);
        return Ok(0);
    }
    println!(
        "examples {}  loss {:.4}  accuracy {:.2}%",
        r.examples,
        r.loss,
        r.accuracy * 100.0
    );
    println!("confusion matrix (rows: true class, columns: predicted):");
    let k = r.confusion.len();
    print!("{:>6}", "");
    for c in 0..k {
        print!("{c:>6}");
    }
    println!();
    for (t, row) in r.confusion.iter().enumerate() {
        print!("{t:>6}");
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
    Ok(0)
}

/// For a regression's model, what its file holds besides the features (the targets, in
/// the columns its run read them from) and how wide it is; empty for a classifier.
fn regression_width(snapshot: &Snapshot) -> anyhow::Result<String> {
    let Some(t) = crate::eval_rows::target_columns(snapshot)? else {
        return Ok(String::new());
    };
    let targets = match t.count() {
        1 => "target column".to_string(),
        n => format!("{n} target columns"),
    };
    Ok(format!(
        " (a regression's file holds its {targets} ({}) and its features: {} columns in all)",
        t.canonical(),
        snapshot.model.inputs() + t.count()
    ))
}
