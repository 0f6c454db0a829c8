//! Inputs built to break a run, a class a test: what is saved replaces only what it should,
//! sizes that cannot exist are errors (never a panic, an abort or a wrapped number), data
//! is read or refused by line and column, and messages speak plainly.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// A quick training run on a small CSV with these extra flags.
fn quick_train(dir: &Path, extra: &[&str]) -> Output {
    let csv = dir.join("d.csv");
    if !csv.exists() {
        write_csv(&csv, 60);
    }
    let mut args = vec!["train", "--csv", p(&csv), "--layers", "3-8-3", "--device", "cpu"];
    if !extra.contains(&"--epochs") {
        args.extend(["--epochs", "1"]);
    }
    args.extend_from_slice(extra);
    chainrule(&args)
}

#[test]
fn saves_replace_only_regular_files_keep_their_permissions_and_follow_links() {
    let d = tmp();
    // A FIFO (like a device) is never turned into a regular file.
    let fifo = d.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert_error(
        &quick_train(d.path(), &["--save", p(&fifo)]),
        &["--save", "special file"],
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // A read-only file is refused and left as it was.
    let ro = d.path().join("ro.safetensors");
    fs::write(&ro, b"keep me").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).unwrap();
    assert_error(&quick_train(d.path(), &["--save", p(&ro)]), &["--save", "read-only"]);
    assert_eq!(fs::read(&ro).unwrap(), b"keep me");
    // A private file stays private.
    let private = d.path().join("private.safetensors");
    fs::write(&private, b"old").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(quick_train(d.path(), &["--save", p(&private)]).status.success());
    assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    // A link stays a link; the file it points to gets the model.
    let real = d.path().join("real.safetensors");
    let link = d.path().join("link.safetensors");
    fs::write(&real, b"old").unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(quick_train(d.path(), &["--save", p(&link)]).status.success());
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    Snapshot::load(&real).expect("the link's target holds the model");
    // A folder that does not exist yet is refused before any training.
    let o = quick_train(d.path(), &["--save", &format!("{}/newdir/", p(d.path()))]);
    assert_error(&o, &["--save", "folder"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("epoch"));
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn a_second_run_saving_to_the_same_file_is_refused_and_killed_saves_leave_nothing() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    {
        let _held = chainrule::io::SaveLock::acquire(&model).unwrap();
        assert_error(
            &quick_train(d.path(), &["--save", p(&model)]),
            &["--save", "another chainrule run"],
        );
    }
    // A temporary left by a save whose process was killed is removed by the next save.
    let stale = d.path().join(".m.safetensors.tmp-999999999");
    fs::write(&stale, vec![0u8; 4096]).unwrap();
    assert!(quick_train(d.path(), &["--save", p(&model)]).status.success());
    let left: Vec<String> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "hidden files left behind: {left:?}");
}

#[test]
fn an_output_that_is_another_path_of_the_run_is_refused() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    assert!(quick_train(d.path(), &["--save", p(&model)]).status.success());
    let before = fs::read(&model).unwrap();
    let csv = d.path().join("d.csv");
    for args in [
        vec!["--save", p(&model), "--metrics-out", p(&model)],
        vec!["--resume", p(&model), "--epochs", "2", "--metrics-out", p(&model)],
        vec!["--save", p(&csv)],
    ] {
        assert_error(&quick_train(d.path(), &args), &["is the same file as"]);
    }
    assert_eq!(fs::read(&model).unwrap(), before, "the model was touched");
    // Resuming from the file the run saves to is how a run continues.
    let o = quick_train(d.path(), &["--resume", p(&model), "--epochs", "2", "--save", p(&model)]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn nothing_non_finite_reaches_a_save_and_relu_keeps_nan() {
    use chainrule::backend;
    use chainrule::data::Normalization;
    use chainrule::nn::MlpSpec;
    use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
    use chainrule::plan::CheckpointPolicy;
    use chainrule::train::{TrainConfig, TrainError, Trainer};
    use ndarray::{arr1, arr2};
    let config = TrainConfig {
        epochs: 1,
        batch_size: 2,
        lr: 0.1,
        schedule: LrSchedule::Constant,
        seed: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        augment_shift: 0,
        checkpoint: CheckpointPolicy::None,
        loss_scaling: false,
    };
    let spec = MlpSpec::new("2-4-2", "relu", 0.0).unwrap();
    let mut t = Trainer::new(spec, config, Normalization::scale_only(1.0), &backend::cpu()).unwrap();
    // An infinite input: ReLU must pass the NaN on (PyTorch does), so the step sees it.
    let x = arr2(&[[f32::INFINITY, 1.0], [0.5, -0.5]]);
    let err = t.train_step(x, arr1(&[0.0, 1.0]), 0.1).unwrap_err();
    assert!(matches!(err, TrainError::NonFinite { .. }), "{err}");
    // Whatever got there, a snapshot with a non-finite weight is refused.
    let mut snapshot = t.to_snapshot().unwrap();
    snapshot.tensors.get_mut("layers.0.weight").unwrap()[[0, 0]] = f32::NAN;
    let mut bad = Trainer::from_snapshot(snapshot, 1, &backend::cpu()).unwrap();
    assert!(matches!(bad.to_snapshot(), Err(TrainError::NonFiniteParameters { .. })));
    let _ = &mut bad;
    // A CSV value beyond f32 is named by line and column, not found later as a NaN.
    let d = tmp();
    let csv = d.path().join("big.csv");
    fs::write(&csv, "0,1,2\n1,1e39,2\n0,3,4\n1,5,6\n").unwrap();
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--epochs", "1"]),
        &["line 2, column 2", "too large for f32"],
    );
}

