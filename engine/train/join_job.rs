//! A trainer joins a data-parallel job ([`crate::dist::job`]) through its device: the job
//! layer sits below the devices, so the device's collective is handed down to it here.

use super::{TrainError, Trainer};
use crate::backend::Device;
use crate::dist::{Collective, DeviceCollective, Group, Job};
use std::sync::Arc;
use std::time::Duration;

/// A device's collective (NCCL's, on a GPU), as [`Job::join`] asks for it.
struct DeviceSupplies<'a>(&'a dyn Device);

impl DeviceCollective for DeviceSupplies<'_> {
    fn ready(&self) -> Result<(), String> {
        self.0.collective_ready().map_err(|e| e.to_string())
    }

    fn make_id(&self) -> Result<Vec<u8>, String> {
        self.0.collective_id().map_err(|e| e.to_string())
    }

    fn join(&self, rank: usize, world: usize, id: &[u8]) -> Result<Arc<dyn Collective>, String> {
        self.0.join_collective(rank, world, id).map_err(|e| e.to_string())
    }
}

impl Trainer {
    /// Meets the other ranks of `job` (waiting at most `wait`) and makes this trainer its
    /// rank, summing through its device's collective (or the test collective). The job's
    /// group, for agreeing before training and stopping together.
    pub fn join_job(&mut self, job: &Job, wait: Duration) -> Result<Group, TrainError> {
        let collective = job.join(&DeviceSupplies(self.device.as_ref()), wait)?;
        let group = Group::new(collective);
        self.join(group.clone())?;
        Ok(group)
    }
}
