//! Fused Linear layers through cuBLASLt: `relu?(x·op(w) + b)` as one matrix product whose
//! epilogue adds the bias (and applies the ReLU), instead of a product, a bias kernel and a
//! ReLU kernel with two stored intermediates. Same operand types as [`super::blas`]: f32
//! (TF32 with `--tf32`), or bf16/f16 copies with f32 accumulation and an f32 result.
//! When cuBLASLt is missing or has no algorithm for a shape, the unfused kernels run instead.

use super::blas::matmul;
use super::cast::low_operand;
use super::ops::{activation, arith};
use super::{driver_err, CudaBackend, DeviceTensor};
use crate::backend::Precision;
use crate::exec::{ExecError, LinearLayer};
use crate::kernels::BinaryOp;
use crate::ops::Activation;
use crate::plan::Storage;
use cudarc::cublaslt::result::{self as lt, CublasError};
use cudarc::cublaslt::sys;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

/// cuBLASLt's workspace: NVIDIA recommends 32 MiB on Hopper (outside the memory report,
/// like cuBLAS's own).
pub(super) const WORKSPACE_BYTES: usize = 32 << 20;

/// A cuBLASLt handle and its workspace.
pub struct Lt {
    pub(super) handle: sys::cublasLtHandle_t,
    pub(super) workspace: CudaSlice<u8>,
    plans: PlanCache,
    /// `--dtype fp8`'s product plans (fp8_product.rs).
    pub(super) fp8_plans: super::fp8_product::Fp8Plans,
}

// SAFETY: the handle is used from one stream at a time (the backend's), as cuBLASLt allows.
unsafe impl Send for Lt {}
// SAFETY: as above; cuBLASLt handles are thread-safe for calls on one stream.
unsafe impl Sync for Lt {}

impl Lt {
    /// A handle, or `None` (with the reason) when cuBLASLt cannot be used.
    pub fn open(stream: &Arc<CudaStream>) -> Result<Self, String> {
        // SAFETY: only tries to load the library.
        if !unsafe { sys::is_culib_present() } {
            return Err("libcublasLt.so.13 was not found".into());
        }
        let handle = lt::create_handle().map_err(|e| format!("cuBLASLt: {e:?}"))?;
        // SAFETY: the workspace is scratch that cuBLASLt writes before reading.
        let workspace = unsafe { stream.alloc::<u8>(WORKSPACE_BYTES) }.map_err(|e| format!("{e:?}"))?;
        Ok(Lt {
            handle,
            workspace,
            plans: PlanCache::default(),
            fp8_plans: Default::default(),
        })
    }
}

impl Drop for Lt {
    fn drop(&mut self) {
        // SAFETY: created by `open`, destroyed once.
        let _ = unsafe { lt::destroy_handle(self.handle) };
    }
}

/// Descriptors destroyed on every path out.
pub(super) struct Desc(pub(super) sys::cublasLtMatmulDesc_t);
pub(super) struct Layout(pub(super) sys::cublasLtMatrixLayout_t);
pub(super) struct Pref(pub(super) sys::cublasLtMatmulPreference_t);
impl Drop for Desc {
    fn drop(&mut self) {
        // SAFETY: created by cublasLtMatmulDescCreate, destroyed once.
        let _ = unsafe { lt::destroy_matmul_desc(self.0) };
    }
}
impl Drop for Layout {
    fn drop(&mut self) {
        // SAFETY: created by cublasLtMatrixLayoutCreate, destroyed once.
        let _ = unsafe { lt::destroy_matrix_layout(self.0) };
    }
}
impl Drop for Pref {
    fn drop(&mut self) {
        // SAFETY: created by cublasLtMatmulPreferenceCreate, destroyed once.
        let _ = unsafe { lt::destroy_matmul_pref(self.0) };
    }
}

pub(super) fn set_desc<T>(d: &Desc, attr: sys::cublasLtMatmulDescAttributes_t, value: &T) -> Result<(), CublasError> {
    // SAFETY: `value` is the attribute's documented type and lives through the call.
    unsafe { lt::set_matmul_desc_attribute(d.0, attr, value as *const T as *const c_void, size_of::<T>()) }
}

/// `out[m, n] = relu?(op(x)·op(w) + bias)` for row-major `x`, `w`, `out`.
pub fn linear(
    be: &CudaBackend,
    layer: LinearLayer,
    [x, w, bias]: [&DeviceTensor; 3],
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    if out.storage == Storage::Half {
        // The product rounded to 16 bits by cuBLAS, then the bias (and ReLU) applied and
        // rounded again: the same arithmetic on every device (plan/precision.rs).
        matmul(be, x, w, layer.trans_a, layer.trans_b, out)?;
        return activation::bias_in_place(be, out, bias, layer.relu);
    }
    if let Some(handle) = &be.lt {
        match fused(be, handle, layer, [x, w, bias], out) {
            Ok(()) => return Ok(()),
            // No algorithm for this shape and type: the unfused kernels below instead.
            Err(Fallback::NotSupported) => {}
            Err(Fallback::Failed(e)) => return Err(e),
        }
    }
    unfused(be, layer, [x, w, bias], out)
}

