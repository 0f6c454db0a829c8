//! Matrix products through cuBLAS. cuBLAS is column-major; a row-major matrix is its
//! transpose, so C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ with the operands swapped.

use super::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use cudarc::cublas::sys::{cublasMath_t, cublasOperation_t};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};

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
    // SAFETY: shapes were checked when traced; leading dimensions are the stored row lengths.
    unsafe { be.blas.gemm(cfg, b.slice(), a.slice(), out.slice_mut()) }.map_err(driver_err)
}
