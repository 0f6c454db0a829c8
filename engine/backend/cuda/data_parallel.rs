//! A GPU rank's part of a data-parallel step: each gradient weighted by the rank's share of
//! the global batch and summed over the ranks by NCCL on its own stream, started as backward
//! makes it final so the sums run beside the rest of backward; then the loss and the right
//! answers; the step's stream waits for the sums only before the guard and the update read
//! them. A step that updates inside backward sums each gradient just before its update.
//!
//! Every rank must start the same sums in the same order: a rank with no rows of a step
//! follows the order the schedule makes its gradients final in.

use super::{nccl::NcclComm, ops::arith, CudaBackend, DeviceTensor};
use crate::dist::{group::StepShare, Group};
use crate::exec::{ExecError, Parameters};
use std::collections::HashMap;

fn comm(group: &Group) -> Result<&NcclComm, ExecError> {
    group
        .collective
        .as_any()
        .downcast_ref::<NcclComm>()
        .ok_or_else(|| ExecError::Device("a GPU rank of a data-parallel job needs NCCL as its collective".into()))
}

/// Starts replacing this rank's mean `t` by the global batch's, in place.
pub fn start_mean(be: &CudaBackend, group: &Group, share: StepShare, t: &mut DeviceTensor) -> Result<(), ExecError> {
    let w = share.weight();
    if w != 1.0 {
        arith::scale_in_place(be, t, w)?;
    }
    comm(group)?.all_reduce_tensor(t)
}

/// The step's stream waits for every sum started so far.
pub fn wait(group: &Group) -> Result<(), ExecError> {
    comm(group)?.wait_for_sums()
}

/// A count summed over the ranks, in place; the step's stream waits for it.
pub fn sum_count(group: &Group, t: &mut DeviceTensor) -> Result<(), ExecError> {
    comm(group)?.all_reduce_tensor(t)?;
    wait(group)
}

/// After the gradients of a training program's `outputs` (`[loss, gradients.., correct]`):
/// the loss and the right answers, then the wait.
pub fn finish(
    be: &CudaBackend,
    group: &Group,
    share: StepShare,
    outputs: &mut [DeviceTensor],
) -> Result<(), ExecError> {
    let last = outputs.len() - 1;
    start_mean(be, group, share, &mut outputs[0])?;
    comm(group)?.all_reduce_tensor(&mut outputs[last])?;
    wait(group)
}

/// Reads parameters for the executor and starts each gradient's sum once it is final.
pub struct Overlapping<'a> {
    pub params: &'a HashMap<String, DeviceTensor>,
    pub be: &'a CudaBackend,
    pub group: &'a Group,
    pub share: StepShare,
    /// Gradients are outputs `1..=gradients`.
    pub gradients: usize,
}

impl Parameters<DeviceTensor> for Overlapping<'_> {
    fn get_param(&self, name: &str) -> Option<&DeviceTensor> {
        self.params.get(name)
    }
    fn wants_outputs(&self) -> bool {
        true
    }
    fn output_ready(&mut self, k: usize, value: &mut DeviceTensor) -> Result<(), ExecError> {
        if (1..=self.gradients).contains(&k) {
            start_mean(self.be, self.group, self.share, value)?;
        }
        Ok(())
    }
}
