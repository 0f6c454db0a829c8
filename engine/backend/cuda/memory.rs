//! Device memory: a caching allocator. Freed buffers go back to a pool keyed by length
//! and are reused by the next step's identical shapes, so a steady-state step makes no
//! driver allocation. Counting happens on the tracker per tensor, as on the CPU.

use super::driver_err;
use crate::exec::ExecError;
use crate::memory::{Category, MemoryError, MemoryTracker, Ticket};
use crate::plan::Storage;
use crate::tensor::Shape;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct Pool {
    stream: Arc<CudaStream>,
    free: Mutex<HashMap<usize, Vec<CudaSlice<f32>>>>,
    /// Driver allocations made so far, by this pool and those sharing its count (a
    /// steady-state step makes none).
    allocations: Arc<AtomicU64>,
    /// While a step is captured: no new allocation, only reuse (step_graph.rs).
    sealed: AtomicBool,
}

/// A tensor on the GPU: contiguous, row-major; f32, or (`storage` Half) 16-bit values two
/// to an f32 word of the same buffer.
pub struct DeviceTensor {
    pub shape: Shape,
    pub storage: Storage,
    /// A parameter's 16-bit copy in a low-precision step, kept current by whoever writes
    /// the parameter (placement and the optimizer update): products read it instead of
    /// casting the parameter each time.
    pub twin: Option<Box<DeviceTensor>>,
    slice: Option<CudaSlice<f32>>,
    pool: Arc<Pool>,
    ticket: Ticket,
}

impl DeviceTensor {
    pub fn slice(&self) -> &CudaSlice<f32> {
        self.slice.as_ref().expect("present until dropped")
    }
    pub fn slice_mut(&mut self) -> &mut CudaSlice<f32> {
        self.slice.as_mut().expect("present until dropped")
    }
    /// Elements (values, whatever their storage).
    pub fn len(&self) -> usize {
        self.shape.numel()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn category(&self) -> Category {
        self.ticket.category()
    }
    /// Counts this tensor under another category (an input bound into a schedule).
    pub fn recategorize(&mut self, category: Category) {
        self.ticket.recategorize(category);
    }
    pub fn bytes(&self) -> u64 {
        self.ticket.bytes()
    }
}

impl Drop for DeviceTensor {
    fn drop(&mut self) {
        if let Some(s) = self.slice.take() {
            let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
            free.entry(s.len()).or_default().push(s);
        }
    }
}

impl Pool {
    /// An empty pool adding its driver allocations to `allocations`.
    pub fn new(stream: Arc<CudaStream>, allocations: Arc<AtomicU64>) -> Self {
        Pool {
            stream,
            free: Mutex::new(HashMap::new()),
            allocations,
            sealed: AtomicBool::new(false),
        }
    }

    /// Driver allocations made so far.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    /// The count [`Self::allocations`] reads, for another pool to share.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.allocations.clone()
    }

    /// While `sealed`, a request the cache cannot meet fails instead of allocating: a step
    /// being captured reuses the buffers its warm-up left (a graph must not own memory the
    /// pool does not know).
    pub fn seal(&self, sealed: bool) {
        self.sealed.store(sealed, Ordering::Relaxed);
    }

    /// A new device allocation: the pool grows (a steady-state step never gets here).
    fn grow(&self, len: usize, bytes: u64) -> Result<CudaSlice<f32>, cudarc::driver::DriverError> {
        tracing::debug!(bytes, "GPU pool grows: a new device allocation");
        self.fresh(len)
    }

    pub fn take(
        self: &Arc<Self>,
        ctx: &Arc<CudaContext>,
        tracker: &Arc<MemoryTracker>,
        shape: &Shape,
        category: Category,
        storage: Storage,
    ) -> Result<DeviceTensor, ExecError> {
        // A 16-bit tensor takes whole f32 words, two values a word (as plan/predict.rs counts).
        let (len, bytes) = match storage {
            Storage::F32 => (shape.numel().max(1), (shape.numel() * 4) as u64),
            Storage::Half => {
                let words = shape.numel().div_ceil(2).max(1);
                (words, (words * 4) as u64)
            }
        };
        let ticket = tracker.allocate(category, bytes)?;
        let cached = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&len)
            .and_then(Vec::pop);
        let slice = match cached {
            Some(s) => s,
            None if self.sealed.load(Ordering::Relaxed) => {
                return Err(ExecError::Device(format!(
                    "the step needed a new {bytes}-byte buffer that its warm-up did not"
                )))
            }
            None => match self.grow(len, bytes) {
                Ok(s) => s,
                Err(_) => {
                    // Give the cache back to the driver and try once more before failing.
                    self.free.lock().unwrap_or_else(|e| e.into_inner()).clear();
                    self.stream.synchronize().map_err(driver_err)?;
                    self.fresh(len).map_err(|_| {
                        let (free, total) = ctx.mem_get_info().unwrap_or((0, 0));
                        ExecError::Memory(MemoryError::OutOfMemory {
                            requested: bytes,
                            category: category.name(),
                            live: tracker.report().live.total(),
                            limit: total as u64,
                            free: free as u64,
                        })
                    })?
                }
            },
        };
        Ok(DeviceTensor {
            shape: shape.clone(),
            storage,
            twin: None,
            slice: Some(slice),
            pool: self.clone(),
            ticket,
        })
    }

    fn fresh(&self, len: usize) -> Result<CudaSlice<f32>, cudarc::driver::DriverError> {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the memory is uninitialised; every kernel writes all of its output.
        unsafe { self.stream.alloc::<f32>(len) }
    }
}
