//! How a run trains, as it is saved and resumed: one struct that a run's configuration
//! holds and a saved file records, so neither keeps its own copy of the fields.

use super::snapshot::Validation;
use crate::optim::LrSchedule;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct TrainSettings {
    pub seed: u64,
    pub batch_size: usize,
    /// The base learning rate (the schedule scales it).
    pub lr: f64,
    pub schedule: LrSchedule,
    /// The run's planned length (the cosine schedule's horizon).
    pub epochs: u64,
    /// Largest random image shift in pixels (0: no augmentation).
    #[serde(default)]
    pub augment_shift: usize,
    /// The validation split and early stopping, so a resumed run holds out the same rows
    /// and keeps counting its patience.
    #[serde(default, skip_serializing_if = "is_default")]
    pub validation: Validation,
}

fn is_default(v: &Validation) -> bool {
    *v == Validation::default()
}
