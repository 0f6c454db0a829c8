//! What a model is, as the command line gives it and a saved file records it: widths,
//! activation, dropout and, for block nets, the block ([`BlockSpec`]), checked so that no
//! later size can wrap around.

use super::block::BlockSpec;
use super::loss_kind::LossKind;
use super::mlp::Mlp;
use crate::memory::{Bytes, MAX_TENSOR_BYTES};
use crate::ops::Activation;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("--layers '{spec}': {why}")]
    Layers { spec: String, why: String },
    #[error("--activation '{0}': expected one of relu, leaky_relu, gelu, silu, tanh, sigmoid")]
    Activation(String),
    #[error("--dropout {0}: must be in [0, 1)")]
    Dropout(f64),
    #[error("--block {kind}: {why}")]
    Blocks { kind: String, why: String },
}

/// What the model is, as saved in a checkpoint's metadata.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct MlpSpec {
    /// Input features, hidden widths, classes.
    pub widths: Vec<usize>,
    pub activation: String,
    pub dropout: f64,
    /// The block every hidden width stands for; none: the plain chain (and files saved
    /// before blocks, which have no such field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlockSpec>,
    /// Classification (the default, and every file saved before regression) or regression,
    /// whose last width is the number of targets.
    #[serde(default, skip_serializing_if = "LossKind::is_default")]
    pub loss: LossKind,
}

impl MlpSpec {
    pub fn new(layers: &str, activation: &str, dropout: f64) -> Result<Self, SpecError> {
        let bad = |why: &str| SpecError::Layers {
            spec: layers.to_string(),
            why: why.to_string(),
        };
        let widths = layers
            .split('-')
            .map(|w| w.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("expected widths joined by '-', like 784-512-256-10"))?;
        if widths.len() < 2 {
            return Err(bad("needs at least an input and an output width"));
        }
        if widths.contains(&0) {
            return Err(bad("widths must be positive"));
        }
        // Sizes are checked here, so no later count can wrap around.
        let mut total: u64 = 0;
        for w in widths.windows(2) {
            let layer = (w[0] as u64)
                .checked_mul(w[1] as u64)
                .and_then(|n| n.checked_add(w[1] as u64))
                .and_then(|n| n.checked_mul(4))
                .filter(|&b| b <= MAX_TENSOR_BYTES);
            total = match layer
                .and_then(|b| total.checked_add(b))
                .filter(|&t| t <= MAX_TENSOR_BYTES)
            {
                Some(t) => t,
                None => {
                    return Err(bad(&format!(
                        "the layer {}-{} alone or the model as a whole needs more than {} of weights",
                        w[0],
                        w[1],
                        Bytes(MAX_TENSOR_BYTES)
                    )))
                }
            };
        }
        if Activation::parse(activation).is_none() {
            return Err(SpecError::Activation(activation.to_string()));
        }
        if !(0.0..1.0).contains(&dropout) {
            return Err(SpecError::Dropout(dropout));
        }
        Ok(MlpSpec {
            widths,
            activation: activation.to_string(),
            dropout,
            blocks: None,
            loss: LossKind::CrossEntropy,
        })
    }

    /// This spec with each hidden width a block of `blocks` (none: the plain chain). A block
    /// net's hidden widths are one residual stream, so they must be equal.
    pub fn with_blocks(mut self, blocks: Option<BlockSpec>) -> Result<Self, SpecError> {
        let Some(b) = blocks else {
            self.blocks = None;
            return Ok(self);
        };
        let bad = |why: String| SpecError::Blocks {
            kind: b.kind.name().to_string(),
            why,
        };
        let hidden = &self.widths[1..self.widths.len() - 1];
        let Some(&width) = hidden.first() else {
            return Err(bad(format!(
                "--layers {} has no hidden width for the blocks (e.g. 784-256-256-10: two blocks of width 256)",
                self.layers_string()
            )));
        };
        if let Some(other) = hidden.iter().find(|&&w| w != width) {
            return Err(bad(format!(
                "the blocks share one residual stream, so every hidden width must be equal: --layers {} has {width} and {other}",
                self.layers_string()
            )));
        }
        if b.expansion == 0 {
            return Err(bad("--expansion must be at least 1".into()));
        }
        self.blocks = Some(b);
        let bytes = (width as u64)
            .checked_mul(b.expansion as u64)
            .and_then(|h| h.checked_mul(width as u64))
            .and_then(|p| p.checked_mul(4 * 3 * hidden.len() as u64))
            .filter(|&bytes| bytes <= MAX_TENSOR_BYTES);
        if bytes.is_none() {
            return Err(bad(format!(
                "{} blocks of width {width} at expansion {} need more than {} of weights",
                hidden.len(),
                b.expansion,
                Bytes(MAX_TENSOR_BYTES)
            )));
        }
        Ok(self)
    }

    /// The same checks [`Self::new`] and [`Self::with_blocks`] make, on a spec read from a file.
    pub fn validated(&self) -> Result<(), SpecError> {
        Self::new(&self.layers_string(), &self.activation, self.dropout)?.with_blocks(self.blocks)?;
        Ok(())
    }

