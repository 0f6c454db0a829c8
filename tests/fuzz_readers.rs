//! The readers a user's files go through (IDX, CSV, safetensors snapshots) never panic:
//! property tests over bytes, each case a file from tests/corpus/ mutated (bytes flipped,
//! cut, inserted, a region repeated) or plain random bytes, must come back as `Ok` or as
//! an error. Bounded: 50,000 cases a reader, a few seconds in all.

use chainrule::data::{csv::parse_csv, idx::parse_idx};
use chainrule::io::Snapshot;
use proptest::prelude::*;
use std::path::Path;

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("a corpus file")).collect();
    assert!(!seeds.is_empty(), "{} holds no seed files", dir.display());
    seeds
}

#[derive(Clone, Debug)]
enum Edit {
    Flip { at: usize, bits: u8 },
    Cut { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Repeat { at: usize, len: usize },
    Set { at: usize, byte: u8 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Edit::Flip { at, bits }),
        any::<usize>().prop_map(|at| Edit::Cut { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (any::<usize>(), 1..64usize).prop_map(|(at, len)| Edit::Repeat { at, len }),
        // Bytes that matter to these formats: separators, signs, JSON and IDX header values.
        (
            any::<usize>(),
            prop::sample::select(vec![
                0u8, 1, 3, 8, 0xff, b',', b';', b'\n', b'\r', b'-', b'e', b'{', b'"'
            ])
        )
            .prop_map(|(at, byte)| Edit::Set { at, byte }),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Flip { at, bits } => {
                if let Some(b) = bytes.get_mut(at % n) {
                    *b ^= bits;
                }
            }
            Edit::Cut { at } => bytes.truncate(at % n),
            Edit::Insert { at, bytes: more } => {
                let at = (at % n).min(bytes.len());
                bytes.splice(at..at, more.iter().copied());
            }
            Edit::Repeat { at, len } => {
                let at = (at % n).min(bytes.len());
                let end = (at + len).min(bytes.len());
                let region = bytes[at..end].to_vec();
                bytes.splice(end..end, region);
            }
            Edit::Set { at, byte } => {
                if let Some(b) = bytes.get_mut(at % n) {
                    *b = *byte;
                }
            }
        }
    }
    bytes
}

/// A corpus file with a few edits, or random bytes.
fn input(kind: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(kind);
    prop_oneof![
        4 => (prop::sample::select(seeds), prop::collection::vec(edit(), 1..6)).prop_map(|(s, e)| apply(s, &e)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 50_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_idx_reader_never_panics(bytes in input("idx")) {
        let _ = parse_idx(Path::new("fuzz.idx"), &bytes);
    }

    #[test]
    fn the_csv_reader_never_panics(bytes in input("csv")) {
        let _ = parse_csv(&bytes);
    }

    #[test]
    fn the_snapshot_reader_never_panics(bytes in input("safetensors")) {
        let _ = Snapshot::from_bytes(Path::new("fuzz.safetensors"), &bytes);
    }
}

#[test]
fn every_seed_in_the_corpus_is_a_file_its_reader_accepts() {
    for (i, bytes) in corpus("idx").iter().enumerate() {
        parse_idx(Path::new("seed.idx"), bytes).unwrap_or_else(|e| panic!("idx seed {i}: {e}"));
    }
    for (i, bytes) in corpus("csv").iter().enumerate() {
        parse_csv(bytes).unwrap_or_else(|e| panic!("csv seed {i}: {e}"));
    }
    for bytes in corpus("safetensors") {
        Snapshot::from_bytes(Path::new("seed.safetensors"), &bytes).expect("the safetensors seed");
    }
}
