//! Room before allocating: a step, an evaluation batch or a model is checked against its
//! device's room (and the machine's, for host-side work) before anything is allocated, so
//! an allocation the machine cannot back is an out-of-memory error, not an abort.

use super::{StepProgram, TrainError};
use crate::backend::Device;
use crate::memory::{MemoryError, MemoryReport};

/// What running `program` on `device` will use, after checking that it fits there: the
/// step's prediction on top of what is live, the room asked for named as `what`.
pub(super) fn predicted_with_room(
    device: &dyn Device,
    program: &StepProgram,
    what: &'static str,
) -> Result<MemoryReport, TrainError> {
    let live = device.tracker().report();
    let predicted = program.predict_with(&live, device.half_layout());
    ensure_room(device, predicted.peak_total.saturating_sub(live.live.total()), what)?;
    Ok(predicted)
}

/// Fails with an out-of-memory error when `bytes` more of host memory (not counted by any
/// device: the f64 draw of the initial weights) are more than the machine has available.
pub(super) fn ensure_host_room(bytes: u64) -> Result<(), TrainError> {
    match crate::backend::cpu::available_memory() {
        Some(free) if bytes > free => Err(MemoryError::OutOfMemory {
            requested: bytes,
            category: "host memory for drawing the initial weights",
            live: 0,
            limit: free,
            free,
        }
        .into()),
        _ => Ok(()),
    }
}

/// Fails with the device's out-of-memory error when `bytes` more (for `what`) will not fit,
/// before anything is allocated.
pub(super) fn ensure_room(device: &dyn Device, bytes: u64, what: &'static str) -> Result<(), TrainError> {
    match device.room()? {
        Some(room) if bytes > room => {
            let live = device.tracker().report().live.total();
            Err(MemoryError::OutOfMemory {
                requested: bytes,
                category: what,
                live,
                limit: live + room,
                free: room,
            }
            .into())
        }
        _ => Ok(()),
    }
}
