//! The workflow a PyTorch user expects: a validation split from any data, train and
//! validation metrics each epoch, the best epoch kept, early stopping.

use super::*;

#[test]
fn a_validation_split_of_any_data_is_reported_and_its_best_epoch_kept() {
    let d = tmp();
    write_mnist(d.path(), 80, 20, false);
    let (best, metrics) = (d.path().join("best.safetensors"), d.path().join("m.jsonl"));
    let o = chainrule(&[
        "train",
        "--data",
        p(d.path()),
        "--layers",
        "16-8-4",
        "--epochs",
        "3",
        "--val-fraction",
        "0.25",
        "--save-best",
        p(&best),
        "--metrics-out",
        p(&metrics),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("train 60 · val 20 · test 20"), "{out}");
    assert!(
        out.contains("train acc") && out.contains("val loss") && out.contains(" lr "),
        "{out}"
    );
    let epochs: Vec<serde_json::Value> = fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["kind"] == "epoch")
        .collect();
    assert_eq!(epochs.len(), 3);
    for key in [
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "best_epoch",
        "test_accuracy",
    ] {
        assert!(epochs.iter().all(|r| !r[key].is_null()), "{key} missing");
    }
    let best_epoch = epochs[2]["best_epoch"].as_u64().unwrap();
    assert_eq!(Snapshot::load(&best).unwrap().state.epoch, best_epoch);
}

#[test]
fn validation_flags_say_what_they_need() {
    let d = tmp();
    let best = d.path().join("best.safetensors");
    assert_error(&quick_train(d.path(), &["--early-stop", "2"]), &["--val-fraction"]);
    assert_error(&quick_train(d.path(), &["--save-best", p(&best)]), &["--val-fraction"]);
    assert_error(
        &quick_train(d.path(), &["--val-fraction", "1.5"]),
        &["--val-fraction 1.5"],
    );
    // --test-fraction splits a CSV only; elsewhere it used to be ignored in silence.
    assert_error(
        &chainrule(&["train", "--test-fraction", "0.3"]),
        &["--test-fraction", "--val-fraction"],
    );
}

