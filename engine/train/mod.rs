//! Training an MLP classifier: traced step programs (cached per batch size) and the
//! epoch loop with its events.

pub mod program;
pub mod trainer;

pub use program::StepProgram;
pub use trainer::{Control, EpochSummary, EvalResult, StepEvent, TrainConfig, TrainError, Trainer};
