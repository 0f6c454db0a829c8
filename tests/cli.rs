//! The `chainrule` binary as a user meets it: bad input gets one clear error line and a
//! non-zero exit (never a panic), saving is atomic, resuming is exact, Ctrl-C saves.

use chainrule::io::Snapshot;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn help_explains_every_flag_with_its_default() {
    let o = chainrule(&["train", "--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--data",
        "--csv",
        "--layers",
        "--activation",
        "--dropout",
        "--optimizer",
        "--lr",
        "--weight-decay",
        "--schedule",
        "--epochs",
        "--batch-size",
        "--seed",
        "--device",
        "--save",
        "--resume",
        "--metrics-out",
        "--log-every",
    ] {
        assert!(out.contains(flag), "{flag} missing from --help");
    }
    assert!(out.contains("[default: adamw]") && out.contains("[default: 128]"));
}

#[test]
fn trains_on_idx_folders_under_both_namings_and_evaluates() {
    for dotted in [false, true] {
        let d = tmp();
        write_mnist(d.path(), 200, 40, dotted);
        // macOS resource forks beside the real files must not be taken for them.
        fs::write(d.path().join("._train-images.idx3-ubyte"), b"junk").unwrap();
        let model = d.path().join("m.safetensors");
        let metrics = d.path().join("m.jsonl");
        let o = chainrule(&[
            "train",
            "--data",
            p(d.path()),
            "--layers",
            "16-8-4",
            "--epochs",
            "10",
            "--lr",
            "0.01",
            "--batch-size",
            "32",
            "--save",
            p(&model),
            "--metrics-out",
            p(&metrics),
            "--log-every",
            "2",
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(out.lines().filter(|l| l.starts_with("epoch")).count(), 10, "{out}");
        let lines: Vec<serde_json::Value> = fs::read_to_string(&metrics)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let epochs: Vec<_> = lines.iter().filter(|v| v["kind"] == "epoch").collect();
        assert_eq!(epochs.len(), 10);
        for key in [
            "epoch",
            "step",
            "loss",
            "test_accuracy",
            "samples_per_sec",
            "peak_bytes",
        ] {
            assert!(!epochs[9][key].is_null(), "epoch record lacks {key}");
        }
        assert!(lines.iter().any(|v| v["kind"] == "step" && v["loss"].is_number()));
        assert!(epochs[9]["test_accuracy"].as_f64().unwrap() > 0.9, "{:?}", epochs[9]);

        let o = chainrule(&["eval", "--model", p(&model), "--data", p(d.path()), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["examples"], 40);
        assert_eq!(v["confusion"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn resume_for_two_more_epochs_equals_four_epochs_bit_for_bit() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 150);
    let (a, b) = (d.path().join("a.safetensors"), d.path().join("b.safetensors"));
    let common = [
        "--csv",
        p(&csv),
        "--layers",
        "3-7-3",
        "--batch-size",
        "16",
        "--dropout",
        "0.2",
        "--optimizer",
        "sgd",
        "--nesterov",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["train"];
        args.extend(common);
        args.extend(extra);
        let o = chainrule(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run(&["--epochs", "2", "--save", p(&a)]);
    run(&["--resume", p(&a), "--epochs", "4", "--save", p(&a)]);
    run(&["--epochs", "4", "--save", p(&b)]);
    let (ca, cb) = (Snapshot::load(&a).unwrap(), Snapshot::load(&b).unwrap());
    assert_eq!(ca.state.step, cb.state.step);
    assert_eq!(
        ca.tensors.keys().collect::<Vec<_>>(),
        cb.tensors.keys().collect::<Vec<_>>()
    );
    assert!(ca.tensors.keys().any(|k| k.starts_with("optimizer.")));
    for (k, t) in &ca.tensors {
        let bits = |x: &ndarray::ArrayD<f32>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(t), bits(&cb.tensors[k]), "tensor {k} differs");
    }
}

#[test]
fn missing_files_are_named() {
    let d = tmp();
    let missing = d.path().join("nope");
    assert_error(
        &chainrule(&["train", "--data", p(&missing)]),
        &["nope", "no such folder"],
    );
    assert_error(&chainrule(&["train", "--csv", p(&missing)]), &["nope"]);
    assert_error(&chainrule(&["eval", "--model", p(&missing)]), &["nope"]);
    assert_error(&chainrule(&["train", "--resume", p(&missing)]), &["nope"]);
    // A folder with only some of the files.
    fs::write(
        d.path().join("train-images-idx3-ubyte"),
        idx_bytes(0x803, &[1, 1, 1], &[0]),
    )
    .unwrap();
    assert_error(
        &chainrule(&["train", "--data", p(d.path())]),
        &["train-labels-idx1-ubyte"],
    );
}

#[test]
fn wrong_magic_number() {
    let d = tmp();
    write_mnist(d.path(), 20, 8, true);
    fs::write(
        d.path().join("train-images.idx3-ubyte"),
        idx_bytes(0x0000_0903, &[20, 4, 4], &[0; 320]),
    )
    .unwrap();
    assert_error(
        &chainrule(&["train", "--data", p(d.path())]),
        &["train-images.idx3-ubyte", "magic number 0x00000903"],
    );
}

#[test]
fn header_that_disagrees_with_the_file_length() {
    let d = tmp();
    write_mnist(d.path(), 20, 8, true);
    let f = d.path().join("train-images.idx3-ubyte");
    // Claims 4 billion images in a few hundred bytes: must be refused, not allocated.
    fs::write(&f, idx_bytes(0x803, &[u32::MAX, 4, 4], &[0; 320])).unwrap();
    assert_error(
        &chainrule(&["train", "--data", p(d.path())]),
        &["train-images.idx3-ubyte", "need", "data bytes"],
    );
    // Truncated body, gzipped.
    fs::remove_file(&f).unwrap();
    fs::write(
        d.path().join("train-images-idx3-ubyte.gz"),
        gzip(&idx_bytes(0x803, &[20, 4, 4], &[0; 100])),
    )
    .unwrap();
    assert_error(
        &chainrule(&["train", "--data", p(d.path())]),
        &["train-images-idx3-ubyte.gz", "the file has 100"],
    );
}

#[test]
fn image_and_label_counts_that_differ() {
    let d = tmp();
    write_mnist(d.path(), 20, 8, true);
    fs::write(d.path().join("t10k-labels.idx1-ubyte"), idx_bytes(0x801, &[7], &[1; 7])).unwrap();
    assert_error(
        &chainrule(&["train", "--data", p(d.path())]),
        &["8 images", "7 labels", "t10k-labels.idx1-ubyte"],
    );
}

#[test]
fn csv_cells_that_are_not_numbers_and_rows_of_the_wrong_width() {
    let d = tmp();
    let f = d.path().join("bad.csv");
    fs::write(&f, "label,a,b\n0,1,2\n1,3,x\n").unwrap();
    assert_error(
        &chainrule(&["train", "--csv", p(&f)]),
        &["bad.csv", "line 3, column 3", "'x' is not a number"],
    );
    fs::write(&f, "0,1,2\n1,3\n").unwrap();
    assert_error(
        &chainrule(&["train", "--csv", p(&f)]),
        &["bad.csv", "line 2", "2 columns", "3"],
    );
    fs::write(&f, "label,a\n0.5,1\n").unwrap();
    assert_error(&chainrule(&["train", "--csv", p(&f)]), &["bad.csv", "label '0.5'"]);
    // Label and feature columns swapped: refused before a million-unit output layer is built.
    let rows: String = (0..20).map(|i| format!("{},{}\n", i * 1000, i % 2)).collect();
    fs::write(&f, format!("a,label\n{rows}")).unwrap();
    assert_error(
        &chainrule(&["train", "--csv", p(&f)]),
        &["bad.csv", "is the label the first column"],
    );
}

#[test]
fn layer_specs_that_do_not_fit_the_data() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 30);
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--layers", "4-8-3"]),
        &["--layers 4-8-3", "first width is 4", "3 features"],
    );
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--layers", "3-8-10"]),
        &["--layers 3-8-10", "last width is 10", "3 classes"],
    );
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--layers", "3-x-3"]),
        &["--layers '3-x-3'"],
    );
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--activation", "swish"]),
        &["--activation 'swish'"],
    );
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--device", "cuda"]),
        &["--device cuda"],
    );
}

