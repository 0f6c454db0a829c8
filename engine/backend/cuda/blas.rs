//! Matrix products through cuBLAS. cuBLAS is column-major; a row-major matrix is its
//! transpose, so C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ with the operands swapped.

use super::cast::low_operand;
use super::{driver_err, CudaBackend, DeviceTensor};
use crate::backend::Precision;
use crate::exec::ExecError;
use crate::plan::Storage;
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasMath_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use std::sync::Arc;

/// cuBLAS's math mode for a backend: f32 products in exact f32 (pedantic, so no setting
/// or environment turns them into TF32) or TF32 when asked; 16-bit products in the default
/// mode, which lets cuBLAS pick any tensor-core algorithm (f32 accumulation either way).
pub fn set_math(blas: &CudaBlas, tf32: bool, low: Precision) -> Result<(), cudarc::cublas::result::CublasError> {
    let mode = match (low, tf32) {
        (Precision::F32, true) => cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH,
        (Precision::F32, false) => cublasMath_t::CUBLAS_PEDANTIC_MATH,
        _ => cublasMath_t::CUBLAS_DEFAULT_MATH,
    };
    // SAFETY: a live handle.
    unsafe { cudarc::cublas::sys::cublasSetMathMode(*blas.handle(), mode) }.result()
}

/// Gives cuBLAS a workspace of ours, kept as long as the handle: a step captured as a CUDA
/// graph must not reach cuBLAS's own workspace pool, which may reallocate (cuBLAS manual,
/// "CUDA Graphs support"). 32 MiB, as for cuBLASLt (lt.rs), outside the memory report.
pub fn own_workspace(blas: &CudaBlas, stream: &Arc<CudaStream>) -> Result<CudaSlice<u8>, String> {
    const BYTES: usize = 32 << 20;
    // SAFETY: scratch that cuBLAS writes before reading.
    let workspace = unsafe { stream.alloc::<u8>(BYTES) }.map_err(|e| format!("{e:?}"))?;
    {
        let (ptr, _sync) = workspace.device_ptr(stream);
        // SAFETY: a live handle and BYTES bytes of device memory that outlive its use.
        unsafe { cudarc::cublas::sys::cublasSetWorkspace_v2(*blas.handle(), ptr as *mut std::ffi::c_void, BYTES) }
            .result()
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(workspace)
}

/// `(m, k, n)` of `op(a)·op(b)` for row-major 2-d `a` and `b`.
pub(super) fn product_dims(a: &DeviceTensor, b: &DeviceTensor, trans_a: bool, trans_b: bool) -> (usize, usize, usize) {
    let (ar, ac) = (a.shape.dims()[0], a.shape.dims()[1]);
    let (br, bc) = (b.shape.dims()[0], b.shape.dims()[1]);
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    (m, k, if trans_b { br } else { bc })
}

/// `out[m,n] = op(a)·op(b)` for row-major `a`, `b`, `out`.
pub fn matmul(
    be: &CudaBackend,
    a: &DeviceTensor,
    b: &DeviceTensor,
    trans_a: bool,
    trans_b: bool,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let (ac, bc) = (a.shape.dims()[1], b.shape.dims()[1]);
    let (m, k, n) = product_dims(a, b, trans_a, trans_b);
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let cfg = GemmConfig {
        transa: op(trans_b),
        transb: op(trans_a),
        m: n as i32,
        n: m as i32,
        k: k as i32,
        alpha: 1.0f32,
        lda: bc as i32,
        ldb: ac as i32,
        beta: 0.0f32,
        ldc: n as i32,
    };
    if be.low != Precision::F32 {
        return matmul_low(be, a, b, cfg, out);
    }
    // SAFETY: shapes were checked when traced; leading dimensions are the stored row lengths.
    unsafe { be.blas.gemm(cfg, b.slice(), a.slice(), out.slice_mut()) }.map_err(driver_err)
}

/// cuBLAS's name for the 16-bit type of this backend's `--dtype`.
pub(super) fn low_type(be: &CudaBackend) -> cudaDataType {
    match be.low {
        Precision::F16 => cudaDataType::CUDA_R_16F,
        _ => cudaDataType::CUDA_R_16BF,
    }
}

/// The same product on bf16 or f16 operands with f32 accumulation (cublasGemmEx); the
/// result in f32, or rounded to 16 bits when `out` is stored so.
fn matmul_low(
    be: &CudaBackend,
    a: &DeviceTensor,
    b: &DeviceTensor,
    cfg: GemmConfig<f32>,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let (a16, b16) = (low_operand(be, a)?, low_operand(be, b)?);
    let kind = low_type(be);
    let out_kind = match out.storage {
        Storage::F32 => cudaDataType::CUDA_R_32F,
        Storage::Half => kind,
    };
    let (alpha, beta) = (1.0f32, 0.0f32);
    let stream = &be.stream;
    let (pa, _ra) = a16.tensor().slice().device_ptr(stream);
    let (pb, _rb) = b16.tensor().slice().device_ptr(stream);
    let (pc, _rc) = out.slice_mut().device_ptr_mut(stream);
    // SAFETY: pointers are live device buffers of the sizes the gemm reads and writes; the
    // operands are swapped as in `matmul` (row-major through column-major cuBLAS).
    unsafe {
        cudarc::cublas::result::gemm_ex(
            *be.blas.handle(),
            cfg.transa,
            cfg.transb,
            cfg.m,
            cfg.n,
            cfg.k,
            (&alpha as *const f32).cast(),
            pb as *const _,
            kind,
            cfg.lda,
            pa as *const _,
            kind,
            cfg.ldb,
            (&beta as *const f32).cast(),
            pc as *mut _,
            out_kind,
            cfg.ldc,
            cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(driver_err)
}