    /// The same model at another depth (hidden layers, or blocks), every hidden width `width`.
    pub fn at_depth(&self, depth: usize, width: usize) -> Result<Self, SpecError> {
        let (features, classes) = (self.inputs(), self.classes());
        Self::with_depth(features, (depth, width), classes, &self.activation, self.dropout)?.with_blocks(self.blocks)
    }

    /// The widest tensor's last axis: a block's hidden width, or the widest layer.
    pub fn widest(&self) -> usize {
        let expansion = self.blocks.map_or(1, |b| b.expansion);
        let hidden = self.widths[1..self.widths.len() - 1].iter().map(|w| w * expansion);
        hidden.chain([self.inputs(), self.classes()]).max().unwrap_or(1)
    }

    /// [`Self::describe`] for a family of this model at several depths, `depths` in words
    /// (`at depths 8, 16`, `depth searched`).
    pub fn describe_depths(&self, depths: &str) -> String {
        let w = self.widths[1];
        match self.blocks {
            None => format!(
                "MLP {}-{w}-...-{w}-{} {depths} (hidden layers of width {w}) {} dropout {}",
                self.inputs(),
                self.classes(),
                self.activation,
                self.dropout
            ),
            Some(b) => format!(
                "MLP {} → {} blocks {depths} (width {w}, expansion {}, {}) → {} dropout {}",
                self.inputs(),
                b.words(&self.activation),
                b.expansion,
                b.norm.words(),
                self.classes(),
                self.dropout
            ),
        }
    }

    /// The model in a header's words: `MLP 784-512-256-10 (2 hidden) relu dropout 0.1`, or
    /// `MLP 784 → 16 residual gelu blocks (width 256, expansion 4, LayerNorm) → 10 dropout 0.1`.
    pub fn describe(&self) -> String {
        let described = self.describe_layers();
        match self.loss {
            LossKind::CrossEntropy => described,
            LossKind::Mse => {
                let k = self.classes();
                format!(
                    "{described} · regression (mse) of {k} target{}",
                    if k == 1 { "" } else { "s" }
                )
            }
        }
    }

    fn describe_layers(&self) -> String {
        match self.blocks {
            None => format!(
                "MLP {} ({} hidden) {} dropout {}",
                self.layers_summary(),
                self.depth(),
                self.activation,
                self.dropout
            ),
            Some(b) => format!(
                "MLP {} → {} {} block{} (width {}, expansion {}, {}) → {} dropout {}",
                self.inputs(),
                self.depth(),
                b.words(&self.activation),
                if self.depth() == 1 { "" } else { "s" },
                self.widths[1],
                b.expansion,
                b.norm.words(),
                self.classes(),
                self.dropout
            ),
        }
    }

    /// `depth` hidden layers of `width` between `features` inputs and `classes` outputs:
    /// FEATURES-W-...-W-CLASSES, so every tool counts depth the same way (hidden layers).
    pub fn with_depth(
        features: usize,
        (depth, width): (usize, usize),
        classes: usize,
        activation: &str,
        dropout: f64,
    ) -> Result<Self, SpecError> {
        let hidden = std::iter::repeat_n(width, depth);
        let widths: Vec<String> = std::iter::once(features)
            .chain(hidden)
            .chain(std::iter::once(classes))
            .map(|w| w.to_string())
            .collect();
        Self::new(&widths.join("-"), activation, dropout)
    }

    /// Hidden layers (blocks, in a block net): widths between the input and the classes.
    pub fn depth(&self) -> usize {
        self.widths.len() - 2
    }

    pub fn layers_string(&self) -> String {
        self.widths.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-")
    }
    /// [`Self::layers_string`], cut short for deep nets: `784-256-256-...-256-10`.
    pub fn layers_summary(&self) -> String {
        let w = &self.widths;
        match w.len() {
            0..=12 => self.layers_string(),
            n => format!("{}-{}-{}-...-{}-{}", w[0], w[1], w[2], w[n - 2], w[n - 1]),
        }
    }
    pub fn inputs(&self) -> usize {
        self.widths[0]
    }
    pub fn classes(&self) -> usize {
        *self.widths.last().expect("validated: at least two widths")
    }
    /// `(in, out)` of each Linear, in forward order: the step's matrix products.
    pub fn linears(&self) -> Vec<(usize, usize)> {
        let Ok(mlp) = Mlp::new(self.clone()) else {
            return Vec::new();
        };
        let weights = mlp.parameters().into_iter().filter(|(_, shape)| shape.len() == 2);
        weights.map(|(_, shape)| (shape[1], shape[0])).collect()
    }

    pub fn parameter_count(&self) -> usize {
        Mlp::new(self.clone()).map_or(0, |mlp| elements(&mlp.parameters()))
    }

    /// The fewest rows a training step can run ([`Mlp::smallest_training_batch`]).
    pub fn smallest_training_batch(&self) -> usize {
        Mlp::new(self.clone()).map_or(1, |mlp| mlp.smallest_training_batch())
    }

    /// Values in buffers (BatchNorm's running statistics), which a device holds beside the
    /// parameters.
    pub fn buffer_count(&self) -> usize {
        Mlp::new(self.clone()).map_or(0, |mlp| elements(&mlp.buffers()))
    }
}

fn elements(tensors: &[(String, Vec<usize>)]) -> usize {
    tensors.iter().map(|(_, shape)| shape.iter().product::<usize>()).sum()
}
