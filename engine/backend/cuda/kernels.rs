//! Our kernels, compiled to PTX by build.rs and embedded in the binary (every
//! kernels/*.cu file), with one typed launcher per kernel that build.rs generates from
//! the kernel's C prototype.

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, DriverError, LaunchArgs, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::Arc;

fn load_modules(ctx: &Arc<CudaContext>) -> Result<HashMap<&'static str, Arc<CudaModule>>, DriverError> {
    PTX.iter()
        .map(|(name, src)| Ok((*name, ctx.load_module(Ptx::from_src(*src))?)))
        .collect()
}

/// A device pointer to elements of type `T`, as a kernel argument: a whole buffer or a
/// view into one. Whether the kernel writes through it is the kernel's business.
pub trait DevPtr<T> {
    fn push_to<'a>(&'a self, b: &mut LaunchArgs<'a>);
}

impl<T> DevPtr<T> for CudaSlice<T> {
    fn push_to<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(self);
    }
}

impl<T> DevPtr<T> for CudaView<'_, T> {
    fn push_to<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(self);
    }
}

include!(concat!(env!("OUT_DIR"), "/launchers.rs"));
