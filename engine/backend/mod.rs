//! Devices: where a step's tensors live and its work runs. [`Device`] and
//! [`PlacedModel`] are the only door to one (see [`device`]); [`open`] picks one. Each
//! backend is a folder: `cpu` (the reference for every test) and `cuda`.

pub mod cpu;
pub mod cuda;
pub mod device;
mod open;
mod products;
pub mod step_graphs;
pub mod step_protocol;

pub use device::{BareProducts, Batch, Device, EpochSums, PlacedModel, StateTensor, TrainingStep};
pub use open::{cpu, gpus, open, DeviceChoice, GpuInfo, OpenError, Precision};
pub use step_graphs::{GraphStatus, StepGraphs};

use crate::exec::ExecError;
use ndarray::ArrayD;

/// A snapshot's optimizer tensor that the placed optimizer has no slot for.
fn no_such_state(param: &str, name: &str, value: &ArrayD<f32>) -> ExecError {
    ExecError::State(format!(
        "no optimizer state '{name}' for '{param}' with shape {:?}",
        value.shape()
    ))
}
