//! Hostile runs against what is saved: only regular files are replaced (permissions kept,
//! links followed), one run saves to a file at a time, no output is another path of the
//! run, nothing non-finite is saved, and an epoch whose evaluation fails is kept.

use super::*;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

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
    // Every output is checked before any training: a plot into a folder too.
    let o = quick_train(d.path(), &["--plot", p(d.path())]);
    assert_error(&o, &["--plot", "is a folder"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("epoch"));
    // A folder that does not exist yet is refused before any training.
    let o = quick_train(d.path(), &["--save", &format!("{}/newdir/", p(d.path()))]);
    assert_error(&o, &["--save", "folder"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("epoch"));
}

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
    use chainrule::io::TrainSettings;
    use chainrule::nn::MlpSpec;
    use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
    use chainrule::plan::CheckpointPolicy;
    use chainrule::train::{TrainConfig, TrainError, Trainer};
    use ndarray::{arr1, arr2};
    let config = TrainConfig {
        settings: TrainSettings {
            epochs: 1,
            batch_size: 2,
            lr: 0.1,
            schedule: LrSchedule::Constant,
            seed: 0,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        checkpoint: CheckpointPolicy::None,
        loss_scaling: false,
        update_in_backward: false,
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
fn an_epoch_whose_evaluation_does_not_fit_at_once_is_evaluated_in_smaller_batches_and_saved() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    // Training batches of 8 fit in 3 MiB; evaluating 1,000 test images at once does not
    // (this used to fail the run after the epoch): evaluation takes batches that fit.
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
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("test acc"));
    let saved = Snapshot::load(&model).expect("the trained epoch was saved");
    assert_eq!(saved.state.epoch, 1);
}

#[test]
fn a_metrics_fifo_that_nothing_reads_is_an_error_not_a_hang() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 30);
    let fifo = d.path().join("metrics");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let child = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args([
            "train",
            "--csv",
            p(&csv),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--metrics-out",
            p(&fifo),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = finished_within(child, 30, "still waiting for a reader");
    assert_error(&o, &["--metrics-out", "nothing reads"]);
}

#[test]
fn no_write_of_any_command_replaces_a_file_a_run_saves_to_or_its_own_input() {
    let d = tmp();
    let (model, saving) = (d.path().join("m.safetensors"), d.path().join("s.safetensors"));
    assert!(quick_train(d.path(), &["--save", p(&model)]).status.success());
    let before = fs::read(&model).unwrap();
    {
        let _held = chainrule::io::SaveLock::acquire(&saving).unwrap();
        let o = chainrule(&["export", "--model", p(&model), "--onnx", p(&saving)]);
        assert_error(&o, &["--onnx", "another chainrule run"]);
        assert_error(
            &quick_train(d.path(), &["--plot", p(&saving)]),
            &["--plot", "another chainrule run"],
        );
        let o = quick_train(d.path(), &["--metrics-out", p(&saving)]);
        assert_error(&o, &["--metrics-out", "another chainrule run"]);
    }
    // export reads the model it would otherwise overwrite, by any name.
    let hard = d.path().join("hard.safetensors");
    fs::hard_link(&model, &hard).unwrap();
    for out in [&model, &hard] {
        let o = chainrule(&["export", "--model", p(&model), "--onnx", p(out)]);
        assert_error(&o, &["--onnx", "same file as --model"]);
    }
    assert_eq!(fs::read(&model).unwrap(), before, "the model changed");
    // Metrics go where a stream may go, but not into a folder or over a read-only file.
    assert_error(
        &quick_train(d.path(), &["--metrics-out", p(d.path())]),
        &["--metrics-out", "folder"],
    );
    let ro = d.path().join("ro.jsonl");
    fs::write(&ro, b"keep").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).unwrap();
    assert_error(
        &quick_train(d.path(), &["--metrics-out", p(&ro)]),
        &["--metrics-out", "read-only"],
    );
    assert_eq!(fs::read(&ro).unwrap(), b"keep");
    // remat checks its --out files before measuring anything.
    fs::create_dir_all(d.path().join("out/remat.csv")).unwrap();
    let o = chainrule(&[
        "remat",
        "--device",
        "cpu",
        "--depths",
        "2",
        "--width",
        "8",
        "--out",
        p(&d.path().join("out")),
    ]);
    assert_error(&o, &["--out", "remat.csv", "folder"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("depth"), "measured first");
}

#[test]
fn a_metrics_write_that_fails_mid_run_stops_it_and_still_saves_the_model() {
    let d = tmp();
    let model = d.path().join("m.safetensors");
    let o = quick_train(
        d.path(),
        &["--epochs", "2", "--metrics-out", "/dev/full", "--save", p(&model)],
    );
    assert_error(&o, &["--metrics-out /dev/full", "No space left", "saved"]);
    let saved = Snapshot::load(&model).expect("the model trained so far is saved");
    assert_eq!(saved.state.epoch, 1, "it stopped after the first epoch's record");
}

/// A legal file name near the 255-byte limit saves like any other (its hidden temporary and
/// lock names fit too): `--save`, `--save-best` and `--plot`, after every epoch and on
/// resume; a name past the limit is refused before training, naming its length.
#[test]
fn file_names_near_the_name_limit_save_and_resume_and_longer_ones_are_refused_up_front() {
    let d = tmp();
    let named = |len: usize, ext: &str| d.path().join("m".repeat(len - ext.len()) + ext);
    for len in [245, 249, 250, 255] {
        let (save, best, plot) = (named(len, ".st"), named(len, ".bst"), named(len, ".svg"));
        let o = chainrule(&[
            "train",
            "--layers",
            "784-8-10",
            "--epochs",
            "2",
            "--val-fraction",
            "0.1",
            "--device",
            "cpu",
            "--save",
            p(&save),
            "--save-best",
            p(&best),
            "--plot",
            p(&plot),
        ]);
        assert!(o.status.success(), "{len} bytes: {}", stderr(&o));
        assert!(save.is_file() && best.is_file() && plot.is_file(), "{len} bytes");
        let o = chainrule(&["train", "--resume", p(&save), "--epochs", "3", "--save", p(&save)]);
        assert!(o.status.success(), "{len} bytes, resumed: {}", stderr(&o));
    }
    let o = chainrule(&["train", "--layers", "784-8-10", "--save", p(&named(256, ".st"))]);
    assert_error(&o, &["--save", "256 bytes", "at most 255"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("epoch"),
        "it trained first"
    );
}

/// Two outputs of one run that lead to one file through links (not yet there, so no path
/// check can see it) are this run's own clash, not "another chainrule run".
#[test]
fn two_outputs_of_one_run_through_links_are_named_as_this_runs_clash() {
    let d = tmp();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::os::unix::fs::symlink(d.path().join("one.out"), &a).unwrap();
    std::os::unix::fs::symlink(d.path().join("one.out"), &b).unwrap();
    let o = chainrule(&[
        "train",
        "--layers",
        "784-8-10",
        "--epochs",
        "1",
        "--save",
        p(&a),
        "--plot",
        p(&b),
    ]);
    assert_error(&o, &["--plot", "this run already writes that file"]);
    assert!(!stderr(&o).contains("another chainrule run"), "{}", stderr(&o));
}
