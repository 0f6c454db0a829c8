//! `--loss mse`: a regression on real-valued CSV targets, as a user meets it: the header
//! names the targets, each epoch reports RMSE and R², eval and predict read the columns the
//! run read, a run resumes bit for bit with its own loss and columns, and flags that cannot
//! mean anything for it are refused.

use super::*;

/// 120 rows: features a, b, then target y = 2a − b + 1, feature c, then target z = b·c.
fn write_regression(path: &Path) {
    let mut s = String::from("a,b,y,c,z\n");
    for i in 0..120 {
        let (a, b, c) = ((i % 7) as f32 / 7.0, (i % 5) as f32 / 5.0, (i % 3) as f32 / 3.0);
        s.push_str(&format!("{a},{b},{},{c},{}\n", 2.0 * a - b + 1.0, b * c));
    }
    fs::write(path, s).unwrap();
}

/// `chainrule train --csv CSV --loss mse --device cpu`, with `--target-columns` when given,
/// and `more`.
fn regress(csv: &Path, columns: Option<&str>, more: &[&str]) -> Output {
    let mut args = vec!["train", "--csv", p(csv), "--loss", "mse", "--device", "cpu"];
    if let Some(columns) = columns {
        args.extend(["--target-columns", columns]);
    }
    args.extend(more);
    chainrule(&args)
}

fn last_epoch(metrics: &Path) -> serde_json::Value {
    serde_json::from_str(fs::read_to_string(metrics).unwrap().lines().last().unwrap()).unwrap()
}

