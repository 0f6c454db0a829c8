//! The five tools mean the same thing by the same flags: one model spec and one training
//! step, so `plan`'s predicted peak is the peak `train`, `bench`, `remat` and `scale`
//! measure, with no model flags (the defaults) and with the same typed flags; and depth
//! counts hidden layers everywhere.

use super::*;

/// stdout's JSON object (the last line, for tools that print one).
fn json_of(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// `plan --json` with `model` flags: (predicted peak, the whole record).
fn planned(model: &[&str], extra: &[&str]) -> (u64, serde_json::Value) {
    let v = json_of(&chainrule(
        &[&["plan", "--json", "--device", "cpu"], model, extra].concat(),
    ));
    (v["predicted_peak_bytes"].as_u64().unwrap(), v)
}

/// Each measuring tool's measured (and predicted) peak with `model` flags, against `plan`'s.
fn every_tool_measures_plans_peak(model: &[&str], checkpoint: &str) {
    let d = tmp();
    let (peak, plan) = planned(model, &["--checkpoint", checkpoint]);
    if chainrule::backend::gpus().is_err() {
        // `plan --device auto` plans for what every other tool's auto runs on: here, the CPU.
        let auto = json_of(&chainrule(
            &[&["plan", "--json", "--checkpoint", checkpoint], model].concat(),
        ));
        assert_eq!(auto["predicted_peak_bytes"], peak, "{auto}");
        assert_eq!(auto["device"], "cpu");
    }

    let metrics = d.path().join("m.jsonl");
    let train = [
        &["train", "--device", "cpu", "--epochs", "1", "--checkpoint", checkpoint],
        model,
        &["--metrics-out", p(&metrics)],
    ]
    .concat();
    let o = chainrule(&train);
    assert!(o.status.success(), "{}", stderr(&o));
    let records: Vec<serde_json::Value> = fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let config = &records[0];
    assert_eq!(config["kind"], "config");
    for key in [
        "layers",
        "activation",
        "dropout",
        "optimizer",
        "lr",
        "batch_size",
        "dtype",
    ] {
        assert_eq!(config[key], plan[key], "train and plan configure {key} alike");
    }
    let epoch = records.iter().find(|r| r["kind"] == "epoch").unwrap();
    assert_eq!(epoch["peak_bytes"], peak, "train measured {epoch}");
    assert_eq!(epoch["predicted_peak_bytes"], peak);

    let bench = [
        &[
            "bench",
            "--device",
            "cpu",
            "--json",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--checkpoint",
            checkpoint,
        ],
        model,
    ]
    .concat();
    let b = json_of(&chainrule(&bench));
    assert_eq!(b["peak_bytes"], peak, "bench measured {b}");
    assert_eq!(b["layers"], plan["layers"]);

    let out = d.path().join("remat");
    let remat = [
        &[
            "remat",
            "--device",
            "cpu",
            "--steps",
            "1",
            "--checkpoint",
            checkpoint,
            "--out",
            p(&out),
        ],
        model,
    ]
    .concat();
    let o = chainrule(&remat);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_file(&out.join("remat.json"));
    assert_eq!(rows[0]["measured_peak_bytes"], peak, "remat measured {}", rows[0]);
    assert_eq!(rows[0]["layers"], plan["layers"]);

    // scale finds its own batch: plan predicts what its confirming step measured there.
    let at = model.iter().position(|&f| f == "--batch-size");
    let model: Vec<&str> = model
        .iter()
        .enumerate()
        .filter(|(i, _)| at.is_none_or(|b| *i != b && *i != b + 1))
        .map(|(_, f)| *f)
        .collect();
    let model = &model[..];
    let out = d.path().join("scale");
    let limit = format!("{}", peak * 3);
    let scale = [
        &["--policies", checkpoint, "--memory-limit", &limit, "--steps", "0"],
        model,
    ]
    .concat();
    let (_, rows) = scale_rows(&out, &scale);
    let (max, measured) = (rows[0]["max_batch"].as_u64().unwrap(), &rows[0]["measured_peak_bytes"]);
    let (at_max, _) = planned(model, &["--checkpoint", checkpoint, "--batch-size", &max.to_string()]);
    assert_eq!(*measured, at_max, "scale measured {}", rows[0]);
    assert_eq!(rows[0]["optimizer"], plan["optimizer"]);
}

#[test]
fn every_tool_measures_the_peak_plan_predicts_with_no_model_flags() {
    every_tool_measures_plans_peak(&[], "none");
}

#[test]
fn every_tool_measures_the_peak_plan_predicts_with_the_same_typed_flags() {
    let model = [
        "--depth",
        "3",
        "--width",
        "48",
        "--activation",
        "gelu",
        "--dropout",
        "0.2",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.5",
        "--lr",
        "0.01",
        "--batch-size",
        "64",
        "--dtype",
        "bf16",
        "--update-in-backward",
    ];
    every_tool_measures_plans_peak(&model, "sqrt");
}

#[test]
fn every_tool_measures_the_peak_plan_predicts_for_residual_gated_and_batch_norm_blocks() {
    let residual = [
        "--block",
        "residual",
        "--depth",
        "3",
        "--width",
        "32",
        "--activation",
        "gelu",
        "--batch-size",
        "48",
    ];
    every_tool_measures_plans_peak(&residual, "cheap");
    let gated = [
        "--block",
        "gated",
        "--norm",
        "rms",
        "--expansion",
        "2",
        "--depth",
        "4",
        "--width",
        "24",
        "--activation",
        "silu",
        "--dtype",
        "bf16",
    ];
    every_tool_measures_plans_peak(&gated, "revolve:2");
    let batch_norm = [
        "--block",
        "residual",
        "--norm",
        "batch",
        "--depth",
        "3",
        "--width",
        "16",
        "--batch-size",
        "40",
        "--update-in-backward",
    ];
    every_tool_measures_plans_peak(&batch_norm, "revolve:2");
}

#[test]
fn depth_counts_hidden_layers_in_every_tool() {
    let d = tmp();
    let model = ["--depth", "3", "--width", "16"];
    let (_, plan) = planned(&model, &[]);
    assert_eq!(plan["layers"], "784-16-16-16-10");
    assert_eq!(plan["depth"], 3);

    let o = chainrule(&[&["train", "--device", "cpu", "--epochs", "1"], &model[..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("MLP 784-16-16-16-10 (3 hidden)"));

    let out = d.path().join("remat");
    let o = chainrule(&[
        "remat",
        "--device",
        "cpu",
        "--depth",
        "1,3",
        "--width",
        "16",
        "--policies",
        "none",
        "--steps",
        "1",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_file(&out.join("remat.json"));
    assert_eq!(rows[1]["layers"], "784-16-16-16-10");
    assert_eq!(rows[1]["depth"], 3);
    // `--depths`, remat's former name, still works.
    let o = chainrule(&[
        "remat",
        "--device",
        "cpu",
        "--depths",
        "3",
        "--width",
        "16",
        "--policies",
        "none",
        "--steps",
        "1",
        "--out",
        p(&out),
    ]);
    assert_eq!(
        json_file(&out.join("remat.json"))[0]["layers"],
        "784-16-16-16-10",
        "{}",
        stderr(&o)
    );

    // scale's deepest net has as many hidden layers as it says, and plan agrees it fits.
    let (_, rows) = scale_rows(
        &d.path().join("scale"),
        &[
            "--vary",
            "depth",
            "--width",
            "16",
            "--memory-limit",
            "8MiB",
            "--policies",
            "none",
            "--steps",
            "0",
        ],
    );
    let max = rows[0]["max_depth"].as_u64().unwrap() as usize;
    assert_eq!(rows[0]["layers"].as_str().unwrap().split('-').count(), max + 2);
    let (peak, _) = planned(&["--depth", &max.to_string(), "--width", "16"], &[]);
    assert_eq!(rows[0]["measured_peak_bytes"], peak);
}

#[test]
fn model_flags_are_refused_alike_in_every_tool() {
    let d = tmp();
    let out = d.path().join("o");
    for tool in [
        vec!["train", "--device", "cpu"],
        vec!["bench", "--device", "cpu"],
        vec!["plan"],
        vec!["remat", "--device", "cpu", "--out", p(&out)],
        vec!["scale", "--device", "cpu", "--memory-limit", "8MiB", "--out", p(&out)],
    ] {
        for (flags, needles) in [
            (vec!["--depth", "3"], vec!["--depth needs --width"]),
            (vec!["--width", "8"], vec!["--width 8 needs --depth"]),
            (vec!["--depth", "0", "--width", "8"], vec!["--depth 0"]),
            (
                vec!["--optimizer", "adam", "--momentum", "0.5"],
                vec!["--momentum", "SGD"],
            ),
            (vec!["--dropout", "1.5"], vec!["--dropout"]),
            (vec!["--activation", "swish"], vec!["--activation"]),
            (
                vec!["--block", "dense"],
                vec!["--block 'dense'", "plain, residual or gated"],
            ),
            (vec!["--norm", "rms"], vec!["--norm rms", "--block residual or gated"]),
            (
                vec!["--expansion", "2"],
                vec!["--expansion 2", "--block residual or gated"],
            ),
            (
                vec!["--block", "residual", "--norm", "group"],
                vec!["--norm 'group'", "layer, rms, batch or none"],
            ),
            (
                vec!["--block", "gated", "--expansion", "0", "--depth", "2", "--width", "8"],
                vec!["--expansion must be at least 1"],
            ),
            (
                vec!["--block", "residual", "--layers", "784-64-32-10"],
                vec!["--block residual", "64 and 32"],
            ),
            (
                vec!["--block", "residual"],
                vec!["--block residual", "give --depth D --width W", "unequal widths"],
            ),
            (
                vec!["--block", "gated", "--depth", "2501", "--width", "8"],
                vec!["--depth 2501", "at most 2500 blocks"],
            ),
        ] {
            let o = chainrule(&[&tool[..], &flags[..]].concat());
            assert_error(&o, &needles);
        }
    }
}

#[test]
fn a_depth_past_reason_or_a_width_past_memory_names_the_flags_typed() {
    assert_error(
        &chainrule(&["plan", "--depth", "18446744073709551615", "--width", "1"]),
        &["--depth 18446744073709551615", "at most"],
    );
    assert_error(
        &chainrule(&["plan", "--depth", "3", "--width", "99999999999"]),
        &["--depth 3 --width 99999999999", "weights"],
    );
}

#[test]
fn a_resumed_run_takes_its_own_depth_and_width_again_and_refuses_others() {
    let d = tmp();
    let (csv, save) = (d.path().join("d.csv"), d.path().join("run.safetensors"));
    write_csv(&csv, 60);
    let train = |extra: &[&str]| {
        let base = ["train", "--csv", p(&csv), "--device", "cpu", "--width", "16"];
        chainrule(&[&base[..], extra].concat())
    };
    let o = train(&["--depth", "2", "--epochs", "1", "--save", p(&save)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train(&["--depth", "2", "--epochs", "2", "--resume", p(&save)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_error(
        &train(&["--depth", "3", "--epochs", "3", "--resume", p(&save)]),
        &["--depth 3 --width 16", "differs from the model in"],
    );
}

#[test]
fn a_resumed_block_net_takes_its_block_flags_again_and_refuses_others() {
    let d = tmp();
    let (csv, save) = (d.path().join("d.csv"), d.path().join("run.safetensors"));
    write_csv(&csv, 60);
    let train = |extra: &[&str]| {
        let base = [
            "train",
            "--csv",
            p(&csv),
            "--device",
            "cpu",
            "--width",
            "16",
            "--depth",
            "2",
        ];
        chainrule(&[&base[..], extra].concat())
    };
    let o = train(&["--block", "gated", "--norm", "rms", "--epochs", "1", "--save", p(&save)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The header and the saved file say what the model is.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2 ReGLU blocks (width 16, expansion 4, RMSNorm)"), "{out}");
    let o = train(&["--block", "gated", "--epochs", "2", "--resume", p(&save)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train(&["--epochs", "3", "--resume", p(&save)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (flags, typed) in [
        (vec!["--norm", "layer"], "--block gated --norm layer --expansion 4"),
        (vec!["--block", "residual"], "--block residual --norm rms --expansion 4"),
        (vec!["--block", "plain"], "--block plain"),
        (vec!["--expansion", "2"], "--block gated --norm rms --expansion 2"),
    ] {
        let o = train(&[&flags[..], &["--epochs", "4", "--resume", p(&save)]].concat());
        assert_error(&o, &[typed, "differs from", "--block gated --norm rms --expansion 4"]);
    }
}