#[test]
fn an_epoch_whose_evaluation_fails_is_saved_before_the_error() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    // Training batches of 8 fit in 3 MiB; evaluating 1,000 test images at once does not.
    let o = chainrule(&[
        "train",
        "--layers",
        "784-64-10",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--memory-limit",
        "3MiB",
        "--save",
        p(&model),
    ]);
    assert_error(
        &o,
        &["epoch 1 was trained", "saved", "evaluating it failed", "out of memory"],
    );
    let saved = Snapshot::load(&model).expect("the trained epoch was saved");
    assert_eq!(saved.state.epoch, 1);
}

#[test]
fn sizes_that_cannot_exist_are_errors_not_panics_aborts_or_wrapped_numbers() {
    let huge = format!("784-{}-10", u64::MAX);
    assert_error(&chainrule(&["train", "--layers", &huge]), &["--layers", "more than"]);
    assert_error(
        &chainrule(&["plan", "--layers", &huge, "--checkpoint", "sqrt"]),
        &["--layers"],
    );
    assert_error(
        &chainrule(&["plan", "--layers", "784-1024-10", "--batch-size", "1000000000000000"]),
        &["batch of 1000000000000000", "more than"],
    );
    // Real sizes too large for this machine: refused before they are allocated.
    assert_error(
        &chainrule(&[
            "bench",
            "--layers",
            "784-100000000-10",
            "--device",
            "cpu",
            "--steps",
            "1",
        ]),
        &["out of memory"],
    );
    assert_error(
        &chainrule(&[
            "train",
            "--layers",
            "784-100000000-10",
            "--device",
            "cpu",
            "--memory-limit",
            "1GiB",
        ]),
        &["out of memory"],
    );
    assert_error(
        &chainrule(&["scale", "--depth", "0", "--memory-limit", "1MiB"]),
        &["--depth"],
    );
    assert_error(
        &chainrule(&["scale", "--width", "0", "--memory-limit", "1MiB"]),
        &["--width"],
    );
    assert_error(
        &chainrule(&["scale", "--memory-limit", "1000TiB", "--device", "cpu"]),
        &["--memory-limit", "more than this machine has"],
    );
    let o = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args(["--threads", "100000", "info"])
        .output()
        .unwrap();
    assert_error(&o, &["--threads 100000"]);
    let d = tmp();
    assert_error(
        &quick_train(d.path(), &["--epochs", "0", "--save", "x.safetensors"]),
        &["--epochs"],
    );
}

#[test]
fn a_csv_first_row_is_data_unless_it_is_text_and_every_cell_is_checked() {
    let d = tmp();
    let run = |name: &str, text: &[u8]| {
        let f = d.path().join(name);
        fs::write(&f, text).unwrap();
        chainrule(&[
            "train",
            "--csv",
            p(&f),
            "--epochs",
            "1",
            "--test-fraction",
            "0",
            "--device",
            "cpu",
        ])
    };
    let rows = "0,1,2\n1,3,4\n0,5,6\n1,7,8\n";
    for (name, bad, needle) in [
        ("nan.csv", "0,nan,2\n", "line 1, column 2"),
        ("inf.csv", "0,inf,2\n", "line 1, column 2"),
        ("empty.csv", "0,,2\n", "line 1, column 2"),
        ("trailing.csv", "0,1,2,\n", "line 1"),
    ] {
        assert_error(&run(name, format!("{bad}{rows}").as_bytes()), &[needle]);
    }
    // Every row of these is data: 4 examples, whatever the separators and line endings.
    for (name, text) in [
        ("bom.csv", format!("\u{feff}{rows}")),
        ("semicolons.csv", rows.replace(',', ";")),
        ("tabs.csv", rows.replace(',', "\t")),
        ("cr.csv", rows.replace('\n', "\r")),
        ("crlf.csv", rows.replace('\n', "\r\n")),
        ("header.csv", format!("label,x,y\n{rows}")),
    ] {
        let o = run(name, text.as_bytes());
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("train 4 "), "{name}");
    }
}

