//! Picking a device: the one place that names each backend. Adding a backend adds a line
//! here.

use super::cpu::CpuDevice;
use super::cuda::{self, CudaDevice};
use super::device::Device;
use std::sync::Arc;

pub use super::cuda::GpuInfo;

/// The operand type of matrix products (`--dtype`). Products accumulate in f32 either way;
/// parameters, optimizer state and every other op stay f32. The GPU multiplies 16-bit copies;
/// the CPU rounds its operands to the same values (a reference of the same arithmetic).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Precision {
    /// f32 operands (TF32 when asked for).
    F32,
    /// bf16 copies: 8 mantissa bits, f32's range.
    Bf16,
    /// f16 copies: 11 significant bits, largest finite value 65504; trained with dynamic loss scaling.
    F16,
    /// FP8 copies for the products whose shape FP8 can take (`plan::fp8`), each scaled per
    /// tensor from its current absolute maximum; bf16 for everything else `bf16` rounds.
    Fp8,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
            Precision::Fp8 => "fp8",
        })
    }
}

impl Precision {
    /// The names [`Precision::parse`] takes, for error messages.
    pub const NAMES: &'static str = "f32, bf16, f16 or fp8";

    /// How a device holds this dtype's 16-bit values and FP8 copies: `packed` in whole
    /// words (a GPU's pool), or else rounded and kept as f32 (the CPU's reference).
    pub fn half_layout(self, packed: bool) -> crate::plan::HalfLayout {
        use crate::plan::HalfLayout;
        match (self, packed) {
            (Precision::F32, _) => HalfLayout::None,
            (Precision::Fp8, true) => HalfLayout::PackedFp8,
            (Precision::Fp8, false) => HalfLayout::WidenedFp8,
            (_, true) => HalfLayout::Packed,
            (_, false) => HalfLayout::Widened,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "f32" => Some(Precision::F32),
            "bf16" => Some(Precision::Bf16),
            "f16" => Some(Precision::F16),
            "fp8" => Some(Precision::Fp8),
            _ => None,
        }
    }
}

/// Which device to open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeviceChoice {
    /// The first GPU when one is usable, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cuda:{ordinal}: {why}")]
    Gpu { ordinal: usize, why: String },
}

/// Opens `choice`: matrix products in `precision` (TF32 for f32 ones with `tf32`), memory
/// counted by a fresh tracker that refuses allocations past `limit`. Returns the device
/// and, for `Auto`, why it is the one it is.
pub fn open(
    choice: DeviceChoice,
    precision: Precision,
    tf32: bool,
    limit: Option<u64>,
) -> Result<(Arc<dyn Device>, Option<String>), OpenError> {
    let gpu = |ordinal: usize| -> Result<Arc<dyn Device>, OpenError> {
        cuda::usable()
            .map_err(|e| e.to_string())
            .and_then(|_| CudaDevice::open(ordinal, limit, tf32, precision).map_err(|e| e.to_string()))
            .map(|d| Arc::new(d) as Arc<dyn Device>)
            .map_err(|why| OpenError::Gpu { ordinal, why })
    };
    let host = || -> Arc<dyn Device> { Arc::new(CpuDevice::with_precision(limit, precision)) };
    match choice {
        DeviceChoice::Cpu => Ok((host(), None)),
        DeviceChoice::Cuda(n) => Ok((gpu(n)?, None)),
        DeviceChoice::Auto => match gpu(0) {
            Ok(d) => Ok((d, None)),
            Err(OpenError::Gpu { why, .. }) => Ok((host(), Some(why))),
        },
    }
}

/// The CPU, counting memory with no limit.
pub fn cpu() -> Arc<dyn Device> {
    Arc::new(CpuDevice::new(None))
}

/// Every GPU the driver reports, or why none can be used.
pub fn gpus() -> Result<Vec<GpuInfo>, String> {
    cuda::gpus().map_err(|e| e.to_string())
}
