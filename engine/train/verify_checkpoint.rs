//! `--verify-checkpoint`: the first step's gradients (and BatchNorm's running statistics)
//! under the run's checkpoint plan, against a step that keeps everything.

use super::program::{Planning, StepOptions, StepProgram};
use super::{TrainError, Trainer};
use crate::ops::RunContext;
use crate::plan::CheckpointPolicy;
use ndarray::{Array1, Array2};

impl Trainer {
    /// Runs the first step's batch with and without checkpointing (no update) and returns
    /// the largest absolute gradient difference and the parameter where it occurs.
    pub fn verify_checkpoint(&mut self, x: Array2<f32>, y: Array1<f32>) -> Result<(f32, Option<String>), TrainError> {
        let batch = x.nrows();
        let ctx = RunContext {
            seed: self.config.settings.seed,
            step: self.state.step,
            training: true,
            first_row: 0,
        };
        let resident = self.device.tracker().report();
        let scaled = self.loss_scaled();
        let options = StepOptions {
            loss_scaled: scaled,
            layout: self.device.half_layout(),
            update_in_backward: false,
            rates: self.device.rates(),
        };
        let plain = StepProgram::training(&self.mlp, batch, CheckpointPolicy::None, &resident, options)?;
        // The same plan as training's, handing its gradients out instead of applying them.
        let trained = StepProgram::training(
            &self.mlp,
            batch,
            self.config.checkpoint,
            &resident,
            StepOptions {
                update_in_backward: self.config.update_in_backward,
                ..options
            },
        )?;
        let like = trained.plan.as_ref().expect("training programs carry their plan");
        let planned = StepProgram::planned_as(&self.mlp, batch, Planning::Like(like), &resident, options)?;
        let a = self.model.gradients(&plain.program(), x.clone(), y.clone(), &ctx)?;
        let b = self.model.gradients(&planned.program(), x, y, &ctx)?;
        let mut worst = (0.0f32, None);
        // The gradients, then the buffers' next values: a recomputation must not move them.
        let names = plain.params.iter().chain(&plain.buffers);
        for ((name, ga), gb) in names.zip(&a).zip(&b) {
            let d = ga
                .iter()
                .zip(gb.iter())
                .map(|(u, v)| (u - v).abs())
                .fold(0.0f32, f32::max);
            if d > worst.0 || (d.is_nan() && !worst.0.is_nan()) {
                worst = (d, Some(name.clone()));
            }
        }
        Ok(worst)
    }
}
