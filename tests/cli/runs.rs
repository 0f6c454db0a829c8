//! A training run's life: --help, saving, resuming bit for bit, corrupt snapshots, a loss
//! that diverges, Ctrl-C, unwritable paths and closed pipes.

use super::*;

#[test]
fn help_explains_every_flag_with_its_default() {
    let o = chainrule(&["train", "--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--data",
        "--csv",
        "--layers",
        "--activation",
        "--dropout",
        "--optimizer",
        "--lr",
        "--weight-decay",
        "--schedule",
        "--epochs",
        "--batch-size",
        "--seed",
        "--device",
        "--save",
        "--resume",
        "--metrics-out",
        "--log-every",
    ] {
        assert!(out.contains(flag), "{flag} missing from --help");
    }
    assert!(out.contains("[default: adamw]") && out.contains("[default: 128]"));
}

#[test]
fn resume_for_two_more_epochs_equals_four_epochs_bit_for_bit() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 150);
    let (a, b) = (d.path().join("a.safetensors"), d.path().join("b.safetensors"));
    let common = [
        "--csv",
        p(&csv),
        "--layers",
        "3-7-3",
        "--batch-size",
        "16",
        "--dropout",
        "0.2",
        "--optimizer",
        "sgd",
        "--nesterov",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["train"];
        args.extend(common);
        args.extend(extra);
        let o = chainrule(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run(&["--epochs", "2", "--save", p(&a)]);
    run(&["--resume", p(&a), "--epochs", "4", "--save", p(&a)]);
    run(&["--epochs", "4", "--save", p(&b)]);
    let (ca, cb) = (Snapshot::load(&a).unwrap(), Snapshot::load(&b).unwrap());
    assert_eq!(ca.state.step, cb.state.step);
    assert_eq!(
        ca.tensors.keys().collect::<Vec<_>>(),
        cb.tensors.keys().collect::<Vec<_>>()
    );
    assert!(ca.tensors.keys().any(|k| k.starts_with("optimizer.")));
    for (k, t) in &ca.tensors {
        let bits = |x: &ndarray::ArrayD<f32>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(t), bits(&cb.tensors[k]), "tensor {k} differs");
    }
}

#[test]
fn corrupt_truncated_and_foreign_safetensors_files() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 60);
    let good = d.path().join("good.safetensors");
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "1",
        "--save",
        p(&good),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(&good).unwrap();

    let truncated = d.path().join("truncated.safetensors");
    fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    assert_error(
        &chainrule(&["eval", "--model", p(&truncated), "--csv", p(&csv)]),
        &["truncated.safetensors", "not a valid safetensors"],
    );

    let garbage = d.path().join("garbage.safetensors");
    fs::write(&garbage, b"this is not a model at all, just some text").unwrap();
    assert_error(
        &chainrule(&["train", "--resume", p(&garbage), "--csv", p(&csv)]),
        &["garbage.safetensors", "not a valid safetensors"],
    );

    let foreign = d.path().join("foreign.safetensors");
    let data = [0u8; 16];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data).unwrap();
    fs::write(&foreign, safetensors::serialize([("weight", view)], &None).unwrap()).unwrap();
    assert_error(
        &chainrule(&["eval", "--model", p(&foreign), "--csv", p(&csv)]),
        &["foreign.safetensors", "not a chainrule model"],
    );

    // Valid safetensors with chainrule metadata but a weight of the wrong shape.
    let mut snapshot = Snapshot::load(&good).unwrap();
    snapshot
        .tensors
        .insert("layers.0.weight".into(), ndarray::ArrayD::zeros(vec![2, 2]));
    let wrong = d.path().join("wrong.safetensors");
    fs::write(&wrong, snapshot.to_bytes().unwrap()).unwrap();
    assert_error(
        &chainrule(&["eval", "--model", p(&wrong), "--csv", p(&csv)]),
        &["wrong.safetensors", "layers.0.weight", "[2, 2]"],
    );
}

#[test]
fn a_loss_that_becomes_nan_stops_and_keeps_the_last_good_model() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 90);
    let model = d.path().join("m.safetensors");
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "1",
        "--save",
        p(&model),
    ]);
    assert!(o.status.success());
    let before = fs::read(&model).unwrap();
    // Diverges within the first epoch: the earlier save must survive untouched.
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--save",
        p(&model),
    ]);
    assert_error(&o, &["at step", "not overwritten", p(&model)]);
    let err = stderr(&o);
    assert!(
        err.contains("loss became") || err.contains("parameters became"),
        "{err}"
    );
    assert_eq!(fs::read(&model).unwrap(), before, "the saved model was overwritten");
    // Diverges after a few epochs: what is on disk is the last good save, all finite.
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "50",
        "--optimizer",
        "sgd",
        "--lr",
        "3",
        "--momentum",
        "0.99",
        "--save",
        p(&model),
    ]);
    if !o.status.success() {
        assert_error(&o, &["at step", p(&model)]);
        let snapshot = Snapshot::load(&model).unwrap();
        assert!(
            snapshot.tensors.values().all(|t| t.iter().all(|v| v.is_finite())),
            "a non-finite model was saved"
        );
    }
}

