//! Writing an ONNX graph one layer at a time, as [`crate::nn::Mlp`] traces it: Linear as
//! `Gemm` (weights `[out, in]`, `transB = 1`, as `torch.nn.Linear` stores them), each
//! activation, LayerNorm as `LayerNormalization`, RMSNorm composed of `ReduceMean`, `Sqrt`
//! and `Div` (ONNX has no RMSNorm before opset 23), BatchNorm as `BatchNormalization` with
//! its running statistics (inference), and the residual blocks of
//! [`crate::nn::block`].

use super::onnx::OnnxError;
use crate::nn::{BlockKind, BlockSpec};
use crate::ops::{Activation, Norm};
use ndarray::ArrayD;
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use protobuf::Enum;
use std::collections::BTreeMap;

/// A graph being written: its nodes and initializers, the saved tensors it takes weights
/// from, and the opset (which decides how `ReduceMean` takes its axes).
pub struct OnnxGraph<'a> {
    pub g: GraphProto,
    tensors: &'a BTreeMap<String, ArrayD<f32>>,
    opset: i64,
}

impl<'a> OnnxGraph<'a> {
    pub fn new(name: &str, tensors: &'a BTreeMap<String, ArrayD<f32>>, opset: i64) -> Self {
        let g = GraphProto {
            name: name.into(),
            ..Default::default()
        };
        OnnxGraph { g, tensors, opset }
    }

    pub fn node(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> String {
        self.g.node.push(node(op, inputs, output, attribute));
        output.to_string()
    }

    /// A constant of the graph's own (not a saved tensor).
    pub fn constant(&mut self, name: &str, dims: &[i64], values: &[f32]) {
        self.g.initializer.push(tensor(name, dims, values));
    }

    /// The saved tensor `name` as an initializer.
    fn saved(&mut self, name: &str) -> Result<(), OnnxError> {
        let t = self.tensors.get(name).ok_or_else(|| OnnxError::Missing(name.into()))?;
        let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        self.g
            .initializer
            .push(tensor(name, &dims, &t.iter().copied().collect::<Vec<_>>()));
        Ok(())
    }

    /// `module` (weight `[out, in]`, bias `[out]`) applied to `input`, into `output`.
    pub fn linear(&mut self, module: &str, input: &str, output: &str) -> Result<String, OnnxError> {
        let (w, b) = (format!("{module}.weight"), format!("{module}.bias"));
        self.saved(&w)?;
        self.saved(&b)?;
        Ok(self.node("Gemm", &[input, &w, &b], output, vec![int_attr("transB", 1)]))
    }

    pub fn activation(&mut self, a: Activation, input: &str, output: &str) -> Result<String, OnnxError> {
        let one = |g: &mut Self, op: &str, attrs| g.node(op, &[input], output, attrs);
        Ok(match a {
            Activation::Relu => one(self, "Relu", vec![]),
            Activation::LeakyRelu(slope) => one(self, "LeakyRelu", vec![float_attr("alpha", slope as f32)]),
            Activation::Gelu => one(self, "Gelu", vec![string_attr("approximate", "tanh")]),
            Activation::Tanh => one(self, "Tanh", vec![]),
            Activation::Sigmoid => one(self, "Sigmoid", vec![]),
            Activation::Silu => {
                let sigmoid = self.node("Sigmoid", &[input], &format!("{output}.sigmoid"), vec![]);
                self.node("Mul", &[input, &sigmoid], output, vec![])
            }
            other => return Err(OnnxError::Activation(other.name().into())),
        })
    }

    /// The norm `module` (with its affine parameters) of `input`: over its last axis, or for
    /// BatchNorm by the running statistics.
    pub fn norm(&mut self, module: &str, norm: Norm, input: &str) -> Result<String, OnnxError> {
        let (w, out) = (format!("{module}.weight"), format!("{module}.out"));
        self.saved(&w)?;
        let eps = float_attr("epsilon", norm.default_eps() as f32);
        match norm {
            Norm::Layer => {
                let b = format!("{module}.bias");
                self.saved(&b)?;
                let attrs = vec![int_attr("axis", -1), eps];
                Ok(self.node("LayerNormalization", &[input, &w, &b], &out, attrs))
            }
            Norm::Batch => {
                let names = ["bias", "running_mean", "running_var"].map(|t| format!("{module}.{t}"));
                for name in &names {
                    self.saved(name)?;
                }
                let [b, mean, var] = &names;
                let attrs = vec![eps];
                Ok(self.node("BatchNormalization", &[input, &w, b, mean, var], &out, attrs))
            }
            Norm::Rms => {
                let square = self.node("Mul", &[input, input], &format!("{module}.square"), vec![]);
                let mean = self.mean_last_axis(&square, &format!("{module}.mean_square"));
                let eps_name = format!("{module}.eps");
                self.constant(&eps_name, &[], &[norm.default_eps() as f32]);
                let shifted = self.node("Add", &[&mean, &eps_name], &format!("{module}.shifted"), vec![]);
                let rms = self.node("Sqrt", &[&shifted], &format!("{module}.rms"), vec![]);
                let normalized = self.node("Div", &[input, &rms], &format!("{module}.normalized"), vec![]);
                Ok(self.node("Mul", &[&normalized, &w], &out, vec![]))
            }
        }
    }

    /// The mean over the last axis, kept as a unit axis (axes an attribute before opset 18,
    /// an input from it).
    fn mean_last_axis(&mut self, input: &str, output: &str) -> String {
        let keep = int_attr("keepdims", 1);
        if self.opset >= 18 {
            let axes = "last_axis".to_string();
            if !self.g.initializer.iter().any(|t| t.name == axes) {
                self.g.initializer.push(TensorProto {
                    name: axes.clone(),
                    dims: vec![1],
                    data_type: DataType::INT64.value(),
                    int64_data: vec![-1],
                    ..Default::default()
                });
            }
            self.node("ReduceMean", &[input, &axes], output, vec![keep])
        } else {
            self.node("ReduceMean", &[input], output, vec![ints_attr("axes", &[-1]), keep])
        }
    }

    /// Block `i` (`blocks.{i}`) on the residual stream `input`: `input + fc2(hidden)`.
    pub fn block(&mut self, i: usize, spec: &BlockSpec, a: Activation, input: &str) -> Result<String, OnnxError> {
        let m = format!("blocks.{i}");
        let n = match spec.norm.op() {
            Some(norm) => self.norm(&format!("{m}.norm"), norm, input)?,
            None => input.to_string(),
        };
        let up = self.linear(&format!("{m}.fc1"), &n, &format!("{m}.fc1.out"))?;
        let mut hidden = self.activation(a, &up, &format!("{m}.act"))?;
        if spec.kind == BlockKind::Gated {
            let gate = self.linear(&format!("{m}.fc3"), &n, &format!("{m}.fc3.out"))?;
            hidden = self.node("Mul", &[&hidden, &gate], &format!("{m}.gated"), vec![]);
        }
        let down = self.linear(&format!("{m}.fc2"), &hidden, &format!("{m}.fc2.out"))?;
        Ok(self.node("Add", &[input, &down], &format!("{m}.out"), vec![]))
    }
}

pub fn value_info(name: &str, dims: Vec<dimension::Value>) -> ValueInfoProto {
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

pub fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i,
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: ints.to_vec(),
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
