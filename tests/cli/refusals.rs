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
    for (args, flag) in [
        (
            vec![
                "scale",
                "--device",
                "cpu",
                "--memory-limit",
                "1MiB",
                "--depth",
                "0",
                "--out",
                out,
            ],
            "--depth",
        ),
        (
            vec![
                "scale",
                "--device",
                "cpu",
                "--memory-limit",
                "1MiB",
                "--width",
                "0",
                "--out",
                out,
            ],
            "--width",
        ),
        (
            vec!["remat", "--device", "cpu", "--steps", "0", "--out", out],
            "--steps",
        ),
        (
            vec!["remat", "--device", "cpu", "--width", "0", "--out", out],
            "--width",
        ),
    ] {
        let o = chainrule(&args);
        assert_error(&o, &[flag, "at least 1"]);
        let line = stderr(&o);
        for other in ["--depth", "--width", "--steps", "--batch-size"]
            .iter()
            .filter(|f| **f != flag)
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
    for args in [
        vec![
            "bench",
            "--device",
            "cpu",
            "--layers",
            "784-32-10",
            "--batch-size",
            "18446744073709551615",
            "--steps",
            "1",
        ],
        vec![
            "bench",
            "--device",
            "cpu",
            "--layers",
            "784-32-10",
            "--batch-size",
            "100000000000",
            "--steps",
            "1",
        ],
        vec![
            "remat",
            "--device",
            "cpu",
            "--depths",
            "2",
            "--width",
            "32",
            "--batch-size",
            "18446744073709551615",
            "--out",
            p(d.path()),
        ],
    ] {
        assert_error(&chainrule(&args), &["--batch-size"]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .arg("info")
        .stdout(fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_error(&o, &["writing to stdout", "No space left"]);
}
