//! What an out-of-memory error says: the device's limit, and what `chainrule scale` would
//! pick instead (a checkpoint policy that fits the batch, or the largest batch that fits).

use super::batch_norm_rows::largest_batch_without_one_row_steps;
use super::epoch_room::epoch_step_rows;
use super::scale::{fits_at, max_batch, resident_bytes_for, DEFAULT_MAX_RECOMPUTE};
use super::StepOptions;
use super::{TrainConfig, TrainError};
use crate::exec::ExecError;
use crate::memory::{Bytes, MemoryError};
use crate::nn::{Mlp, MlpSpec};
use crate::plan::{CheckpointPolicy, HalfLayout};

impl TrainError {
    /// The device's limit, when this is an out-of-memory error.
    pub fn out_of_memory_limit(&self) -> Option<u64> {
        let m = match self {
            TrainError::Memory(m) | TrainError::Exec(ExecError::Memory(m)) => m,
            TrainError::Evaluation { cause, .. } => return cause.out_of_memory_limit(),
            _ => return None,
        };
        let MemoryError::OutOfMemory { limit, .. } = m;
        Some(*limit)
    }
}

/// What `chainrule scale` would pick for `config`'s model within `limit` on a device that
/// holds 16-bit values as `layout` says: a checkpoint policy that fits its batch, or the
/// largest batch that fits.
///
/// Updates inside backward are suggested too where the run does not use them and may
/// (`scaled`: loss scaling, which they cannot be combined with). With BatchNorm, a batch
/// size suggested leaves no step a single row of `rows` (the training rows and the ranks).
pub fn out_of_memory_advice(
    spec: &MlpSpec,
    config: &TrainConfig,
    limit: u64,
    (layout, scaled): (HalfLayout, bool),
    rows: Option<(usize, usize)>,
) -> String {
    let mlp = match Mlp::new(spec.clone()) {
        Ok(m) => m,
        Err(e) => return e.to_string(),
    };
    let (batch, resident) = (
        config.settings.batch_size,
        resident_bytes_for(spec, &config.optimizer, layout),
    );
    // With BatchNorm, the training rows and ranks whose steps must keep 2 rows or more.
    let one_row_rule = rows.filter(|_| mlp.smallest_training_batch() > 1);
    let inside = if config.update_in_backward || scaled {
        vec![config.update_in_backward]
    } else {
        vec![false, true]
    };
    let candidates = [
        CheckpointPolicy::None,
        CheckpointPolicy::Cheap,
        CheckpointPolicy::Sqrt,
        CheckpointPolicy::Budget(limit),
    ];
    // Each candidate's largest batch, and whether the run's own batch fits it: every step
    // of an epoch, where the training rows are known (in an fp8 step a shorter last batch
    // can need more than a full one).
    let fits: Vec<(CheckpointPolicy, bool, usize, bool)> = inside
        .iter()
        .flat_map(|&update_in_backward| {
            let options = StepOptions {
                layout,
                update_in_backward,
                ..Default::default()
            };
            let (mlp, resident) = (&mlp, &resident);
            candidates.iter().filter_map(move |&p| {
                let step_fits = |r: usize| fits_at(mlp, r, p, limit, resident, options, DEFAULT_MAX_RECOMPUTE);
                let b = max_batch(mlp, p, limit, resident, options, DEFAULT_MAX_RECOMPUTE)?;
                let b = match one_row_rule {
                    Some((train_rows, world)) => largest_batch_without_one_row_steps(b, train_rows, world)?,
                    None => b,
                };
                let (b, batch_fits) = match rows {
                    Some(rows) => (
                        largest_whole_epoch_fit(b, rows, step_fits)?,
                        whole_epoch_fits(batch, rows, step_fits),
                    ),
                    None => (b, b >= batch),
                };
                Some((p, update_in_backward, b, batch_fits))
            })
        })
        .collect();
    let flag = |on: bool| {
        if on && !config.update_in_backward {
            " --update-in-backward"
        } else {
            ""
        }
    };
    match fits.iter().find(|(_, _, _, batch_fits)| *batch_fits) {
        Some((p, on, _, _)) => format!(
            "suggestion: --checkpoint {}{} fits --batch-size {batch} in {} (see `chainrule scale`)",
            exact(p),
            flag(*on),
            Bytes(limit)
        ),
        // Among the candidates that reach the largest batch, the first (the simplest policy).
        None => match fits.iter().rev().max_by_key(|(_, _, b, _)| *b) {
            Some((p, on, b, _)) => format!(
                "suggestion: --checkpoint {}{} --batch-size {b} is the largest batch that fits in {} (see `chainrule scale`)",
                exact(p),
                flag(*on),
                Bytes(limit)
            ),
            None => format!(
                "even a batch of {} does not fit in {}: use a smaller model",
                mlp.smallest_training_batch(),
                Bytes(limit)
            ),
        },
    }
}

/// `policy` as a flag to type: a budget in exact bytes, since the limit it is planned
/// against is rarely a whole number of hundredths of a MiB, and a budget rounded down to
/// one may no longer fit.
fn exact(policy: &CheckpointPolicy) -> String {
    match policy {
        CheckpointPolicy::Budget(bytes) => format!("budget:{bytes}B"),
        p => p.to_string(),
    }
}

/// The largest batch of at most `batch` whose every step of an epoch of `train_rows` rows
/// over `world` ranks fits (`fits` of a step's rows): the full batch's share and the last
/// batch's. It is `batch` itself unless the peak is not monotone in the rows (an fp8 step,
/// whose batches of a multiple of 16 rows make FP8 copies); a few smaller batches are tried
/// then, each with another last batch.
fn largest_whole_epoch_fit(batch: usize, rows: (usize, usize), fits: impl Fn(usize) -> bool) -> Option<usize> {
    // A batch past the training rows is all of them: start there.
    let top = batch.min(rows.0.max(1));
    (top.saturating_sub(64).max(1)..=top)
        .rev()
        .find(|&b| whole_epoch_fits(b, rows, &fits))
}

/// Whether every step of an epoch of `train_rows` rows in batches of `batch` over `world`
/// ranks fits.
fn whole_epoch_fits(batch: usize, (train_rows, world): (usize, usize), fits: impl Fn(usize) -> bool) -> bool {
    epoch_step_rows(train_rows, batch, world).into_iter().all(fits)
}
