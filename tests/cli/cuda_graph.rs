//! `--cuda-graph` where there is no GPU: refused when asked for outright, harmless otherwise.
//! Replay itself is checked on a GPU (tests/cuda_parity/graphs.rs).

use super::*;

#[test]
fn cuda_graph_is_refused_by_the_cpu_when_on_and_changes_nothing_when_auto() {
    let d = tmp();
    let (a, b) = (d.path().join("a.safetensors"), d.path().join("b.safetensors"));
    assert_error(
        &quick_train(d.path(), &["--cuda-graph", "on"]),
        &["--cuda-graph on", "GPU"],
    );
    assert_error(
        &quick_train(d.path(), &["--cuda-graph", "sometimes"]),
        &["--cuda-graph", "sometimes"],
    );
    let o = quick_train(d.path(), &["--save", p(&a)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = quick_train(
        d.path(),
        &[
            "--save",
            p(&b),
            "--cuda-graph",
            "auto",
            "--metrics-out",
            p(&d.path().join("m.jsonl")),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("cuda graph"),
        "the CPU has no graphs to report"
    );
    let metrics = fs::read_to_string(d.path().join("m.jsonl")).unwrap();
    assert!(metrics.contains(r#""cuda_graph":"off""#), "{metrics}");
    assert!(
        saved_tensors(&a) == saved_tensors(&b),
        "--cuda-graph auto changed what the CPU trained"
    );
    let o = chainrule(&[
        "bench",
        "--device",
        "cpu",
        "--layers",
        "4-4-2",
        "--batch-size",
        "8",
        "--steps",
        "1",
        "--cuda-graph",
        "on",
    ]);
    assert_error(&o, &["--cuda-graph on", "GPU"]);
}
