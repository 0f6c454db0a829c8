//! The `chainrule` binary as a user meets it: bad input gets one clear error line and a
//! non-zero exit (never a panic), saving is atomic, resuming is exact, Ctrl-C saves.

use chainrule::io::Snapshot;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod batch_norm;
mod charts;
mod clipping;
mod cuda_graph;
mod data_files;
mod data_parallel;
mod dtypes;
mod hostile_inputs;
mod hostile_saves;
mod nested_plans;
mod one_spec;
mod onnx;
mod preemption;
mod rank_failures;
mod recorded_data;
mod refusals;
mod regression;
mod runs;
mod saved_formats;
mod tools;
mod torch_module;
mod workflow;

fn chainrule(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args(["--threads", "2"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The shipped test images, which the export tests predict.
fn shipped_test_images() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-12k-test-images-idx3-ubyte.gz")
}

/// A model trained one epoch on the shipped data with `flags` (space-separated), saved as
/// `dir/NAME.safetensors`, and `predict --json`'s records for the shipped test images in
/// `dir/NAME.jsonl`.
fn trained_with_predictions(dir: &Path, name: &str, flags: &str) -> (PathBuf, PathBuf) {
    let (model, ours) = (
        dir.join(format!("{name}.safetensors")),
        dir.join(format!("{name}.jsonl")),
    );
    let mut train = vec!["train", "--epochs", "1", "--save", p(&model), "--device", "cpu"];
    train.extend(flags.split_whitespace());
    let o = chainrule(&train);
    assert!(o.status.success(), "{name}: training failed: {}", stderr(&o));
    let images = shipped_test_images();
    let o = chainrule(&["predict", "--model", p(&model), p(&images), "--json", "--device", "cpu"]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    fs::write(&ours, &o.stdout).unwrap();
    (model, ours)
}

/// Fails unless the run exited non-zero with an `error:` line containing every `needle`.
fn assert_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in: {err}"));
    for n in needles {
        assert!(line.contains(n), "'{n}' missing from: {line}");
    }
}

fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(body);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A tiny MNIST-shaped folder: 4x4 images whose class is the bright quadrant.
fn write_mnist(dir: &Path, n_train: u32, n_test: u32, dotted: bool) {
    let make = |n: u32| {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = (i % 4) as u8;
            labels.push(c);
            for p in 0..16u32 {
                let (r, col) = (p / 4, p % 4);
                let q = (r / 2) * 2 + col / 2;
                images.push(if q as u8 == c {
                    200 + (i % 50) as u8
                } else {
                    (i * 7 % 30) as u8
                });
            }
        }
        (images, labels)
    };
    let name = |split: &str, kind: &str, n: u8| {
        if dotted {
            format!("{split}-{kind}.idx{n}-ubyte")
        } else {
            format!("{split}-{kind}-idx{n}-ubyte.gz")
        }
    };
    for (split, n) in [("train", n_train), ("t10k", n_test)] {
        let (im, lb) = make(n);
        let (im, lb) = (idx_bytes(0x803, &[n, 4, 4], &im), idx_bytes(0x801, &[n], &lb));
        let (im, lb) = if dotted { (im, lb) } else { (gzip(&im), gzip(&lb)) };
        fs::write(dir.join(name(split, "images", 3)), im).unwrap();
        fs::write(dir.join(name(split, "labels", 1)), lb).unwrap();
    }
}

fn write_csv(path: &Path, rows: usize) {
    let mut s = String::from("label,a,b,c\n");
    for i in 0..rows {
        let c = i % 3;
        let f: Vec<String> = (0..3)
            .map(|j| {
                if j == c {
                    format!("{}", 5 + i % 4)
                } else {
                    format!("{}", i % 2)
                }
            })
            .collect();
        s.push_str(&format!("{c},{}\n", f.join(",")));
    }
    fs::write(path, s).unwrap();
}

/// A fresh folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tmp() -> TempDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("chainrule-cli-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// The output of `child` once it exits, failing the test with `hung` if that takes more
/// than `seconds` (the child is killed first).
fn finished_within(mut child: std::process::Child, seconds: u64, hung: &str) -> Output {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() > seconds {
            child.kill().unwrap();
            panic!("{hung} after {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A saved file's tensors, by name, as bytes (its metadata JSON may differ in key order).
fn saved_tensors(f: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(f).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, t)| (n, t.data().to_vec())).collect();
    v.sort();
    v
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A quick training run on a small CSV with these extra flags.
fn quick_train(dir: &Path, extra: &[&str]) -> Output {
    let csv = dir.join("d.csv");
    if !csv.exists() {
        write_csv(&csv, 60);
    }
    let mut args = vec!["train", "--csv", p(&csv), "--layers", "3-8-3", "--device", "cpu"];
    if !extra.contains(&"--epochs") {
        args.extend(["--epochs", "1"]);
    }
    args.extend_from_slice(extra);
    chainrule(&args)
}

/// Runs `chainrule scale --device cpu --out OUT` with `args`, checks it succeeded, and reads
/// back its rows (scale.json).
fn scale_rows(out: &Path, args: &[&str]) -> (Output, Vec<serde_json::Value>) {
    let mut all = vec!["scale", "--device", "cpu", "--out", p(out)];
    all.extend_from_slice(args);
    let o = chainrule(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = serde_json::from_str(&fs::read_to_string(out.join("scale.json")).unwrap()).unwrap();
    (o, rows)
}
