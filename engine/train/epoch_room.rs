//! Every step of an epoch checked against the device's room before the first one runs. A
//! step's peak is not always largest at the full batch: in an fp8 step a batch whose rows
//! are a multiple of 16 makes FP8 copies that a longer batch may not (plan/fp8.rs), so an
//! epoch's shorter last batch can need more than its full ones. Without this check such a
//! run would fail at the end of its first epoch instead of before it starts.

use super::fits_in_memory::predicted_with_room;
use super::{TrainError, Trainer};
use crate::dist::shard::shard_rows;

/// The rows of an epoch's full batches, and of its last, shorter one when it has one, for
/// `train_rows` rows in batches of `batch` (a batch past the rows is all of them).
pub fn epoch_batches(train_rows: usize, batch: usize) -> (usize, Option<usize>) {
    let full = batch.clamp(1, train_rows.max(1));
    (full, Some(train_rows % full).filter(|&last| last > 0))
}

/// The rows the ranks of `world` get of a batch of `rows` (shares differ by one at most),
/// without repeats or empty shares (a rank with no rows runs no program of its own).
pub fn rank_shares(rows: usize, world: usize) -> Vec<usize> {
    let world = world.max(1);
    let mut shares: Vec<usize> = (0..world)
        .map(|rank| shard_rows(rows, rank, world).len())
        .filter(|&r| r > 0)
        .collect();
    shares.sort_unstable();
    shares.dedup();
    shares
}

/// The rows a step of such an epoch gives a rank of `world`: every rank's share of a full
/// batch and of the last one, without repeats.
pub fn epoch_step_rows(train_rows: usize, batch: usize, world: usize) -> Vec<usize> {
    let (full, last) = epoch_batches(train_rows, batch);
    let mut rows: Vec<usize> = [Some(full), last]
        .into_iter()
        .flatten()
        .flat_map(|b| rank_shares(b, world))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

impl Trainer {
    /// Fails with the out-of-memory error a step would meet, before any step runs, when one
    /// of this rank's steps of an epoch of `train_rows` rows does not fit. The full step
    /// first: when it does not fit either, it is the one to name.
    pub(super) fn check_epoch_fits(&mut self, train_rows: usize) -> Result<(), TrainError> {
        let (rank, world) = (self.group.as_ref().map_or(0, |g| g.rank()), self.world());
        let (full, last) = epoch_batches(train_rows, self.config.settings.batch_size);
        let full_share = shard_rows(full, rank, world).len();
        if full_share > 0 {
            self.program(true, full_share)?;
            predicted_with_room(
                self.device.as_ref(),
                &self.programs[&(true, full_share)],
                "a training step",
            )?;
        }
        let last = last.map(|rows| (rows, shard_rows(rows, rank, world).len()));
        if let Some((last, share)) = last.filter(|&(_, share)| share > 0 && share != full_share) {
            let what = "the shorter training step that ends each epoch";
            if let Err(e) = self.program(true, share) {
                return Err(TrainError::Data(format!("{what} (its batch of {last} rows): {e}")));
            }
            predicted_with_room(self.device.as_ref(), &self.programs[&(true, share)], what)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_runs_the_full_batch_and_its_last_one_as_each_rank_shares_them() {
        assert_eq!(epoch_step_rows(10_000, 128, 1), vec![16, 128]);
        assert_eq!(epoch_step_rows(10_000, 100, 1), vec![100]);
        assert_eq!(epoch_step_rows(800, 1000, 1), vec![800]);
        // 10 rows in batches of 4 over 3 ranks: shares of 4 are 1 or 2, of the last 2, 0 or 1.
        assert_eq!(epoch_step_rows(10, 4, 3), vec![1, 2]);
        assert_eq!(rank_shares(2, 3), vec![1]);
        assert_eq!(epoch_batches(10, 4), (4, Some(2)));
        assert_eq!(epoch_batches(12, 4), (4, None));
    }
}
