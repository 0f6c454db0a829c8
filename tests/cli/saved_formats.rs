//! Saved files carry a format version: files an earlier chainrule wrote still load, train
//! on and evaluate as they did, and a version this build does not know is refused by name.
//! `tests/fixtures/format-1/` holds files written by the last build that wrote chainrule/1
//! (commit 6224016), with the CSV they were trained on.

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format-1")
        .join(name)
}

fn metadata(file: &Path) -> serde_json::Map<String, serde_json::Value> {
    let bytes = fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"].as_object().unwrap().clone()
}

#[test]
fn a_format_1_file_evaluates_as_the_build_that_wrote_it_did() {
    let model = fixture("residual-batchnorm.safetensors");
    assert_eq!(metadata(&model)["format"], "chainrule/1");
    let csv = fixture("three-classes.csv");
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
    // What the chainrule/1 build printed for this file and data: 41 of 60 right; its
    // running statistics and weights are read as they were written.
    assert_eq!(r["examples"], 60);
    assert_eq!(r["confusion"], serde_json::json!([[13, 1, 6], [10, 8, 2], [0, 0, 20]]));
    assert!(
        (r["loss"].as_f64().unwrap() - 0.876_085_579_395_294_2).abs() < 1e-6,
        "{r}"
    );
    // It held out test rows of a file it did not record: eval cannot tell which, and says so.
    assert!(stderr(&o).contains("before format chainrule/2"), "{}", stderr(&o));
}

#[test]
fn a_format_1_run_resumes_and_is_saved_in_the_current_format() {
    let dir = tmp();
    let resumed = dir.path().join("resumed.safetensors");
    let csv = fixture("three-classes.csv");
    let o = chainrule(&[
        "train",
        "--resume",
        p(&fixture("plain-adamw.safetensors")),
        "--csv",
        p(&csv),
        "--test-csv",
        p(&csv),
        "--epochs",
        "4",
        "--save",
        p(&resumed),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("classes: 3 (labels 0 to 2)"));
    let meta = metadata(&resumed);
    assert_eq!(meta["format"], "chainrule/2");
    let training: serde_json::Value = serde_json::from_str(meta["training"].as_str().unwrap()).unwrap();
    assert_eq!(training["step"], 24, "{training}");
    // The record the chainrule/1 file lacked, made from the data it went on with.
    assert_eq!(training["data"]["rows"], 60);
    assert_eq!(training["data"]["class_examples"], serde_json::json!([20, 20, 20]));
}

#[test]
fn a_format_this_build_does_not_read_is_refused_by_name() {
    let dir = tmp();
    let bytes = fs::read(fixture("plain-adamw.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // Same length, so the tensors' offsets still hold: only the version differs.
    let header = String::from_utf8(bytes[8..8 + n].to_vec())
        .unwrap()
        .replace("chainrule/1", "chainrule/9");
    let mut newer = bytes[..8].to_vec();
    newer.extend(header.as_bytes());
    newer.extend(&bytes[8 + n..]);
    let file = dir.path().join("newer.safetensors");
    fs::write(&file, newer).unwrap();
    let csv = fixture("three-classes.csv");
    for args in [
        vec!["eval", "--model", p(&file), "--csv", p(&csv)],
        vec!["train", "--resume", p(&file), "--csv", p(&csv), "--epochs", "3"],
    ] {
        let o = chainrule(&args);
        assert_error(
            &o,
            &[
                "newer.safetensors",
                "chainrule/9",
                "chainrule/1, chainrule/2",
                "update chainrule",
            ],
        );
    }
    // Not a version any chainrule writes (an older or a mangled one): not called newer, and
    // shown quoted, control characters escaped.
    for odd in ["chainrule/0", "chainrule/02", "chainrule/-1", "chainrule/\\u001b[31m"] {
        let header = String::from_utf8(bytes[8..8 + n].to_vec())
            .unwrap()
            .replace("chainrule/1", odd);
        let mut odd_file = (header.len() as u64).to_le_bytes().to_vec();
        odd_file.extend(header.as_bytes());
        odd_file.extend(&bytes[8 + n..]);
        fs::write(&file, odd_file).unwrap();
        let o = chainrule(&["eval", "--model", p(&file), "--csv", p(&csv)]);
        assert_error(&o, &["newer.safetensors", "which no chainrule writes"]);
        let err = stderr(&o);
        assert!(!err.contains("newer than") && !err.contains('\u{1b}'), "{odd}: {err}");
    }
}

#[test]
fn the_same_run_saves_the_same_bytes() {
    let dir = tmp();
    let saves: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let file = dir.path().join(format!("{i}.safetensors"));
            let o = quick_train(dir.path(), &["--epochs", "1", "--save", p(&file)]);
            assert!(o.status.success(), "{}", stderr(&o));
            fs::read(&file).unwrap()
        })
        .collect();
    // Metadata in a hash map's order differed from save to save.
    assert!(
        saves[1] == saves[0] && saves[2] == saves[0],
        "two saves of one run differ"
    );
}

#[test]
fn the_thread_count_does_not_change_a_saved_bit() {
    let dir = tmp();
    let csv = dir.path().join("d.csv");
    write_csv(&csv, 300);
    let saves: Vec<Vec<u8>> = ["1", "2", "3"]
        .iter()
        .map(|threads| {
            let file = dir.path().join(format!("{threads}.safetensors"));
            let o = Command::new(env!("CARGO_BIN_EXE_chainrule"))
                .args([
                    "--threads",
                    threads,
                    "train",
                    "--csv",
                    p(&csv),
                    "--layers",
                    "3-256-128-3",
                    "--epochs",
                    "2",
                ])
                .args(["--batch-size", "64", "--save", p(&file), "--device", "cpu"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            fs::read(&file).unwrap()
        })
        .collect();
    assert!(
        saves[1] == saves[0] && saves[2] == saves[0],
        "the thread count changed the run"
    );
}
