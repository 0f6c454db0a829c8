//! The cast kernels' launchers (kernels/cast.cu): 16-bit copies of f32 tensors, the operands
//! a bf16 or f16 product reads, and the values they round to.

use super::launch::{grid, grid_chunks, launched};
use super::{CudaBackend, DeviceTensor};
use crate::backend::Precision;
use crate::exec::{Backend, ExecError};
use crate::memory::Category;
use crate::plan::Storage;

/// A bf16 or f16 copy of `t`, made by a cast kernel: 16-bit words in a pool tensor of half
/// as many f32 elements, so the copy is counted (as a temporary) like any other tensor.
pub(super) fn low_copy(be: &CudaBackend, t: &DeviceTensor) -> Result<DeviceTensor, ExecError> {
    let words = t.len().div_ceil(2).max(1);
    let mut copy = be.alloc(&crate::tensor::Shape::new(&[words]), Category::Temporaries)?;
    cast_into(be, t, &mut copy)?;
    Ok(copy)
}

/// Writes `t`'s values, rounded to this backend's 16-bit type, into `into` (at least
/// `t.len()` 16-bit words).
pub(super) fn cast_into(be: &CudaBackend, t: &DeviceTensor, into: &mut DeviceTensor) -> Result<(), ExecError> {
    let n = t.len() as i64;
    // SAFETY: `into` holds at least `t.len()` 16-bit words; the cast writes every one.
    let view = unsafe { into.slice().transmute::<u16>(t.len()) }.expect("a copy holds its words");
    let cfg = grid_chunks(t.len());
    let k = &be.kernels;
    launched(match be.low {
        Precision::F16 => k.f32_to_f16(&be.stream, cfg, &view, t.slice(), n),
        _ => k.f32_to_bf16(&be.stream, cfg, &view, t.slice(), n),
    })
}

/// `t` rounded to the 16-bit type the products read and widened back: exactly the values a
/// low-precision product multiplies (for tests against the `half` crate's rounding).
pub fn rounded(be: &CudaBackend, t: &DeviceTensor) -> Result<DeviceTensor, ExecError> {
    let copy = low_copy(be, t)?;
    let out = be.alloc(&t.shape, Category::Temporaries)?;
    let n = t.len() as i64;
    // SAFETY: `copy` holds `t.len()` 16-bit words, all written by the cast.
    let view = unsafe { copy.slice().transmute::<u16>(t.len()) }.expect("a copy holds its words");
    let (k, cfg) = (&be.kernels, grid(t.len()));
    launched(match be.low {
        Precision::F16 => k.f16_to_f32(&be.stream, cfg, out.slice(), &view, n),
        Precision::Bf16 | Precision::Fp8 => k.bf16_to_f32(&be.stream, cfg, out.slice(), &view, n),
        Precision::F32 => return be.duplicate(t, Category::Temporaries),
    })?;
    Ok(out)
}

/// The 16-bit operand a low-precision product reads for a tensor.
pub(super) enum LowOperand<'a> {
    /// Already 16-bit: the tensor itself, or a parameter's twin.
    Stored(&'a DeviceTensor),
    /// A copy made by the cast kernel, freed after the product.
    Copy(DeviceTensor),
}

impl LowOperand<'_> {
    pub(super) fn tensor(&self) -> &DeviceTensor {
        match self {
            LowOperand::Stored(t) => t,
            LowOperand::Copy(t) => t,
        }
    }
}

/// What a low-precision product reads for `t`: `t` if stored in 16 bits, its twin if it is a
/// parameter with one, or else a fresh copy.
pub(super) fn low_operand<'a>(be: &CudaBackend, t: &'a DeviceTensor) -> Result<LowOperand<'a>, ExecError> {
    Ok(match (t.storage, &t.twin) {
        (Storage::Half, _) => LowOperand::Stored(t),
        (Storage::F32, Some(twin)) => LowOperand::Stored(twin),
        (Storage::F32, None) => LowOperand::Copy(low_copy(be, t)?),
    })
}
