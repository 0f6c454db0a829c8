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
        idx_bytes(0x0000_0A03, &[20, 4, 4], &[0; 320]),
    )
    .unwrap();
    // 0x0A is no IDX element type.
    assert_error(
        &chainrule(&["train", "--data", p(d.path())]),
        &["train-images.idx3-ubyte", "magic number 0x00000a03"],
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

/// `predict` on the inputs a user brings: IDX files of every element type, named or not,
/// give the same classes as the same values in unsigned bytes; an IDX of no examples and a
/// PGM with bytes past its pixels are refused; `-` reads standard input.
#[test]
fn predict_reads_idx_of_every_element_type_and_standard_input_and_refuses_what_is_not_an_image() {
    let d = tmp();
    let model = d.path().join("m.st");
    let o = chainrule(&[
        "train",
        "--epochs",
        "1",
        "--layers",
        "784-16-10",
        "--save",
        p(&model),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pixels: Vec<u8> = (0..2 * 784).map(|i| ((i * 37) % 256) as u8).collect();
    let predict = |path: &Path| {
        let o = chainrule(&["predict", "--model", p(&model), p(path), "--json", "--device", "cpu"]);
        assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.iter().map(|r| r["class"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    let bytes = d.path().join("bytes.idx3-ubyte");
    fs::write(&bytes, idx_bytes(0x0803, &[2, 28, 28], &pixels)).unwrap();
    let want = predict(&bytes);
    let as_type = |code: u32, each: &dyn Fn(u8) -> Vec<u8>| {
        let body: Vec<u8> = pixels.iter().flat_map(|&v| each(v)).collect();
        idx_bytes(code << 8 | 3, &[2, 28, 28], &body)
    };
    type Encode<'a> = &'a dyn Fn(u8) -> Vec<u8>;
    let types: [(u32, Encode); 4] = [
        (0x0B, &|v| (v as i16).to_be_bytes().to_vec()),
        (0x0C, &|v| (v as i32).to_be_bytes().to_vec()),
        (0x0D, &|v| (v as f32).to_be_bytes().to_vec()),
        (0x0E, &|v| (v as f64).to_be_bytes().to_vec()),
    ];
    for (code, each) in types {
        // No extension: known by its magic number alone.
        let file = d.path().join(format!("type{code:02x}"));
        fs::write(&file, as_type(code, each)).unwrap();
        assert_eq!(predict(&file), want, "element type 0x{code:02x}");
    }
    let nan = d.path().join("nan.idx");
    let mut values: Vec<u8> = (0..783).flat_map(|_| 0.5f32.to_be_bytes()).collect();
    values.extend(f32::NAN.to_be_bytes());
    fs::write(&nan, idx_bytes(0x0D03, &[1, 28, 28], &values)).unwrap();
    assert_error(
        &chainrule(&["predict", "--model", p(&model), p(&nan)]),
        &["nan.idx", "element 783 is NaN"],
    );
    let empty = d.path().join("empty.idx3-ubyte");
    fs::write(&empty, idx_bytes(0x0803, &[0, 28, 28], &[])).unwrap();
    let o = chainrule(&["predict", "--model", p(&model), p(&empty)]);
    assert_error(&o, &["empty.idx3-ubyte", "no examples"]);
    let pgm = d.path().join("tail.pgm");
    let mut image = b"P5\n28 28\n255\n".to_vec();
    image.extend(&pixels[..784]);
    image.extend(b"junk");
    fs::write(&pgm, &image).unwrap();
    assert_error(
        &chainrule(&["predict", "--model", p(&model), p(&pgm)]),
        &["tail.pgm", "4 bytes past"],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_chainrule"))
        .args(["predict", "--model", p(&model), "-", "--json", "--device", "cpu"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&fs::read(&bytes).unwrap())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
}

#[test]
fn a_gzipped_csv_trains_evaluates_and_predicts_as_its_text_does() {
    let dir = tmp();
    let (csv, gz, model) = (
        dir.path().join("d.csv"),
        dir.path().join("d.csv.gz"),
        dir.path().join("m.safetensors"),
    );
    write_csv(&csv, 60);
    fs::write(&gz, gzip(&fs::read(&csv).unwrap())).unwrap();
    let o = chainrule(&[
        "train",
        "--csv",
        p(&gz),
        "--layers",
        "3-8-3",
        "--epochs",
        "1",
        "--save",
        p(&model),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same data: eval on the text finds the run's held-out rows.
    let o = chainrule(&[
        "eval",
        "--model",
        p(&model),
        "--csv",
        p(&csv),
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["rows"], "held-out");
    let predicted = |file: &Path| {
        let o = chainrule(&["predict", "--model", p(&model), p(file), "--device", "cpu"]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).replace(p(file), "FILE")
    };
    assert_eq!(predicted(&gz), predicted(&csv));
}
