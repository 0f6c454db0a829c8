//! `--device`: which backend runs the work.

use anyhow::bail;
use chainrule::Device;

pub const DEVICE_HELP: &str = "auto (the first GPU if usable, else the CPU), cpu, or cuda[:N]";

/// Resolves `--device`. This build has the CPU backend only: `auto` says so in one line.
pub fn resolve(flag: &str) -> anyhow::Result<Device> {
    match flag {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            eprintln!("device: cpu (this build of chainrule has no CUDA backend yet)");
            Ok(Device::Cpu)
        }
        f if f == "cuda" || f.starts_with("cuda:") => {
            bail!("--device {f}: this build of chainrule has no CUDA backend yet; use --device cpu")
        }
        f => bail!("--device '{f}': expected {DEVICE_HELP}"),
    }
}
