//! The pre-norm residual MLP block, `x + W2(act(W1 n))` with `n = norm(x)`, and its gated
//! form, `x + W2(act(W1 n) ⊙ W3 n)` (SwiGLU with silu, GEGLU with gelu). W1 and W3 widen
//! the residual stream by the expansion factor, W2 narrows it back. Dropout, where the
//! model has it, follows the activation (the gate's product in the gated form) and the
//! branch's output before the sum, as timm's `Mlp` and most transformer MLPs place it.

use super::linear::{Init, Linear};
use super::norm_layer::NormLayer;
use super::param_layer::ParamLayer;
use crate::graph::GraphError;
use crate::ops::{Activation, Norm};
use crate::trace::{Tracer, Var};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    Residual,
    Gated,
}

impl BlockKind {
    pub fn name(self) -> &'static str {
        match self {
            BlockKind::Residual => "residual",
            BlockKind::Gated => "gated",
        }
    }
}

/// The norm at the head of each block (and before the output projection).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormChoice {
    Layer,
    Rms,
    Batch,
    None,
}

impl NormChoice {
    pub fn parse(name: &str) -> Option<NormChoice> {
        match name {
            "layer" | "layernorm" => Some(NormChoice::Layer),
            "rms" | "rmsnorm" => Some(NormChoice::Rms),
            "batch" | "batchnorm" => Some(NormChoice::Batch),
            "none" => Some(NormChoice::None),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            NormChoice::Layer => "layer",
            NormChoice::Rms => "rms",
            NormChoice::Batch => "batch",
            NormChoice::None => "none",
        }
    }
    pub fn op(self) -> Option<Norm> {
        match self {
            NormChoice::Layer => Some(Norm::Layer),
            NormChoice::Rms => Some(Norm::Rms),
            NormChoice::Batch => Some(Norm::Batch),
            NormChoice::None => None,
        }
    }
    /// How the norm reads in a header: `LayerNorm`, `RMSNorm`, `BatchNorm`, `no norm`.
    pub fn words(self) -> &'static str {
        match self {
            NormChoice::Layer => "LayerNorm",
            NormChoice::Rms => "RMSNorm",
            NormChoice::Batch => "BatchNorm",
            NormChoice::None => "no norm",
        }
    }
}

/// What each block of a block net is, as saved in a checkpoint's metadata.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BlockSpec {
    pub kind: BlockKind,
    pub norm: NormChoice,
    /// The hidden width of a block over the residual stream's width.
    pub expansion: usize,
}

impl BlockSpec {
    /// The flags that make this block: `--block residual --norm layer --expansion 4`.
    pub fn flags(block: Option<&BlockSpec>) -> String {
        match block {
            None => "--block plain".into(),
            Some(b) => format!(
                "--block {} --norm {} --expansion {}",
                b.kind.name(),
                b.norm.name(),
                b.expansion
            ),
        }
    }

    /// The block's name in a header: `residual gelu`, `SwiGLU`, `GEGLU`, `gated tanh`.
    pub fn words(&self, activation: &str) -> String {
        match (self.kind, activation) {
            (BlockKind::Residual, a) => format!("residual {a}"),
            (BlockKind::Gated, "silu") => "SwiGLU".into(),
            (BlockKind::Gated, "gelu") => "GEGLU".into(),
            (BlockKind::Gated, "relu") => "ReGLU".into(),
            (BlockKind::Gated, a) => format!("gated {a}"),
        }
    }
}

/// One block, named `blocks.{i}` with the modules `norm`, `fc1`, `fc2` (and `fc3`, the
/// gate's second product), as the PyTorch module in the README names them.
#[derive(Clone, Debug)]
pub struct Block {
    pub norm: Option<NormLayer>,
    pub fc1: Linear,
    pub fc3: Option<Linear>,
    pub fc2: Linear,
    pub activation: Activation,
    pub dropout: f64,
}

impl Block {
    pub fn new(i: usize, spec: &BlockSpec, width: usize, (activation, init): (Activation, Init), dropout: f64) -> Self {
        let name = format!("blocks.{i}");
        let hidden = width * spec.expansion;
        let linear = |module: &str, in_features, out_features| Linear {
            name: format!("{name}.{module}"),
            in_features,
            out_features,
            init,
        };
        Block {
            norm: spec.norm.op().map(|norm| NormLayer {
                name: format!("{name}.norm"),
                norm,
                features: width,
            }),
            fc1: linear("fc1", width, hidden),
            fc3: (spec.kind == BlockKind::Gated).then(|| linear("fc3", width, hidden)),
            fc2: linear("fc2", hidden, width),
            activation,
            dropout,
        }
    }

    /// Its layers that own parameters, in forward order: norm, fc1, fc3, fc2.
    pub fn param_layers(&self) -> impl Iterator<Item = ParamLayer<'_>> {
        let norm = self.norm.iter().map(ParamLayer::Norm);
        let linears = [Some(&self.fc1), self.fc3.as_ref(), Some(&self.fc2)];
        norm.chain(linears.into_iter().flatten().map(ParamLayer::Linear))
    }

    pub fn forward<'t>(&self, tracer: &'t Tracer, x: &Var<'t>) -> Result<Var<'t>, GraphError> {
        let n = match &self.norm {
            Some(norm) => norm.forward(tracer, x)?,
            None => *x,
        };
        let mut hidden = self.fc1.forward(tracer, &n)?.activation(self.activation)?;
        if let Some(fc3) = &self.fc3 {
            hidden = hidden.mul(&fc3.forward(tracer, &n)?)?;
        }
        if self.dropout > 0.0 {
            hidden = hidden.dropout(self.dropout)?;
        }
        let mut branch = self.fc2.forward(tracer, &hidden)?;
        if self.dropout > 0.0 {
            branch = branch.dropout(self.dropout)?;
        }
        x.add(&branch)
    }
}
