//! One GPU as a [`Device`]: the backend plus how it was opened, so it can be opened again
//! with its memory counted afresh.

use super::model::GpuModel;
use super::nccl;
use super::CudaBackend;
use crate::backend::device::{BareProducts, Device, PlacedModel};
use crate::backend::products::StepProducts;
use crate::backend::Precision;
use crate::dist::Collective;
use crate::exec::ExecError;
use crate::memory::{Category, MemoryTracker};
use crate::optim::{LossScaler, OptimizerConfig};
use crate::plan::{HalfLayout, Rates};
use ndarray::ArrayD;
use std::sync::Arc;

pub struct CudaDevice {
    be: Arc<CudaBackend>,
}

impl CudaDevice {
    /// Opens GPU `ordinal` (see [`CudaBackend::open_with`]).
    pub fn open(ordinal: usize, limit: Option<u64>, tf32: bool, low: Precision) -> Result<Self, ExecError> {
        let be = CudaBackend::open_with(ordinal, MemoryTracker::new(limit), tf32, low)?;
        Ok(CudaDevice { be })
    }

    /// A backend already open, as a device (tests that drive the backend directly too).
    pub fn from_backend(be: Arc<CudaBackend>) -> Self {
        CudaDevice { be }
    }
}

impl Device for CudaDevice {
    fn describe(&self) -> String {
        format!("cuda:{} ({})", self.be.ordinal, self.be.name)
    }
    fn tracker(&self) -> &Arc<MemoryTracker> {
        self.be.tracker()
    }
    fn with_memory_limit(&self, limit: Option<u64>) -> Result<Arc<dyn Device>, ExecError> {
        let be = &self.be;
        Ok(Arc::new(CudaDevice::open(be.ordinal, limit, be.tf32, be.low)?))
    }
    fn free_memory(&self) -> Result<Option<u64>, ExecError> {
        Ok(Some(self.be.mem_info()?.0 as u64))
    }
    fn room(&self) -> Result<Option<u64>, ExecError> {
        let tracker = self.be.tracker();
        Ok(tracker.limit().map(|l| l.saturating_sub(tracker.report().live.total())))
    }
    fn precision(&self) -> Precision {
        self.be.low
    }
    fn half_layout(&self) -> HalfLayout {
        self.be.low.half_layout(true)
    }
    fn rates(&self) -> Rates {
        Rates::GPU
    }
    fn needs_loss_scaling(&self) -> bool {
        self.be.low == Precision::F16
    }
    fn place(
        &self,
        optimizer: &OptimizerConfig,
        params: Vec<(String, ArrayD<f32>)>,
        buffers: Vec<(String, ArrayD<f32>)>,
        scaler: Option<LossScaler>,
    ) -> Result<Box<dyn PlacedModel>, ExecError> {
        Ok(Box::new(GpuModel::new(&self.be, optimizer, params, buffers, scaler)?))
    }
    fn bare_products(&self, linears: &[(usize, usize)], batch: usize) -> Result<Box<dyn BareProducts>, ExecError> {
        // Counted apart, so the step's reported peak is the step's alone.
        let side = MemoryTracker::new(None);
        let be = self.be.clone();
        // In bf16/f16 the operands are stored in 16 bits, so the yardstick is the products
        // alone, as a step's products read 16-bit activations and parameter twins.
        let products = StepProducts::new(linears, batch, |a| {
            let t = be.upload_counted(&a, Category::Temporaries, &side)?;
            match be.low {
                Precision::F32 => Ok(t),
                _ => be.half_copy_counted(&t, &side),
            }
        })?;
        let sync = be.clone();
        Ok(Box::new(products.on(be, move || sync.synchronize())))
    }
    fn collective_ready(&self) -> Result<(), ExecError> {
        nccl::version().map(|_| ()).map_err(ExecError::Device)
    }
    fn collective_id(&self) -> Result<Vec<u8>, ExecError> {
        Ok(nccl::unique_id().map_err(ExecError::Device)?.bytes.to_vec())
    }
    fn join_collective(&self, rank: usize, world: usize, id: &[u8]) -> Result<Arc<dyn Collective>, ExecError> {
        let bytes: [u8; 128] = id
            .try_into()
            .map_err(|_| ExecError::Device(format!("an NCCL id is 128 bytes, rank 0 sent {}", id.len())))?;
        let comm = nccl::NcclComm::join(&self.be, rank, world, nccl::UniqueId { bytes }).map_err(ExecError::Device)?;
        Ok(Arc::new(comm))
    }
}
