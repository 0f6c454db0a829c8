//! Data a user brings: MNIST IDX folders under both namings, CSV files, and each way they
//! can be wrong, named in one clear error line.

use super::*;

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
