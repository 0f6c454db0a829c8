//! Every step of an epoch checked against the device's room before the first one runs. A
//! step's peak is not always largest at the full batch: in an fp8 step a batch whose rows
//! are a multiple of 16 makes FP8 copies that a longer batch may not (plan/fp8.rs), so an
//! epoch's shorter last batch can need more than its full ones. Without this check such a
//! run would fail at the end of its first epoch instead of before it starts.

use super::fits_in_memory::predicted_with_room;
use super::{TrainError, Trainer};
use crate::dist::shard::shard_rows;

/// The rows of an epoch's full batches and of its last one, for `train_rows` rows in
/// batches of `batch` (a batch past the rows is all of them).
fn full_and_last(train_rows: usize, batch: usize) -> [usize; 2] {
    let full = batch.clamp(1, train_rows.max(1));
    match train_rows % full {
        0 => [full, full],
        last => [full, last],
    }
}

/// The rows a step of such an epoch gives the ranks `ranks` of `world`: their shares of a
/// full batch and of the last one, without repeats or empty shares (a rank with no rows
/// runs no program of its own).
pub fn epoch_step_rows(
    train_rows: usize,
    batch: usize,
    ranks: impl Iterator<Item = usize> + Clone,
    world: usize,
) -> Vec<usize> {
    let mut rows: Vec<usize> = full_and_last(train_rows, batch)
        .into_iter()
        .flat_map(|b| ranks.clone().map(move |r| shard_rows(b, r, world).len()))
        .filter(|&r| r > 0)
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

impl Trainer {
    /// Fails with the out-of-memory error a step would meet, before any step runs, when one
    /// of this rank's steps of an epoch of `train_rows` rows does not fit.
    pub(super) fn check_epoch_fits(&mut self, train_rows: usize) -> Result<(), TrainError> {
        let (rank, world) = (self.group.as_ref().map_or(0, |g| g.rank()), self.world());
        let [full, last] = full_and_last(train_rows, self.config.settings.batch_size);
        let (full_share, last_share) = (shard_rows(full, rank, world).len(), shard_rows(last, rank, world).len());
        // The full step first: when it does not fit either, it is the one to name.
        let steps = [(full_share, None), (last_share, Some(last))];
        for (rows, last) in steps
            .into_iter()
            .filter(|&(r, l)| r > 0 && (l.is_none() || r != full_share))
        {
            let Some(last) = last else {
                self.program(true, rows)?;
                predicted_with_room(self.device.as_ref(), &self.programs[&(true, rows)], "a training step")?;
                continue;
            };
            let what = "the shorter training step that ends each epoch";
            if let Err(e) = self.program(true, rows) {
                return Err(TrainError::Data(format!("{what} (its batch of {last} rows): {e}")));
            }
            predicted_with_room(self.device.as_ref(), &self.programs[&(true, rows)], what)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_runs_the_full_batch_and_its_last_one_as_each_rank_shares_them() {
        let one = || 0..1;
        assert_eq!(epoch_step_rows(10_000, 128, one(), 1), vec![16, 128]);
        assert_eq!(epoch_step_rows(10_000, 100, one(), 1), vec![100]);
        assert_eq!(epoch_step_rows(800, 1000, one(), 1), vec![800]);
        // 10 rows in batches of 4 over 3 ranks: shares of 4 are 1 or 2, of the last 2, 0 or 1.
        assert_eq!(epoch_step_rows(10, 4, 0..3, 3), vec![1, 2]);
        assert_eq!(epoch_step_rows(10, 4, 0..1, 3), vec![1]);
    }
}
