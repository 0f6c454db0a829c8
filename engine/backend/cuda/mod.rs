//! The CUDA backend: cuBLAS for matrix products, our kernels (kernels/*.cu, embedded as
//! PTX) for everything else, a caching allocator whose bytes feed the same memory report
//! as the CPU's. Loaded dynamically: a machine without CUDA builds and runs the CPU path,
//! and [`probe`] says why no GPU is usable instead of panicking.

pub mod blas;
pub mod cast;
mod clip;
mod clock;
mod data_parallel;
mod dataset;
mod device;
mod fp8_copy;
pub mod fp8_product;
pub mod guard;
mod kernels;
mod launch;
mod lt;
mod memory;
mod model;
pub mod nccl;
mod ops;
pub mod optimizer;
mod probe;
mod step_graph;
mod step_primitives;
mod train_step;

pub use device::CudaDevice;
pub use kernels::DevPtr;
pub use memory::DeviceTensor;
pub use ops::data as ops_launch;
pub use probe::{gpus, usable, GpuInfo};

use crate::backend::Precision;
use crate::exec::{Backend, ExecError, LinearLayer, Out};
use crate::graph::ConstValue;
use crate::kernels as kernels_codes;
use crate::memory::{Category, MemoryTracker};
use crate::ops::{Op, RunContext};
use crate::plan::Storage;
use crate::tensor::Shape;
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use kernels::Kernels;
use memory::Pool;
use ndarray::ArrayD;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no usable GPU: {0}")]
    Unavailable(String),
    #[error("CUDA driver: {0}")]
    Driver(String),
}

/// `--dtype fp8` needs FP8 tensor cores: compute capability 8.9 (Ada) or later, Hopper's
/// 9.0 included.
fn fp8_capable(ctx: &CudaContext, ordinal: usize, name: &str) -> Result<(), CudaError> {
    let capability = ctx
        .compute_capability()
        .map_err(|e| CudaError::Driver(format!("{e:?}")))?;
    if capability < (8, 9) {
        return Err(CudaError::Unavailable(format!(
            "--dtype fp8 needs FP8 tensor cores (compute capability 8.9 or later: Ada, Hopper, Blackwell); \
             cuda:{ordinal} ({name}) has {}.{}: use --dtype bf16, or --device cpu for the CPU's FP8 reference",
            capability.0, capability.1
        )));
    }
    Ok(())
}

impl From<CudaError> for ExecError {
    fn from(e: CudaError) -> Self {
        ExecError::Device(e.to_string())
    }
}

pub(crate) fn driver_err(e: impl std::fmt::Debug) -> ExecError {
    ExecError::Device(format!("CUDA: {e:?}"))
}

/// One GPU, its stream, cuBLAS handle and kernels.
pub struct CudaBackend {
    pub ordinal: usize,
    pub name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    /// cuBLAS's workspace (declared after the handle, so dropped after it).
    _blas_workspace: cudarc::driver::CudaSlice<u8>,
    kernels: Kernels,
    pool: Arc<Pool>,
    /// Where allocations go while a step is warmed up or captured for a CUDA graph (its own
    /// pool, step_graph.rs); `None`: [`Self::pool`].
    routed: Mutex<Option<Arc<Pool>>>,
    /// What changes between training steps, on the device (clock.rs).
    clock: clock::Clock,
    tracker: Arc<MemoryTracker>,
    /// Matrix products in TF32 on the tensor cores (about 10 mantissa bits).
    pub tf32: bool,
    /// cuBLASLt, for fused Linear layers (`None`: the library is missing; unfused kernels run).
    lt: Option<lt::Lt>,
    /// The matrix products' operand type; parameters, optimizer state and every other op
    /// stay f32.
    pub low: Precision,
    /// Times the host waited for the GPU (a synchronisation or a read-back).
    host_waits: AtomicU64,
}

impl CudaBackend {
    /// Opens GPU `ordinal`. Fails with a reason (never panics) when the driver, cuBLAS or
    /// the device is missing.
    pub fn open(ordinal: usize, tracker: Arc<MemoryTracker>, tf32: bool) -> Result<Arc<Self>, CudaError> {
        Self::open_with(ordinal, tracker, tf32, Precision::F32)
    }

