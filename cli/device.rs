//! `--device`: which backend runs the work.

use anyhow::{bail, Context};
use chainrule::backend::cuda::{self, CudaBackend};
use chainrule::memory::MemoryTracker;
use chainrule::train::Placement;

/// Resolves `--device`: `auto` takes the first GPU when one is usable and otherwise the
/// CPU, saying which (and why) in one line on stderr; `cuda[:N]` without a usable GPU is an error.
pub fn resolve(flag: &str, tf32: bool) -> anyhow::Result<Placement> {
    let open = |ordinal: usize| CudaBackend::open(ordinal, MemoryTracker::new(None), tf32);
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