#[test]
fn ctrl_c_finishes_the_step_saves_and_says_where() {
    let d = tmp();
    let model: PathBuf = d.path().join("int.safetensors");
    let child = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args([
            "--threads",
            "2",
            "train",
            "--epochs",
            "1000",
            "--layers",
            "784-64-10",
            "--save",
            p(&model),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first finished epoch (its save), then interrupt.
    let started = std::time::Instant::now();
    while !model.exists() {
        assert!(started.elapsed().as_secs() < 120, "no epoch finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("interrupted by SIGINT at") && stdout.contains(p(&model)),
        "{stdout}"
    );
    let snapshot = Snapshot::load(&model).unwrap();
    assert!(snapshot.state.step > 0);
    let leftovers: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn a_closed_output_pipe_ends_the_program_without_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args(["plan", "--layers", &format!("8{}-2", "-8".repeat(200)), "--explain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe while the program is still writing.
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_unwritable_save_path_fails_before_training() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 30);
    let missing = d.path().join("no/such/folder/m.safetensors");
    let o = chainrule(&["train", "--csv", p(&csv), "--save", p(&missing)]);
    assert_error(&o, &["--save", "cannot write"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("epoch"),
        "trained before failing"
    );
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--save", p(d.path())]),
        &["--save", "is a folder"],
    );
}

#[test]
fn update_in_backward_trains_like_a_plain_run_and_refuses_f16() {
    let d = tmp();
    let (a, b) = (d.path().join("a.safetensors"), d.path().join("b.safetensors"));
    let o = quick_train(d.path(), &["--epochs", "2", "--save", p(&a)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quick_train(d.path(), &["--epochs", "2", "--save", p(&b), "--update-in-backward"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same weights, bit for bit (the files' metadata JSON may differ in key order).
    assert!(
        saved_tensors(&a) == saved_tensors(&b),
        "--update-in-backward changed the trained weights"
    );
    assert_error(
        &quick_train(d.path(), &["--dtype", "f16", "--update-in-backward"]),
        &["--update-in-backward", "loss scaling"],
    );
}

#[test]
fn evaluation_takes_smaller_batches_when_a_memory_limit_needs_it() {
    // Training at batch 128 fits these limits; evaluating 1,000 rows at once would not (the
    // CPU's bf16 reference holds rounded copies of each product's f32 operands).
    for (dtype, limit) in [("f32", "1.5MiB"), ("bf16", "4MiB")] {
        let o = chainrule(&[
            "train",
            "--device",
            "cpu",
            "--layers",
            "784-64-32-16-10",
            "--epochs",
            "1",
            "--memory-limit",
            limit,
            "--dtype",
            dtype,
        ]);
        assert!(o.status.success(), "--dtype {dtype}: {}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("test acc"),
            "--dtype {dtype}"
        );
    }
}

#[test]
fn a_resumed_run_goes_on_in_its_own_dtype_unless_told_and_then_says_so() {
    let d = tmp();
    let m = d.path().join("m.safetensors");
    let o = quick_train(d.path(), &["--dtype", "f16", "--save", p(&m)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // No --dtype: f16 goes on, with its loss scaling.
    let o = quick_train(d.path(), &["--resume", p(&m), "--epochs", "2", "--save", p(&m)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("loss scale"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // --dtype f32: said, and the loss scaling ends.
    let o = quick_train(
        d.path(),
        &["--resume", p(&m), "--epochs", "3", "--dtype", "f32", "--save", p(&m)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("trained in f16; it goes on in f32"),
        "{}",
        stderr(&o)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("loss scale"));
    assert_eq!(Snapshot::load(&m).unwrap().state.dtype.as_deref(), Some("f32"));
}

#[test]
fn a_file_saved_before_dtypes_were_recorded_with_a_loss_scaler_resumes_as_f16() {
    let d = tmp();
    let m = d.path().join("m.safetensors");
    let o = quick_train(d.path(), &["--dtype", "f16", "--save", p(&m)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut old = Snapshot::load(&m).unwrap();
    old.state.dtype = None;
    old.save(&m).unwrap();
    let o = quick_train(
        d.path(),
        &[
            "--resume",
            p(&m),
            "--epochs",
            "2",
            "--dtype",
            "bf16",
            "--update-in-backward",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("trained in f16; it goes on in bf16"),
        "{}",
        stderr(&o)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("loss scale"));
}

#[test]
fn a_resumed_run_whose_epochs_never_beat_the_best_does_not_name_an_unwritten_best_file() {
    let d = tmp();
    let (save, best) = (d.path().join("sb.st"), d.path().join("best.st"));
    let model = [
        "--layers",
        "784-16-10",
        "--val-fraction",
        "0.1",
        "--lr",
        "0.2",
        "--device",
        "cpu",
    ];
    let mut first = vec!["train", "--epochs", "3", "--save", p(&save)];
    first.extend(model);
    assert!(chainrule(&first).status.success());
    let o = chainrule(&["train", "--resume", p(&save), "--epochs", "5", "--save-best", p(&best)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // At lr 0.2 this net's validation loss is best at epoch 2 and never again.
    assert!(!best.exists(), "{out}");
    assert!(
        out.contains("was not written") && !out.contains("the best epoch's model is"),
        "{out}"
    );
}
