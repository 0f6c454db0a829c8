//! NCCL, the collective of a data-parallel job on GPUs, loaded at run time like cuBLAS: a
//! machine without it gets a one-line error, never a panic. Eight entry points are bound here
//! directly rather than through cudarc's `nccl` feature, whose loader looks for `libnccl.so`
//! and never for `libnccl.so.2`, the only name NCCL's runtime package and its pip wheel
//! install.

use super::{driver_err, CudaBackend, DeviceTensor};
use crate::dist::{Collective, CollectiveError};
use crate::exec::ExecError;
use crate::plan::Storage;
use cudarc::driver::{CudaStream, DevicePtr};
use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Arc, OnceLock};

/// The id rank 0 makes and every rank joins with (`ncclUniqueId`): 128 opaque bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UniqueId {
    pub bytes: [u8; 128],
}

type RawComm = *mut c_void;
const NCCL_FLOAT32: c_int = 7;
const NCCL_SUM: c_int = 0;

type GetVersion = unsafe extern "C" fn(*mut c_int) -> c_int;
type GetUniqueId = unsafe extern "C" fn(*mut UniqueId) -> c_int;
type InitRank = unsafe extern "C" fn(*mut RawComm, c_int, UniqueId, c_int) -> c_int;
type AllReduce = unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, RawComm, *mut c_void) -> c_int;
type Destroy = unsafe extern "C" fn(RawComm) -> c_int;
type ErrorString = unsafe extern "C" fn(c_int) -> *const c_char;

struct Api {
    _lib: Library,
    get_version: GetVersion,
    get_unique_id: GetUniqueId,
    init_rank: InitRank,
    all_reduce: AllReduce,
    destroy: Destroy,
    error_string: ErrorString,
}

/// `name` from `lib` as a function of type `T`.
///
/// # Safety
/// `T` must be the C prototype nccl.h declares for `name`.
unsafe fn symbol<T: Copy>(lib: &Library, name: &str) -> Result<T, String> {
    unsafe { lib.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|e| format!("NCCL lacks {name}: {e}"))
}

const LIBRARIES: [&str; 2] = ["libnccl.so.2", "libnccl.so"];

fn load() -> Result<Api, String> {
    // SAFETY: loading NCCL runs its initialisers, which have no preconditions.
    let lib = LIBRARIES
        .iter()
        .find_map(|name| unsafe { Library::new(*name) }.ok())
        .ok_or_else(|| {
            format!(
                "NCCL not found (tried {}): install NCCL 2.18 or newer (libnccl2, or the nvidia-nccl-cu13 wheel) and put its lib folder on LD_LIBRARY_PATH",
                LIBRARIES.join(", ")
            )
        })?;
    // SAFETY: each type is the prototype nccl.h declares for its symbol.
    unsafe {
        Ok(Api {
            get_version: symbol(&lib, "ncclGetVersion")?,
            get_unique_id: symbol(&lib, "ncclGetUniqueId")?,
            init_rank: symbol(&lib, "ncclCommInitRank")?,
            all_reduce: symbol(&lib, "ncclAllReduce")?,
            destroy: symbol(&lib, "ncclCommDestroy")?,
            error_string: symbol(&lib, "ncclGetErrorString")?,
            _lib: lib,
        })
    }
}

fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn check(what: &str, code: c_int) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: NCCL returns a static string for every result code.
    let why = api()
        .ok()
        .map(|a| {
            unsafe { CStr::from_ptr((a.error_string)(code)) }
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    Err(format!("NCCL {what} failed (code {code}): {why}"))
}

/// The loaded NCCL's version, as `(major, minor, patch)`.
pub fn version() -> Result<(u32, u32, u32), String> {
    let a = api()?;
    let mut v: c_int = 0;
    // SAFETY: writes one int.
    check("ncclGetVersion", unsafe { (a.get_version)(&mut v) })?;
    let v = v as u32;
    Ok((v / 10000, v / 100 % 100, v % 100))
}

/// A new id for a job (rank 0 makes it and hands it to the others).
pub fn unique_id() -> Result<UniqueId, String> {
    let a = api()?;
    let mut id = UniqueId { bytes: [0; 128] };
    // SAFETY: writes the 128-byte id.
    check("ncclGetUniqueId", unsafe { (a.get_unique_id)(&mut id) })?;
    Ok(id)
}

/// This rank's NCCL communicator, with a stream of its own: a sum starts once the step's
/// stream has made its tensor and runs beside the rest of backward; the step's stream waits
/// for the sums ([`NcclComm::wait_for_sums`]) only where it reads them. Nothing waits on the
/// host.
pub struct NcclComm {
    comm: RawComm,
    rank: usize,
    world: usize,
    be: Arc<CudaBackend>,
    stream: Arc<CudaStream>,
}

// SAFETY: an NCCL communicator may be used from any thread, one call at a time; every call
// here goes through `&self` on one stream in order.
unsafe impl Send for NcclComm {}
unsafe impl Sync for NcclComm {}

impl NcclComm {
    /// Joins job `id` as `rank` of `world` on `be`'s GPU. Blocks until every rank has joined.
    pub fn join(be: &Arc<CudaBackend>, rank: usize, world: usize, id: UniqueId) -> Result<Self, String> {
        let a = api()?;
        be.ctx.bind_to_thread().map_err(|e| format!("binding the GPU: {e:?}"))?;
        let stream = be.stream().fork().map_err(|e| format!("a stream for NCCL: {e:?}"))?;
        let mut comm: RawComm = std::ptr::null_mut();
        // SAFETY: `comm` receives the new communicator; the id is passed by value.
        check("ncclCommInitRank", unsafe {
            (a.init_rank)(&mut comm, world as c_int, id, rank as c_int)
        })?;
        Ok(NcclComm {
            comm,
            rank,
            world,
            be: be.clone(),
            stream,
        })
    }

    /// Starts summing an f32 tensor over every rank, in place, once the step's stream has
    /// made it. The step's stream must not touch it again before [`Self::wait_for_sums`].
    pub fn all_reduce_tensor(&self, t: &mut DeviceTensor) -> Result<(), ExecError> {
        if t.storage != Storage::F32 {
            return Err(ExecError::Device("NCCL sums f32 tensors only here".into()));
        }
        let n = t.len();
        let stream = self.stream.clone();
        stream.wait(&made_so_far(self.be.stream())?).map_err(driver_err)?;
        let (ptr, _sync) = t.slice_mut().device_ptr(&stream);
        let a = api().map_err(ExecError::Device)?;
        // SAFETY: `ptr` holds `n` f32 values on this communicator's GPU; in-place is allowed.
        let code = unsafe {
            (a.all_reduce)(
                ptr as *const c_void,
                ptr as *mut c_void,
                n,
                NCCL_FLOAT32,
                NCCL_SUM,
                self.comm,
                stream.cu_stream() as *mut c_void,
            )
        };
        check("ncclAllReduce", code).map_err(ExecError::Device)
    }

    /// The step's stream waits for every sum started so far.
    pub fn wait_for_sums(&self) -> Result<(), ExecError> {
        self.be.stream().wait(&made_so_far(&self.stream)?).map_err(driver_err)
    }
}

/// An event at the end of the work queued on `stream` so far (no timing: cheaper).
fn made_so_far(stream: &CudaStream) -> Result<cudarc::driver::CudaEvent, ExecError> {
    let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DISABLE_TIMING);
    stream.record_event(flags).map_err(driver_err)
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        if let Ok(a) = api() {
            // SAFETY: the communicator is not used after this.
            unsafe { (a.destroy)(self.comm) };
        }
    }
}

impl Collective for NcclComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    /// Host values through the GPU (the step's own reductions stay on the device).
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError> {
        let fail = |e: ExecError| CollectiveError::Failed(e.to_string());
        let host = ndarray::ArrayD::from_shape_vec(vec![values.len()], values.to_vec()).expect("one axis");
        let mut t = self
            .be
            .upload(&host, crate::memory::Category::Temporaries)
            .map_err(fail)?;
        self.all_reduce_tensor(&mut t).map_err(fail)?;
        self.wait_for_sums().map_err(fail)?;
        let sums = self.be.download(&t).map_err(fail)?;
        values.copy_from_slice(sums.as_slice().expect("contiguous"));
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_machine_without_nccl_gets_a_one_line_error_naming_what_was_tried() {
        match super::version() {
            Ok((major, _, _)) => assert!(major >= 2),
            Err(why) => {
                assert!(why.contains("NCCL not found (tried libnccl.so.2, libnccl.so)"), "{why}");
                assert!(why.contains("LD_LIBRARY_PATH") && !why.contains('\n'), "{why}");
            }
        }
    }
}
