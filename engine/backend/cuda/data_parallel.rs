//! A GPU rank's part of a data-parallel step: its outputs (loss, gradients, right answers)
//! weighted by its share of the global batch, then summed over the ranks by NCCL on the
//! stream, one tensor a bucket, so the guard and the update that follow see the global
//! batch's values and nothing waits on the host.

use super::{nccl::NcclComm, ops::arith, CudaBackend, DeviceTensor};
use crate::dist::{group::StepShare, Group};
use crate::exec::ExecError;

/// `outputs` are a training program's: `[loss, gradients.., correct]`.
pub fn reduce(
    be: &CudaBackend,
    group: &Group,
    share: StepShare,
    outputs: &mut [DeviceTensor],
) -> Result<(), ExecError> {
    let comm =
        group.collective.as_any().downcast_ref::<NcclComm>().ok_or_else(|| {
            ExecError::Device("a GPU rank of a data-parallel job needs NCCL as its collective".into())
        })?;
    let w = share.weight();
    let last = outputs.len() - 1;
    for (i, t) in outputs.iter_mut().enumerate() {
        // Means are weighted by the rank's share; the count of right answers is summed as is.
        if w != 1.0 && i != last {
            arith::scale_in_place(be, t, w)?;
        }
        comm.all_reduce_tensor(t)?;
    }
    Ok(())
}
