//! Devices: where a step's tensors live and its work runs. [`Device`] and
//! [`PlacedModel`] are the only door to one (see [`device`]); [`open`] picks one. Each
//! backend is a folder: `cpu` (the reference for every test) and `cuda`.

pub mod cpu;
pub mod cuda;
pub mod device;
mod open;
mod products;
pub mod step_graphs;

pub use device::{BareProducts, Batch, Device, EpochSums, PlacedModel, StateTensor};
pub use open::{cpu, gpus, open, DeviceChoice, GpuInfo, OpenError, Precision};
pub use step_graphs::{GraphStatus, StepGraphs};

use crate::exec::ExecError;
use ndarray::ArrayD;

/// The parameters a schedule that updates inside backward updates, in its order: a
/// data-parallel rank with no rows of a step sums zeros for them in this order, as the others
/// sum their gradients while their schedules run (every local batch size's schedule runs
/// backward from the last layer, so the order is the same for each).
pub(crate) fn update_order(program: &crate::exec::Program) -> Vec<String> {
    use crate::graph::Leaf;
    program
        .schedule
        .instrs
        .iter()
        .filter_map(|i| match i {
            crate::plan::Instr::Update { param, .. } => match &program.graph.node(*param).op {
                crate::ops::Op::Leaf(Leaf::Parameter { name }) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A snapshot's optimizer tensor that the placed optimizer has no slot for.
fn no_such_state(param: &str, name: &str, value: &ArrayD<f32>) -> ExecError {
    ExecError::State(format!(
        "no optimizer state '{name}' for '{param}' with shape {:?}",
        value.shape()
    ))
}
