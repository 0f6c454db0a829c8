//! A snapshot's MLP as a standard ONNX model (protobuf messages from the onnx-protobuf
//! crate, serialized by rust-protobuf): input `input` `[batch, features]` of raw values,
//! the saved normalization (`Mul` by the scale, then `Sub` the mean and `Div` by the
//! standard deviation when standardized), one `Gemm` (weights `[out, in]`, `transB = 1`,
//! as `torch.nn.Linear` stores them) and activation a layer, outputs `logits` and
//! `probabilities` (`Softmax` over classes). Dropout is the identity at inference and is
//! left out. Opset 17 (IR 8), or opset 20 (IR 9) for GELU, which ONNX has only from opset
//! 20: `Gelu` with `approximate = "tanh"`, the form chainrule computes.

use super::Snapshot;
use crate::ops::Activation;
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::Enum;

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
    let mut g = GraphProto {
        name: "chainrule_mlp".into(),
        ..Default::default()
    };
    let batch = || dimension::Value::DimParam("batch".into());
    g.input.push(value_info(
        "input",
        vec![batch(), dimension::Value::DimValue(spec.inputs() as i64)],
    ));

    // The saved normalization: (x · scale − mean) / std.
    let norm = &snapshot.normalization;
    g.initializer.push(tensor("scale", &[], &[norm.scale]));
    g.node.push(node("Mul", &["input", "scale"], "scaled", vec![]));
    let mut h = "scaled".to_string();
    if let (Some(mean), Some(std)) = (&norm.mean, &norm.std) {
        let n = [mean.len() as i64];
        g.initializer.push(tensor("mean", &n, mean));
        g.initializer.push(tensor("std", &n, std));
        g.node.push(node("Sub", &["scaled", "mean"], "centred", vec![]));
        g.node.push(node("Div", &["centred", "std"], "standardized", vec![]));
        h = "standardized".into();
    }

    let layers = spec.widths.len() - 1;
    for i in 0..layers {
        let (w, b) = (format!("layers.{i}.weight"), format!("layers.{i}.bias"));
        for name in [&w, &b] {
            let t = snapshot
                .tensors
                .get(name)
                .ok_or_else(|| OnnxError::Missing(name.clone()))?;
            let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
            g.initializer
                .push(tensor(name, &dims, &t.iter().copied().collect::<Vec<_>>()));
        }
        let out = if i + 1 == layers {
            "logits".to_string()
        } else {
            format!("linear.{i}")
        };
        g.node
            .push(node("Gemm", &[&h, &w, &b], &out, vec![int_attr("transB", 1)]));
        h = out;
        if i + 1 < layers {
            let act = format!("activation.{i}");
            g.node.push(activation_node(activation, &h, &act)?);
            h = act;
        }
    }
    g.node
        .push(node("Softmax", &["logits"], "probabilities", vec![int_attr("axis", 1)]));
    for name in ["logits", "probabilities"] {
        g.output.push(value_info(
            name,
            vec![batch(), dimension::Value::DimValue(spec.classes() as i64)],
        ));
    }

    let model = ModelProto {
        ir_version: if opset >= 20 { 9 } else { 8 },
        producer_name: "chainrule".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "MLP {} {} (dropout {} left out at inference); input: raw features, normalized inside",
            spec.layers_string(),
            spec.activation,
            spec.dropout
        ),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
            ..Default::default()
        }],
        graph: protobuf::MessageField::some(g),
        ..Default::default()
    };
    let bytes = model
        .write_to_bytes()
        .map_err(|e| OnnxError::Serialize(e.to_string()))?;
    Ok((bytes, opset))
}

fn activation_node(a: Activation, input: &str, output: &str) -> Result<NodeProto, OnnxError> {
    Ok(match a {
        Activation::Relu => node("Relu", &[input], output, vec![]),
        Activation::LeakyRelu(slope) => node("LeakyRelu", &[input], output, vec![float_attr("alpha", slope as f32)]),
        Activation::Gelu => node("Gelu", &[input], output, vec![string_attr("approximate", "tanh")]),
        Activation::Tanh => node("Tanh", &[input], output, vec![]),
        Activation::Sigmoid => node("Sigmoid", &[input], output, vec![]),
        other => return Err(OnnxError::Activation(other.name().into())),
    })
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::FLOAT.value(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: Vec<dimension::Value>) -> ValueInfoProto {
    let shape = TensorShapeProto {
        dim: dims
            .into_iter()
            .map(|v| Dimension {
                value: Some(v),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: protobuf::MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::FLOAT.value(),
                shape: protobuf::MessageField::some(shape),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i,
        ..Default::default()
    }
}

fn float_attr(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::FLOAT.into(),
        f,
        ..Default::default()
    }
}

fn string_attr(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::STRING.into(),
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}
