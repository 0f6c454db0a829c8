//! One rank's place in a data-parallel job, and what a step does with it: weight this rank's
//! mean gradients by its share of the global batch, sum them over the ranks one gradient at
//! a time (a bucket per parameter tensor, reduced in place: no copy of the gradients), and
//! sum the loss and the count of right answers the same way, so every rank applies the same
//! update and sees the same loss.
//!
//! A rank with `n` of the global batch's `b` rows computes the mean gradient over its rows;
//! the global mean is the sum over ranks of `(n / b) · mean`. With one rank the share is
//! exactly 1 and the sum is the rank's own values, so a one-rank job is bitwise a plain run.

use super::collective::{Collective, CollectiveError};
use std::sync::Arc;

#[derive(Clone)]
pub struct Group {
    pub collective: Arc<dyn Collective>,
}

/// This rank's part of one step: its rows' share of the global batch.
#[derive(Clone, Copy, Debug)]
pub struct StepShare {
    /// Rows of the global batch this rank ran.
    pub rows: usize,
    /// Rows of the global batch.
    pub global_rows: usize,
}

impl StepShare {
    /// The weight of this rank's mean values in the global mean.
    pub fn weight(&self) -> f32 {
        if self.rows == self.global_rows {
            return 1.0;
        }
        (self.rows as f64 / self.global_rows as f64) as f32
    }
}

impl Group {
    pub fn new(collective: Arc<dyn Collective>) -> Self {
        Group { collective }
    }

    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    pub fn world(&self) -> usize {
        self.collective.world()
    }

    /// Whether every rank holds the same `fingerprint` (a hash of its settings, data and
    /// starting state). Each rank adds its hash's sixteen 4-bit digits and their squares: the
    /// sums are N·d and N·d² for every digit only if all ranks hold the same digit (their
    /// spread is zero), and such small integers keep f32 sums exact up to 65,536 ranks.
    pub fn agree(&self, fingerprint: u64) -> Result<bool, CollectiveError> {
        let digits: Vec<f32> = (0..16).map(|i| ((fingerprint >> (4 * i)) & 15) as f32).collect();
        let mut sums: Vec<f32> = digits.iter().flat_map(|&d| [d, d * d]).collect();
        self.collective.all_reduce_sum(&mut sums)?;
        let n = self.world() as f32;
        Ok(digits
            .iter()
            .zip(sums.chunks(2))
            .all(|(&d, s)| s[0] == n * d && s[1] == n * d * d))
    }

    /// A count summed over the ranks.
    pub fn reduce_sum(&self, value: f32) -> Result<f32, CollectiveError> {
        let mut v = [value];
        self.collective.all_reduce_sum(&mut v)?;
        Ok(v[0])
    }
}
