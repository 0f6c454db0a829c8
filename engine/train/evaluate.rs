//! Evaluation: a whole dataset's loss, accuracy and confusion matrix in eval mode
//! (dropout off), in batches checked against the device's room first.

use super::events::{EvalResult, TargetFit};
use super::fits_in_memory::predicted_with_room;
use super::{StepProgram, TrainError, Trainer};
use crate::data::{Batches, Dataset};
use crate::ops::RunContext;
use ndarray::{s, Array2};

/// Rows per evaluation batch, at most: fewer when that many do not fit the device's room.
const EVAL_BATCH: usize = 1000;

impl Trainer {
    /// The largest batch of at most [`EVAL_BATCH`] (and `rows`) rows whose evaluation
    /// (`inference`: prediction) fits the device's room now, its last, shorter batch too
    /// (in an fp8 step a batch whose rows are a multiple of 16 makes FP8 copies that a
    /// longer one may not), halving from there; an out-of-memory error when not even one row
    /// fits.
    fn fitting_batch(&mut self, rows: usize, inference: bool) -> Result<usize, TrainError> {
        let mut batch = EVAL_BATCH.min(rows).max(1);
        loop {
            let last = rows % batch;
            let fits = [batch, last]
                .into_iter()
                .filter(|&b| b > 0)
                .try_for_each(|b| self.evaluation_fits(b, inference));
            match fits {
                Ok(()) => return Ok(batch),
                Err(e) if batch > 1 && e.out_of_memory_limit().is_some() => batch /= 2,
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether evaluating (`inference`: predicting) `batch` rows fits the device's room now.
    fn evaluation_fits(&mut self, batch: usize, inference: bool) -> Result<(), TrainError> {
        if inference {
            let program = self.inference_program(batch)?;
            predicted_with_room(self.device.as_ref(), &program, "a prediction batch")?;
        } else {
            self.program(false, batch)?;
            let program = &self.programs[&(false, batch)];
            predicted_with_room(self.device.as_ref(), program, "an evaluation batch")?;
        }
        Ok(())
    }

    /// The forward-only program that predicts `batch` rows on this trainer's device.
    fn inference_program(&self, batch: usize) -> Result<StepProgram, TrainError> {
        Ok(StepProgram::inference(&self.mlp, batch)?.stored_for(self.device.half_layout()))
    }

    /// Loss, accuracy and confusion matrix over a whole dataset (dropout off); a
    /// regression's loss, RMSE and R².
    pub fn evaluate(&mut self, data: &Dataset) -> Result<EvalResult, TrainError> {
        if let Some(targets) = &data.targets {
            return self.evaluate_regression(data, targets);
        }
        let classes = self.mlp.spec.classes();
        let mut confusion = vec![vec![0u64; classes]; classes];
        let (mut loss_sum, mut correct, mut without_class) = (0.0f64, 0usize, 0usize);
        let ctx = RunContext {
            seed: self.config.settings.seed,
            step: self.state.step,
            training: false,
            first_row: 0,
        };
        // Checked to fit once, the full batches and the last.
        let rows = self.fitting_batch(data.len(), false)?;
        for (x, y) in Batches::sequential(data, rows) {
            let batch = x.nrows();
            self.program(false, batch)?;
            let program = &self.programs[&(false, batch)];
            let labels: Vec<usize> = y.iter().map(|&v| v as usize).collect();
            let (predicted, loss) = self.model.evaluate(&program.program(), x, y, &ctx)?;
            loss_sum += loss as f64 * batch as f64;
            // A row that predicts no class (its logits NaN or infinite: `argmax`) is wrong,
            // and in no column of the confusion matrix.
            for (&pred, &truth) in predicted.iter().zip(&labels) {
                correct += (pred == Some(truth)) as usize;
                without_class += pred.is_none() as usize;
                if let (true, Some(pred)) = (truth < classes, pred) {
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
            without_class,
            r2: None,
            targets: Vec::new(),
        })
    }

    /// A regression's evaluation from one forward pass: its predictions, against which each
    /// target's squared errors are summed in f64; the loss (the mean over every value) and
    /// R² (the mean of the targets') follow from those sums.
    fn evaluate_regression(&mut self, data: &Dataset, targets: &Array2<f32>) -> Result<EvalResult, TrainError> {
        let fits = target_fits(targets, &self.predict(&data.features)?);
        let k = fits.len().max(1) as f64;
        Ok(EvalResult {
            loss: fits.iter().map(|f| f.rmse * f.rmse).sum::<f64>() / k,
            accuracy: 0.0,
            confusion: Vec::new(),
            examples: data.len(),
            without_class: 0,
            r2: (!fits.is_empty()).then(|| fits.iter().map(|f| f.r2).sum::<f64>() / k),
            targets: fits,
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

    /// Each row's logits (eval mode), for rows already normalized as the model's training
    /// data were; [`probabilities`] turns them into class probabilities.
    pub fn predict(&mut self, features: &Array2<f32>) -> Result<Array2<f32>, TrainError> {
        let classes = self.mlp.spec.classes();
        let mut out = Array2::zeros((features.nrows(), classes));
        let ctx = RunContext {
            seed: self.config.settings.seed,
            step: self.state.step,
            training: false,
            first_row: 0,
        };
        // Checked to fit once, the full batches and the last; traced once per batch size.
        let rows = self.fitting_batch(features.nrows(), true)?;
        let mut traced: Option<(usize, StepProgram)> = None;
        let mut start = 0;
        while start < features.nrows() {
            let end = (start + rows).min(features.nrows());
            if traced.as_ref().is_none_or(|(batch, _)| *batch != end - start) {
                traced = Some((end - start, self.inference_program(end - start)?));
            }
            let (_, program) = traced.as_ref().expect("traced above");
            let x = features.slice(s![start..end, ..]).to_owned();
            let logits = self.model.infer(&program.program(), x, &ctx)?;
            for (i, row) in logits.outer_iter().enumerate() {
                out.row_mut(start + i).assign(&row);
            }
            start = end;
        }
        Ok(out)
    }
}

/// Softmax of each row of `logits` (in f64, shifted by the row's largest value).
pub fn probabilities(logits: &Array2<f32>) -> Array2<f32> {
    let mut out = logits.clone();
    for mut row in out.rows_mut() {
        let top = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let exp: Vec<f64> = row.iter().map(|&v| ((v - top) as f64).exp()).collect();
        let sum: f64 = exp.iter().sum();
        for (v, e) in row.iter_mut().zip(&exp) {
            *v = (e / sum) as f32;
        }
    }
    out
}

/// Each target's RMSE and R² (`1 − SSE/SST`, SST about its mean over these rows), from the
/// model's `predicted` values, summed in f64.
fn target_fits(targets: &Array2<f32>, predicted: &Array2<f32>) -> Vec<TargetFit> {
    targets
        .columns()
        .into_iter()
        .zip(predicted.columns())
        .map(|(y, p)| {
            let n = y.len().max(1) as f64;
            let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let sse: f64 = y
                .iter()
                .zip(p)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            let sst: f64 = y.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
            // A target that does not vary scores 1 predicted exactly, else 0: scikit-learn's
            // `r2_score` convention (force_finite), which its average then counts.
            let r2 = match (sst > 0.0, sse == 0.0) {
                (true, _) => 1.0 - sse / sst,
                (false, true) => 1.0,
                (false, false) => 0.0,
            };
            TargetFit {
                rmse: (sse / n).sqrt(),
                r2,
            }
        })
        .collect()
}
