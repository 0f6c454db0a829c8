//! The other commands: info, bench, --device, plan, remat, scale, and out-of-memory advice.

use super::*;

#[test]
fn info_lists_backends() {
    let o = chainrule(&["info"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("cpu") && out.contains("usable") && out.contains("threads"),
        "{out}"
    );
}

#[test]
fn bench_json_has_the_documented_keys() {
    let o = chainrule(&[
        "bench",
        "--layers",
        "20-16-4",
        "--batch-size",
        "8",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--ceiling",
        "128",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "samples_per_sec",
        "gflops",
        "step_ms_median",
        "peak_bytes",
        "device",
        "matmul_gflops",
        "ceiling_gflops",
        "matmul_over_ceiling",
    ] {
        assert!(v[key].is_number() || v[key].is_string(), "{key} missing: {v}");
    }
    assert_eq!(v["peak_bytes"], v["predicted_peak_bytes"]);
    assert_eq!(v["ceiling_size"], 128);
    let share = v["matmul_over_ceiling"].as_f64().unwrap();
    let rates = v["matmul_gflops_actual"].as_f64().unwrap() / v["ceiling_gflops"].as_f64().unwrap();
    assert!((share - rates).abs() < 1e-9 && share > 0.0, "{v}");
}

#[test]
fn bench_ceiling_0_skips_it_and_one_too_small_or_too_large_for_memory_is_refused_by_name() {
    let base = [
        "bench",
        "--device",
        "cpu",
        "--layers",
        "20-16-4",
        "--batch-size",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
    ];
    let skipped = chainrule(&[&base[..], &["--ceiling", "0", "--json"]].concat());
    assert!(skipped.status.success(), "{}", stderr(&skipped));
    let v: serde_json::Value = serde_json::from_slice(&skipped.stdout).unwrap();
    assert!(
        v["ceiling_gflops"].is_null() && v["matmul_over_ceiling"].is_null(),
        "{v}"
    );
    let table = chainrule(&[&base[..], &["--ceiling", "0"]].concat());
    assert!(!String::from_utf8_lossy(&table.stdout).contains("ceiling"));
    let huge = chainrule(&[&base[..], &["--ceiling", "4000000000"]].concat());
    assert_eq!(huge.status.code(), Some(1), "{}", stderr(&huge));
    let err = stderr(&huge);
    assert!(
        err.contains("--ceiling 4000000000") && err.contains("more than 16 EiB") && err.contains("free"),
        "{err}"
    );
    let tiny = chainrule(&[&base[..], &["--ceiling", "17"]].concat());
    assert_eq!(tiny.status.code(), Some(1), "{}", stderr(&tiny));
    assert!(
        stderr(&tiny).contains("--ceiling 17: products that small"),
        "{}",
        stderr(&tiny)
    );
}

#[test]
fn device_auto_says_where_it_runs_and_an_unusable_cuda_is_a_clear_error() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 40);
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "1",
        "--device",
        "auto",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.starts_with("device: "))
        .unwrap_or_else(|| panic!("no device line: {err}"));
    if line.starts_with("device: cpu (") {
        // No GPU here: asking for one by name fails with the reason, never a panic.
        assert_error(
            &chainrule(&["train", "--csv", p(&csv), "--device", "cuda"]),
            &["--device cuda", "no usable GPU"],
        );
    } else {
        assert!(line.starts_with("device: cuda:0 ("), "{line}");
    }
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--device", "cuda:99"]),
        &["--device cuda:99"],
    );
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--device", "tpu"]),
        &["--device 'tpu'"],
    );
}

