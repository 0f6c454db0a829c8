//! BatchNorm normalizes by the batch's own statistics in training, so every batch a step
//! runs (each rank's rows of it, in a data-parallel job) needs two rows or more: one row
//! has no variance, and PyTorch refuses it mid-epoch. Checked before the first step instead,
//! for every batch size an epoch of this data makes.

use super::{TrainError, Trainer};
use crate::dist::shard_rows;

impl Trainer {
    /// Refuses a run whose batches would leave some step's BatchNorm a single row.
    pub(super) fn check_batch_norm_rows(&self, train_rows: usize) -> Result<(), TrainError> {
        if self.mlp.buffer_names().is_empty() || train_rows == 0 {
            return Ok(());
        }
        let batch = self.config.settings.batch_size.min(train_rows);
        let last = train_rows % batch;
        let world = self.group.as_ref().map_or(1, |g| g.world());
        for global in [batch, last].into_iter().filter(|&b| b > 0) {
            let fewest = (0..world).map(|rank| shard_rows(global, rank, world).len()).min();
            if fewest == Some(1) {
                let which = match global == batch {
                    true => "each batch".to_string(),
                    false => format!("the last batch of each epoch ({train_rows} rows in batches of {batch})"),
                };
                let gives = match world {
                    1 => "has 1 row".to_string(),
                    _ => format!("split over {world} ranks gives a rank 1 row"),
                };
                return Err(TrainError::Config(format!(
                    "--batch-size {}: {which} {gives}, and BatchNorm (--norm batch) normalizes by the batch's statistics in training, which need 2 rows or more; choose another --batch-size (or another --norm)",
                    self.config.settings.batch_size
                )));
            }
        }
        Ok(())
    }
}