enum Fallback {
    NotSupported,
    Failed(ExecError),
}

impl From<CublasError> for Fallback {
    fn from(e: CublasError) -> Self {
        match e.0 {
            sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED | sys::cublasStatus_t::CUBLAS_STATUS_INVALID_VALUE => {
                Fallback::NotSupported
            }
            _ => Fallback::Failed(driver_err(e)),
        }
    }
}

impl From<ExecError> for Fallback {
    fn from(e: ExecError) -> Self {
        Fallback::Failed(e)
    }
}

/// What a fused layer's product is, apart from its data: the key of its cached plan.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PlanKey {
    x: (usize, usize),
    w: (usize, usize),
    layer: LinearLayer,
}

/// A fused layer's descriptors, layouts and chosen algorithm, made once per shape: a
/// steady-state step makes no descriptor and asks for no heuristic.
struct LinearPlan {
    desc: Desc,
    a_layout: Layout,
    b_layout: Layout,
    d_layout: Layout,
    algo: sys::cublasLtMatmulAlgo_t,
}

// SAFETY: the descriptors are plain host objects, used from the backend's one stream.
unsafe impl Send for LinearPlan {}
// SAFETY: as above; a plan is only read (its bias pointer is set just before each use, on one stream).
unsafe impl Sync for LinearPlan {}

/// Plans by shape; `None` records that cuBLASLt has no algorithm for one (unfused instead).
#[derive(Default)]
pub struct PlanCache(Mutex<HashMap<PlanKey, Option<Arc<LinearPlan>>>>);

fn operand_types(be: &CudaBackend) -> (sys::cublasComputeType_t, sys::cudaDataType_t) {
    use sys::cudaDataType_t as T;
    match (be.low, be.tf32) {
        (Precision::F32, false) => (sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, T::CUDA_R_32F),
        (Precision::F32, true) => (sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32, T::CUDA_R_32F),
        (Precision::Bf16 | Precision::Fp8, _) => (sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, T::CUDA_R_16BF),
        (Precision::F16, _) => (sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, T::CUDA_R_16F),
    }
}

/// Descriptors, layouts and the heuristic's first algorithm for `key`.
fn make_plan(be: &CudaBackend, handle: &Lt, key: PlanKey) -> Result<LinearPlan, CublasError> {
    use sys::cublasLtMatmulDescAttributes_t as A;
    use sys::cudaDataType_t as T;
    let PlanKey {
        x: (xr, xc),
        w: (wr, wc),
        layer,
    } = key;
    let (m, n) = (if layer.trans_a { xc } else { xr }, if layer.trans_b { wr } else { wc });
    let (compute, operand) = operand_types(be);
    let desc = Desc(lt::create_matmul_desc(compute, T::CUDA_R_32F)?);
    // cublasOperation_t as cuBLASLt reads it: CUBLAS_OP_N = 0, CUBLAS_OP_T = 1.
    let op = |t: bool| i32::from(t);
    set_desc(&desc, A::CUBLASLT_MATMUL_DESC_TRANSA, &op(layer.trans_b))?;
    set_desc(&desc, A::CUBLASLT_MATMUL_DESC_TRANSB, &op(layer.trans_a))?;
    let epilogue = if layer.relu {
        sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_RELU_BIAS
    } else {
        sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS
    };
    set_desc(&desc, A::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue)?;
    set_desc(&desc, A::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &T::CUDA_R_32F)?;
    // Row-major out = op(x)·op(w) is column-major outᵀ = op(w)ᵀ·op(x)ᵀ: cuBLAS's A is w's
    // buffer and B is x's, each seen column-major as stored (rows = the row-major row length).
    let a_layout = Layout(lt::create_matrix_layout(operand, wc as u64, wr as u64, wc as i64)?);
    let b_layout = Layout(lt::create_matrix_layout(operand, xc as u64, xr as u64, xc as i64)?);
    let d_layout = Layout(lt::create_matrix_layout(T::CUDA_R_32F, n as u64, m as u64, n as i64)?);
    let algo = first_algorithm(handle, &desc, [&a_layout, &b_layout, &d_layout])?;
    Ok(LinearPlan {
        desc,
        a_layout,
        b_layout,
        d_layout,
        algo,
    })
}

