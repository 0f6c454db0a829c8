//! Inputs that would be ignored, read forever or misread are refused, each naming the flag
//! or file at fault, with a non-zero exit and no panic.

use super::*;

#[test]
fn flags_this_run_has_no_use_for_are_refused_by_name() {
    let d = tmp();
    let o = quick_train(d.path(), &["--optimizer", "adamw", "--momentum", "0.5"]);
    assert_error(&o, &["--momentum", "SGD", "adamw"]);
    assert_error(&quick_train(d.path(), &["--nesterov"]), &["--nesterov", "SGD"]);
    assert_error(
        &quick_train(d.path(), &["--augment-shift", "2"]),
        &["--augment-shift", "images"],
    );
    // Typed for SGD, they are used.
    let o = quick_train(d.path(), &["--optimizer", "sgd", "--momentum", "0.5", "--nesterov"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quick_train(d.path(), &["--test-fraction", "0.999"]);
    assert_error(&o, &["--test-fraction 0.999", "none to train on"]);
}

#[test]
fn zero_counts_name_their_own_flag() {
    let d = tmp();
    let out = p(d.path());
    #[rustfmt::skip]
    let cases = [
        (vec!["scale", "--device", "cpu", "--memory-limit", "1MiB", "--depth", "0", "--out", out], "--depth"),
        (vec!["scale", "--device", "cpu", "--memory-limit", "1MiB", "--depth", "2", "--width", "0", "--out", out], "--width"),
        (vec!["remat", "--device", "cpu", "--steps", "0", "--out", out], "--steps"),
        (vec!["remat", "--device", "cpu", "--depth", "2", "--width", "0", "--out", out], "--width"),
    ];
    for (args, flag) in cases {
        let o = chainrule(&args);
        assert_error(&o, &[flag, "at least 1"]);
        let line = stderr(&o);
        for other in ["--depth ", "--width", "--steps", "--batch-size"]
            .iter()
            .filter(|f| f.trim() != flag)
        {
            assert!(!line.contains(other), "{flag}: names {other} too: {line}");
        }
    }
}

#[test]
fn a_device_file_is_not_read_as_input_and_an_empty_test_set_is_not_evaluated() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    assert!(quick_train(d.path(), &["--save", p(&model)]).status.success());
    assert_error(&chainrule(&["eval", "--model", "/dev/zero"]), &["/dev/zero", "device"]);
    let o = chainrule(&["train", "--csv", "/dev/zero", "--device", "cpu"]);
    assert_error(&o, &["--csv", "/dev/zero", "device"]);
    let header_only = d.path().join("empty.csv");
    fs::write(&header_only, "label,a,b,c\n").unwrap();
    let o = chainrule(&[
        "eval",
        "--model",
        p(&model),
        "--csv",
        p(&header_only),
        "--device",
        "cpu",
    ]);
    assert!(
        !o.status.success() && !stderr(&o).contains("panicked"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn oversized_benchmark_batches_and_a_full_stdout_are_errors_not_aborts() {
    let d = tmp();
    let out = p(d.path());
    let huge = "18446744073709551615";
    #[rustfmt::skip]
    let cases = [
        vec!["bench", "--device", "cpu", "--layers", "784-32-10", "--batch-size", huge, "--steps", "1"],
        vec!["bench", "--device", "cpu", "--layers", "784-32-10", "--batch-size", "100000000000", "--steps", "1"],
        vec!["remat", "--device", "cpu", "--depths", "2", "--width", "32", "--batch-size", huge, "--out", out],
        // Its batch fits the host; its step's activations (over 40 GB) do not.
        vec!["bench", "--device", "cpu", "--layers", "784-100000-10", "--batch-size", "100000", "--steps", "1"],
    ];
    for args in cases {
        assert_error(&chainrule(&args), &["--batch-size"]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .arg("info")
        .stdout(fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_error(&o, &["writing to stdout", "No space left"]);
}

#[test]
fn a_resumed_run_with_metrics_to_a_pipe_and_a_plot_does_not_wait_on_the_pipe() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    assert!(quick_train(d.path(), &["--save", p(&model)]).status.success());
    let fifo = d.path().join("metrics.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(&fifo).map(|b| b.len()))
    };
    let (plot, csv) = (d.path().join("p.svg"), d.path().join("d.csv"));
    let args = ["train", "--csv", p(&csv), "--layers", "3-8-3", "--device", "cpu"];
    let child = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args(args)
        .args([
            "--epochs",
            "2",
            "--resume",
            p(&model),
            "--metrics-out",
            p(&fifo),
            "--plot",
            p(&plot),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = finished_within(child, 60, "the resumed run hung on its metrics pipe");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(reader.join().unwrap().unwrap() > 0, "the metrics reached the pipe");
    assert!(fs::read_to_string(&plot).unwrap().contains("<svg"));
}

#[test]
fn predict_reads_a_file_by_its_bytes_when_its_name_says_nothing_and_locks_keep_user_files() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    assert!(quick_train(d.path(), &["--save", p(&model)]).status.success());
    let rows = d.path().join("rows");
    fs::write(&rows, "0.1,0.2,0.3\n0.5,0.5,0.5\n").unwrap();
    let o = chainrule(&["predict", "--model", p(&model), p(&rows), "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A file that only shares the lock's name is the user's: it stays.
    let lock = d.path().join(".m.safetensors.lock");
    fs::write(&lock, b"precious").unwrap();
    assert!(quick_train(d.path(), &["--save", p(&model)]).status.success());
    assert_eq!(fs::read(&lock).unwrap(), b"precious");
    // A plot where no file can be made is refused before training.
    let o = quick_train(d.path(), &["--plot", "/proc/chainrule-plot.svg"]);
    assert_error(&o, &["--plot"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("epoch"), "trained first");
}

#[test]
fn predict_refuses_an_image_of_another_shape_with_as_many_pixels_and_one_class_data_is_named() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    let o = chainrule(&[
        "train",
        "--device",
        "cpu",
        "--layers",
        "784-16-10",
        "--epochs",
        "1",
        "--save",
        p(&model),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (square, strip) = (d.path().join("square.png"), d.path().join("strip.png"));
    image::GrayImage::new(28, 28).save(&square).unwrap();
    image::GrayImage::new(49, 16).save(&strip).unwrap();
    let o = chainrule(&["predict", "--model", p(&model), p(&square), "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = chainrule(&["predict", "--model", p(&model), p(&strip), "--device", "cpu"]);
    assert_error(&o, &["strip.png", "16x49", "28x28"]);
    let one = d.path().join("one.csv");
    fs::write(&one, "0,1,2\n0,3,4\n0,5,6\n0,7,8\n0,1,1\n").unwrap();
    let o = chainrule(&["train", "--csv", p(&one), "--device", "cpu", "--epochs", "1"]);
    assert_error(&o, &["one.csv", "one class"]);
}

/// CSV labels 1 to 3 make a 4-class model whose class 0 no example teaches: the run says so
/// (and how to mend it), and trains; labels 0 to 2 say nothing.
#[test]
fn labels_that_leave_a_class_without_examples_are_named() {
    let d = tmp();
    let (from_one, from_zero) = (d.path().join("one.csv"), d.path().join("zero.csv"));
    let rows = |first: u32| -> String { (0..12).map(|i| format!("{},{},0.5\n", first + i % 3, i)).collect() };
    fs::write(&from_one, rows(1)).unwrap();
    fs::write(&from_zero, rows(0)).unwrap();
    let o = chainrule(&["train", "--csv", p(&from_one), "--test-fraction", "0", "--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4 classes (labels 0 to 3), and no training example has label 0")
            && stderr(&o).contains("subtract 1"),
        "{}",
        stderr(&o)
    );
    let o = chainrule(&["train", "--csv", p(&from_zero), "--test-fraction", "0", "--epochs", "1"]);
    assert!(o.status.success() && !stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn a_resumed_run_without_validation_rows_refuses_early_stopping_before_it_says_it_resumes() {
    let dir = tmp();
    let model = dir.path().join("m.safetensors");
    assert!(quick_train(dir.path(), &["--save", p(&model)]).status.success());
    let csv = dir.path().join("d.csv");
    let resume = |extra: &[&str]| {
        let mut args = vec!["train", "--resume", p(&model), "--csv", p(&csv), "--epochs", "3"];
        args.extend_from_slice(extra);
        chainrule(&args)
    };
    // The advice is not one a resumed run would then refuse.
    let o = resume(&["--early-stop", "2"]);
    assert_error(
        &o,
        &[
            "m.safetensors's run holds out no validation rows",
            "start a new run with --val-fraction",
        ],
    );
    let o = resume(&["--early-stop", "2", "--val-fraction", "0.2"]);
    assert_error(&o, &["--val-fraction 0.2 differs from", "start a new run"]);
    assert!(!stderr(&o).contains("resuming"), "{}", stderr(&o));
}

#[test]
fn patience_that_runs_out_at_the_last_epoch_is_not_called_stopping_early() {
    let dir = tmp();
    // Labels no feature predicts: the validation loss soon stops improving.
    let csv = dir.path().join("noise.csv");
    let text: String = (0..90)
        .map(|i| format!("{},{},{}\n", (i * 7 / 3) % 3, i % 2, (i / 2) % 2))
        .collect();
    fs::write(&csv, text).unwrap();
    let run = |epochs: &str| {
        let o = chainrule(&[
            "train",
            "--csv",
            p(&csv),
            "--layers",
            "2-4-3",
            "--val-fraction",
            "0.3",
            "--early-stop",
            "1",
            "--lr",
            "0.5",
            "--epochs",
            epochs,
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let long = run("40");
    let stopped_at: u64 = long
        .split("stopped early after epoch ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the 40-epoch run never stopped early: {long}"));
    let exact = run(&stopped_at.to_string());
    assert!(!exact.contains("stopped early"), "{exact}");
}
