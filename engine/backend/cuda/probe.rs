//! Is there a GPU, and what is it? Checked without panicking: with dynamic loading cudarc
//! panics on a missing library, so every library is looked for first.

use super::CudaError;
use cudarc::driver::CudaContext;

#[derive(Clone, Debug)]
pub struct GpuInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub free_bytes: usize,
    pub total_bytes: usize,
    pub driver_version: i32,
    pub cublas_version: Option<i32>,
    /// cuBLASLt's version, when the library is present (fused Linear layers need it).
    pub cublaslt_version: Option<usize>,
}

fn libraries_present() -> Result<(), CudaError> {
    // SAFETY: these only try to dlopen the library and report whether it loaded.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::Unavailable(
            "the CUDA driver library (libcuda.so) was not found".into(),
        ));
    }
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(CudaError::Unavailable(
            "the cuBLAS library (libcublas.so.13) was not found; add its folder to LD_LIBRARY_PATH".into(),
        ));
    }
    Ok(())
}

pub fn device_count() -> Result<usize, CudaError> {
    libraries_present()?;
    cudarc::driver::result::init()
        .map_err(|e| CudaError::Unavailable(format!("the CUDA driver did not initialise: {e:?}")))?;
    let n = cudarc::driver::result::device::get_count().map_err(|e| CudaError::Driver(format!("{e:?}")))?;
    if n <= 0 {
        return Err(CudaError::Unavailable("the CUDA driver reports no GPU".into()));
    }
    Ok(n as usize)
}

/// Whether `cuda:0` can be used, and why not.
pub fn usable() -> Result<(), CudaError> {
    device_count().map(|_| ())
}

fn driver_version() -> i32 {
    let mut v = 0;
    // SAFETY: the driver library was found; the call writes one int.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    v
}

/// Every GPU with its facts.
pub fn gpus() -> Result<Vec<GpuInfo>, CudaError> {
    let n = device_count()?;
    let driver = driver_version();
    (0..n)
        .map(|i| {
            let ctx = CudaContext::new(i).map_err(|e| CudaError::Driver(format!("{e:?}")))?;
            let (free, total) = ctx.mem_get_info().map_err(|e| CudaError::Driver(format!("{e:?}")))?;
            let cublas_version = cudarc::cublas::CudaBlas::new(ctx.default_stream()).ok().map(|b| {
                let mut v = 0;
                // SAFETY: a live handle; the call writes one int.
                unsafe { cudarc::cublas::sys::cublasGetVersion_v2(*b.handle(), &mut v) };
                v
            });
            Ok(GpuInfo {
                ordinal: i,
                name: ctx.name().unwrap_or_default(),
                compute_capability: ctx.compute_capability().unwrap_or((0, 0)),
                free_bytes: free,
                total_bytes: total,
                driver_version: driver,
                cublas_version,
                // SAFETY: only tries to load the library; the version call takes no arguments.
                cublaslt_version: unsafe { cudarc::cublaslt::sys::is_culib_present() }
                    .then(|| unsafe { cudarc::cublaslt::sys::cublasLtGetVersion() }),
            })
        })
        .collect()
}
