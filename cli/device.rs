//! `--device`: which backend runs the work.

use anyhow::{bail, Context};
use chainrule::backend::cuda::{self, CudaBackend, LowPrecision};
use chainrule::memory::MemoryTracker;
use chainrule::train::Placement;

/// Resolves `--device`: `auto` takes the first GPU when one is usable and otherwise the
/// CPU, saying which (and why) in one line on stderr; `cuda[:N]` without a usable GPU is an error.
pub fn resolve(flag: &str, tf32: bool) -> anyhow::Result<Placement> {
    resolve_with(flag, tf32, "f32")
}

/// [`resolve`] with a compute dtype: `f32`, or `bf16`/`f16` (matrix products on 16-bit
/// copies, GPU only; f16 trains with dynamic loss scaling).
pub fn resolve_with(flag: &str, tf32: bool, dtype: &str) -> anyhow::Result<Placement> {
    let low = match dtype {
        "f32" => LowPrecision::F32,
        "bf16" => LowPrecision::Bf16,
        "f16" => LowPrecision::F16,
        d => bail!("--dtype '{d}': expected f32, bf16 or f16"),
    };
    let placement = resolve_device(flag, tf32, low)?;
    if low != LowPrecision::F32 && matches!(placement, Placement::Cpu(_)) {
        bail!("--dtype {dtype} needs a GPU: the CPU backend computes in f32");
    }
    Ok(placement)
}

fn resolve_device(flag: &str, tf32: bool, low: LowPrecision) -> anyhow::Result<Placement> {
    let open = |ordinal: usize| CudaBackend::open_with(ordinal, MemoryTracker::new(None), tf32, low);
    match flag {
        "cpu" => Ok(Placement::cpu()),
        "auto" => match cuda::usable().and_then(|_| open(0)) {
            Ok(be) => {
                eprintln!(
                    "device: cuda:0 ({}){}",
                    be.name,
                    if tf32 { ", TF32 matrix products" } else { "" }
                );
                Ok(Placement::Cuda(be))
            }
            Err(why) => {
                eprintln!("device: cpu ({why})");
                Ok(Placement::cpu())
            }
        },
        f if f == "cuda" || f.starts_with("cuda:") => {
            let ordinal = match f.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .with_context(|| format!("--device {f}: expected cuda:N with N a GPU number"))?,
                None => 0,
            };
            match open(ordinal) {
                Ok(be) => {
                    eprintln!("device: cuda:{ordinal} ({})", be.name);
                    Ok(Placement::Cuda(be))
                }
                Err(why) => bail!("--device {f}: {why}; use --device cpu or --device auto"),
            }
        }
        f => bail!("--device '{f}': expected auto (the first GPU if usable, else the CPU), cpu, or cuda[:N]"),
    }
}