#[test]
fn corrupt_truncated_and_foreign_safetensors_files() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 60);
    let good = d.path().join("good.safetensors");
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "1",
        "--save",
        p(&good),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(&good).unwrap();

    let truncated = d.path().join("truncated.safetensors");
    fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    assert_error(
        &chainrule(&["eval", "--model", p(&truncated), "--csv", p(&csv)]),
        &["truncated.safetensors", "not a valid safetensors"],
    );

    let garbage = d.path().join("garbage.safetensors");
    fs::write(&garbage, b"this is not a model at all, just some text").unwrap();
    assert_error(
        &chainrule(&["train", "--resume", p(&garbage), "--csv", p(&csv)]),
        &["garbage.safetensors", "not a valid safetensors"],
    );

    let foreign = d.path().join("foreign.safetensors");
    let data = [0u8; 16];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data).unwrap();
    fs::write(&foreign, safetensors::serialize([("weight", view)], &None).unwrap()).unwrap();
    assert_error(
        &chainrule(&["eval", "--model", p(&foreign), "--csv", p(&csv)]),
        &["foreign.safetensors", "not a chainrule model"],
    );

    // Valid safetensors with chainrule metadata but a weight of the wrong shape.
    let mut ckpt = Snapshot::load(&good).unwrap();
    ckpt.tensors
        .insert("layers.0.weight".into(), ndarray::ArrayD::zeros(vec![2, 2]));
    let wrong = d.path().join("wrong.safetensors");
    fs::write(&wrong, ckpt.to_bytes().unwrap()).unwrap();
    assert_error(
        &chainrule(&["eval", "--model", p(&wrong), "--csv", p(&csv)]),
        &["wrong.safetensors", "layers.0.weight", "[2, 2]"],
    );
}

