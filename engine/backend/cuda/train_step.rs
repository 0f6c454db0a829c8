//! One training step of a [`GpuModel`]: the step clock written, then the shared step
//! protocol (backend/step_protocol.rs) enqueued on the stream through the primitives of
//! step_primitives.rs, with nothing read back. Under `--cuda-graph` the step is captured
//! once and replayed (step_graph.rs).

use super::clock::lr_word;
use super::model::GpuModel;
use super::step_graph::StepKey;
use crate::backend::device::{Batch, TrainingStep};
use crate::backend::step_protocol;
use crate::exec::ExecError;
use crate::kernels::ClockWord;

impl GpuModel {
    /// One step, eagerly or through its step graph.
    pub(super) fn train_step(&mut self, step: TrainingStep) -> Result<(), ExecError> {
        let TrainingStep {
            program,
            batch,
            ctx,
            lr,
            step: number,
            rank,
        } = step;
        // Everything a step reads that changes between steps, written once, before it.
        let start = match batch {
            Batch::Held { start, .. } => start as u64,
            Batch::Host(..) => 0,
        };
        let clock = [
            (ClockWord::DropoutStep, ctx.step),
            (ClockWord::GuardStep, number),
            (ClockWord::BatchStart, start),
            (ClockWord::LearningRate, lr_word(lr)),
        ];
        self.be.hold_clock(&clock)?;
        let key = match (&batch, rank) {
            (_, Some(_)) => Err("a data-parallel step (NCCL sums on their own stream) is not captured"),
            (Batch::Host(..), _) => Err("batches from the host are not captured"),
            (Batch::Held { len, .. }, None) => Ok(StepKey {
                program: program.id,
                rows: *len,
            }),
        };
        let mut captured = std::mem::take(&mut self.captured);
        let be = self.be.clone();
        let mut batch = Some(batch);
        let ran = captured.run(&be, key, || {
            // A failed capture runs the step again eagerly: a held batch is only a range.
            let again = match &batch {
                Some(Batch::Held { start, len }) => Batch::Held {
                    start: *start,
                    len: *len,
                },
                _ => batch
                    .take()
                    .ok_or_else(|| ExecError::Device("a host batch ran twice".into()))?,
            };
            let step = TrainingStep {
                program,
                batch: again,
                ctx,
                lr,
                step: number,
                rank,
            };
            step_protocol::train(self, step)
        });
        self.captured = captured;
        ran
    }
}
