//! `--device`, `--dtype`, `--tf32` and `--memory-limit`: which device runs the work.

use crate::voice::Voice;
use anyhow::{bail, Context};
use chainrule::backend::{self, Device, DeviceChoice, OpenError, Precision};
use chainrule::dist::DeviceList;
use std::sync::Arc;

/// Why `--update-in-backward` and `--dtype f16` do not go together (train, plan, scale):
/// the engine's rule, with the flags named.
pub fn updates_with_f16() -> String {
    let rule = chainrule::optim::loss_scale::NO_UPDATES_INSIDE_BACKWARD;
    format!("--update-in-backward with --dtype f16 (which trains with loss scaling): {rule}; use --dtype bf16 or f32")
}

/// `--dtype`: f32, or bf16/f16 (activations stored in 16 bits where every reader takes
/// them, products on 16-bit operands; the CPU rounds the same values; f16 trains with
/// dynamic loss scaling), or fp8 (bf16, with FP8 operands for products that take them).
pub fn precision(dtype: &str) -> anyhow::Result<Precision> {
    Precision::parse(dtype).with_context(|| format!("--dtype '{dtype}': expected {}", Precision::NAMES))
}

/// The device that evaluates a saved model (`eval`, `predict`): `--dtype` when given, else
/// the dtype the model was trained in, so its figures are those its run reported. Returns
/// the device and the dtype's name.
pub fn for_saved(
    flag: &str,
    dtype: Option<&str>,
    snapshot: &chainrule::io::Snapshot,
) -> anyhow::Result<(Arc<dyn Device>, String)> {
    let dtype = match dtype {
        Some(d) => d.to_string(),
        None => snapshot.state.saved_dtype().unwrap_or_else(|| "f32".into()),
    };
    Ok((resolve_with(flag, false, &dtype, None, Voice::Speaks)?, dtype))
}

/// Resolves `--device`: `auto` takes the first GPU when one is usable and otherwise the
/// CPU, saying which (and why) in one line on stderr where `voice` speaks; `cuda[:N]`
/// without a usable GPU is an error. `dtype` is `--dtype` ([`precision`]); `limit` refuses
/// allocations past it.
pub fn resolve_with(
    flag: &str,
    tf32: bool,
    dtype: &str,
    limit: Option<u64>,
    voice: Voice,
) -> anyhow::Result<Arc<dyn Device>> {
    let precision = precision(dtype)?;
    let choice = match flag {
        "cpu" => DeviceChoice::Cpu,
        "auto" => DeviceChoice::Auto,
        f if f == "cuda" || f.starts_with("cuda:") => DeviceChoice::Cuda(match f.strip_prefix("cuda:") {
            Some(n) => n
                .parse::<usize>()
                .with_context(|| format!("--device {f}: expected cuda:N with N a GPU number"))?,
            None => 0,
        }),
        f => bail!("--device '{f}': expected auto (the first GPU if usable, else the CPU), cpu, or cuda[:N]"),
    };
    match backend::open(choice, precision, tf32, limit) {
        Ok((device, fallback)) => {
            tracing::info!(device = %device.describe(), flag, dtype, tf32, "device selected");
            match (choice, fallback) {
                (DeviceChoice::Auto, Some(why)) => voice.note(&format!("device: {} ({why})", device.describe())),
                (DeviceChoice::Auto, None) => voice.note(&format!(
                    "device: {}{}",
                    device.describe(),
                    if tf32 { ", TF32 matrix products" } else { "" }
                )),
                (DeviceChoice::Cuda(_), _) => voice.note(&format!("device: {}", device.describe())),
                (DeviceChoice::Cpu, _) => {}
            }
            if tf32 && precision != Precision::F32 {
                voice.note(&format!(
                    "note: --tf32 changes only f32 matrix products, and --dtype {precision} has none"
                ));
            } else if tf32 && device.describe().starts_with("cpu") {
                voice.note("note: --tf32 is for a GPU's matrix products; the CPU computes them in f32");
            }
            Ok(device)
        }
        Err(OpenError::Gpu { why, .. }) => bail!("--device {flag}: {why}; use --device cpu or --device auto"),
    }
}

/// The GPUs `--devices` names for a tool that opens them itself (`bench`, `remat`,
/// `scale`), refused beside a `--device` naming another one; `hint` follows the error when
/// they are not there.
pub fn listed_gpus(list: &DeviceList, device: &str, hint: &str) -> anyhow::Result<Vec<usize>> {
    if device != "auto" && device != "cuda" {
        bail!("--devices {list} and --device {device}: give one (--devices names the GPUs)");
    }
    list.resolve(backend::gpus().map(|g| g.len()))
        .map_err(|e| anyhow::anyhow!("--devices {list}: {e}{hint}"))
}

/// `--devices` of a tool that measures one device (`bench`, `remat`): the one GPU it names,
/// as the `--device` to open (`--device` itself when no `--devices` is given).
pub fn single_gpu(devices: Option<&DeviceList>, device: &str, tool: &str) -> anyhow::Result<String> {
    let Some(list) = devices else {
        return Ok(device.to_string());
    };
    match listed_gpus(list, device, "")?.as_slice() {
        [gpu] => Ok(format!("cuda:{gpu}")),
        gpus => bail!(
            "--devices {list}: {tool} measures one GPU ({} given); data-parallel jobs are train's, and scale --devices sizes them",
            gpus.len()
        ),
    }
}
