//! A saved run records the data it drew its examples from (rows and hash) and its classes:
//! `eval --csv` on the file the run split evaluates only its held-out rows, another file is
//! said to be another, a resumed run that held out test rows refuses other data, and the
//! classes are named in the header, the metrics and the saved file.

use super::*;

fn held_out_run(dir: &Path) -> (PathBuf, PathBuf, serde_json::Value) {
    let (csv, model, metrics) = (dir.join("d.csv"), dir.join("m.safetensors"), dir.join("m.jsonl"));
    write_csv(&csv, 90);
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--test-fraction",
        "0.3",
        "--layers",
        "3-8-3",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--save",
        p(&model),
        "--metrics-out",
        p(&metrics),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = fs::read_to_string(&metrics).unwrap();
    let last = text.lines().last().unwrap();
    (csv, model, serde_json::from_str(last).unwrap())
}

fn eval_json(args: &[&str]) -> (Output, serde_json::Value) {
    let mut all = vec!["eval", "--json", "--device", "cpu"];
    all.extend_from_slice(args);
    let o = chainrule(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = serde_json::from_slice(&o.stdout).unwrap();
    (o, r)
}

#[test]
fn eval_on_the_file_a_run_split_evaluates_its_held_out_rows_as_the_run_did() {
    let dir = tmp();
    let (csv, model, last_epoch) = held_out_run(dir.path());
    let (_, r) = eval_json(&["--model", p(&model), "--csv", p(&csv)]);
    assert_eq!(r["rows"], "held-out");
    assert_eq!(r["examples"], 27, "30% of 90 rows");
    // The same rows, model and arithmetic as the run's last test figures.
    assert_eq!(r["accuracy"], last_epoch["test_accuracy"], "{r} vs {last_epoch}");
    let (eval_loss, run_loss) = (r["loss"].as_f64().unwrap(), last_epoch["test_loss"].as_f64().unwrap());
    assert!(
        (eval_loss - run_loss).abs() <= 1e-6 * run_loss.abs(),
        "{eval_loss} vs {run_loss}"
    );
    // --all-rows: every row, training rows too, said.
    let (o, r) = eval_json(&["--model", p(&model), "--csv", p(&csv), "--all-rows"]);
    assert_eq!((r["rows"].as_str(), r["examples"].as_u64()), (Some("all"), Some(90)));
    assert!(stderr(&o).contains("its training rows too"), "{}", stderr(&o));
}

#[test]
fn another_file_is_said_to_be_another_and_evaluated_whole() {
    let dir = tmp();
    let (csv, model, _) = held_out_run(dir.path());
    // The same rows but one value changed: not the file the run split.
    let text = fs::read_to_string(&csv).unwrap();
    let edited = dir.path().join("edited.csv");
    fs::write(&edited, text.replacen("0,5,0,0", "0,5,0,1", 1)).unwrap();
    assert_ne!(fs::read(&edited).unwrap(), fs::read(&csv).unwrap());
    let (o, r) = eval_json(&["--model", p(&model), "--csv", p(&edited)]);
    assert_eq!((r["rows"].as_str(), r["examples"].as_u64()), (Some("all"), Some(90)));
    assert!(
        stderr(&o).contains("is not the file the model's run split"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_resumed_run_that_held_out_test_rows_refuses_other_data() {
    let dir = tmp();
    let (_, model, _) = held_out_run(dir.path());
    let other = dir.path().join("other.csv");
    write_csv(&other, 93);
    let o = chainrule(&[
        "train",
        "--resume",
        p(&model),
        "--csv",
        p(&other),
        "--test-fraction",
        "0.3",
        "--epochs",
        "3",
    ]);
    assert_error(
        &o,
        &[
            "other.csv",
            "is not the data",
            "90 rows",
            "93 rows",
            "test on rows it trains on",
        ],
    );
}

#[test]
fn the_classes_are_named_in_the_header_the_metrics_and_the_saved_file() {
    let dir = tmp();
    let (csv, model, metrics) = (
        dir.path().join("d.csv"),
        dir.path().join("m.safetensors"),
        dir.path().join("m.jsonl"),
    );
    // Labels 1 to 3: class 0 has no example.
    let text: String = fs::read_to_string({
        write_csv(&csv, 60);
        &csv
    })
    .unwrap()
    .lines()
    .enumerate()
    .map(|(i, l)| match i {
        0 => format!("{l}\n"),
        _ => format!("{}{}\n", l[..1].parse::<u32>().unwrap() + 1, &l[1..]),
    })
    .collect();
    fs::write(&csv, text).unwrap();
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--test-csv",
        p(&csv),
        "--epochs",
        "1",
        "--save",
        p(&model),
        "--metrics-out",
        p(&metrics),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("classes: 4 (labels 0 to 3) · training examples per class 0 (class 0) to 20 (class 1)"),
        "{out}"
    );
    assert!(stderr(&o).contains("no training example has label 0"), "{}", stderr(&o));
    let config: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&metrics).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(config["class_examples"], serde_json::json!([0, 20, 20, 20]));
    let saved = Snapshot::load(&model).unwrap();
    assert_eq!(saved.state.data.unwrap().class_examples, vec![0, 20, 20, 20]);
}

/// Trains `extra` on `csv` into `model` (one epoch unless `extra` says), succeeding.
fn train_ok(csv: &Path, model: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--csv",
        p(csv),
        "--layers",
        "3-8-3",
        "--save",
        p(model),
        "--device",
        "cpu",
    ];
    if !extra.contains(&"--epochs") {
        args.extend(["--epochs", "1"]);
    }
    args.extend_from_slice(extra);
    let o = chainrule(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn saved_record(model: &Path) -> chainrule::data::DataRecord {
    Snapshot::load(model).unwrap().state.data.expect("a data record")
}

#[test]
fn the_classes_count_the_rows_trained_on_not_the_validation_rows() {
    let dir = tmp();
    let (csv, model) = (dir.path().join("d.csv"), dir.path().join("m.safetensors"));
    write_csv(&csv, 90);
    let o = train_ok(&csv, &model, &["--test-fraction", "0.2", "--val-fraction", "0.25"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("train 54 · val 18 · test 18"), "{out}");
    assert_eq!(saved_record(&model).class_examples.iter().sum::<u64>(), 54);
}

#[test]
fn a_resumed_run_records_the_data_it_went_on_with_and_refuses_data_of_another_size() {
    let dir = tmp();
    let (train, test, model) = (
        dir.path().join("t.csv"),
        dir.path().join("e.csv"),
        dir.path().join("m.safetensors"),
    );
    write_csv(&train, 60);
    write_csv(&test, 30);
    train_ok(&train, &model, &["--test-csv", p(&test)]);
    // The same rows relabelled: allowed (said), and the record follows the data.
    let text = fs::read_to_string(&train).unwrap();
    let relabelled = dir.path().join("relabelled.csv");
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        // Rows 1 to 40 become class 0, the rest class 1: two classes, another labelling.
        .map(|(i, l)| match i {
            0 => l.to_string(),
            i => format!("{}{}", (i > 40) as u8, &l[1..]),
        })
        .collect();
    fs::write(&relabelled, lines.join("\n") + "\n").unwrap();
    let o = train_ok(
        &relabelled,
        &model,
        &["--resume", p(&model), "--test-csv", p(&test), "--epochs", "2"],
    );
    assert!(stderr(&o).contains("the run goes on with this data"), "{}", stderr(&o));
    let record = saved_record(&model);
    assert_eq!(record.class_examples, vec![40, 20, 0], "{record:?}");
    assert_eq!(record.origin.rows, 60);
    // Another size has no place for the run's position in its epoch.
    let o = chainrule(&[
        "train",
        "--resume",
        p(&model),
        "--csv",
        p(&test),
        "--test-csv",
        p(&train),
        "--epochs",
        "3",
    ]);
    assert_error(&o, &["e.csv", "is not the data", "another size"]);
}

#[test]
fn a_run_without_test_rows_of_its_file_is_not_said_to_have_them() {
    let dir = tmp();
    let (csv, model) = (dir.path().join("d.csv"), dir.path().join("m.safetensors"));
    write_csv(&csv, 60);
    train_ok(&csv, &model, &["--test-fraction", "0"]);
    let o = chainrule(&["eval", "--model", p(&model), "--csv", p(&csv)]);
    assert_error(&o, &["held out no rows for test", "--all-rows"]);
    // Other data of the same size: said, not refused (no test rows could leak).
    let other = dir.path().join("other.csv");
    let text = fs::read_to_string(&csv).unwrap().replacen("0,5,0,0", "0,6,0,0", 1);
    fs::write(&other, text).unwrap();
    let o = train_ok(
        &other,
        &model,
        &["--resume", p(&model), "--test-fraction", "0", "--epochs", "2"],
    );
    assert!(stderr(&o).contains("the run goes on with this data"), "{}", stderr(&o));
}

#[test]
fn a_format_1_run_that_held_out_test_rows_resumes_with_its_fraction_and_a_warning() {
    let dir = tmp();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1");
    let model = dir.path().join("m.safetensors");
    // Its run held out 0.25 of the file; the fraction need not be typed again.
    let (csv, saved) = (
        fixtures.join("three-classes.csv"),
        fixtures.join("residual-batchnorm.safetensors"),
    );
    let o = chainrule(&[
        "train",
        "--resume",
        p(&saved),
        "--csv",
        p(&csv),
        "--epochs",
        "4",
        "--save",
        p(&model),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("holds no record of the data"), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("train 45 · test 15"));
}

#[test]
fn labels_that_are_all_one_value_are_refused() {
    let dir = tmp();
    let csv = dir.path().join("fives.csv");
    fs::write(&csv, "5,1,2\n5,3,4\n5,5,6\n5,7,8\n5,9,9\n").unwrap();
    let o = chainrule(&["train", "--csv", p(&csv), "--epochs", "1", "--device", "cpu"]);
    assert_error(&o, &["every training label is 5", "one class"]);
    // Typed layers of one output make no classifier of one class either.
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "2-4-6",
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]);
    assert_error(&o, &["every training label is 5", "one class"]);
}

#[test]
fn a_resumed_model_that_does_not_fit_the_data_is_named_as_the_files_not_as_a_flag() {
    let dir = tmp();
    let (train, test, more, model) = (
        dir.path().join("t.csv"),
        dir.path().join("e.csv"),
        dir.path().join("more.csv"),
        dir.path().join("m.safetensors"),
    );
    write_csv(&train, 60);
    write_csv(&test, 30);
    train_ok(&train, &model, &["--test-csv", p(&test)]);
    // The same rows, one labelled as a fourth class.
    fs::write(&more, fs::read_to_string(&train).unwrap().replacen("\n0,", "\n3,", 1)).unwrap();
    let o = chainrule(&[
        "train",
        "--resume",
        p(&model),
        "--csv",
        p(&more),
        "--test-csv",
        p(&test),
        "--epochs",
        "2",
    ]);
    assert_error(&o, &["m.safetensors's model 3-8-3", "the last width is 3", "4 classes"]);
    assert!(!stderr(&o).contains("--layers"), "{}", stderr(&o));
}
