//! A trainer as one rank of a data-parallel job ([`crate::dist`]): every rank draws the same
//! global batch from the same keyed shuffle, runs its own rows of it, and applies the update
//! of the whole batch (gradients summed over the ranks by the model's step), so the examples
//! of a step, the update and the saved state do not depend on how many ranks share the work.

use super::{TrainError, Trainer};
use crate::backend::Batch;
use crate::dist::{group::StepShare, shard_rows, Group};
use crate::memory::{Category, MemoryReport};
use ndarray::s;

impl Trainer {
    /// Makes this trainer rank `group.rank()` of a job of `group.world()` ranks. Every rank
    /// must be built from the same settings (or the same snapshot).
    pub fn join(&mut self, group: Group) -> Result<(), TrainError> {
        self.group = Some(group);
        Ok(())
    }

    /// The memory of a step this rank takes part in with no rows of the batch (a small last
    /// batch): what is live now, and the zeros it sums in the others' order (a loss, a
    /// gradient a parameter, a count), 4 bytes a value.
    pub(super) fn predicted_without_rows(&self) -> MemoryReport {
        let mut report = self.device.tracker().report();
        report.reset_peak();
        let values = 2 + self.mlp.spec.parameter_count() as u64;
        report.add(Category::Temporaries, 4 * values);
        report
    }

    /// Ranks in this trainer's job (1 outside one).
    pub fn world(&self) -> usize {
        self.group.as_ref().map_or(1, |g| g.world())
    }

    /// This rank's part of a global batch: its rows, the first one's place in the global
    /// batch, and its share (none outside a job).
    pub(super) fn shard(&self, data: Batch) -> (Batch, u64, Option<StepShare>) {
        let Some(group) = &self.group else {
            return (data, 0, None);
        };
        let global_rows = data.len();
        let rows = shard_rows(global_rows, group.rank(), group.world());
        let share = StepShare {
            rows: rows.len(),
            global_rows,
        };
        let first = rows.start as u64;
        let local = match data {
            Batch::Host(x, y) => {
                // A regression's targets come row after row, k values a row.
                let k = y.len().checked_div(x.nrows()).unwrap_or(1);
                let ys = s![rows.start * k..rows.end * k];
                Batch::Host(x.slice(s![rows.clone(), ..]).to_owned(), y.slice(ys).to_owned())
            }
            Batch::Held { start, .. } => Batch::Held {
                start: start + rows.start,
                len: rows.len(),
            },
        };
        (local, first, Some(share))
    }
}
