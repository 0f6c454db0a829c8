//! The epoch loop: shuffled (and, for images, shifted) batches, a step each, the epoch's
//! loss, accuracy and memory; at its end, evaluation of the validation and test splits,
//! the best epoch so far, early stopping, and events for the caller.

use super::events::{Control, EpochSummary, StepEvent};
use super::{TrainError, Trainer};
use crate::backend::Batch;
use crate::data::{augment::Shift, Batches, Dataset};
use crate::io::BestEpoch;
use ndarray::Array2;
use std::time::Instant;

/// What an epoch's steps add up to.
struct EpochRun {
    started: Instant,
    /// The batch a resumed run took the epoch up at (0: from its start).
    from_batch: u64,
    seen: usize,
    peak: u64,
    predicted_peak: u64,
    lr: f64,
    /// Asked to stop at the epoch's last step: the epoch closes first, so the run stops (and
    /// saves) at an epoch's end, where it can be resumed.
    stop_after: bool,
}

impl Trainer {
    /// The augmentation for `train`, if asked for and the data are images.
    fn shift_for(&self, train: &Dataset) -> Option<Shift> {
        let (rows, cols) = train.image_shape?;
        if self.config.settings.augment_shift == 0 {
            return None;
        }
        let mut blank = Array2::zeros((1, rows * cols));
        self.normalization.apply(&mut blank);
        Some(Shift {
            rows,
            cols,
            max: self.config.settings.augment_shift,
            fill: blank.into_raw_vec_and_offset().0,
        })
    }

    /// Trains until `config.settings.epochs` epochs are done or an event asks to stop. `on_step`
    /// sees every step, `on_epoch` every finished epoch (after evaluating `test`).
    pub fn fit(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        on_step: impl FnMut(&Trainer, &StepEvent) -> Control,
        on_epoch: impl FnMut(&Trainer, &EpochSummary) -> Control,
    ) -> Result<Control, TrainError> {
        self.fit_validated(train, None, test, on_step, on_epoch)
    }

    /// [`Self::fit`] watching a validation split: its loss and accuracy each epoch, the
    /// best epoch, and early stopping after `config.settings.validation.patience` epochs without a
    /// better validation loss (then [`Self::stopped_early`] says so).
    pub fn fit_validated(
        &mut self,
        train: &Dataset,
        validation: Option<&Dataset>,
        test: &Dataset,
        mut on_step: impl FnMut(&Trainer, &StepEvent) -> Control,
        mut on_epoch: impl FnMut(&Trainer, &EpochSummary) -> Control,
    ) -> Result<Control, TrainError> {
        if train.is_empty() {
            return Err(TrainError::Data("the training set is empty".into()));
        }
        // The out-of-memory advice's batch sizes must keep the one-row rule on these rows.
        self.train_rows = Some(train.len());
        self.check_batch_norm_rows(train.len())?;
        self.check_epoch_fits(train.len())?;
        let shift = self.shift_for(train);
        // On a GPU the training set is uploaded once; batches are gathered there.
        let held = self.model.hold_training_set(train, shift.as_ref())?;
        while self.state.epoch < self.config.settings.epochs && self.stopped_early().is_none() {
            let Some(run) = self.train_epoch(train, shift.as_ref(), held, &mut on_step)? else {
                return Ok(Control::Stop);
            };
            let stop_after = run.stop_after;
            let summary = self.close_epoch(run, validation, test)?;
            let more = self.state.epoch < self.config.settings.epochs;
            if on_epoch(self, &summary) == Control::Stop || (stop_after && more) {
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }

    /// The best epoch, when early stopping has ended the run: its patience is spent.
    pub fn stopped_early(&self) -> Option<BestEpoch> {
        let patience = self.config.settings.validation.patience?;
        let best = self.state.best?;
        (self.state.epoch >= best.epoch + patience).then_some(best)
    }

    /// One epoch's steps (the rest of it, after a resume); `None` when `on_step` stopped it.
    fn train_epoch(
        &mut self,
        train: &Dataset,
        shift: Option<&Shift>,
        held: bool,
        on_step: &mut impl FnMut(&Trainer, &StepEvent) -> Control,
    ) -> Result<Option<EpochRun>, TrainError> {
        let spe = self.steps_per_epoch(train.len());
        if self.state.batch_in_epoch >= spe && spe > 0 {
            // Only a damaged or hand-made save is this far into an epoch of this data.
            return Err(TrainError::Data(format!(
                "the run is {} batches into an epoch of {spe} batches ({} rows at batch {}): not the data it was saved with",
                self.state.batch_in_epoch,
                train.len(),
                self.config.settings.batch_size
            )));
        }
        // The step drives the learning-rate schedule: a save whose step disagrees with its
        // epochs and batches (a hand-edited step or batch size, other data) would train on
        // another schedule, silently.
        let expected = self.state.epoch * spe + self.state.batch_in_epoch;
        if self.state.step != expected {
            return Err(TrainError::Data(format!(
                "the run is at step {}, but {} epochs of {spe} batches and {} batches into the next make {expected} ({} rows at batch {}): not the data or the batch size it was saved with",
                self.state.step,
                self.state.epoch,
                self.state.batch_in_epoch,
                train.len(),
                self.config.settings.batch_size
            )));
        }
        let total = spe.saturating_mul(self.config.settings.epochs);
        if total > crate::io::MAX_STEPS {
            // Its save could not be read back.
            return Err(TrainError::Config(format!(
                "--epochs {} of {spe} batches make {total} steps, more than a run counts ({}); train fewer epochs or larger batches",
                self.config.settings.epochs,
                crate::io::MAX_STEPS
            )));
        }
        let mut run = EpochRun {
            started: Instant::now(),
            from_batch: self.state.batch_in_epoch,
            seen: 0,
            peak: 0,
            predicted_peak: 0,
            lr: self.config.settings.lr,
            stop_after: false,
        };
        for data in self.epoch_batches(train, shift, held)? {
            let batch = data.len();
            let lr = self
                .config
                .settings
                .schedule
                .lr(self.config.settings.lr, self.state.step, spe, total);
            let (memory, predicted) = self.step(data, lr)?;
            self.state.batch_in_epoch += 1;
            // Reading a loss waits for a GPU: every device's is read only when it is reported.
            let report = self.state.step.is_multiple_of(self.log_every.max(1)) || self.state.batch_in_epoch == spe;
            let loss = if report {
                let value = self.model.last_loss()?;
                self.take_nonfinite()?;
                Some(value)
            } else {
                None
            };
            run.seen += batch;
            run.lr = lr;
            run.peak = run.peak.max(memory.peak_total);
            run.predicted_peak = run.predicted_peak.max(predicted.peak_total);
            let event = StepEvent {
                epoch: self.state.epoch + 1,
                step: self.state.step,
                batch_in_epoch: self.state.batch_in_epoch,
                batches_per_epoch: spe,
                batch,
                loss,
                lr,
                memory,
                predicted,
            };
            if on_step(self, &event) == Control::Stop {
                // The caller may save now: nothing non-finite may be pending.
                self.take_nonfinite()?;
                if self.state.batch_in_epoch < spe {
                    return Ok(None);
                }
                run.stop_after = true;
            }
        }
        Ok(Some(run))
    }

    /// This epoch's batches, made as they are taken: from the host, or rows of a training
    /// set held on the device.
    fn epoch_batches<'a>(
        &mut self,
        train: &'a Dataset,
        shift: Option<&'a Shift>,
        held: bool,
    ) -> Result<Box<dyn Iterator<Item = Batch> + 'a>, TrainError> {
        let (seed, epoch) = (self.config.settings.seed, self.state.epoch);
        let batches = Batches::shuffled(train, self.config.settings.batch_size, seed, epoch)
            .with_shift(shift.cloned(), seed, epoch)
            .skip_batches(self.state.batch_in_epoch as usize);
        if !held {
            return Ok(Box::new(batches.map(|(x, y)| Batch::Host(x, y))));
        }
        let rows: Vec<Vec<usize>> = batches.rows().map(<[usize]>::to_vec).collect();
        let all: Vec<usize> = rows.concat();
        let offsets: Vec<(isize, isize)> = all
            .iter()
            .map(|&r| shift.map_or((0, 0), |s| s.offsets(r, seed, epoch)))
            .collect();
        self.model.start_epoch(&all, &offsets)?;
        let mut start = 0;
        Ok(Box::new(rows.into_iter().map(move |rows| {
            let batch = Batch::Held { start, len: rows.len() };
            start += rows.len();
            batch
        })))
    }

