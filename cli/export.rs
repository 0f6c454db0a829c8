//! `chainrule export`: a saved model in a standard format others can run.

use anyhow::Context;
use chainrule::io::{onnx::to_onnx, write_atomic, Snapshot};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Model saved by `chainrule train --save` (or --save-best)
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Write an ONNX model here (opset 17; 20 for GELU): raw features in, normalized inside, outputs `logits` and `probabilities` (a regression: `values`)
    #[arg(long, value_name = "FILE.onnx")]
    onnx: PathBuf,
}

pub fn run(a: ExportArgs) -> anyhow::Result<i32> {
    use crate::paths::Role;
    crate::paths::distinct(&[
        ("--model", Some(&a.model), Role::Input),
        ("--onnx", Some(&a.onnx), Role::Output),
    ])?;
    chainrule::io::save_target(&a.onnx).map_err(|e| anyhow::anyhow!("--onnx {e}"))?;
    let snapshot = Snapshot::load(&a.model)?;
    let (bytes, opset) = to_onnx(&snapshot).with_context(|| a.model.display().to_string())?;
    write_atomic(&a.onnx, &bytes).map_err(|e| anyhow::anyhow!("--onnx {e}"))?;
    println!(
        "wrote {} (ONNX opset {opset}, {}, {} bytes)",
        a.onnx.display(),
        snapshot.model.describe(),
        bytes.len()
    );
    Ok(0)
}
