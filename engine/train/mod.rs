//! Training an MLP classifier: the run's settings ([`config`]), a run made from the user's
//! choices or a saved run ([`run_spec`], with [`setup`]'s checks and defaults and
//! [`run_data`]'s data), step programs traced once per batch size ([`program`]), a trainer
//! that steps a model placed on a device ([`trainer`]), the epoch loop ([`fit`]) and the
//! events it reports ([`events`]); in a data-parallel job, joining it ([`join_job`]), the
//! fingerprint every rank must share ([`fingerprint`]) and stopping together
//! ([`stop_together`]).

pub mod batch_norm_rows;
pub mod config;
mod data_parallel;
pub mod epoch_room;
pub mod evaluate;
pub mod events;
pub mod fingerprint;
pub mod fit;
mod fits_in_memory;
pub mod join_job;
pub mod out_of_memory;
pub mod program;
pub mod run_data;
pub mod run_spec;
pub mod scale;
pub mod setup;
pub mod stop_together;
pub mod trainer;
mod verify_checkpoint;

pub use crate::io::Validation;
pub use config::{TrainConfig, TrainError};
pub use events::{Control, EpochSummary, EvalResult, StepEvent, TargetFit};
pub use fingerprint::RunFingerprint;
pub use program::{Planning, StepOptions, StepProgram};
pub use run_spec::{GoingOn, RunSpec};
pub use stop_together::StopTogether;
pub use trainer::Trainer;