#[test]
fn checkpointed_training_verifies_and_plan_and_remat_report() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 60);
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-9-9-9-9-3",
        "--epochs",
        "1",
        "--dropout",
        "0.3",
        "--checkpoint",
        "sqrt",
        "--verify-checkpoint",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("gives gradients identical to none"));
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--checkpoint", "budget:1KiB"]),
        &["budget", "smallest predicted peak"],
    );
    // A budget nothing fits is the budget's fault, not the verification's.
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--checkpoint",
        "budget:1KiB",
        "--verify-checkpoint",
    ]);
    assert_error(&o, &["budget", "smallest predicted peak"]);
    assert!(!stderr(&o).contains("comparison step"), "{}", stderr(&o));

    let o = chainrule(&[
        "plan",
        "--layers",
        "32-32-32-32-32-32-32-32-32-10",
        "--batch-size",
        "64",
        "--checkpoint",
        "every:2",
        "--json",
        "--explain",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["layer_boundaries"], 8);
    assert_eq!(v["kept_boundaries"].as_array().unwrap().len(), 4);
    assert!(v["recompute_percent"].as_f64().unwrap() > 0.0);
    assert!(v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["fate"] == "dropped, recomputed in backward"));

    let out = d.path().join("remat");
    let o = chainrule(&[
        "remat",
        "--depths",
        "2,4",
        "--width",
        "16",
        "--batch-size",
        "8",
        "--policies",
        "none,sqrt",
        "--steps",
        "1",
        "--device",
        "cpu",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&fs::read_to_string(out.join("remat.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r["measured_peak_bytes"], r["predicted_peak_bytes"], "{r}");
    }
    assert!(fs::read_to_string(out.join("memory.svg")).unwrap().starts_with("<svg"));
    assert_eq!(fs::read_to_string(out.join("remat.csv")).unwrap().lines().count(), 5);
}

#[test]
fn scale_finds_the_largest_batch_that_fits_and_confirms_it_under_the_limit() {
    let d = tmp();
    let out = d.path().join("scale");
    // 24 hidden layers of 32 on 32 inputs, plain SGD without dropout: activations set the peak.
    let layers = format!("{}-10", ["32"; 25].join("-"));
    let args = [
        "--layers",
        &layers,
        "--optimizer",
        "sgd",
        "--momentum",
        "0",
        "--dropout",
        "0",
        "--memory-limit",
        "2MiB",
        "--steps",
        "1",
    ];
    let (_, rows) = scale_rows(
        &out,
        &[&args[..], &["--policies", "none,sqrt,budget", "--sweep-from", "64"]].concat(),
    );
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r["within_limit"], true, "{r}");
        assert_eq!(r["next_size_predicted_to_fit"], false, "{r}");
        assert!(r["measured_peak_bytes"].as_u64().unwrap() <= 2 * 1024 * 1024);
    }
    let (none, sqrt) = (
        rows[0]["max_batch"].as_u64().unwrap(),
        rows[1]["max_batch"].as_u64().unwrap(),
    );
    assert!(sqrt > 2 * none, "sqrt {sqrt} vs none {none}");
    assert!(fs::read_to_string(out.join("throughput.svg"))
        .unwrap()
        .contains("<polyline"));
    assert_error(&chainrule(&["scale", "--device", "cpu"]), &["--memory-limit"]);
}

#[test]
fn out_of_memory_in_train_names_the_bytes_and_suggests_a_plan() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 200);
    let layers = format!("3{}-3", "-64".repeat(12));
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        &layers,
        "--batch-size",
        "128",
        "--optimizer",
        "sgd",
        "--momentum",
        "0",
        "--device",
        "cpu",
        "--memory-limit",
        "600KiB",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(
        err.contains("out of memory") && err.contains("bytes requested"),
        "{err}"
    );
    assert!(err.contains("suggestion: --checkpoint"), "{err}");
}

