//! A GPU rank's sums in a data-parallel step: NCCL sums each tensor over the ranks on its
//! own stream, so a gradient's sum, started as backward makes it final, runs beside the rest
//! of backward; the step's stream waits for the sums only before the guard and the update
//! read them. Which sums a step starts, and in what order, is the step protocol's
//! (backend/step_protocol.rs): every rank starts the same ones in the same order.

use super::{nccl::NcclComm, DeviceTensor};
use crate::dist::Group;
use crate::exec::ExecError;

fn comm(group: &Group) -> Result<&NcclComm, ExecError> {
    group
        .collective
        .as_any()
        .downcast_ref::<NcclComm>()
        .ok_or_else(|| ExecError::Device("a GPU rank of a data-parallel job needs NCCL as its collective".into()))
}

/// Starts replacing `t` by its sum over the ranks, in place.
pub fn start_sum(group: &Group, t: &mut DeviceTensor) -> Result<(), ExecError> {
    comm(group)?.all_reduce_tensor(t)
}

/// The step's stream waits for every sum started so far.
pub fn wait(group: &Group) -> Result<(), ExecError> {
    comm(group)?.wait_for_sums()
}