/// The heuristic's first algorithm for `desc` on A, B and D (= C) laid out as given, within
/// our workspace.
pub(super) fn first_algorithm(
    handle: &Lt,
    desc: &Desc,
    [a, b, d]: [&Layout; 3],
) -> Result<sys::cublasLtMatmulAlgo_t, CublasError> {
    let pref = Pref(lt::create_matmul_pref()?);
    let bytes = WORKSPACE_BYTES as u64;
    // SAFETY: the attribute is a u64 byte count.
    unsafe {
        lt::set_matmul_pref_attribute(
            pref.0,
            sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
            &bytes as *const u64 as *const c_void,
            size_of::<u64>(),
        )?
    };
    // SAFETY: live descriptors of consistent shapes.
    let heuristic = unsafe { lt::get_matmul_algo_heuristic(handle.handle, desc.0, a.0, b.0, d.0, d.0, pref.0) }?;
    Ok(heuristic.algo)
}

/// Runs `desc` with `algo`: `D = A·B` (alpha 1, beta 0, so C is D and not read) on the
/// backend's stream, in our workspace.
///
/// # Safety
/// `a`, `b` and `d` must be live device buffers of the sizes their layouts describe, and
/// every pointer `desc` holds (bias, scales) must be live until the product has run.
pub(super) unsafe fn run_product(
    be: &CudaBackend,
    handle: &Lt,
    (desc, algo): (&Desc, &sys::cublasLtMatmulAlgo_t),
    [(a, a_layout), (b, b_layout)]: [(u64, &Layout); 2],
    (d, d_layout): (u64, &Layout),
) -> Result<(), CublasError> {
    let stream = &be.stream;
    let (workspace, _sync) = handle.workspace.device_ptr(stream);
    let (alpha, beta) = (1.0f32, 0.0f32);
    lt::matmul(
        handle.handle,
        desc.0,
        &alpha as *const f32 as *const c_void,
        &beta as *const f32 as *const c_void,
        a as *const c_void,
        a_layout.0,
        b as *const c_void,
        b_layout.0,
        d as *const c_void,
        d_layout.0,
        d as *mut c_void,
        d_layout.0,
        algo,
        workspace as *mut c_void,
        WORKSPACE_BYTES,
        stream.cu_stream() as *mut _,
    )
}

/// The cached plan for `key`, made on first use.
fn cached_linear_plan(be: &CudaBackend, handle: &Lt, key: PlanKey) -> Result<Arc<LinearPlan>, Fallback> {
    let mut plans = handle.plans.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = plans.get(&key) {
        return known.clone().ok_or(Fallback::NotSupported);
    }
    match make_plan(be, handle, key) {
        Ok(p) => {
            let p = Arc::new(p);
            plans.insert(key, Some(p.clone()));
            Ok(p)
        }
        Err(e) => {
            let fallback = Fallback::from(e);
            if matches!(fallback, Fallback::NotSupported) {
                plans.insert(key, None);
            }
            Err(fallback)
        }
    }
}

fn fused(
    be: &CudaBackend,
    handle: &Lt,
    layer: LinearLayer,
    [x, w, bias]: [&DeviceTensor; 3],
    out: &mut DeviceTensor,
) -> Result<(), Fallback> {
    let dims = |t: &DeviceTensor| (t.shape.dims()[0], t.shape.dims()[1]);
    let plan = cached_linear_plan(
        be,
        handle,
        PlanKey {
            x: dims(x),
            w: dims(w),
            layer,
        },
    )?;
    let stream = &be.stream;
    let (pbias, _rbias) = bias.slice().device_ptr(stream);
    set_desc(
        &plan.desc,
        sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
        &pbias,
    )?;
    // Low precision: 16-bit operands (stored, twins, or counted temporary copies; blas.rs).
    let (w16, x16) = match be.low {
        Precision::F32 => (None, None),
        _ => (Some(low_operand(be, w)?), Some(low_operand(be, x)?)),
    };
    let (pa, _ra) = w16.as_ref().map_or(w, |o| o.tensor()).slice().device_ptr(stream);
    let (pb, _rb) = x16.as_ref().map_or(x, |o| o.tensor()).slice().device_ptr(stream);
    let (pd, _rd) = out.slice_mut().device_ptr_mut(stream);
    let operands = [(pa, &plan.a_layout), (pb, &plan.b_layout)];
    // SAFETY: every pointer is a live device buffer of the size its layout describes; the
    // bias pointer set above lives through the call.
    unsafe { run_product(be, handle, (&plan.desc, &plan.algo), operands, (pd, &plan.d_layout)) }?;
    Ok(())
}

/// The same result from the unfused kernels: the product, then the bias (and ReLU) in place.
fn unfused(
    be: &CudaBackend,
    layer: LinearLayer,
    [x, w, bias]: [&DeviceTensor; 3],
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    matmul(be, x, w, layer.trans_a, layer.trans_b, out)?;
    arith::binary(be, BinaryOp::Add, out, bias, out)?;
    if layer.relu {
        activation::forward(be, Activation::Relu, out, out)?;
    }
    Ok(())
}
