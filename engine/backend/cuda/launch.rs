//! How our kernels are launched: the grid for n values (one thread each, or one per eight
//! values for vectorized kernels), one block, and a generated launcher's result as ours.

use super::driver_err;
use crate::exec::ExecError;
use cudarc::driver::{DriverError, LaunchConfig};

/// Threads per block of an elementwise kernel.
pub const THREADS: u32 = 256;

/// One thread per value, in blocks of [`THREADS`].
pub fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// For kernels that take eight values a thread access (kernels/common.cuh, `CR_VECTOR`):
/// one thread per eight values.
pub fn grid_chunks(n: usize) -> LaunchConfig {
    grid(n.div_ceil(VECTOR))
}

/// Values per vectorized thread access (`CR_VECTOR` in kernels/common.cuh).
pub const VECTOR: usize = 8;

/// One block of `threads` (a kernel that reduces within its block).
pub fn single_block(threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A generated launcher's result as ours.
pub fn launched(r: Result<(), DriverError>) -> Result<(), ExecError> {
    r.map_err(driver_err)
}
