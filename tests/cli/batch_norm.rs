//! `--norm batch` from the command line: a batch size that would leave a training step one
//! row is refused before training, naming the flag; `scale` searches from two rows; a saved
//! BatchNorm net evaluates by its running statistics, as `predict` does, and resumes; `eval`
//! reproduces a 16-bit run's test column, in the dtype it trained in.

use super::*;

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

const BATCH_NORM: [&str; 8] = [
    "--block", "residual", "--norm", "batch", "--depth", "2", "--width", "16",
];

fn with_model<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().copied().chain(BATCH_NORM).collect()
}

/// One epoch of the BatchNorm net, saved to `save`; its output.
fn trained(save: &Path) -> Output {
    let o = chainrule(&with_model(&[
        "train",
        "--epochs",
        "1",
        "--save",
        p(save),
        "--device",
        "cpu",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

#[test]
fn a_batch_size_that_leaves_a_step_one_row_is_refused_before_training() {
    // 10,000 training rows: batches of 1, and batches of 3,333 whose last has 1 row.
    for (size, needle) in [("1", "each batch has 1 row"), ("3333", "the last batch of each epoch")] {
        let o = chainrule(&with_model(&["train", "--epochs", "1", "--batch-size", size]));
        assert_error(&o, &[&format!("--batch-size {size}"), needle, "BatchNorm"]);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("epoch   1"),
            "it trained first"
        );
    }
}

#[test]
fn every_tool_names_the_flag_that_leaves_a_step_one_row() {
    for tool in ["plan", "bench", "remat", "scale"] {
        let mut args = with_model(&[tool, "--batch-size", "1"]);
        if tool == "scale" {
            // Searching the depth at --batch-size 1.
            args = vec![tool, "--batch-size", "1", "--vary", "depth", "--block", "residual"];
            args.extend([
                "--norm",
                "batch",
                "--width",
                "16",
                "--memory-limit",
                "4MiB",
                "--predict-only",
            ]);
        }
        assert_error(&chainrule(&args), &["--batch-size 1", "BatchNorm"]);
    }
    // The split, not the batch size, leaves a single training row.
    let o = chainrule(&with_model(&["train", "--epochs", "1", "--val-fraction", "0.9999"]));
    assert_error(&o, &["with 1 training row", "--val-fraction"]);
    // The out-of-memory advice suggests a batch size the rule allows: 33 would leave the
    // last of 10,000 rows alone.
    let o = chainrule(&with_model(&[
        "train",
        "--epochs",
        "1",
        "--memory-limit",
        "356KiB",
        "--batch-size",
        "2000",
    ]));
    let err = stderr(&o);
    let suggested: usize = err
        .lines()
        .find(|l| l.starts_with("suggestion:"))
        .and_then(|l| l.split("--batch-size ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no suggested batch size: {err}"));
    assert!(
        suggested >= 2 && 10_000 % suggested != 1,
        "suggested --batch-size {suggested}: {err}"
    );
}

#[test]
fn scale_searches_batch_norm_nets_from_two_rows() {
    let d = tmp();
    let scale = |limit| {
        chainrule(&with_model(&[
            "scale",
            "--memory-limit",
            limit,
            "--predict-only",
            "--policies",
            "none,sqrt",
            "--out",
            p(d.path()),
        ]))
    };
    let o = scale("2MiB");
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_file(&d.path().join("scale.json"));
    for row in rows.as_array().unwrap() {
        assert!(row["max_batch"].as_u64().unwrap() >= 2, "{row}");
    }
    // Below two rows' step, the smallest batch named is 2.
    let o = scale("100KiB");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not even a batch of 2 fits"), "{}", stderr(&o));
}

#[test]
fn a_saved_batch_norm_net_evaluates_by_its_running_statistics_and_resumes() {
    let d = tmp();
    let save = d.path().join("bn.safetensors");
    let o = trained(&save);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("2 residual relu blocks (width 16, expansion 4, BatchNorm)"),
        "{out}"
    );
    let test_acc = out
        .lines()
        .find(|l| l.starts_with("epoch"))
        .and_then(|l| l.split("test acc").nth(1))
        .and_then(|r| r.split('%').next())
        .map(|v| v.trim().parse::<f64>().unwrap())
        .unwrap();
    // eval's accuracy on the same test split is the epoch line's (evaluation mode both).
    let eval = chainrule(&["eval", "--model", p(&save), "--json", "--device", "cpu"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let accuracy = eval["accuracy"].as_f64().unwrap() * 100.0;
    assert!(
        (accuracy - test_acc).abs() < 0.01,
        "eval {accuracy} against the epoch's {test_acc}"
    );
    let o = chainrule(&["train", "--resume", p(&save), "--epochs", "2", "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("epoch   2/2"));
}

#[test]
fn eval_runs_in_the_dtype_the_model_trained_in_and_reproduces_its_test_column() {
    let d = tmp();
    let save = d.path().join("f16.safetensors");
    let o = chainrule(&with_model(&[
        "train",
        "--epochs",
        "1",
        "--batch-size",
        "200",
        "--dtype",
        "f16",
        "--save",
        p(&save),
        "--device",
        "cpu",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let epoch = out.lines().find(|l| l.starts_with("epoch")).unwrap();
    let field = |name: &str| -> f64 {
        let rest = epoch.split(name).nth(1).unwrap();
        rest.split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap()
    };
    let eval = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["eval", "--model", p(&save), "--json", "--device", "cpu"];
        args.extend(extra);
        let o = chainrule(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let same = eval(&[]);
    assert_eq!(same["dtype"], "f16");
    assert!(
        (same["accuracy"].as_f64().unwrap() * 100.0 - field("test acc")).abs() < 0.01,
        "{same} vs {epoch}"
    );
    assert!(
        (same["loss"].as_f64().unwrap() - field("test loss")).abs() < 1e-4,
        "{same} vs {epoch}"
    );
    assert_eq!(eval(&["--dtype", "f32"])["dtype"], "f32");
}

#[test]
fn eval_reports_rows_whose_logits_overflow_instead_of_dropping_them() {
    let d = tmp();
    let (save, edited) = (d.path().join("bn.safetensors"), d.path().join("huge.safetensors"));
    trained(&save);
    // A finite running mean so large that every row's output overflows.
    let mut s = Snapshot::load(&save).unwrap();
    s.tensors.get_mut("blocks.0.norm.running_mean").unwrap()[[0]] = 3e38;
    s.save(&edited).unwrap();
    let o = chainrule(&["eval", "--model", p(&edited), "--json", "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let without = r["rows_without_class"].as_u64().unwrap();
    assert!(without > 0, "{r}");
    let counted: u64 = r["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(counted + without, r["examples"].as_u64().unwrap(), "{r}");
    assert!(
        stderr(&o).contains(&format!("warning: {without} of 2000 rows have NaN or infinite logits")),
        "{}",
        stderr(&o)
    );
}
