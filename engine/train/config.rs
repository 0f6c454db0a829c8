//! What a training run is: its settings, and what can go wrong.

use super::program::ProgramError;
use crate::exec::ExecError;
use crate::graph::GraphError;
use crate::io::{TrainSettings, Validation};
use crate::memory::MemoryError;
use crate::nn::SpecError;
use crate::optim::{LrSchedule, OptimizerConfig};
use crate::plan::CheckpointPolicy;

/// A run's configuration: the settings it saves and resumes with, its optimizer, and how
/// this process runs its steps (which a resumed run may choose anew).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainConfig {
    pub settings: TrainSettings,
    pub optimizer: OptimizerConfig,
    /// Which activations a step keeps for backward (the rest is recomputed).
    pub checkpoint: CheckpointPolicy,
    /// Dynamic loss scaling (always on for f16 matrix products; exact, and so testable, in f32).
    pub loss_scaling: bool,
    /// Each parameter's update runs inside backward, as soon as its gradient is complete,
    /// and the gradient is freed (bitwise the same result, a lower peak).
    pub update_in_backward: bool,
}

impl TrainConfig {
    /// One step of `optimizer` at a constant `lr`, seed 0, no augmentation: the step that
    /// `bench`, `remat` and `scale` measure, with the settings a training run would have.
    pub fn measuring(batch_size: usize, checkpoint: CheckpointPolicy, optimizer: OptimizerConfig, lr: f64) -> Self {
        TrainConfig {
            settings: TrainSettings {
                seed: 0,
                batch_size,
                lr,
                schedule: LrSchedule::Constant,
                epochs: 1,
                augment_shift: 0,
                validation: Validation::default(),
            },
            optimizer,
            checkpoint,
            loss_scaling: false,
            update_in_backward: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Joining a data-parallel job failed (the rendezvous, or the device's collective).
    #[error(transparent)]
    Join(#[from] crate::dist::JoinError),
    /// The step guard stopped a step: its loss was not finite, or (the loss finite) a
    /// BatchNorm running statistic would have become so.
    #[error("{}", nonfinite_words(*value, *step, *epoch))]
    NonFinite { value: f32, step: u64, epoch: u64 },
    #[error("parameter '{name}' became non-finite by step {step}")]
    NonFiniteParameters { name: String, step: u64 },
    #[error("{0}")]
    Data(String),
    /// Settings that do not go together.
    #[error("{0}")]
    Config(String),
    #[error("epoch {epoch} was trained, but evaluating it failed: {cause}")]
    Evaluation { epoch: u64, cause: Box<TrainError> },
}

fn nonfinite_words(loss: f32, step: u64, epoch: u64) -> String {
    match loss.is_finite() {
        false => format!("the loss became {loss} at step {step} (epoch {epoch}); the update was not applied"),
        true => format!(
            "a BatchNorm running statistic became non-finite at step {step} (epoch {epoch}; the loss was {loss}); the running statistics and the update were not kept"
        ),
    }
}
