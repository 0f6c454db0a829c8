//! Training an MLP classifier: the run's settings ([`config`]), step programs traced once
//! per batch size ([`program`]), a trainer that steps a model placed on a device
//! ([`trainer`]), the epoch loop ([`fit`]) and the events it reports ([`events`]); in a
//! data-parallel job, joining it ([`join_job`]), the fingerprint every rank must share
//! ([`fingerprint`]) and stopping together ([`stop_together`]).

pub mod config;
mod data_parallel;
pub mod evaluate;
pub mod events;
pub mod fingerprint;
pub mod fit;
pub mod join_job;
pub mod program;
mod room;
pub mod scale;
pub mod setup;
pub mod stop_together;
pub mod trainer;

pub use crate::io::Validation;
pub use config::{TrainConfig, TrainError};
pub use events::{Control, EpochSummary, EvalResult, StepEvent};
pub use fingerprint::RunFingerprint;
pub use program::{Planning, StepOptions, StepProgram};
pub use stop_together::StopTogether;
pub use trainer::Trainer;
