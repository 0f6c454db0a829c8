//! The CPU backend, the reference for every test: ndarray arrays counted by a tracker,
//! each op's CPU rule (ops/), the optimizer update, the step guard and loss scaling on the
//! host.

mod backend;
mod buffer;
mod each_element;
pub mod fp8_rounding;
mod guard;
mod model;
mod optimizer;
mod pool_thread;
pub mod rounding;
mod step_primitives;

pub use backend::{run, run_with, Cpu};
pub use buffer::{Buffer, Session};
pub use model::CpuModel;
pub use optimizer::CpuOptimizer;

use super::device::{BareProducts, Device, PlacedModel};
use super::products::StepProducts;
use crate::backend::Precision;
use crate::exec::ExecError;
use crate::memory::{Category, MemoryTracker};
use crate::optim::{LossScaler, OptimizerConfig};
use crate::plan::HalfLayout;
use ndarray::ArrayD;
use std::sync::Arc;

/// The host as a [`Device`].
pub struct CpuDevice {
    tracker: Arc<MemoryTracker>,
    /// `--dtype`: bf16/f16 round matrix products' operands as the GPU does ([`rounding`]);
    /// fp8 rounds them to FP8 where the product can take it ([`fp8_rounding`]).
    precision: Precision,
}

impl CpuDevice {
    pub fn new(limit: Option<u64>) -> Self {
        Self::with_precision(limit, Precision::F32)
    }

    pub fn with_precision(limit: Option<u64>, precision: Precision) -> Self {
        CpuDevice {
            tracker: MemoryTracker::new(limit),
            precision,
        }
    }
}

impl Device for CpuDevice {
    fn describe(&self) -> String {
        "cpu".into()
    }
    fn banner(&self) -> String {
        let threads = rayon::current_num_threads();
        match self.precision {
            Precision::F32 => format!("cpu, {threads} threads"),
            Precision::Fp8 => format!(
                "cpu, {threads} threads, matrix products on per-tensor scaled FP8 operands where their \
                 sides are multiples of 16, bf16 elsewhere (the GPU's rounding)"
            ),
            p => format!("cpu, {threads} threads, matrix products on {p} operands (the GPU's rounding)"),
        }
    }
    fn tracker(&self) -> &Arc<MemoryTracker> {
        &self.tracker
    }
    fn with_memory_limit(&self, limit: Option<u64>) -> Result<Arc<dyn Device>, ExecError> {
        Ok(Arc::new(CpuDevice::with_precision(limit, self.precision)))
    }
    fn free_memory(&self) -> Result<Option<u64>, ExecError> {
        Ok(None)
    }
    fn room(&self) -> Result<Option<u64>, ExecError> {
        let live = self.tracker.report().live.total();
        let left = self.tracker.limit().map(|l| l.saturating_sub(live));
        Ok(match (left, available_memory()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
    fn precision(&self) -> Precision {
        self.precision
    }
    fn half_layout(&self) -> HalfLayout {
        self.precision.half_layout(false)
    }
    fn needs_loss_scaling(&self) -> bool {
        self.precision == Precision::F16
    }
    fn place(
        &self,
        optimizer: &OptimizerConfig,
        params: Vec<(String, ArrayD<f32>)>,
        buffers: Vec<(String, ArrayD<f32>)>,
        scaler: Option<LossScaler>,
    ) -> Result<Box<dyn PlacedModel>, ExecError> {
        let names: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
        let mut session = Session::new(self.tracker.clone());
        // Buffers beside the parameters, where graphs read them, but with no optimizer state.
        for (name, v) in params.into_iter().chain(buffers) {
            session.set_param(&name, v)?;
        }
        let optimizer = CpuOptimizer::new(optimizer.clone(), &session, &names)?;
        Ok(Box::new(CpuModel {
            session,
            optimizer,
            guard: guard::HostGuard::new(scaler),
            precision: self.precision,
            sums: Default::default(),
            last_loss: f32::NAN,
        }))
    }
    fn bare_products(&self, linears: &[(usize, usize)], batch: usize) -> Result<Box<dyn BareProducts>, ExecError> {
        // Counted apart, so the step's reported peak is the step's alone.
        let side = MemoryTracker::new(None);
        let backend = Arc::new(Cpu::with_precision(side.clone(), self.precision));
        let products = StepProducts::new(linears, batch, |a| Ok(Buffer::new(&side, Category::Temporaries, a)?))?;
        Ok(Box::new(products.on(backend, || Ok(()))))
    }
}

pub use crate::memory::available_memory;
pub use pool_thread::run_on_pool_thread;

/// Asks glibc's allocator to keep freed memory instead of returning it to the kernel. A
/// training step frees and reallocates the same large buffers every step; handing them
/// back (munmap, heap trimming) makes every step page-fault them in again, which cost
/// about 15% of a CPU step. Call once at start-up, before other threads exist.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