#[test]
fn plan_with_a_16_bit_dtype_counts_activations_at_2_bytes_and_weight_twins() {
    let json = |dtype: &str| -> serde_json::Value {
        let o = chainrule(&[
            "plan",
            "--layers",
            "64-256-256-10",
            "--batch-size",
            "512",
            "--dropout",
            "0",
            "--checkpoint",
            "none",
            "--optimizer",
            "sgd",
            "--dtype",
            dtype,
            "--device",
            "cuda",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // A plan for a GPU's memory, whatever this machine has.
    let (f32, bf16) = (json("f32"), json("bf16"));
    let saved = |v: &serde_json::Value| v["saved_activation_bytes"].as_u64().unwrap();
    // Both hidden activations (512x256) and the input (512x64, which only products read) are
    // kept at 2 bytes a value instead of 4; the labels and the logits stay f32.
    assert_eq!(saved(&f32) - saved(&bf16), 2 * (512 * 256 * 2) + 512 * 64 * 2, "{bf16}");
    // The weights' twins (64x256 + 256x256 + 256x10 values at 2 bytes) join the parameters.
    let params = |v: &serde_json::Value| v["at_peak"]["parameters"].as_u64().unwrap();
    assert_eq!(params(&bf16) - params(&f32), 2 * (64 * 256 + 256 * 256 + 256 * 10));
    assert_error(&chainrule(&["plan", "--dtype", "f8"]), &["--dtype", "f8"]);
}

#[test]
fn plan_with_updates_inside_backward_frees_each_gradient_after_its_update() {
    let layers = format!("{}-10", vec!["256"; 17].join("-"));
    let json = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "plan",
            "--layers",
            &layers,
            "--batch-size",
            "32",
            "--dropout",
            "0",
            "--optimizer",
            "sgd",
        ];
        args.extend_from_slice(extra);
        args.push("--json");
        let o = chainrule(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let plain = json(&["--checkpoint", "none"]);
    let inside = json(&["--checkpoint", "none", "--update-in-backward"]);
    let peak = |v: &serde_json::Value| v["predicted_peak_bytes"].as_u64().unwrap();
    let grads = |v: &serde_json::Value| v["at_peak"]["gradients"].as_u64().unwrap();
    assert!(peak(&inside) < peak(&plain), "{inside}");
    // At the peak, at most one layer's gradients (256x256 weights and a bias) are alive.
    assert!(grads(&inside) <= (256 * 256 + 256) * 4, "{inside}");
    assert_eq!(inside["update_in_backward"], true);
}

#[test]
fn scale_by_depth_confirms_each_maximum_by_a_step_on_the_cpu() {
    // The confirming trainer's host-side draw of the initial weights is not device memory:
    // it must not count against the limit (it made every depth search fail on the CPU).
    let d = tmp();
    let out = d.path().join("s");
    let args = [
        "--vary",
        "depth",
        "--width",
        "32",
        "--batch-size",
        "16",
        "--memory-limit",
        "1MiB",
    ];
    let (_, rows) = scale_rows(
        &out,
        &[&args[..], &["--policies", "none,sqrt", "--steps", "1"]].concat(),
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r["measured_peak_bytes"], r["predicted_peak_bytes"], "{r}");
        assert!(r["max_depth"].as_u64().unwrap() > 1, "{r}");
        assert_eq!(r["within_limit"], true, "{r}");
    }
}

#[test]
fn a_bad_policy_is_named_with_the_flag_it_came_from() {
    let d = tmp();
    let o = chainrule(&["plan", "--checkpoint", "budget:1.5"]);
    assert_error(&o, &["--checkpoint 'budget:1.5'", "whole"]);
    let o = chainrule(&[
        "remat",
        "--device",
        "cpu",
        "--policies",
        "none,every:0",
        "--out",
        p(&d.path().join("r")),
    ]);
    assert_error(&o, &["--policies 'every:0'"]);
    let o = chainrule(&["plan", "--dtype", "f16", "--update-in-backward"]);
    assert_error(&o, &["--update-in-backward", "--dtype f16"]);
}

#[test]
fn plan_explain_counts_how_many_times_each_forward_op_runs() {
    let o = chainrule(&[
        "plan",
        "--layers",
        "20-16-16-16-16-5",
        "--checkpoint",
        "sqrt",
        "--explain",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for t in v["tensors"].as_array().unwrap() {
        let runs = t["forward_runs"].as_u64().unwrap();
        let recomputed = t["fate"].as_str().unwrap().contains("recomputed");
        assert_eq!(runs, if recomputed { 2 } else { 1 }, "{t}");
    }
}