#[test]
fn a_loss_that_becomes_nan_stops_and_keeps_the_last_good_model() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 90);
    let model = d.path().join("m.safetensors");
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "1",
        "--save",
        p(&model),
    ]);
    assert!(o.status.success());
    let before = fs::read(&model).unwrap();
    // Diverges within the first epoch: the earlier save must survive untouched.
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--save",
        p(&model),
    ]);
    assert_error(&o, &["at step", "not overwritten", p(&model)]);
    let err = stderr(&o);
    assert!(
        err.contains("loss became") || err.contains("parameters became"),
        "{err}"
    );
    assert_eq!(fs::read(&model).unwrap(), before, "the saved model was overwritten");
    // Diverges after a few epochs: what is on disk is the last good save, all finite.
    let o = chainrule(&[
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-5-3",
        "--epochs",
        "50",
        "--optimizer",
        "sgd",
        "--lr",
        "3",
        "--momentum",
        "0.99",
        "--save",
        p(&model),
    ]);
    if !o.status.success() {
        assert_error(&o, &["at step", p(&model)]);
        let ckpt = Snapshot::load(&model).unwrap();
        assert!(
            ckpt.tensors.values().all(|t| t.iter().all(|v| v.is_finite())),
            "a non-finite model was saved"
        );
    }
}

#[test]
fn ctrl_c_finishes_the_step_saves_and_says_where() {
    let d = tmp();
    let model: PathBuf = d.path().join("int.safetensors");
    let child = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args([
            "--threads",
            "2",
            "train",
            "--epochs",
            "1000",
            "--layers",
            "784-64-10",
            "--save",
            p(&model),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first finished epoch (its save), then interrupt.
    let started = std::time::Instant::now();
    while !model.exists() {
        assert!(started.elapsed().as_secs() < 120, "no epoch finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("interrupted at") && stdout.contains(p(&model)),
        "{stdout}"
    );
    let ckpt = Snapshot::load(&model).unwrap();
    assert!(ckpt.state.step > 0);
    let leftovers: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

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
    ] {
        assert!(v[key].is_number() || v[key].is_string(), "{key} missing: {v}");
    }
    assert_eq!(v["peak_bytes"], v["predicted_peak_bytes"]);
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
    let o = chainrule(&[
        "scale",
        "--depth",
        "24",
        "--width",
        "32",
        "--memory-limit",
        "2MiB",
        "--policies",
        "none,sqrt,budget",
        "--steps",
        "1",
        "--sweep-from",
        "64",
        "--device",
        "cpu",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&fs::read_to_string(out.join("scale.json")).unwrap()).unwrap();
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
fn a_closed_output_pipe_ends_the_program_without_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args(["plan", "--layers", &format!("8{}-2", "-8".repeat(200)), "--explain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe while the program is still writing.
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_unwritable_save_path_fails_before_training() {
    let d = tmp();
    let csv = d.path().join("d.csv");
    write_csv(&csv, 30);
    let missing = d.path().join("no/such/folder/m.safetensors");
    let o = chainrule(&["train", "--csv", p(&csv), "--save", p(&missing)]);
    assert_error(&o, &["--save", "cannot write"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("epoch"),
        "trained before failing"
    );
    assert_error(
        &chainrule(&["train", "--csv", p(&csv), "--save", p(d.path())]),
        &["--save", "is a folder"],
    );
}