#[test]
fn gzip_files_of_several_members_are_read_whole() {
    let d = tmp();
    write_mnist(d.path(), 40, 12, false);
    // Re-compress the training images as two gzip members, as pigz and bgzip write them.
    let path = d.path().join("train-images-idx3-ubyte.gz");
    let raw = {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(&fs::read(&path).unwrap()[..]),
            &mut out,
        )
        .unwrap();
        out
    };
    let (a, b) = raw.split_at(raw.len() / 2);
    fs::write(&path, [gzip(a), gzip(b)].concat()).unwrap();
    let o = chainrule(&["train", "--data", p(d.path()), "--epochs", "1", "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn eval_needs_only_the_weights_and_the_test_files() {
    let d = tmp();
    write_mnist(d.path(), 40, 12, false);
    let model = d.path().join("m.safetensors");
    let o = chainrule(&[
        "train",
        "--data",
        p(d.path()),
        "--epochs",
        "1",
        "--save",
        p(&model),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut s = Snapshot::load(&model).unwrap();
    s.tensors.retain(|name, _| !name.starts_with("optimizer."));
    s.save(&model).unwrap();
    let test_only = d.path().join("test-only");
    fs::create_dir(&test_only).unwrap();
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        fs::copy(d.path().join(f), test_only.join(f)).unwrap();
    }
    let o = chainrule(&["eval", "--model", p(&model), "--data", p(&test_only), "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("accuracy"));
}

#[test]
fn scale_and_remat_fail_when_nothing_fits() {
    let d = tmp();
    let out = d.path().join("out");
    assert_error(
        &chainrule(&["scale", "--memory-limit", "1KiB", "--device", "cpu", "--out", p(&out)]),
        &["nothing fits"],
    );
    assert_error(
        &chainrule(&[
            "remat",
            "--depths",
            "2",
            "--width",
            "16",
            "--batch-size",
            "4",
            "--policies",
            "budget:1KiB",
            "--device",
            "cpu",
            "--out",
            p(&out),
        ]),
        &["nothing ran"],
    );
}

#[test]
fn messages_speak_plainly() {
    let d = tmp();
    // Test images of another size: said in pixels, not as Rust values.
    write_mnist(d.path(), 40, 12, false);
    fs::write(
        d.path().join("t10k-images-idx3-ubyte.gz"),
        gzip(&idx_bytes(0x803, &[12, 2, 8], &[0u8; 12 * 16])),
    )
    .unwrap();
    let o = chainrule(&["train", "--data", p(d.path()), "--epochs", "1"]);
    assert_error(&o, &["2x8", "4x4"]);
    // A file too short for a safetensors header.
    let short = d.path().join("short.safetensors");
    fs::write(&short, b"abc").unwrap();
    assert_error(
        &chainrule(&["eval", "--model", p(&short)]),
        &["shorter than a safetensors header"],
    );
    // No `none` among the policies: no NaN ratio.
    let out = d.path().join("scale");
    let o = chainrule(&[
        "scale",
        "--depth",
        "4",
        "--width",
        "32",
        "--memory-limit",
        "4MiB",
        "--policies",
        "sqrt",
        "--predict-only",
        "--device",
        "cpu",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("NaN"));
    // A run saved after its 1st epoch resumes at the 2nd.
    let model = d.path().join("m.safetensors");
    assert!(quick_train(d.path(), &["--save", p(&model)]).status.success());
    let o = quick_train(d.path(), &["--resume", p(&model), "--epochs", "2"]);
    assert!(stderr(&o).contains("at epoch 2 "), "{}", stderr(&o));
    // A held-out share is said as rows, never rounded to 100%.
    let o = quick_train(d.path(), &["--test-fraction", "0.999"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("100%"));
}

#[test]
fn default_widths_count_every_class_and_shifts_must_keep_the_image() {
    let d = tmp();
    // Class 2 appears once: whichever split it lands in, the default output layer has it.
    let csv = d.path().join("rare.csv");
    let mut s = String::new();
    for i in 0..40 {
        s.push_str(&format!("{},{},{}\n", i % 2, i % 5, i % 3));
    }
    s.push_str("2,9,9\n");
    fs::write(&csv, s).unwrap();
    for seed in ["0", "1", "2", "3"] {
        let o = chainrule(&[
            "train",
            "--csv",
            p(&csv),
            "--epochs",
            "1",
            "--seed",
            seed,
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "seed {seed}: {}", stderr(&o));
    }
    write_mnist(d.path(), 40, 12, false);
    assert_error(
        &chainrule(&["train", "--data", p(d.path()), "--augment-shift", "4"]),
        &["--augment-shift 4", "4x4"],
    );
}

#[test]
fn optimizer_settings_that_would_only_diverge_are_refused_up_front() {
    let d = tmp();
    for (flags, needle) in [
        (vec!["--optimizer", "sgd", "--momentum", "nan"], "--momentum"),
        (vec!["--optimizer", "sgd", "--momentum", "1.5"], "--momentum"),
        (vec!["--weight-decay=-1"], "--weight-decay"),
        (
            vec!["--optimizer", "sgd", "--momentum", "0", "--nesterov"],
            "--nesterov",
        ),
    ] {
        let o = quick_train(d.path(), &flags);
        assert_error(&o, &[needle]);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("epoch"),
            "{flags:?} trained first"
        );
    }
    // --data names a folder; a file there is said to be one.
    let csv = d.path().join("d.csv");
    assert_error(&chainrule(&["train", "--data", p(&csv)]), &["a file, not a folder"]);
}