#[test]
fn a_regression_trains_reports_evaluates_and_predicts_its_targets() {
    let dir = tmp();
    let (csv, model, metrics, plot) = (
        dir.path().join("r.csv"),
        dir.path().join("r.safetensors"),
        dir.path().join("r.jsonl"),
        dir.path().join("r.svg"),
    );
    write_regression(&csv);
    let o = regress(
        &csv,
        Some("3,last"),
        &[
            "--epochs",
            "3",
            "--save",
            p(&model),
            "--metrics-out",
            p(&metrics),
            "--plot",
            p(&plot),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("MLP 3-512-256-2") && out.contains("regression (mse) of 2 targets"),
        "{out}"
    );
    assert!(out.contains("targets: 2 (--target-columns 3,last)"), "{out}");
    assert!(out.contains("test rmse") && out.contains("test r2"), "{out}");
    let last = last_epoch(&metrics);
    assert!(last["test_r2"].is_number() && last["test_accuracy"].is_null(), "{last}");
    assert!(fs::read_to_string(&plot).unwrap().contains("R² per epoch"));
    // eval on the file the run split: its held-out rows, with the run's last test figures.
    let o = chainrule(&[
        "eval",
        "--model",
        p(&model),
        "--csv",
        p(&csv),
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (r["rows"].as_str(), r["examples"].as_u64()),
        (Some("held-out"), Some(24))
    );
    let (loss, run_loss) = (r["loss"].as_f64().unwrap(), last["test_loss"].as_f64().unwrap());
    assert!((loss - run_loss).abs() <= 1e-6 * run_loss, "{loss} against {run_loss}");
    // The RMSE from f64 sums of each target's errors, the loss from the step's f32 sum.
    assert!((r["rmse"].as_f64().unwrap() - loss.sqrt()).abs() < 1e-5 * loss.sqrt());
    assert!((r["r2"].as_f64().unwrap() - last["test_r2"].as_f64().unwrap()).abs() < 1e-9);
    // predict: whole rows (the target columns dropped) or the features alone, alike.
    let features = dir.path().join("features.csv");
    let text: String = fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            format!("{},{},{}\n", c[0], c[1], c[3])
        })
        .collect();
    fs::write(&features, text).unwrap();
    let predicted = |file: &Path| {
        let o = chainrule(&["predict", "--model", p(&model), p(file), "--json", "--device", "cpu"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.iter().map(|r| r["values"].clone()).collect::<Vec<_>>()
    };
    let (whole, alone) = (predicted(&csv), predicted(&features));
    assert_eq!(whole.len(), 120);
    assert_eq!(whole, alone);
    assert_eq!(whole[0].as_array().unwrap().len(), 2);
}

#[test]
fn a_regression_resumes_bitwise_with_its_own_loss_and_columns() {
    let dir = tmp();
    let (csv, whole, half) = (
        dir.path().join("r.csv"),
        dir.path().join("w.safetensors"),
        dir.path().join("h.safetensors"),
    );
    write_regression(&csv);
    let run = |save: &Path, epochs: &str| {
        let o = regress(
            &csv,
            Some("3"),
            &["--layers", "4-16-1", "--epochs", epochs, "--save", p(save)],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run(&whole, "2");
    run(&half, "1");
    let o = chainrule(&[
        "train",
        "--resume",
        p(&half),
        "--csv",
        p(&csv),
        "--epochs",
        "2",
        "--save",
        p(&half),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        saved_tensors(&half) == saved_tensors(&whole),
        "a resumed regression differs"
    );
    for (flags, needles) in [
        (
            vec!["--loss", "cross-entropy"],
            vec!["--loss cross-entropy differs", "mse"],
        ),
        (vec!["--target-columns", "5"], vec!["--target-columns 5 differs", "3"]),
    ] {
        let mut args = vec!["train", "--resume", p(&half), "--csv", p(&csv), "--epochs", "3"];
        args.extend(flags);
        assert_error(&chainrule(&args), &needles);
    }
}

#[test]
fn columns_typed_again_on_resume_are_compared_as_the_columns_they_name() {
    let dir = tmp();
    let (csv, model) = (dir.path().join("r.csv"), dir.path().join("m.safetensors"));
    write_regression(&csv);
    let train = |columns: &str, epochs: &str, resume: bool| {
        let mut more = vec!["--layers", "4-8-1", "--epochs", epochs, "--save", p(&model)];
        if resume {
            more.extend(["--resume", p(&model)]);
        }
        regress(&csv, Some(columns), &more)
    };
    let o = train("last", "1", false);
    assert!(o.status.success(), "{}", stderr(&o));
    // `last` of these five columns is column 5, however it is typed.
    for same in ["5", "5-5", "last"] {
        let o = train(same, "2", true);
        assert!(o.status.success(), "--target-columns {same}: {}", stderr(&o));
    }
    assert_error(&train("4", "3", true), &["--target-columns 4 differs", "last"]);
    // Said as typed, not column by column; columns named twice are said to be.
    assert_error(&train("1-4", "3", true), &["--target-columns 1-4 differs", "last"]);
    assert_error(
        &train("5,5", "3", true),
        &["--target-columns 5,5: column 5 is named twice"],
    );
}

#[test]
fn flags_a_regression_cannot_use_are_refused() {
    let dir = tmp();
    let csv = dir.path().join("r.csv");
    write_regression(&csv);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--loss", "mse"], vec!["--loss mse", "--csv", "built-in MNIST"]),
        (
            vec!["--loss", "mse", "--data", "data"],
            vec!["--loss mse", "--data's MNIST"],
        ),
        (
            vec!["--csv", p(&csv), "--target-columns", "3"],
            vec!["--target-columns 3", "--loss mse"],
        ),
        (
            vec!["--csv", p(&csv), "--loss", "huber"],
            vec!["--loss 'huber'", "cross-entropy or mse"],
        ),
        (
            vec!["--csv", p(&csv), "--loss", "mse", "--target-columns", "9"],
            vec!["column 9 is past the last of the file's 5 columns"],
        ),
        (
            vec!["--csv", p(&csv), "--loss", "mse", "--target-columns", "1-5"],
            vec!["no column is left for the features"],
        ),
        (
            vec!["--csv", p(&csv), "--loss", "mse", "--target-columns", "0"],
            vec!["--target-columns 0", "not a column number"],
        ),
        (
            vec![
                "--csv",
                p(&csv),
                "--loss",
                "mse",
                "--target-columns",
                "3",
                "--layers",
                "4-8-2",
            ],
            vec!["--layers 4-8-2: the last width is 2", "1 target column "],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["train", "--epochs", "1", "--device", "cpu"];
        args.extend(flags);
        assert_error(&chainrule(&args), &needles);
    }
}

#[test]
fn one_target_takes_one_output_and_several_are_reported_each() {
    let dir = tmp();
    let (csv, one, two) = (
        dir.path().join("r.csv"),
        dir.path().join("one.safetensors"),
        dir.path().join("two.safetensors"),
    );
    write_regression(&csv);
    // The README's form: the default layers, the last column the target.
    let o = regress(&csv, Some("last"), &["--epochs", "1", "--save", p(&one)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("MLP 4-512-256-1 (2 hidden)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Two targets, typed as a range: each has its RMSE and R², and R² is their mean.
    let o = regress(
        &csv,
        Some("2-3"),
        &["--layers", "3-16-2", "--epochs", "2", "--save", p(&two)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = chainrule(&[
        "eval",
        "--model",
        p(&two),
        "--csv",
        p(&csv),
        "--json",
        "--device",
        "cpu",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let fits = r["targets"].as_array().unwrap();
    assert_eq!(fits.len(), 2);
    let mean = (fits[0]["r2"].as_f64().unwrap() + fits[1]["r2"].as_f64().unwrap()) / 2.0;
    assert!((mean - r["r2"].as_f64().unwrap()).abs() < 1e-12, "{r}");
    // The same columns typed another way on resume are the same columns.
    let o = chainrule(&[
        "train",
        "--resume",
        p(&two),
        "--csv",
        p(&csv),
        "--target-columns",
        " 2, 3",
        "--epochs",
        "3",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn overflowing_targets_are_named_as_the_cause() {
    let dir = tmp();
    let (huge, big) = (dir.path().join("huge.csv"), dir.path().join("big.csv"));
    let rows = |scale: f64| {
        (0..60)
            .map(|i| format!("{},{},{}\n", scale * (i % 5) as f64, i % 3, i % 7))
            .collect::<String>()
    };
    fs::write(&huge, rows(1e20)).unwrap();
    fs::write(&big, rows(1e4)).unwrap();
    let o = regress(&huge, None, &["--layers", "2-8-1", "--epochs", "1"]);
    assert_error(&o, &["at step 1", "scale the targets"]);
    assert!(!stderr(&o).contains("lower --lr"), "{}", stderr(&o));
    // f16's loss scaling cannot bring gradients of such targets into range: every step is
    // skipped, and the run says so.
    let o = regress(&big, None, &["--layers", "2-8-1", "--epochs", "1", "--dtype", "f16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("loss scaling skipped all"), "{}", stderr(&o));
}
