//! FP8 matrix products through cuBLASLt (`--dtype fp8`): both operands copied to FP8
//! ([`super::fp8_copy`]), multiplied with f32 sums, and the sums times both inverse scales
//! written in f32 or bf16 as the result is stored. The CPU's reference multiplies the same
//! FP8 values (`backend::cpu::fp8_rounding`), so the two differ only in the order of f32
//! sums.
//!
//! cuBLAS is column-major: row-major `out = op(a)·op(b)` is computed as `outᵀ = op(b)ᵀ·op(a)ᵀ`
//! with cuBLAS's A made from `b` and B from `a`. cuBLASLt's FP8 kernels take A transposed
//! and B not (the "TN" layout), so `b`'s copy is `op(b)` stored column by column (`b`
//! transposed unless `trans_b`) and `a`'s copy is `op(a)` stored row by row (`a` transposed
//! when `trans_a`); both then have the inner dimension as their leading one.

use super::blas::product_dims;
use super::fp8_copy::fp8_copy;
use super::lt::{first_algorithm, run_product, set_desc, Desc, Layout, Lt};
use super::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::plan::fp8::Fp8Format;
use crate::plan::Storage;
use cudarc::cublaslt::result::{self as lt, CublasError};
use cudarc::cublaslt::sys;
use cudarc::driver::{DevicePtr, DevicePtrMut};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What an FP8 product is, apart from its data: the key of its cached plan.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Fp8Key {
    m: usize,
    k: usize,
    n: usize,
    formats: [Fp8Format; 2],
    out: Storage,
}

/// An FP8 product's descriptors and chosen algorithm, made once per shape.
struct Fp8Plan {
    desc: Desc,
    a_layout: Layout,
    b_layout: Layout,
    d_layout: Layout,
    algo: sys::cublasLtMatmulAlgo_t,
}

// SAFETY: plain host objects, used from the backend's one stream (as lt.rs's plans).
unsafe impl Send for Fp8Plan {}
// SAFETY: as above; the scale pointers are set just before each use, on one stream.
unsafe impl Sync for Fp8Plan {}

/// FP8 plans by shape.
#[derive(Default)]
pub struct Fp8Plans(Mutex<HashMap<Fp8Key, Arc<Fp8Plan>>>);

fn data_type(format: Fp8Format) -> sys::cudaDataType_t {
    match format {
        Fp8Format::E4M3 => sys::cudaDataType_t::CUDA_R_8F_E4M3,
        Fp8Format::E5M2 => sys::cudaDataType_t::CUDA_R_8F_E5M2,
    }
}

fn make_plan(handle: &Lt, key: Fp8Key) -> Result<Fp8Plan, CublasError> {
    use sys::cublasLtMatmulDescAttributes_t as A;
    let Fp8Key { m, k, n, formats, out } = key;
    let desc = Desc(lt::create_matmul_desc(
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        sys::cudaDataType_t::CUDA_R_32F,
    )?);
    // cublasOperation_t as cuBLASLt reads it: CUBLAS_OP_N = 0, CUBLAS_OP_T = 1.
    set_desc(&desc, A::CUBLASLT_MATMUL_DESC_TRANSA, &1i32)?;
    set_desc(&desc, A::CUBLASLT_MATMUL_DESC_TRANSB, &0i32)?;
    let out_type = match out {
        Storage::F32 => sys::cudaDataType_t::CUDA_R_32F,
        Storage::Half => sys::cudaDataType_t::CUDA_R_16BF,
    };
    // A: b's copy, k x n column-major (read transposed); B: a's copy, k x m column-major.
    let a_layout = Layout(lt::create_matrix_layout(
        data_type(formats[1]),
        k as u64,
        n as u64,
        k as i64,
    )?);
    let b_layout = Layout(lt::create_matrix_layout(
        data_type(formats[0]),
        k as u64,
        m as u64,
        k as i64,
    )?);
    let d_layout = Layout(lt::create_matrix_layout(out_type, n as u64, m as u64, n as i64)?);
    let algo = first_algorithm(handle, &desc, [&a_layout, &b_layout, &d_layout])?;
    Ok(Fp8Plan {
        desc,
        a_layout,
        b_layout,
        d_layout,
        algo,
    })
}

fn cached_plan(handle: &Lt, key: Fp8Key) -> Result<Arc<Fp8Plan>, ExecError> {
    let mut plans = handle.fp8_plans.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = plans.get(&key) {
        return Ok(known.clone());
    }
    let plan = Arc::new(make_plan(handle, key).map_err(|e| {
        ExecError::Device(format!(
            "cuBLASLt has no FP8 product for {}x{}x{} ({} x {}): {e:?}",
            key.m,
            key.k,
            key.n,
            key.formats[0].name(),
            key.formats[1].name()
        ))
    })?);
    plans.insert(key, plan.clone());
    Ok(plan)
}

/// `out[m, n] = op(a)·op(b)` on FP8 copies of `a` (in `formats[0]`) and `b` (`formats[1]`).
pub fn matmul_fp8(
    be: &CudaBackend,
    [a, b]: [&DeviceTensor; 2],
    (trans_a, trans_b): (bool, bool),
    formats: [Fp8Format; 2],
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let handle = be.lt.as_ref().ok_or_else(|| {
        ExecError::Device("--dtype fp8 needs cuBLASLt (libcublasLt.so.13), which did not open".into())
    })?;
    let (m, k, n) = product_dims(a, b, trans_a, trans_b);
    let b8 = fp8_copy(be, b, formats[1], !trans_b)?;
    let a8 = fp8_copy(be, a, formats[0], trans_a)?;
    let key = Fp8Key {
        m,
        k,
        n,
        formats,
        out: out.storage,
    };
    let plan = cached_plan(handle, key)?;
    let stream = &be.stream;
    let (b_inverse, a_inverse) = (b8.inverse_scale(), a8.inverse_scale());
    let (scale_a, _ra) = b_inverse.device_ptr(stream);
    let (scale_b, _rb) = a_inverse.device_ptr(stream);
    use sys::cublasLtMatmulDescAttributes_t as A;
    set_desc(&plan.desc, A::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scale_a).map_err(driver_err)?;
    set_desc(&plan.desc, A::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scale_b).map_err(driver_err)?;
    let (pa, _sa) = b8.tensor.slice().device_ptr(stream);
    let (pb, _sb) = a8.tensor.slice().device_ptr(stream);
    let (pd, _sd) = out.slice_mut().device_ptr_mut(stream);
    let operands = [(pa, &plan.a_layout), (pb, &plan.b_layout)];
    // SAFETY: every pointer is a live device buffer of the size its layout describes (the
    // copies hold m*k and k*n bytes before their scale words); the scale pointers are the
    // copies' last words, alive through the call.
    unsafe { run_product(be, handle, (&plan.desc, &plan.algo), operands, (pd, &plan.d_layout)) }.map_err(driver_err)
}
