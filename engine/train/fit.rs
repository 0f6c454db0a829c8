//! The epoch loop: shuffled (and, for images, shifted) batches, a step each, the epoch's
//! loss and memory, evaluation at its end, and events for the caller.

use super::events::{Control, EpochSummary, EvalResult, StepEvent};
use super::trainer::ensure_room;
use super::{TrainError, Trainer};
use crate::backend::Batch;
use crate::data::{augment::Shift, Batches, Dataset};
use crate::memory::Category;
use crate::ops::RunContext;
use ndarray::Array2;

/// Rows per evaluation batch.
const EVAL_BATCH: usize = 1000;

impl Trainer {
    /// Loss, accuracy and confusion matrix over a whole dataset (dropout off).
    pub fn evaluate(&mut self, data: &Dataset) -> Result<EvalResult, TrainError> {
        let classes = self.mlp.spec.classes();
        let mut confusion = vec![vec![0u64; classes]; classes];
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let ctx = RunContext {
            seed: self.state.seed,
            step: self.state.step,
            training: false,
        };
        for (x, y) in Batches::sequential(data, EVAL_BATCH) {
            let batch = x.nrows();
            self.program(false, batch)?;
            let program = &self.programs[&(false, batch)];
            let live = self.device.tracker().report();
            let step_bytes = program.predict(&live).peak_total.saturating_sub(live.live.total());
            ensure_room(self.device.as_ref(), step_bytes, Category::Temporaries)?;
            let labels: Vec<usize> = y.iter().map(|&v| v as usize).collect();
            let (predicted, loss) = self.model.evaluate(&program.program(), x, y, &ctx)?;
            loss_sum += loss as f64 * batch as f64;
            for (&pred, &truth) in predicted.iter().zip(&labels) {
                correct += (pred == truth) as usize;
                if truth < classes {
                    confusion[truth][pred] += 1;
                }
            }
        }
        let n = data.len().max(1);
        Ok(EvalResult {
            loss: loss_sum / n as f64,
            accuracy: correct as f64 / n as f64,
            confusion,
            examples: data.len(),
        })
    }

    /// A parameter holding NaN or infinity, if any: nothing like that gets saved.
    pub fn first_non_finite_parameter(&self) -> Result<Option<String>, TrainError> {
        for n in self.mlp.parameter_names() {
            if self.model.param(&n)?.is_some_and(|p| p.iter().any(|v| !v.is_finite())) {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// The augmentation for `train`, if asked for and the data are images.
    fn shift_for(&self, train: &Dataset) -> Option<Shift> {
        let (rows, cols) = train.image_shape?;
        if self.config.augment_shift == 0 {
            return None;
        }
        let mut blank = Array2::zeros((1, rows * cols));
        self.normalization.apply(&mut blank);
        Some(Shift {
            rows,
            cols,
            max: self.config.augment_shift,
            fill: blank.into_raw_vec_and_offset().0,
        })
    }

    /// Trains until `config.epochs` epochs are done or an event asks to stop. `on_step`
    /// sees every step, `on_epoch` every finished epoch (after evaluating `test`).
    pub fn fit(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        mut on_step: impl FnMut(&Trainer, &StepEvent) -> Control,
        mut on_epoch: impl FnMut(&Trainer, &EpochSummary) -> Control,
    ) -> Result<Control, TrainError> {
        if train.is_empty() {
            return Err(TrainError::Data("the training set is empty".into()));
        }
        let spe = self.steps_per_epoch(train.len());
        let total = spe * self.config.epochs;
        let shift = self.shift_for(train);
        // On a GPU the training set is uploaded once; batches are gathered there.
        let held = self.model.hold_training_set(train, shift.as_ref())?;
        while self.state.epoch < self.config.epochs {
            let started = std::time::Instant::now();
            let (mut seen, mut peak, mut predicted_peak) = (0usize, 0u64, 0u64);
            let batches = Batches::shuffled(train, self.config.batch_size, self.state.seed, self.state.epoch)
                .with_shift(shift.clone(), self.state.seed, self.state.epoch)
                .skip_batches(self.state.batch_in_epoch as usize);
            let (seed, epoch) = (self.state.seed, self.state.epoch);
            let batches: Box<dyn Iterator<Item = Batch>> = if held {
                let rows: Vec<Vec<usize>> = batches.rows().map(<[usize]>::to_vec).collect();
                let all: Vec<usize> = rows.concat();
                let offsets: Vec<(isize, isize)> = all
                    .iter()
                    .map(|&r| shift.as_ref().map_or((0, 0), |s| s.offsets(r, seed, epoch)))
                    .collect();
                self.model.start_epoch(&all, &offsets)?;
                let mut start = 0;
                Box::new(rows.into_iter().map(move |rows| {
                    let batch = Batch::Held { start, len: rows.len() };
                    start += rows.len();
                    batch
                }))
            } else {
                Box::new(batches.map(|(x, y)| Batch::Host(x, y)))
            };
            for data in batches {
                let batch = data.len();
                let lr = self.config.schedule.lr(self.config.lr, self.state.step, spe, total);
                let (memory, predicted) = self.step(data, lr)?;
                self.state.batch_in_epoch += 1;
                // Reading a GPU loss waits for the device: only when it is reported.
                let report = self.model.loss_is_free()
                    || self.state.step.is_multiple_of(self.log_every.max(1))
                    || self.state.batch_in_epoch == spe;
                let loss = if report {
                    let value = self.model.last_loss()?;
                    self.take_nonfinite()?;
                    Some(value)
                } else {
                    None
                };
                seen += batch;
                peak = peak.max(memory.peak_total);
                predicted_peak = predicted_peak.max(predicted.peak_total);
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
                    return Ok(Control::Stop);
                }
            }
            self.take_nonfinite()?;
            let loss_sum = self.model.take_loss_sum()?;
            let seconds = started.elapsed().as_secs_f64();
            if let Some(name) = self.first_non_finite_parameter()? {
                return Err(TrainError::NonFiniteParameters {
                    name,
                    step: self.state.step,
                });
            }
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            // The epoch is trained even if evaluating it fails: say so, so it can be saved.
            let test_result = self.evaluate(test).map_err(|e| TrainError::Evaluation {
                epoch: self.state.epoch,
                cause: Box::new(e),
            })?;
            let summary = EpochSummary {
                epoch: self.state.epoch,
                step: self.state.step,
                train_loss: loss_sum / seen.max(1) as f64,
                test: test_result,
                samples_per_sec: seen as f64 / seconds.max(1e-9),
                peak_bytes: peak,
                predicted_peak_bytes: predicted_peak,
                seconds,
                loss_scaler: self.model.loss_scaler()?,
            };
            if on_epoch(self, &summary) == Control::Stop {
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }
}
