//! A snapshot's MLP as a standard ONNX model (protobuf messages from the onnx-protobuf
//! crate, serialized by rust-protobuf): input `input` `[batch, features]` of raw values,
//! the saved normalization (`Mul` by the scale, then `Sub` the mean and `Div` by the
//! standard deviation when standardized), the layers as [`super::onnx_graph`] writes them,
//! outputs `logits` and `probabilities` (`Softmax` over classes), or a regression's one
//! output `values` (the predicted targets). Dropout is the identity
//! at inference and is left out. Opset 17 (IR 8), or opset 20 (IR 9) for GELU, which ONNX
//! has only from opset 20: `Gelu` with `approximate = "tanh"`, the form chainrule computes.

use super::onnx_graph::{int_attr, value_info, OnnxGraph};
use super::Snapshot;
use crate::ops::Activation;
use onnx_protobuf::{tensor_shape_proto::dimension, Message, ModelProto, OperatorSetIdProto};

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("the model's activation '{0}' has no ONNX form here")]
    Activation(String),
    #[error("tensor '{0}' is missing from the snapshot")]
    Missing(String),
    #[error("cannot serialize the ONNX model: {0}")]
    Serialize(String),
}

/// The ONNX bytes of `snapshot`'s model, and the opset they use.
pub fn to_onnx(snapshot: &Snapshot) -> Result<(Vec<u8>, i64), OnnxError> {
    let spec = &snapshot.model;
    let activation =
        Activation::parse(&spec.activation).ok_or_else(|| OnnxError::Activation(spec.activation.clone()))?;
    let opset = if activation == Activation::Gelu { 20 } else { 17 };
    let mut g = OnnxGraph::new("chainrule_mlp", &snapshot.tensors, opset);
    let batch = || dimension::Value::DimParam("batch".into());
    g.g.input.push(value_info(
        "input",
        vec![batch(), dimension::Value::DimValue(spec.inputs() as i64)],
    ));

    // The saved normalization: (x · scale − mean) / std.
    let norm = &snapshot.normalization;
    g.constant("scale", &[], &[norm.scale]);
    let mut h = g.node("Mul", &["input", "scale"], "scaled", vec![]);
    if let (Some(mean), Some(std)) = (&norm.mean, &norm.std) {
        let n = [mean.len() as i64];
        g.constant("mean", &n, mean);
        g.constant("std", &n, std);
        g.node("Sub", &["scaled", "mean"], "centred", vec![]);
        h = g.node("Div", &["centred", "std"], "standardized", vec![]);
    }

    // A classifier's last product makes logits, a regression's the targets.
    let last = if spec.loss.is_regression() { "values" } else { "logits" };
    match &spec.blocks {
        None => {
            let layers = spec.widths.len() - 1;
            for i in 0..layers {
                let out = if i + 1 == layers {
                    last.to_string()
                } else {
                    format!("linear.{i}")
                };
                h = g.linear(&format!("layers.{i}"), &h, &out)?;
                if i + 1 < layers {
                    h = g.activation(activation, &h, &format!("activation.{i}"))?;
                }
            }
        }
        Some(blocks) => {
            h = g.linear("input", &h, "input.out")?;
            for i in 0..spec.depth() {
                h = g.block(i, blocks, activation, &h)?;
            }
            if let Some(norm) = blocks.norm.op() {
                h = g.norm("norm", norm, &h)?;
            }
            g.linear("output", &h, last)?;
        }
    }
    let outputs: &[&str] = match spec.loss.is_regression() {
        true => &["values"],
        false => {
            g.node("Softmax", &["logits"], "probabilities", vec![int_attr("axis", 1)]);
            &["logits", "probabilities"]
        }
    };
    for &name in outputs {
        g.g.output.push(value_info(
            name,
            vec![batch(), dimension::Value::DimValue(spec.classes() as i64)],
        ));
    }

    let model = ModelProto {
        ir_version: if opset >= 20 { 9 } else { 8 },
        producer_name: "chainrule".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} (dropout left out at inference); input: raw features, normalized inside",
            spec.describe()
        ),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
            ..Default::default()
        }],
        graph: protobuf::MessageField::some(g.g),
        ..Default::default()
    };
    let bytes = model
        .write_to_bytes()
        .map_err(|e| OnnxError::Serialize(e.to_string()))?;
    Ok((bytes, opset))
}
