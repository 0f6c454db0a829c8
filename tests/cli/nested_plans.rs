//! Nested checkpointing from the command line: `revolve:S` and the exact budget planner in
//! `plan`, `scale` and `train`.

use super::*;

fn plan_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    let o = chainrule(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn revolve_with_one_checkpoint_reruns_each_layer_once_per_layer_after_it() {
    let v = plan_json(&[
        "--layers",
        "20-16-16-16-16-16-5",
        "--checkpoint",
        "revolve:1",
        "--explain",
    ]);
    assert_eq!(v["chosen"], "revolve:1");
    let runs: Vec<u64> = v["forward_runs_by_layer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap())
        .collect();
    assert_eq!(runs, vec![6, 5, 4, 3, 2, 1]);
    assert!(v["nesting"].as_str().unwrap().contains('['), "{v}");
    assert!(v["recompute_time_percent"].as_f64().unwrap() > 100.0, "{v}");
}

#[test]
fn a_budget_takes_the_least_recompute_time_that_fits() {
    let layers = "64-512-32-512-32-512-32-512-32-512-32-512-32-10";
    let common = [
        "--layers",
        layers,
        "--batch-size",
        "512",
        "--optimizer",
        "sgd",
        "--dropout",
        "0",
    ];
    let peak = |v: &serde_json::Value| v["predicted_peak_bytes"].as_u64().unwrap();
    let with = |policy: &str| {
        let mut args = common.to_vec();
        args.extend(["--checkpoint", policy]);
        plan_json(&args)
    };
    let sqrt = with("sqrt");
    let budget = peak(&sqrt);
    let planned = with(&format!("budget:{budget}"));
    assert!(peak(&planned) <= budget);
    let time = |v: &serde_json::Value| v["recompute_seconds"].as_f64().unwrap();
    for k in 1..=12 {
        let every = with(&format!("every:{k}"));
        if peak(&every) <= budget {
            assert!(time(&planned) <= time(&every), "every:{k} recomputes less: {every}");
        }
    }
    // On this net of alternating widths the nested planner beats sqrt by far.
    assert_eq!(planned["chosen"], "nested", "{planned}");
    assert!(time(&planned) < 0.8 * time(&sqrt), "{planned} against {sqrt}");
    // The smallest nested plan fits where single-level plans cannot.
    let least = peak(&with("revolve:1"));
    let tight = with(&format!("budget:{least}"));
    assert!(peak(&tight) <= least);
}

#[test]
fn a_bad_revolve_is_named_with_its_flag() {
    for bad in ["revolve:0", "revolve:x", "revolve:", "revolve:-1"] {
        assert_error(
            &chainrule(&["plan", "--checkpoint", bad]),
            &[&format!("--checkpoint '{bad}'")],
        );
    }
    assert_error(&chainrule(&["plan", "--rates", "1,2"]), &["--rates '1,2'"]);
}

#[test]
fn scale_reports_the_plan_and_recompute_factor_at_each_maximum() {
    let d = tmp();
    let out = d.path().join("scale");
    let args = [
        "--depth",
        "32",
        "--width",
        "32",
        "--memory-limit",
        "3MiB",
        "--predict-only",
    ];
    let (o, rows) = scale_rows(&out, &[&args[..], &["--policies", "none,revolve:2,budget"]].concat());
    assert_eq!(rows[0]["recompute_factor"], 1.0);
    for r in &rows[1..] {
        assert!(r["recompute_factor"].as_f64().unwrap() > 1.0, "{r}");
        assert!(r["max_batch"].as_u64() > rows[0]["max_batch"].as_u64(), "{r}");
    }
    assert!(String::from_utf8_lossy(&o.stdout).contains("recompute"));
}

#[test]
fn training_under_revolve_matches_none_on_the_first_step() {
    let o = chainrule(&[
        "train",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--checkpoint",
        "revolve:2",
        "--verify-checkpoint",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("identical to none"), "{text}");
}

#[test]
fn plan_predicts_what_train_measures_for_the_same_flags_on_the_cpu() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 60);
    let metrics = d.path().join("m.jsonl");
    // Train's defaults (sgd keeps a momentum buffer there too), a 16-bit step on the CPU.
    let flags = [
        "--layers",
        "3-40-7-40-3",
        "--batch-size",
        "7",
        "--checkpoint",
        "revolve:2",
        "--dtype",
        "bf16",
    ];
    let extra = ["--optimizer", "sgd", "--device", "cpu"];
    let mut train = vec!["train", "--csv", p(&csv), "--epochs", "1", "--metrics-out", p(&metrics)];
    train.extend(flags.iter().chain(&extra));
    let o = chainrule(&train);
    assert!(o.status.success(), "{}", stderr(&o));
    // The first record after the run's configuration.
    let first: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&metrics).unwrap().lines().nth(1).unwrap()).unwrap();
    let planned = plan_json(&[&flags[..], &extra[..]].concat());
    assert_eq!(
        planned["predicted_peak_bytes"], first["peak_bytes"],
        "{planned} against {first}"
    );
    assert_error(&chainrule(&["plan", "--checkpoint", "revolve:0"]), &["S >= 1"]);
}

#[test]
fn a_chain_of_twelve_thousand_layers_is_planned_not_aborted() {
    // Plans are nested as deep as the chain: walked on a default stack, this aborted with a
    // stack overflow from ~10,000 layers.
    let layers = format!("{}-10", vec!["4"; 12_000].join("-"));
    for policy in ["budget:1.84MiB", "revolve:2"] {
        #[rustfmt::skip]
        let args = [
            "plan", "--layers", &layers, "--checkpoint", policy, "--batch-size", "1", "--optimizer", "sgd",
            "--momentum", "0", "--dropout", "0", "--explain",
        ];
        let o = chainrule(&args);
        assert!(o.status.success(), "{policy}: {}", stderr(&o));
    }
}