#[test]
fn training_curves_and_predicted_scale_plots_are_valid_svg() {
    let d = tmp();
    let (plot, metrics, model) = (
        d.path().join("curves.svg"),
        d.path().join("m.jsonl"),
        d.path().join("m.safetensors"),
    );
    let base = [
        "--val-fraction",
        "0.2",
        "--plot",
        p(&plot),
        "--metrics-out",
        p(&metrics),
        "--save",
        p(&model),
    ];
    let o = quick_train(d.path(), &[&base[..], &["--epochs", "2"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    // Resumed, the plot has every epoch: 3 points a line, from the metrics file's history.
    let o = quick_train(
        d.path(),
        &[&base[..], &["--epochs", "3", "--resume", p(&model)]].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("Loss per epoch") && svg.contains("Accuracy per epoch"));
    let texts = super::charts::svg_texts(&svg, None);
    // Each in both legends, alone or named with the lines it coincides with ("validation = test").
    for name in ["train", "validation", "test"] {
        let named = texts.iter().filter(|t| t.split(" = ").any(|n| n == name)).count();
        assert_eq!(named, 2, "{name} in both legends: {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with("best epoch ")), "{texts:?}");
    // Every epoch, from the metrics file's history too, on an axis of whole epochs.
    assert_eq!(super::charts::x_ticks(&svg), ["1", "2", "3", "1", "2", "3"], "{svg}");

    let out = d.path().join("scale");
    let o = chainrule(&[
        "scale",
        "--depth",
        "4",
        "--width",
        "32",
        "--memory-limit",
        "4MiB",
        "--predict-only",
        "--device",
        "cpu",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = fs::read_to_string(out.join("predicted-peak.svg")).unwrap();
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    assert!(svg.contains("<polyline"));
    let texts = super::charts::svg_texts(&svg, None);
    assert!(texts.iter().any(|t| t == "memory limit 4.00 MiB"), "{texts:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("predicted peak"));
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(out.join("scale.json")).unwrap()).unwrap();
    assert!(
        json[0]["measured_peak_bytes"].is_null(),
        "a prediction is not a measurement"
    );
}

#[test]
fn predict_agrees_with_eval_on_the_shipped_test_images_and_reads_pngs_pgms_and_csvs() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    let o = chainrule(&[
        "train",
        "--epochs",
        "1",
        "--layers",
        "784-32-10",
        "--save",
        p(&model),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let (images, labels) = (
        root.join("mnist-12k-test-images-idx3-ubyte.gz"),
        root.join("mnist-12k-test-labels-idx1-ubyte.gz"),
    );
    let o = chainrule(&["predict", "--model", p(&model), p(&images), "--json", "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let truth = chainrule::data::idx::read_idx(&labels).unwrap().data;
    assert_eq!(rows.len(), truth.len());
    let correct = rows.iter().zip(&truth).filter(|(r, &t)| r["class"] == t as u64).count();
    for r in &rows[..5] {
        let sum: f64 = r["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    }
    let eval = chainrule(&["eval", "--model", p(&model), "--json", "--device", "cpu"]);
    let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(correct as f64 / truth.len() as f64, eval["accuracy"].as_f64().unwrap());

    // The first test image as a PNG, a PGM and a CSV row: the same class as in the IDX file.
    let pixels = &chainrule::data::idx::read_idx(&images).unwrap().data[..784];
    let img = image::GrayImage::from_raw(28, 28, pixels.to_vec()).unwrap();
    let (png, pgm, csv) = (d.path().join("x.png"), d.path().join("x.pgm"), d.path().join("x.csv"));
    img.save(&png).unwrap();
    img.save(&pgm).unwrap();
    let row: Vec<String> = pixels.iter().map(|v| v.to_string()).collect();
    fs::write(&csv, format!("{}\n", row.join(","))).unwrap();
    let o = chainrule(&[
        "predict",
        "--model",
        p(&model),
        p(&png),
        p(&pgm),
        p(&csv),
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["class"], rows[0]["class"], "{line}");
    }
    // An image of the wrong size is named, with both sizes.
    image::GrayImage::new(8, 8).save(&png).unwrap();
    assert_error(&chainrule(&["predict", "--model", p(&model), p(&png)]), &["8x8", "784"]);
}

#[test]
fn plan_uses_trains_defaults_and_says_when_a_policy_saves_nothing() {
    let o = chainrule(&["plan", "--checkpoint", "sqrt"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("MLP 784-512-256-10 (2 hidden) relu dropout 0.1 · 535,818 parameters · batch 128 · adamw"),
        "{out}"
    );
    // On train's small default model parameters, gradients and Adam's state set the peak.
    assert!(out.contains("saves no memory here"), "{out}");
    let o = chainrule(&[
        "plan",
        "--layers",
        "784-256-256-256-256-256-256-256-10",
        "--batch-size",
        "2048",
        "--checkpoint",
        "sqrt",
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("against keeping everything"));
    // A budget nothing fits names the smallest that does, in units a person writes.
    let o = chainrule(&["plan", "--checkpoint", "budget:1MiB"]);
    let err = stderr(&o);
    let named = err
        .split("use budget:")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or("");
    assert!(named.ends_with("MiB"), "{err}");
    let o = chainrule(&["plan", "--checkpoint", &format!("budget:{named}")]);
    assert!(o.status.success(), "budget:{named} does not fit: {}", stderr(&o));
}

#[test]
fn rust_log_shows_the_device_the_plan_and_each_epochs_timing() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 60);
    let o = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args(["train", "--csv", p(&csv), "--epochs", "1", "--device", "cpu"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = stderr(&o);
    for event in ["device selected", "planned a training step", "epoch done"] {
        assert!(err.contains(event), "'{event}' missing from: {err}");
    }
}

#[test]
fn the_readme_library_snippet_is_the_example_that_cargo_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let example = fs::read_to_string(root.join("examples/least_squares.rs")).unwrap();
    let snippet = readme.split("```rust\n").nth(1).unwrap().split("```").next().unwrap();
    let code: Vec<&str> = snippet.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    assert!(code.len() > 5);
    for line in code {
        assert!(example.contains(line.trim()), "README line not in the example: {line}");
    }
}

#[test]
fn data_readme_points_only_at_files_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(root.join("data/README.md")).unwrap();
    for word in text.split(|c: char| c.is_whitespace() || "`()[]|,".contains(c)) {
        let word = word.trim_end_matches(['.', ':', ';']);
        let named = [".gz", ".csv", ".py", ".sh", ".md"].iter().any(|e| word.ends_with(e)) && !word.contains("://");
        if named && !word.contains('*') && !word.contains('{') {
            let file = Path::new(word).file_name().unwrap();
            let exists = root.join(word).exists() || root.join("data").join(file).exists() || root.join(file).exists();
            assert!(exists, "data/README.md names {word}, which is not in the repository");
        }
    }
}

#[test]
fn a_run_that_already_stopped_early_still_writes_its_save_when_resumed() {
    let d = tmp();
    let (first, second) = (d.path().join("a.safetensors"), d.path().join("b.safetensors"));
    let csv = d.path().join("d.csv");
    write_csv(&csv, 60);
    // Patience 1 and a large learning rate: the validation loss stops improving well
    // before 40 epochs (at epoch 28 on this data).
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-8-3",
        "--epochs",
        "40",
        "--val-fraction",
        "0.3",
        "--early-stop",
        "1",
        "--lr",
        "0.5",
        "--save",
        p(&first),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("stopped early"),
        "did not stop early"
    );
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--resume",
        p(&first),
        "--epochs",
        "80",
        "--save",
        p(&second),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("saved"));
    let saved = Snapshot::load(&second).expect("'saved' means the file is there");
    assert_eq!(saved.state.epoch, Snapshot::load(&first).unwrap().state.epoch);
}

#[test]
fn a_resumed_run_refuses_a_setting_flag_that_disagrees_with_its_file() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    #[rustfmt::skip]
    let first = ["--epochs", "1", "--lr", "0.01", "--optimizer", "sgd", "--weight-decay", "0", "--save", p(&model)];
    assert!(quick_train(d.path(), &first).status.success());
    // The first command line again, longer: the same settings are fine.
    let again = [
        "--epochs",
        "2",
        "--lr",
        "0.01",
        "--optimizer",
        "sgd",
        "--save",
        p(&model),
        "--resume",
        p(&model),
    ];
    let o = quick_train(d.path(), &again);
    assert!(o.status.success(), "{}", stderr(&o));
    // Equal values written otherwise are the same setting.
    let same = [
        "--epochs",
        "3",
        "--lr",
        "1e-2",
        "--optimizer",
        "SGD",
        "--weight-decay",
        "-0",
        "--save",
        p(&model),
        "--resume",
        p(&model),
    ];
    let o = quick_train(d.path(), &same);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = d.path().join("d.csv");
    let args = [
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-08-3",
        "--device",
        "cpu",
        "--epochs",
        "3",
        "--resume",
        p(&model),
    ];
    let o = chainrule(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // A value the flag itself refuses gets the flag's own error, not "differs".
    assert_error(
        &quick_train(d.path(), &["--epochs", "4", "--lr", "-1", "--resume", p(&model)]),
        &["--lr", "positive"],
    );
    assert_error(
        &quick_train(
            d.path(),
            &["--epochs", "4", "--schedule", "bogus", "--resume", p(&model)],
        ),
        &["--schedule", "expected"],
    );
    // The train/test split is the saved run's.
    let o = quick_train(
        d.path(),
        &["--epochs", "4", "--test-fraction", "0.3", "--resume", p(&model)],
    );
    assert_error(&o, &["holds out 0.3", "holds out 0.2", "split"]);
    for (flag, value, saved) in [
        ("--lr", "0.5", "0.01"),
        ("--optimizer", "adamw", "sgd"),
        ("--activation", "tanh", "relu"),
        ("--batch-size", "7", "128"),
        ("--dropout", "0.3", "0.1"),
    ] {
        let o = quick_train(d.path(), &["--epochs", "3", flag, value, "--resume", p(&model)]);
        assert_error(&o, &[flag, value, saved, "resumed run"]);
    }
}
