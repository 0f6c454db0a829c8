//! `--test-fraction`: the rows of a `--csv` file held out for test, drawn with the run's
//! seed. `train` draws them and `eval` draws the same ones again from the same file, so the
//! two must share this one rule.

use super::Dataset;
use crate::rng::{stream, KeyedRng};

/// How many of `rows` a test fraction holds out.
pub fn test_rows(rows: usize, fraction: f64) -> usize {
    (rows as f64 * fraction).round() as usize
}

/// `all`'s rows split into (train, test), `fraction` of them held out by `seed`.
pub fn hold_out_test(all: Dataset, fraction: f64, seed: u64) -> (Dataset, Dataset) {
    let n_test = test_rows(all.len(), fraction);
    let order = KeyedRng::new(seed, stream::DATA_SPLIT).permutation(all.len());
    all.split(&order[..n_test])
}
