//! Which rows of a `--csv` file `eval` evaluates. A run that split the file with
//! `--test-fraction` trained on most of its rows, so evaluating every row would mix training
//! rows into the test figures: when the saved run recorded this very file (by count and
//! hash), its held-out rows are drawn again, as the run drew them. Another file is said to
//! be another, and a file the model trained on is said to give training figures.

use crate::train_report::counted;
use anyhow::Context;
use chainrule::data::csv::{parse_dataset, read_dataset};
use chainrule::data::input_file::read_input_or_stdin;
use chainrule::data::regression_csv::TargetColumns;
use chainrule::data::test_split::hold_out_test;
use chainrule::data::{DataOrigin, Dataset};
use chainrule::io::{Snapshot, TestSplit};
use std::path::Path;

pub struct EvalRows {
    pub data: Dataset,
    /// The data, as the output names it.
    pub source: String,
    /// `held-out` or `all`, for the JSON output.
    pub which: &'static str,
}

/// A regression model's target columns, as its run read them (none for a classifier).
pub fn target_columns(snapshot: &Snapshot) -> anyhow::Result<Option<TargetColumns>> {
    if !snapshot.model.loss.is_regression() {
        return Ok(None);
    }
    let text = snapshot
        .state
        .data
        .as_ref()
        .and_then(|d| d.target_columns.clone())
        .unwrap_or_else(|| "1".to_string());
    let columns =
        TargetColumns::parse(&text).map_err(|why| anyhow::anyhow!("the model's target columns '{text}': {why}"))?;
    Ok(Some(columns))
}

/// `csv`'s rows (standard input for `-`): labelled classes, or a regression's targets in
/// `columns` and its features.
fn read_rows(csv: &Path, columns: Option<&TargetColumns>) -> anyhow::Result<Dataset> {
    if csv.as_os_str() != "-" {
        return read_dataset(csv, columns).context("--csv");
    }
    let bytes = read_input_or_stdin(csv).context("--csv -")?;
    parse_dataset(&bytes, columns).map_err(|why| anyhow::anyhow!("--csv -: {why}"))
}

/// The rows of `csv` to evaluate `snapshot` on; `all_rows` asks for every row regardless.
pub fn of_csv(csv: &Path, snapshot: &Snapshot, all_rows: bool) -> anyhow::Result<EvalRows> {
    let all = read_rows(csv, target_columns(snapshot)?.as_ref())?;
    let name = csv.display();
    let every_row = |data: Dataset| EvalRows {
        source: format!("{name} (every row)"),
        data,
        which: "all",
    };
    let state = &snapshot.state;
    let recorded = state.data.as_ref().map(|d| &d.origin);
    // Hashed once: to compare, and to name in the note when it differs.
    let now = DataOrigin::of(&all);
    let same_file = recorded == Some(&now);
    match (state.test_split, recorded) {
        (Some(TestSplit::HeldOut(fraction)), Some(_)) if same_file && !all_rows => {
            let seed = snapshot.settings.seed;
            let (_, test) = hold_out_test(all, fraction, seed);
            if test.is_empty() {
                anyhow::bail!("{name} is the file the model's run split, and it held out no rows for test (--test-fraction {fraction}); give --all-rows to evaluate every row (the rows it trained on)");
            }
            Ok(EvalRows {
                source: format!(
                    "{name}: the {} its run held out for test (--test-fraction {fraction}, seed {seed}; --all-rows for every row)",
                    counted(test.len() as u64, "row", "rows")
                ),
                data: test,
                which: "held-out",
            })
        }
        (Some(TestSplit::HeldOut(_)), Some(_)) if same_file => {
            eprintln!("note: {name} is the file the model's run split; every row is evaluated (--all-rows), its training rows too");
            Ok(every_row(all))
        }
        (Some(TestSplit::HeldOut(_)), Some(r)) => {
            eprintln!(
                "note: {name} is not the file the model's run split ({} rows, hash {}; this one has {} rows, hash {}): every row is evaluated",
                r.rows,
                r.hash,
                now.rows,
                now.hash
            );
            Ok(every_row(all))
        }
        (Some(TestSplit::HeldOut(_)), None) if !all_rows => {
            eprintln!(
                "warning: the model holds no record of the data its run was drawn from (files saved before format chainrule/2 hold none), so whether {name} is the file its run split with --test-fraction cannot be told: every row is evaluated, its training rows too if it is"
            );
            Ok(every_row(all))
        }
        _ if same_file => {
            eprintln!("note: {name} is the data the model trained on: these are training figures, not test figures");
            Ok(every_row(all))
        }
        _ => Ok(every_row(all)),
    }
}

/// A regression's figures: loss, RMSE and R² (the mean of its targets'), then each target's
/// when there are several, in `--target-columns` order.
pub fn print_regression(r: &chainrule::train::EvalResult) {
    use crate::train_report::four;
    let r2 = |v: Option<f64>| v.map_or("n/a (no spread)".to_string(), four);
    println!(
        "examples {}  loss (mse) {}  rmse {}  r2 {}",
        r.examples,
        four(r.loss),
        four(r.rmse()),
        r2(r.r2)
    );
    if r.targets.len() > 1 {
        println!("each target, in --target-columns order:");
        for (i, f) in r.targets.iter().enumerate() {
            println!("{:>6}  rmse {}  r2 {}", i + 1, four(f.rmse), four(f.r2));
        }
    }
}
