//! BatchNorm normalizes by the batch's own statistics in training, so every batch a step
//! runs (each rank's rows of it, in a data-parallel job) needs two rows or more: one row
//! has no variance, and PyTorch refuses it mid-epoch. Checked before the first step instead,
//! for every batch size an epoch of this data makes, and kept by what suggests a batch size
//! (the out-of-memory advice).

use super::epoch_room::{epoch_batches, rank_shares};
use super::{TrainError, Trainer};

/// A step an epoch would run with a single row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneRowStep {
    /// The global batch it belongs to.
    pub global_rows: usize,
    /// Whether that is the epoch's last, short batch.
    pub last: bool,
}

/// The first step with a single row (on some rank) of an epoch of `train_rows` rows in
/// batches of `batch` split over `world` ranks, if any.
pub fn one_row_step(train_rows: usize, batch: usize, world: usize) -> Option<OneRowStep> {
    if train_rows == 0 || batch == 0 {
        return None;
    }
    let (full, last) = epoch_batches(train_rows, batch);
    [Some((full, false)), last.map(|rows| (rows, true))]
        .into_iter()
        .flatten()
        .find(|&(rows, _)| rank_shares(rows, world).contains(&1))
        .map(|(global_rows, last)| OneRowStep { global_rows, last })
}

/// The largest batch of at most `batch` rows (and 2 or more) whose epoch has no one-row
/// step, if any.
pub fn largest_batch_without_one_row_steps(batch: usize, train_rows: usize, world: usize) -> Option<usize> {
    (2..=batch)
        .rev()
        .find(|&b| one_row_step(train_rows, b, world).is_none())
}

impl Trainer {
    /// Refuses a run whose batches would leave some step's BatchNorm a single row.
    pub(super) fn check_batch_norm_rows(&self, train_rows: usize) -> Result<(), TrainError> {
        if self.mlp.buffer_names().is_empty() {
            return Ok(());
        }
        let batch = self.config.settings.batch_size;
        let world = self.world();
        let Some(step) = one_row_step(train_rows, batch, world) else {
            return Ok(());
        };
        let which = match step.last {
            true => "the last batch of each epoch",
            false => "each batch",
        };
        let gives = match world {
            1 => "has 1 row".to_string(),
            _ => format!(
                "({} rows) split over {world} ranks gives a rank 1 row",
                step.global_rows
            ),
        };
        let rows = match train_rows {
            1 => "1 training row".to_string(),
            n => format!("{n} training rows"),
        };
        Err(TrainError::Config(format!(
            "BatchNorm (--norm batch) normalizes by the batch's statistics in training, which need 2 rows or more a step, and with {rows} and --batch-size {batch}, {which} {gives}; change --batch-size (a new run), the training rows (the data, --val-fraction, --test-fraction), or --norm"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_steps_are_found_in_full_batches_last_batches_and_rank_shares() {
        assert_eq!(
            one_row_step(10, 1, 1),
            Some(OneRowStep {
                global_rows: 1,
                last: false
            })
        );
        assert_eq!(
            one_row_step(10, 3, 1),
            Some(OneRowStep {
                global_rows: 1,
                last: true
            })
        );
        assert_eq!(one_row_step(10, 4, 1), None);
        // 10 rows in batches of 4 over 2 ranks: the last batch of 2 gives each rank 1.
        assert_eq!(
            one_row_step(10, 4, 2),
            Some(OneRowStep {
                global_rows: 2,
                last: true
            })
        );
        // A batch larger than the data is one batch of all of it.
        assert_eq!(one_row_step(5, 100, 1), None);
        assert_eq!(largest_batch_without_one_row_steps(33, 10_000, 1), Some(32));
        assert_eq!(largest_batch_without_one_row_steps(1, 10, 1), None);
    }
}
