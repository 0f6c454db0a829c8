//! Seeded shuffling and batching. The order of an epoch is a pure function of
//! (seed, epoch), so a resumed run sees the batches an uninterrupted run would.

use super::augment::Shift;
use super::Dataset;
use crate::rng::{stream, KeyedRng};
use ndarray::{Array1, Array2, Axis};

pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    /// Augmentation with the (seed, epoch) that key it.
    shift: Option<(Shift, u64, u64)>,
}

/// The shuffled order of `n` examples in `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    KeyedRng::new(seed, stream::SHUFFLE ^ (epoch << 8)).permutation(n)
}

impl<'a> Batches<'a> {
    /// Batches of `batch_size` in shuffled order; the last one may be smaller.
    pub fn shuffled(data: &'a Dataset, batch_size: usize, seed: u64, epoch: u64) -> Self {
        Batches {
            data,
            order: epoch_order(data.len(), seed, epoch),
            batch_size: batch_size.max(1),
            next: 0,
            shift: None,
        }
    }
    /// Batches in dataset order (evaluation).
    pub fn sequential(data: &'a Dataset, batch_size: usize) -> Self {
        Batches {
            data,
            order: (0..data.len()).collect(),
            batch_size: batch_size.max(1),
            next: 0,
            shift: None,
        }
    }
    pub fn count(data_len: usize, batch_size: usize) -> usize {
        data_len.div_ceil(batch_size.max(1))
    }
    /// Randomly translates every example (training only).
    pub fn with_shift(mut self, shift: Option<Shift>, seed: u64, epoch: u64) -> Self {
        self.shift = shift.map(|s| (s, seed, epoch));
        self
    }
    /// The dataset rows of each remaining batch, without gathering them (device-side batching).
    pub fn rows(&self) -> impl Iterator<Item = &[usize]> {
        self.order[self.next..].chunks(self.batch_size)
    }

    /// Skips the first `k` batches (resuming mid-epoch).
    pub fn skip_batches(mut self, k: usize) -> Self {
        self.next = (k * self.batch_size).min(self.order.len());
        self
    }
}

impl Iterator for Batches<'_> {
    /// Features `[b, f]` and labels `[b]` as floating-point class indices, or a regression's
    /// targets `[b, k]` row after row, `[b·k]` (the program binds them as `[b, k]`).
    type Item = (Array2<f32>, Array1<f32>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let rows = &self.order[self.next..end];
        self.next = end;
        let mut x = self.data.features.select(Axis(0), rows);
        if let Some((shift, seed, epoch)) = &self.shift {
            shift.apply(&mut x, rows, *seed, *epoch);
        }
        let y = match &self.data.targets {
            Some(t) => rows.iter().flat_map(|&i| t.row(i).to_vec()).collect(),
            None => rows.iter().map(|&i| self.data.labels[i] as f32).collect(),
        };
        Some((x, y))
    }
}
