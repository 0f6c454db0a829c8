//! `--clip-grad-norm` as a user meets it: named in the header, the metrics and the saved
//! file; kept by a resumed run, which continues bitwise; refused where it cannot work.

use super::*;

#[test]
fn a_clipped_run_says_so_saves_it_and_resumes_bitwise() {
    let dir = tmp();
    let (whole, half, metrics) = (
        dir.path().join("whole.safetensors"),
        dir.path().join("half.safetensors"),
        dir.path().join("m.jsonl"),
    );
    let o = quick_train(
        dir.path(),
        &[
            "--epochs",
            "2",
            "--clip-grad-norm",
            "0.05",
            "--save",
            p(&whole),
            "--metrics-out",
            p(&metrics),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("· clip grad norm 0.05"));
    let config: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&metrics).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(config["clip_grad_norm"], 0.05);
    assert_eq!(Snapshot::load(&whole).unwrap().optimizer.clip_grad_norm, Some(0.05));
    // Half the run, then the rest resumed without the flag: the file's clipping goes on.
    let o = quick_train(
        dir.path(),
        &["--epochs", "1", "--clip-grad-norm", "0.05", "--save", p(&half)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = dir.path().join("d.csv");
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
        "a resumed clipped run differs"
    );
    // A clipped run is not the unclipped one.
    let free = dir.path().join("free.safetensors");
    assert!(quick_train(dir.path(), &["--epochs", "2", "--save", p(&free)])
        .status
        .success());
    assert!(
        saved_tensors(&free) != saved_tensors(&whole),
        "clipping changed nothing"
    );
    // Another maximum on resume is refused.
    let o = chainrule(&[
        "train",
        "--resume",
        p(&half),
        "--csv",
        p(&csv),
        "--epochs",
        "3",
        "--clip-grad-norm",
        "1",
    ]);
    assert_error(&o, &["--clip-grad-norm 1 differs", "0.05"]);
}

#[test]
fn a_maximum_that_is_not_positive_or_beside_updates_inside_backward_is_refused() {
    let dir = tmp();
    for (typed, shown) in [("0", "0"), ("-1", "-1"), ("nan", "NaN"), ("inf", "inf")] {
        let o = quick_train(dir.path(), &["--clip-grad-norm", typed]);
        assert_error(&o, &[&format!("--clip-grad-norm {shown}:"), "must be a number > 0"]);
    }
    let o = quick_train(dir.path(), &["--clip-grad-norm", "1", "--update-in-backward"]);
    assert_error(&o, &["--update-in-backward with --clip-grad-norm", "every gradient"]);
    let o = chainrule(&[
        "plan",
        "--clip-grad-norm",
        "1",
        "--update-in-backward",
        "--device",
        "cpu",
    ]);
    assert_error(&o, &["--update-in-backward with --clip-grad-norm"]);
}
