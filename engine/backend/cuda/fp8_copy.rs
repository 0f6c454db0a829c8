//! The FP8 copy of a product's operand (kernels/fp8.cu; the CPU's form is
//! `backend::cpu::fp8_rounding`): one byte a value, transposed where cuBLASLt's FP8
//! kernels need it, and in the copy's last word the inverse of the operand's scale. A pool
//! tensor of whole f32 words, so it is counted (as a temporary) as the planner predicts
//! (`HalfLayout::PackedFp8`).

use super::launch::{launched, single_block, THREADS};
use super::{driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::kernels::Fp8Kind;
use crate::memory::Category;
use crate::plan::fp8::Fp8Format;
use crate::tensor::Shape;
use cudarc::driver::LaunchConfig;

/// Blocks of the absolute-maximum kernel at most: enough to fill a GPU, few enough that
/// their one atomic each does not queue.
const MAX_BLOCKS: usize = 1024;

/// An operand's FP8 copy: `words` f32 words of bytes, then the inverse scale.
pub(super) struct Fp8Copy {
    pub tensor: DeviceTensor,
    /// Words of FP8 bytes before the inverse scale's word.
    pub words: usize,
}

impl Fp8Copy {
    /// The word that holds the inverse scale cuBLASLt multiplies the product by.
    pub fn inverse_scale(&self) -> cudarc::driver::CudaView<'_, f32> {
        self.tensor.slice().slice(self.words..self.words + 1)
    }
}

/// The FP8 copy of the 2-d `t` in `format`, transposed (`t`ᵀ row-major) when `transpose`.
pub(super) fn fp8_copy(
    be: &CudaBackend,
    t: &DeviceTensor,
    format: Fp8Format,
    transpose: bool,
) -> Result<Fp8Copy, ExecError> {
    let n = t.len();
    let (rows, cols) = (t.shape.dims()[0], t.shape.dims()[1]);
    let words = n.div_ceil(4).max(1);
    let mut tensor = be.alloc(&Shape::new(&[words + 1]), Category::Temporaries)?;
    be.stream
        .memset_zeros(&mut tensor.slice_mut().slice_mut(words..words + 1))
        .map_err(driver_err)?;
    let (k, stream, storage) = (&be.kernels, &be.stream, be.element_storage(t));
    let kind = match format {
        Fp8Format::E4M3 => Fp8Kind::E4m3,
        Fp8Format::E5M2 => Fp8Kind::E5m2,
    };
    {
        // SAFETY: the word is an f32 of the copy; the kernels read and write it as u32 bits.
        let word = unsafe { tensor.slice().slice(words..words + 1).transmute::<u32>(1) }.expect("one word");
        let blocks = n.div_ceil(THREADS as usize).clamp(1, MAX_BLOCKS) as u32;
        let spread = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        launched(k.fp8_absolute_max(stream, spread, &word, t.slice(), storage, n as i64))?;
        launched(k.fp8_inverse_scale(stream, single_block(1), &word, format.max()))?;
    }
    let inverse = tensor.slice().slice(words..words + 1);
    // SAFETY: the first `words` words hold at least `n` bytes; the cast writes each once.
    let bytes = unsafe { tensor.slice().transmute::<u8>(n) }.expect("the copy holds its bytes");
    if !transpose {
        launched(k.fp8_cast(
            stream,
            super::launch::grid(n),
            &bytes,
            t.slice(),
            storage,
            n as i64,
            &inverse,
            kind,
        ))?;
    } else {
        let tiles = (cols.div_ceil(32), rows.div_ceil(32));
        if tiles.1 > 65_535 {
            return Err(ExecError::Device(format!(
                "an FP8 transposed copy of {rows} rows: at most {} rows",
                65_535 * 32
            )));
        }
        let cfg = LaunchConfig {
            grid_dim: (tiles.0 as u32, tiles.1 as u32, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        launched(k.fp8_cast_transposed(
            stream,
            cfg,
            &bytes,
            t.slice(),
            storage,
            rows as i64,
            cols as i64,
            &inverse,
            kind,
        ))?;
    }
    Ok(Fp8Copy { tensor, words })
}
