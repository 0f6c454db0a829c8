//! A saved file loaded into the plain `torch.nn` module of examples/torch_mlp.py: every
//! tensor name matches (strict loading) and the logits are chainrule's; the README's own
//! `BlockMLP` gives them too. Needs a Python with torch and numpy, named by TORCH_PYTHON
//! (../shared/peers/setup_venv.sh makes one, ~5 GiB); without it the test is reported as
//! ignored.

use super::*;

const RUN_TORCH: &str = r#"
import gzip, json, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import torch_mlp
model, norm = torch_mlp.load(sys.argv[2])
raw = gzip.open(sys.argv[3]).read()
n, r, c = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
x = np.frombuffer(raw[16:], np.uint8).reshape(n, r * c).astype(np.float32)
with torch.no_grad():
    logits = model(torch_mlp.prepare(x, norm)).numpy()
want = np.array([json.loads(l)["logits"] for l in open(sys.argv[4])], np.float32)
# numpy.allclose's measure (atol 1e-4, rtol 1e-6), as in onnx.rs.
print(json.dumps({"max_logit_diff": float((np.abs(logits - want) / (1e-4 + 1e-6 * np.abs(want))).max()),
                  "argmax_equal": bool((logits.argmax(1) == want.argmax(1)).all())}))
"#;

/// The README's own `BlockMLP` (its Python block that defines `class Block`), run on a saved
/// residual LayerNorm GELU net: argv = examples folder, README, model, images, predictions.
const RUN_README: &str = r#"
import gzip, json, re, sys
import numpy as np, torch
from torch import nn
sys.path.insert(0, sys.argv[1])
import torch_mlp
code = [c for c in re.findall(r"```python\n(.*?)```", open(sys.argv[2]).read(), re.S) if "class Block" in c][0]
exec(code)
tensors, meta = torch_mlp.read_safetensors(sys.argv[3])
widths = json.loads(meta["model"])["widths"]
model = BlockMLP(widths[0], widths[1], len(widths) - 2, widths[-1])
model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optimizer.")}, strict=True)
raw = gzip.open(sys.argv[4]).read()
n, r, c = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
x = np.frombuffer(raw[16:], np.uint8).reshape(n, r * c).astype(np.float32)
with torch.no_grad():
    logits = model.eval()(torch_mlp.prepare(x, json.loads(meta["normalization"]))).numpy()
want = np.array([json.loads(l)["logits"] for l in open(sys.argv[5])], np.float32)
print(json.dumps({"max_logit_diff": float((np.abs(logits - want) / (1e-4 + 1e-6 * np.abs(want))).max())}))
"#;

#[test]
#[ignore = "needs torch: run with TORCH_PYTHON set to a Python that has it, and --ignored"]
fn a_saved_block_net_loads_into_the_torch_module_with_equal_logits() {
    let python = std::env::var("TORCH_PYTHON").expect("TORCH_PYTHON: a Python with torch and numpy");
    let d = tmp();
    let (root, images) = (Path::new(env!("CARGO_MANIFEST_DIR")), shipped_test_images());
    for (name, flags) in [
        ("plain", "--layers 784-64-32-10 --activation gelu"),
        (
            "residual",
            "--block residual --depth 3 --width 32 --activation gelu --standardize",
        ),
        (
            "swiglu",
            "--block gated --norm rms --depth 2 --width 24 --activation silu",
        ),
        (
            "no-norm",
            "--block residual --norm none --depth 2 --width 16 --expansion 2",
        ),
        (
            "batchnorm",
            "--block residual --norm batch --depth 2 --width 16 --expansion 2 --activation gelu",
        ),
    ] {
        let (model, ours) = trained_with_predictions(d.path(), name, flags);
        let run = Command::new(&python)
            .args([
                "-c",
                RUN_TORCH,
                p(&root.join("examples")),
                p(&model),
                p(&images),
                p(&ours),
            ])
            .output()
            .expect("TORCH_PYTHON runs");
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        let r: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert!(r["argmax_equal"].as_bool().unwrap(), "{name}: classes differ");
        let diff = r["max_logit_diff"].as_f64().unwrap();
        assert!(
            diff <= 1.0,
            "{name}: logits differ by {diff} times the tolerance (1e-4 + 1e-6 |logit|)"
        );
        if name == "residual" {
            let readme = root.join("README.md");
            let run = Command::new(&python)
                .args([
                    "-c",
                    RUN_README,
                    p(&root.join("examples")),
                    p(&readme),
                    p(&model),
                    p(&images),
                    p(&ours),
                ])
                .output()
                .expect("TORCH_PYTHON runs");
            assert!(
                run.status.success(),
                "README's module: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            let r: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
            let diff = r["max_logit_diff"].as_f64().unwrap();
            assert!(
                diff <= 1.0,
                "README's module: logits differ by {diff} times the tolerance"
            );
        }
    }
}