    /// [`Self::open`] with the matrix products' operand type chosen too.
    pub fn open_with(
        ordinal: usize,
        tracker: Arc<MemoryTracker>,
        tf32: bool,
        low: Precision,
    ) -> Result<Arc<Self>, CudaError> {
        let count = probe::device_count()?;
        if ordinal >= count {
            return Err(CudaError::Unavailable(format!(
                "cuda:{ordinal} requested, {count} GPU(s) present"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| CudaError::Driver(format!("{e:?}")))?;
        // One stream: cudarc's per-buffer event tracking only guards multi-stream use.
        // SAFETY: called before any buffer exists; everything runs on the default stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| CudaError::Driver(format!("cuBLAS: {e:?}")))?;
        blas::set_math(&blas, tf32, low).map_err(|e| CudaError::Driver(format!("cuBLAS: {e:?}")))?;
        let blas_workspace =
            blas::own_workspace(&blas, &stream).map_err(|e| CudaError::Driver(format!("cuBLAS: {e}")))?;
        let clock = clock::Clock::new(&stream).map_err(|e| CudaError::Driver(e.to_string()))?;
        let kernels = Kernels::load(&ctx).map_err(|e| CudaError::Driver(format!("loading kernels: {e:?}")))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        if low == Precision::Fp8 {
            fp8_capable(&ctx, ordinal, &name)?;
        }
        let lt = lt::Lt::open(&stream).ok();
        Ok(Arc::new(CudaBackend {
            ordinal,
            name,
            pool: Arc::new(Pool::new(stream.clone(), Arc::default())),
            routed: Mutex::new(None),
            clock,
            ctx,
            stream,
            blas,
            _blas_workspace: blas_workspace,
            kernels,
            tracker,
            tf32,
            low,
            lt,
            host_waits: AtomicU64::new(0),
        }))
    }

    pub fn tracker(&self) -> &Arc<MemoryTracker> {
        &self.tracker
    }
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The pool allocations come from now: a step graph's own while it is warmed up or
    /// captured, else the backend's.
    fn pool(&self) -> Arc<Pool> {
        let routed = self.routed.lock().unwrap_or_else(|e| e.into_inner());
        routed.as_ref().unwrap_or(&self.pool).clone()
    }

    /// Sends allocations to `pool` (`None`: back to the backend's own).
    fn route(&self, pool: Option<Arc<Pool>>) {
        *self.routed.lock().unwrap_or_else(|e| e.into_inner()) = pool;
    }

    /// An empty pool that counts its allocations with the backend's.
    fn new_pool(&self) -> Arc<Pool> {
        Arc::new(Pool::new(self.stream.clone(), self.pool.counter()))
    }

    /// The step clock holding `words` for the work enqueued from now on (clock.rs), for a
    /// launch that reads it.
    pub fn hold_clock(&self, words: &[(crate::kernels::ClockWord, u64)]) -> Result<&CudaSlice<u64>, ExecError> {
        self.clock.hold(&self.kernels, &self.stream, words)
    }

    /// An uninitialised f32 tensor counted under `category`; every kernel writes all of it.
    pub fn alloc(&self, shape: &Shape, category: Category) -> Result<DeviceTensor, ExecError> {
        self.pool()
            .take(&self.ctx, &self.tracker, shape, category, Storage::F32)
    }

    /// An uninitialised tensor made as `out` says.
    pub fn alloc_out(&self, out: Out) -> Result<DeviceTensor, ExecError> {
        self.pool()
            .take(&self.ctx, &self.tracker, out.shape, out.category, out.storage)
    }

    /// `t` stored in 16 bits (this backend's `--dtype`), counted by `tracker`: benchmarks'
    /// operands, which products then read without a cast.
    pub fn half_copy_counted(&self, t: &DeviceTensor, tracker: &Arc<MemoryTracker>) -> Result<DeviceTensor, ExecError> {
        let mut half = self
            .pool()
            .take(&self.ctx, tracker, &t.shape, t.category(), Storage::Half)?;
        cast::cast_into(self, t, &mut half)?;
        Ok(half)
    }

    /// `t` (a parameter) with its 16-bit twin in a low-precision step if it is a weight
    /// matrix (a product operand), counted as parameters; as it is otherwise.
    pub fn with_twin(&self, mut t: DeviceTensor) -> Result<DeviceTensor, ExecError> {
        if self.low == Precision::F32 || t.shape.dims().len() != 2 {
            return Ok(t);
        }
        let mut twin = self
            .pool()
            .take(&self.ctx, &self.tracker, &t.shape, Category::Parameters, Storage::Half)?;
        cast::cast_into(self, &t, &mut twin)?;
        t.twin = Some(Box::new(twin));
        Ok(t)
    }

    /// The kernels' code for how `t` is stored (its 16 bits are this backend's `--dtype`).
    /// The FP8 formats of a product `out` describes, when this is an FP8 step and the
    /// product is one FP8 takes (plan/fp8.rs); else `None` (a bf16 or f32 product).
    fn fp8_formats(&self, out: &Out) -> Option<[crate::plan::fp8::Fp8Format; 2]> {
        out.fp8.filter(|_| self.low == Precision::Fp8)
    }

    pub fn element_storage(&self, t: &DeviceTensor) -> kernels_codes::ElementStorage {
        match (t.storage, self.low) {
            (Storage::F32, _) | (Storage::Half, Precision::F32) => kernels_codes::ElementStorage::F32,
            (Storage::Half, Precision::Bf16 | Precision::Fp8) => kernels_codes::ElementStorage::Bf16,
            (Storage::Half, Precision::F16) => kernels_codes::ElementStorage::F16,
        }
    }

    pub fn upload(&self, data: &ArrayD<f32>, category: Category) -> Result<DeviceTensor, ExecError> {
        self.upload_counted(data, category, &self.tracker)
    }

    /// Uploads into a tensor counted by another tracker (benchmarks' side data).
    pub fn upload_counted(
        &self,
        data: &ArrayD<f32>,
        category: Category,
        tracker: &Arc<MemoryTracker>,
    ) -> Result<DeviceTensor, ExecError> {
        let mut t = self
            .pool()
            .take(&self.ctx, tracker, &Shape::new(data.shape()), category, Storage::F32)?;
        let host = data.as_standard_layout();
        let src = host.as_slice().expect("standard layout is contiguous");
        self.stream.memcpy_htod(src, t.slice_mut()).map_err(driver_err)?;
        Ok(t)
    }

    /// Uploads `data` rounded to this backend's 16-bit type (on the host, to nearest even as
    /// the cast kernels do): a low-precision step's batch, never held in f32 on the device.
    pub fn upload_half(&self, data: &ArrayD<f32>, category: Category) -> Result<DeviceTensor, ExecError> {
        let shape = Shape::new(data.shape());
        let out = Out {
            shape: &shape,
            category,
            storage: Storage::Half,
            fp8: None,
        };
        let mut t = self.alloc_out(out)?;
        let host = data.as_standard_layout();
        let bits = |v: f32| -> u32 {
            match self.low {
                Precision::F16 => half::f16::from_f32(v).to_bits() as u32,
                _ => half::bf16::from_f32(v).to_bits() as u32,
            }
        };
        // Two values a word, the earlier in the lower half (as the kernels read them).
        let words: Vec<f32> = host
            .as_slice()
            .expect("standard layout is contiguous")
            .chunks(2)
            .map(|p| f32::from_bits(bits(p[0]) | p.get(1).map_or(0, |&v| bits(v)) << 16))
            .collect();
        let words = if words.is_empty() { vec![0.0] } else { words };
        self.stream.memcpy_htod(&words, t.slice_mut()).map_err(driver_err)?;
        Ok(t)
    }

    pub fn upload_i32(&self, data: &[i32]) -> Result<cudarc::driver::CudaSlice<i32>, ExecError> {
        self.stream.clone_htod(data).map_err(driver_err)
    }

    /// Driver allocations made so far: a steady-state step adds none (the pool reuses).
    pub fn device_allocations(&self) -> u64 {
        self.pool.allocations()
    }

    /// Times the host has waited for the GPU so far: a steady-state step between logged
    /// steps adds none.
    pub fn host_waits(&self) -> u64 {
        self.host_waits.load(Ordering::Relaxed)
    }

    fn waits(&self) {
        self.host_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies a tensor back to the host (waits for the stream).
    pub fn download(&self, t: &DeviceTensor) -> Result<ArrayD<f32>, ExecError> {
        f32_only(t)?;
        self.waits();
        let v = self.stream.clone_dtoh(t.slice()).map_err(driver_err)?;
        Ok(ArrayD::from_shape_vec(t.shape.dims(), v).expect("a tensor's length matches its shape"))
    }

    /// A one-element tensor's value on the host (waits for the stream).
    pub fn download_scalar(&self, t: &DeviceTensor) -> Result<f32, ExecError> {
        f32_only(t)?;
        self.waits();
        let v = self.stream.clone_dtoh(t.slice()).map_err(driver_err)?;
        Ok(v.first().copied().unwrap_or(f32::NAN))
    }

    pub fn download_i32(&self, s: &cudarc::driver::CudaSlice<i32>) -> Result<Vec<i32>, ExecError> {
        self.waits();
        self.stream.clone_dtoh(s).map_err(driver_err)
    }

    pub fn synchronize(&self) -> Result<(), ExecError> {
        self.waits();
        self.stream.synchronize().map_err(driver_err)
    }

    /// (free, total) device bytes.
    pub fn mem_info(&self) -> Result<(usize, usize), ExecError> {
        self.ctx.mem_get_info().map_err(driver_err)
    }

    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }
}

/// The host reads f32 tensors only; a schedule's outputs are always f32 (plan/precision.rs).
fn f32_only(t: &DeviceTensor) -> Result<(), ExecError> {
    match t.storage {
        Storage::F32 => Ok(()),
        Storage::Half => Err(ExecError::Device(format!(
            "a 16-bit tensor of shape {} was read back as f32",
            t.shape
        ))),
    }
}

impl Backend for CudaBackend {
    type Tensor = DeviceTensor;
    type Input = DeviceTensor;
    fn input_shape(input: &DeviceTensor) -> &[usize] {
        input.shape.dims()
    }
    fn tensor_shape(t: &DeviceTensor) -> &[usize] {
        t.shape.dims()
    }
    fn bind(&self, mut input: DeviceTensor, category: Category, storage: Storage) -> Result<DeviceTensor, ExecError> {
        if storage == Storage::Half && input.storage == Storage::F32 {
            // Bound in f32 (devices gather and upload 16-bit batches as such): round it now.
            let out = Out {
                shape: &input.shape.clone(),
                category,
                storage,
                fp8: None,
            };
            let mut half = self.alloc_out(out)?;
            cast::cast_into(self, &input, &mut half)?;
            return Ok(half);
        }
        input.recategorize(category);
        Ok(input)
    }
    fn constant(&self, value: &ConstValue, shape: &Shape, category: Category) -> Result<DeviceTensor, ExecError> {
        match value {
            ConstValue::Fill(v) => {
                let mut t = self.alloc(shape, category)?;
                ops::arith::fill(self, &mut t, *v as f32)?;
                Ok(t)
            }
            ConstValue::Data(_) => self.upload(&crate::ops::constant_cpu::<f32>(value, shape), category),
        }
    }
    fn compute(
        &self,
        op: &Op,
        inputs: &[&DeviceTensor],
        out: Out,
        ctx: &RunContext,
    ) -> Result<DeviceTensor, ExecError> {
        let mut made = self.alloc_out(out)?;
        match (op, self.fp8_formats(&out)) {
            (Op::MatMul { trans_a, trans_b }, Some(formats)) => {
                let operands = [inputs[0], inputs[1]];
                fp8_product::matmul_fp8(self, operands, (*trans_a, *trans_b), formats, &mut made)?
            }
            _ => ops::forward(self, op, inputs, &mut made, ctx)?,
        }
        Ok(made)
    }
    fn linear(
        &self,
        layer: LinearLayer,
        [x, w, bias]: [&DeviceTensor; 3],
        out: Out,
    ) -> Result<DeviceTensor, ExecError> {
        let mut made = self.alloc_out(out)?;
        if let Some(formats) = self.fp8_formats(&out) {
            // The FP8 product, then the bias (and ReLU) in place, as the CPU's reference does.
            let transposes = (layer.trans_a, layer.trans_b);
            fp8_product::matmul_fp8(self, [x, w], transposes, formats, &mut made)?;
            ops::activation::bias_in_place(self, &made, bias, layer.relu)?;
        } else {
            lt::linear(self, layer, [x, w, bias], &mut made)?;
        }
        Ok(made)
    }
    fn duplicate(&self, t: &DeviceTensor, category: Category) -> Result<DeviceTensor, ExecError> {
        let out = Out {
            shape: &t.shape,
            category,
            storage: t.storage,
            fp8: None,
        };
        let mut out = self.alloc_out(out)?;
        self.stream
            .memcpy_dtod(t.slice(), out.slice_mut())
            .map_err(driver_err)?;
        Ok(out)
    }
}