    /// The end of an epoch: its sums, a check of the weights, the evaluations, the best
    /// epoch so far.
    fn close_epoch(
        &mut self,
        run: EpochRun,
        validation: Option<&Dataset>,
        test: &Dataset,
    ) -> Result<EpochSummary, TrainError> {
        self.take_nonfinite()?;
        let sums = self.model.take_epoch_sums()?;
        let seconds = run.started.elapsed().as_secs_f64();
        if let Some(name) = self.first_non_finite_parameter()? {
            return Err(TrainError::NonFiniteParameters {
                name,
                step: self.state.step,
            });
        }
        self.state.epoch += 1;
        self.state.batch_in_epoch = 0;
        // The epoch is trained even if evaluating it fails: say so, so it can be saved.
        let epoch = self.state.epoch;
        let failed = |e| TrainError::Evaluation {
            epoch,
            cause: Box::new(e),
        };
        let validation = validation.map(|v| self.evaluate(v)).transpose().map_err(failed)?;
        let improved = match &validation {
            Some(v) if self.state.best.is_none_or(|b| v.loss < b.val_loss) => {
                self.state.best = Some(BestEpoch {
                    epoch,
                    val_loss: v.loss,
                });
                true
            }
            _ => false,
        };
        let test = self.evaluate(test).map_err(failed)?;
        tracing::info!(
            epoch,
            seconds,
            evaluation_seconds = run.started.elapsed().as_secs_f64() - seconds,
            samples = run.seen,
            "epoch done"
        );
        let seen = run.seen.max(1) as f64;
        Ok(EpochSummary {
            epoch,
            step: self.state.step,
            train_loss: sums.loss / seen,
            train_accuracy: sums.correct / seen,
            regression: self.mlp.spec.loss.is_regression(),
            validation,
            improved,
            test,
            lr: run.lr,
            samples_per_sec: run.seen as f64 / seconds.max(1e-9),
            peak_bytes: run.peak,
            predicted_peak_bytes: run.predicted_peak,
            seconds,
            loss_scaler: self.model.loss_scaler()?,
            from_batch: run.from_batch,
        })
    }
}
