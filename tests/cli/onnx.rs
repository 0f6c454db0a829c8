//! The ONNX export loaded in onnxruntime: the same predictions as chainrule on the shipped
//! test split. Needs a Python with onnxruntime and numpy, named by ONNX_PYTHON; .ci/run
//! makes one and runs this with --ignored, so without it the test is reported as ignored.

use super::*;

/// onnxruntime's logits for the shipped test images (raw pixels; the model normalizes).
const RUN_ONNX: &str = r#"
import gzip, json, sys
import numpy as np, onnxruntime as ort
onnx, images, ours = sys.argv[1], sys.argv[2], sys.argv[3]
raw = gzip.open(images).read()
n, r, c = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
x = np.frombuffer(raw[16:], np.uint8).reshape(n, r * c).astype(np.float32)
logits, probs = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"]).run(None, {"input": x})
want = np.array([json.loads(l)["logits"] for l in open(ours)], np.float32)
# numpy.allclose's measure, atol 1e-4 and rtol 1e-6: the worst |diff| / (1e-4 + 1e-6 |want|),
# so logits in the hundreds (standardized features far from their means) get f32's spacing.
print(json.dumps({"max_logit_diff": float((np.abs(logits - want) / (1e-4 + 1e-6 * np.abs(want))).max()),
                  "argmax_equal": bool((logits.argmax(1) == want.argmax(1)).all()),
                  "argmax": logits.argmax(1).tolist()}))
"#;

#[test]
#[ignore = "needs onnxruntime: .ci/run installs it and runs this with --ignored (ONNX_PYTHON)"]
fn the_onnx_export_predicts_as_chainrule_does_in_onnxruntime() {
    let python = std::env::var("ONNX_PYTHON").expect("ONNX_PYTHON: a Python with onnxruntime and numpy");
    let d = tmp();
    let images = shipped_test_images();
    let labels = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-12k-test-labels-idx1-ubyte.gz");
    let truth = chainrule::data::idx::read_idx(&labels).unwrap().data;
    for (name, flags) in [
        ("relu", "--layers 784-64-32-10"),
        ("gelu", "--layers 784-48-10 --activation gelu --standardize"),
        ("leaky", "--layers 784-32-10 --activation leaky_relu"),
        ("residual", "--block residual --depth 2 --width 32 --activation gelu"),
        (
            "swiglu",
            "--block gated --norm rms --depth 2 --width 24 --activation silu",
        ),
        (
            "no-norm",
            "--block residual --norm none --depth 1 --width 16 --expansion 2",
        ),
        (
            "batchnorm",
            "--block residual --norm batch --depth 2 --width 16 --expansion 2",
        ),
    ] {
        let (model, ours) = trained_with_predictions(d.path(), name, flags);
        let onnx = d.path().join(format!("{name}.onnx"));
        let o = chainrule(&["export", "--model", p(&model), "--onnx", p(&onnx)]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let run = Command::new(&python)
            .args(["-c", RUN_ONNX, p(&onnx), p(&images), p(&ours)])
            .output()
            .expect("ONNX_PYTHON runs");
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        let r: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert!(r["argmax_equal"].as_bool().unwrap(), "{name}: classes differ");
        let diff = r["max_logit_diff"].as_f64().unwrap();
        assert!(
            diff <= 1.0,
            "{name}: logits differ by {diff} times the tolerance (1e-4 + 1e-6 |logit|)"
        );
        // onnxruntime's accuracy on the test split is eval's.
        let argmax = r["argmax"].as_array().unwrap();
        let correct = argmax
            .iter()
            .zip(&truth)
            .filter(|(a, &t)| a.as_u64() == Some(t as u64))
            .count();
        let eval = chainrule(&["eval", "--model", p(&model), "--json", "--device", "cpu"]);
        let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
        assert_eq!(
            correct as f64 / truth.len() as f64,
            eval["accuracy"].as_f64().unwrap(),
            "{name}"
        );
    }
}

/// onnxruntime's `values` for a CSV of features, against chainrule's predictions.
const RUN_REGRESSION: &str = r#"
import json, sys
import numpy as np, onnxruntime as ort
onnx, features, ours = sys.argv[1], sys.argv[2], sys.argv[3]
x = np.loadtxt(features, delimiter=",", ndmin=2).astype(np.float32)
session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
(values,) = session.run(None, {"input": x})
want = np.array([json.loads(l)["values"] for l in open(ours)], np.float32)
print(json.dumps({"outputs": [o.name for o in session.get_outputs()],
                  "max_diff": float(np.abs(values - want).max())}))
"#;

#[test]
#[ignore = "needs onnxruntime: .ci/run installs it and runs this with --ignored (ONNX_PYTHON)"]
fn a_regressions_onnx_export_outputs_its_values_as_chainrule_predicts_them() {
    let python = std::env::var("ONNX_PYTHON").expect("ONNX_PYTHON: a Python with onnxruntime and numpy");
    let d = tmp();
    let (csv, features, model, onnx, ours) = (
        d.path().join("r.csv"),
        d.path().join("x.csv"),
        d.path().join("r.safetensors"),
        d.path().join("r.onnx"),
        d.path().join("r.jsonl"),
    );
    let rows: Vec<(f32, f32, f32)> = (0..90)
        .map(|i| ((i % 9) as f32 * 3.0, (i % 4) as f32, (i % 5) as f32))
        .collect();
    let text: String = rows
        .iter()
        .map(|(a, b, c)| format!("{},{a},{b},{c}\n", a - 2.0 * b + c * c))
        .collect();
    fs::write(&csv, text).unwrap();
    fs::write(
        &features,
        rows.iter()
            .map(|(a, b, c)| format!("{a},{b},{c}\n"))
            .collect::<String>(),
    )
    .unwrap();
    for args in [
        vec![
            "train",
            "--csv",
            p(&csv),
            "--loss",
            "mse",
            "--layers",
            "3-16-1",
            "--activation",
            "gelu",
            "--standardize",
            "--epochs",
            "2",
            "--save",
            p(&model),
            "--device",
            "cpu",
        ],
        vec!["export", "--model", p(&model), "--onnx", p(&onnx)],
    ] {
        let o = chainrule(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = chainrule(&[
        "predict",
        "--model",
        p(&model),
        p(&features),
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    fs::write(&ours, &o.stdout).unwrap();
    let run = Command::new(&python)
        .args(["-c", RUN_REGRESSION, p(&onnx), p(&features), p(&ours)])
        .output()
        .expect("ONNX_PYTHON runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(r["outputs"], serde_json::json!(["values"]));
    let diff = r["max_diff"].as_f64().unwrap();
    assert!(diff < 1e-4, "values differ by {diff}");
}
