//! Training an MLP classifier: the run's settings ([`config`]), step programs traced once
//! per batch size ([`program`]), a trainer that steps a model placed on a device
//! ([`trainer`]), the epoch loop ([`fit`]) and the events it reports ([`events`]).

pub mod config;
mod data_parallel;
pub mod evaluate;
pub mod events;
pub mod fit;
pub mod program;
mod room;
pub mod scale;
pub mod setup;
pub mod trainer;

pub use crate::io::Validation;
pub use config::{TrainConfig, TrainError};
pub use events::{Control, EpochSummary, EvalResult, StepEvent};
pub use program::{Planning, StepOptions, StepProgram};
pub use trainer::Trainer;
