//! Matrix products through cuBLAS. cuBLAS is column-major; a row-major matrix is its
//! transpose, so C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ with the operands swapped.

use super::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasMath_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

pub fn set_tf32(blas: &CudaBlas, tf32: bool) -> Result<(), cudarc::cublas::result::CublasError> {
    let mode = if tf32 {
        cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
    } else {
        cublasMath_t::CUBLAS_PEDANTIC_MATH
    };
    // SAFETY: a live handle.
    unsafe { cudarc::cublas::sys::cublasSetMathMode(*blas.handle(), mode) }.result()
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
    let (ar, ac) = (a.shape.dims()[0], a.shape.dims()[1]);
    let (br, bc) = (b.shape.dims()[0], b.shape.dims()[1]);
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let n = if trans_b { br } else { bc };
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
    if be.bf16 {
        return matmul_bf16(be, a, b, cfg, out);
    }
    // SAFETY: shapes were checked when traced; leading dimensions are the stored row lengths.
    unsafe { be.blas.gemm(cfg, b.slice(), a.slice(), out.slice_mut()) }.map_err(driver_err)
}

/// bf16 copies of a tensor, made by a cast kernel. Workspace: not in the memory report.
fn bf16_copy(be: &CudaBackend, t: &DeviceTensor) -> Result<CudaSlice<u16>, ExecError> {
    let n = t.len() as i64;
    // SAFETY: the cast kernel writes every element before the product reads it.
    let out = unsafe { be.stream.alloc::<u16>(t.len().max(1)) }.map_err(driver_err)?;
    let cfg = super::ops::grid(t.len());
    super::ops::launched(be.kernels.f32_to_bf16(&be.stream, cfg, &out, t.slice(), n))?;
    Ok(out)
}

/// The same product on bf16 operands with f32 accumulation and an f32 result (cublasGemmEx).
fn matmul_bf16(
    be: &CudaBackend,
    a: &DeviceTensor,
    b: &DeviceTensor,
    cfg: GemmConfig<f32>,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let (a16, b16) = (bf16_copy(be, a)?, bf16_copy(be, b)?);
    let (alpha, beta) = (1.0f32, 0.0f32);
    let stream = &be.stream;
    let (pa, _ra) = a16.device_ptr(stream);
    let (pb, _rb) = b16.device_ptr(stream);
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
            cudaDataType::CUDA_R_16BF,
            cfg.lda,
            pa as *const _,
            cudaDataType::CUDA_R_16BF,
            cfg.ldb,
            (&beta as *const f32).cast(),
            pc as *mut _,
            cudaDataType::CUDA_R_32F,
            cfg.ldc,
            cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(driver_err)
}
