//! Hostile inputs: sizes that cannot exist are errors (never a panic, an abort or a wrapped
//! number), data is read or refused by line and column, and messages speak plainly.

use super::*;

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

#[test]
fn out_of_memory_names_the_training_step_and_suggests_updates_inside_backward_where_they_fit() {
    // The weight gradients set this step's peak: only updates inside backward bring it under.
    // A few rows of 784 features keep the batch-1 epoch short.
    let d = tmp();
    let csv = d.path().join("wide.csv");
    let row = |i: usize| format!("{},{}", i % 10, vec!["0.5"; 784].join(","));
    std::fs::write(&csv, (0..20).map(row).collect::<Vec<_>>().join("\n")).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--device",
            "cpu",
            "--csv",
            p(&csv),
            "--layers",
            "784-300-10",
            "--batch-size",
            "1",
            "--optimizer",
            "sgd",
            "--momentum",
            "0",
            "--memory-limit",
            "1900000",
            "--epochs",
            "1",
        ];
        args.extend_from_slice(extra);
        chainrule(&args)
    };
    let o = run(&[]);
    assert_error(&o, &["for a training step"]);
    assert!(
        stderr(&o).contains("suggestion: --checkpoint none --update-in-backward fits --batch-size 1"),
        "{}",
        stderr(&o)
    );
    let o = run(&["--update-in-backward"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_negative_number_reaches_its_flag_and_the_error_names_the_flag() {
    for (args, flag) in [
        (&["train", "--dropout", "-0.1"][..], "--dropout"),
        (&["train", "--memory-limit", "-1"][..], "--memory-limit"),
        (&["train", "--epochs", "-3"][..], "--epochs"),
        (&["plan", "--batch-size", "-5"][..], "--batch-size"),
        (&["bench", "--steps", "-1"][..], "--steps"),
        (&["scale", "--max-recompute", "-2"][..], "--max-recompute"),
        (&["train", "--lr", "-1e-3"][..], "--lr"),
        (&["train", "--lr", "-.5"][..], "--lr"),
        (&["train", "--dropout", "-inf"][..], "--dropout"),
        (&["train", "--memory-limit", "-1GiB"][..], "--memory-limit"),
        (&["train", "--layers", "-784-10"][..], "--layers"),
    ] {
        let o = chainrule(args);
        assert_error(&o, &[flag, "-"]);
    }
}

#[test]
fn a_list_entry_given_twice_is_refused_by_name() {
    let d = tmp();
    let out = p(d.path());
    let o = chainrule(&[
        "scale",
        "--device",
        "cpu",
        "--memory-limit",
        "64MiB",
        "--policies",
        "none,sqrt,none",
        "--out",
        out,
    ]);
    assert_error(&o, &["--policies", "'none'", "twice"]);
    let o = chainrule(&["remat", "--device", "cpu", "--depths", "4,8,4", "--out", out]);
    assert_error(&o, &["--depth", "'4'", "twice"]);
    let o = chainrule(&["remat", "--device", "cpu", "--policies", "sqrt,sqrt", "--out", out]);
    assert_error(&o, &["--policies", "'sqrt'", "twice"]);
}
