//! What a training run tells its caller: an event per step and per epoch, evaluation
//! results, and the caller's answer.

use crate::memory::MemoryReport;
use crate::optim::LossScaler;

/// What the caller wants after an event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Control {
    Continue,
    Stop,
}

#[derive(Clone, Debug)]
pub struct StepEvent {
    pub epoch: u64,
    /// Global step count after this step.
    pub step: u64,
    pub batch_in_epoch: u64,
    pub batches_per_epoch: u64,
    pub batch: usize,
    /// The step's loss, when it was read: every [`Trainer::log_every`] steps and at an
    /// epoch's last step.
    pub loss: Option<f32>,
    pub lr: f64,
    pub memory: MemoryReport,
    pub predicted: MemoryReport,
}

#[derive(Clone, Debug)]
pub struct EvalResult {
    pub loss: f64,
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    pub examples: usize,
    /// Rows whose logits are NaN or infinite (the model's output overflowed): no class, so
    /// counted wrong and in no column of the confusion matrix.
    pub without_class: usize,
    /// A regression's R²: the mean over its targets of each one's, as scikit-learn's
    /// `r2_score` averages them by default (a target that does not vary scores 0, or 1 when
    /// predicted exactly); none for a classifier.
    pub r2: Option<f64>,
    /// A regression's fit of each target (empty for a classifier).
    pub targets: Vec<TargetFit>,
}

/// How well a regression predicts one target over a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetFit {
    /// The root of its mean squared error.
    pub rmse: f64,
    /// `1 − Σ(y − ŷ)² / Σ(y − ȳ)²`, ȳ its mean over these rows (0 when it does not vary, 1
    /// if then predicted exactly).
    pub r2: f64,
}

impl EvalResult {
    /// The root of the mean squared error over every target, a regression's error in its
    /// targets' units; NaN when the loss is (`f64::max` would have made it 0, a perfect fit).
    pub fn rmse(&self) -> f64 {
        match self.loss < 0.0 {
            true => 0.0,
            false => self.loss.sqrt(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct EpochSummary {
    /// 1-based number of the epoch just finished.
    pub epoch: u64,
    pub step: u64,
    pub train_loss: f64,
    /// Share of the epoch's training rows its forward passes classified right (dropout on;
    /// 0 for a regression, which classifies nothing).
    pub train_accuracy: f64,
    /// Whether the model is a regression (`--loss mse`): its figures are errors, not accuracies.
    pub regression: bool,
    /// The validation split's evaluation, when there is one.
    pub validation: Option<EvalResult>,
    /// Whether this epoch's validation loss is the best so far.
    pub improved: bool,
    pub test: EvalResult,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    pub samples_per_sec: f64,
    pub peak_bytes: u64,
    pub predicted_peak_bytes: u64,
    pub seconds: f64,
    /// Dynamic loss scaling's state at the epoch's end, when training with it.
    pub loss_scaler: Option<LossScaler>,
    /// The batch this run took the epoch up at when it resumed one mid-way (0: the whole
    /// epoch): the training loss, accuracy and rate cover the batches from there on.
    pub from_batch: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_loss_has_a_nan_rmse_not_a_perfect_one() {
        let result = |loss| EvalResult {
            loss,
            accuracy: 0.0,
            confusion: Vec::new(),
            examples: 1,
            without_class: 0,
            r2: None,
            targets: Vec::new(),
        };
        assert!(result(f64::NAN).rmse().is_nan());
        assert_eq!(result(4.0).rmse(), 2.0);
    }
}
