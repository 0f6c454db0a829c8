//! A GPU rank's part of a data-parallel step: its outputs (loss, gradients, right answers)
//! weighted by its share of the global batch, then summed over the ranks by NCCL on the
//! stream, one tensor a bucket, so the guard and the update that follow see the global
//! batch's values and nothing waits on the host. A step that updates inside backward sums
//! each gradient the same way just before its update.

use super::{nccl::NcclComm, ops::arith, CudaBackend, DeviceTensor};
use crate::dist::{group::StepShare, Group};
use crate::exec::ExecError;

fn comm(group: &Group) -> Result<&NcclComm, ExecError> {
    group
        .collective
        .as_any()
        .downcast_ref::<NcclComm>()
        .ok_or_else(|| ExecError::Device("a GPU rank of a data-parallel job needs NCCL as its collective".into()))
}

/// `outputs` are a training program's: `[loss, gradients.., correct]`.
pub fn reduce(
    be: &CudaBackend,
    group: &Group,
    share: StepShare,
    outputs: &mut [DeviceTensor],
) -> Result<(), ExecError> {
    let last = outputs.len() - 1;
    for (i, t) in outputs.iter_mut().enumerate() {
        // Means are weighted by the rank's share; the count of right answers is summed as is.
        match i == last {
            true => reduce_sum(group, t)?,
            false => reduce_mean(be, group, share, t)?,
        }
    }
    Ok(())
}

/// This rank's mean `t` replaced by the global batch's, in place.
pub fn reduce_mean(be: &CudaBackend, group: &Group, share: StepShare, t: &mut DeviceTensor) -> Result<(), ExecError> {
    let w = share.weight();
    if w != 1.0 {
        arith::scale_in_place(be, t, w)?;
    }
    comm(group)?.all_reduce_tensor(t)
}

/// A count summed over the ranks, in place.
pub fn reduce_sum(group: &Group, t: &mut DeviceTensor) -> Result<(), ExecError> {
    comm(group)?.all_reduce_tensor(t)
}
