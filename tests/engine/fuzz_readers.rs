//! The readers a user's files go through (IDX, CSV, safetensors snapshots) never panic: a
//! property over bytes, checked on 50,000 inputs a reader, each a file from tests/corpus/
//! with a few seeded random edits (bytes flipped, set to a value these formats care about,
//! cut, inserted, a region repeated) or plain random bytes, which must come back as `Ok`
//! or as an error. Seeded, so a failure names the case that reproduces it; a few seconds.

use chainrule::data::{csv::parse_csv, idx::parse_idx};
use chainrule::io::Snapshot;
use chainrule::rng::KeyedRng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const CASES: u64 = 50_000;

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

/// Bytes that matter to these formats: separators, signs, JSON and IDX header values.
const INTERESTING: [u8; 13] = [0, 1, 3, 8, 0xff, b',', b';', b'\n', b'\r', b'-', b'e', b'{', b'"'];

fn below(rng: &mut KeyedRng, n: usize) -> usize {
    rng.below(n.max(1) as u64) as usize
}

/// Case `case`: a seed with 1 to 5 edits, or (one case in five) random bytes.
fn input(seeds: &[Vec<u8>], case: u64) -> Vec<u8> {
    let mut rng = KeyedRng::new(case, 0xf022);
    if rng.below(5) == 0 {
        let n = below(&mut rng, 512);
        return (0..n).map(|_| rng.below(256) as u8).collect();
    }
    let mut bytes = seeds[below(&mut rng, seeds.len())].clone();
    for _ in 0..1 + rng.below(5) {
        let at = below(&mut rng, bytes.len());
        match rng.below(5) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 + rng.below(255) as u8,
            1 if !bytes.is_empty() => bytes[at] = INTERESTING[below(&mut rng, INTERESTING.len())],
            2 => bytes.truncate(at),
            3 => {
                let more: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.below(256) as u8).collect();
                bytes.splice(at..at, more);
            }
            _ => {
                let end = (at + 1 + below(&mut rng, 64)).min(bytes.len());
                let region = bytes[at.min(end)..end].to_vec();
                bytes.splice(end..end, region);
            }
        }
    }
    bytes
}

/// Feeds every case to `read`; fails naming the first case that panics.
fn never_panics(kind: &str, read: impl Fn(&[u8])) {
    let seeds = corpus(kind);
    for case in 0..CASES {
        let bytes = input(&seeds, case);
        if catch_unwind(AssertUnwindSafe(|| read(&bytes))).is_err() {
            panic!(
                "the {kind} reader panicked on case {case} ({} bytes: {:?})",
                bytes.len(),
                &bytes[..bytes.len().min(64)]
            );
        }
    }
}

#[test]
fn the_idx_reader_never_panics() {
    never_panics("idx", |b| drop(parse_idx(Path::new("fuzz.idx"), b)));
}

#[test]
fn the_csv_reader_never_panics() {
    never_panics("csv", |b| drop(parse_csv(b)));
}

#[test]
fn the_snapshot_reader_never_panics() {
    never_panics("safetensors", |b| {
        drop(Snapshot::from_bytes(Path::new("fuzz.safetensors"), b))
    });
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
