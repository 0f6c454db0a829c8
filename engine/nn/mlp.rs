//! A multilayer perceptron from a spec like `784-512-256-10`: Linear layers with an
//! activation (and optional dropout) between them, logits out. With blocks
//! ([`BlockSpec`]), the hidden widths are the residual stream's, one block each, between an
//! input projection (`input`) and, after a last norm (`norm`), an output projection
//! (`output`).

use super::block::{Block, BlockSpec};
use super::linear::{Init, Linear};
use super::norm_layer::NormLayer;
use crate::graph::GraphError;
use crate::memory::{Bytes, MAX_TENSOR_BYTES};
use crate::ops::Activation;
use crate::rng::{stream, KeyedRng};
use crate::trace::{Tracer, Var};
use ndarray::ArrayD;
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
        match self.blocks {
            None => format!(
                "MLP {} ({} hidden) {} dropout {}",
                self.layers_summary(),
                self.depth(),
                self.activation,
                self.dropout
            ),
            Some(b) => format!(
                "MLP {} → {} {} blocks (width {}, expansion {}, {}) → {} dropout {}",
                self.inputs(),
                self.depth(),
                b.words(&self.activation),
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
        match Mlp::new(self.clone()) {
            Ok(mlp) => mlp
                .parameters()
                .iter()
                .map(|(_, shape)| shape.iter().product::<usize>())
                .sum(),
            Err(_) => 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Mlp {
    pub spec: MlpSpec,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    /// `layers.{i}`, with the activation (and dropout) between them.
    Chain {
        layers: Vec<Linear>,
        activation: Activation,
    },
    Blocks {
        input: Linear,
        blocks: Vec<Block>,
        norm: Option<NormLayer>,
        output: Linear,
    },
}

impl Mlp {
    pub fn new(spec: MlpSpec) -> Result<Self, SpecError> {
        let activation =
            Activation::parse(&spec.activation).ok_or_else(|| SpecError::Activation(spec.activation.clone()))?;
        let init = match activation {
            Activation::Tanh | Activation::Sigmoid => Init::XavierUniform,
            _ => Init::KaimingNormal,
        };
        let linear = |name: String, w: &[usize]| Linear {
            name,
            in_features: w[0],
            out_features: w[1],
            init,
        };
        let w = &spec.widths;
        let body = match &spec.blocks {
            None => Body::Chain {
                layers: w
                    .windows(2)
                    .enumerate()
                    .map(|(i, w)| linear(format!("layers.{i}"), w))
                    .collect(),
                activation,
            },
            Some(b) => {
                let width = w[1];
                let blocks = (0..spec.depth())
                    .map(|i| Block::new(i, b, width, (activation, init), spec.dropout))
                    .collect();
                Body::Blocks {
                    input: linear("input".into(), &w[..2]),
                    blocks,
                    norm: b.norm.op().map(|norm| NormLayer {
                        name: "norm".into(),
                        norm,
                        features: width,
                    }),
                    output: linear("output".into(), &w[w.len() - 2..]),
                }
            }
        };
        Ok(Mlp { spec, body })
    }

    /// Logits for input `x` `[batch, inputs]`. In a chain, dropout follows each hidden
    /// activation; blocks place their own ([`Block`]).
    pub fn forward<'t>(&self, tracer: &'t Tracer, x: &Var<'t>) -> Result<Var<'t>, GraphError> {
        match &self.body {
            Body::Chain { layers, activation } => {
                let mut h = *x;
                let last = layers.len() - 1;
                for (i, layer) in layers.iter().enumerate() {
                    h = layer.forward(tracer, &h)?;
                    if i < last {
                        h = h.activation(*activation)?;
                        if self.spec.dropout > 0.0 {
                            h = h.dropout(self.spec.dropout)?;
                        }
                    }
                }
                Ok(h)
            }
            Body::Blocks {
                input,
                blocks,
                norm,
                output,
            } => {
                let mut h = input.forward(tracer, x)?;
                for block in blocks {
                    h = block.forward(tracer, &h)?;
                }
                if let Some(norm) = norm {
                    h = norm.forward(tracer, &h)?;
                }
                output.forward(tracer, &h)
            }
        }
    }

    /// Parameter names and shapes in a fixed order, forward order (weight then bias of each
    /// Linear), the names PyTorch gives the same module's `state_dict`.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        match &self.body {
            Body::Chain { layers, .. } => layers.iter().flat_map(Linear::parameters).collect(),
            Body::Blocks {
                input,
                blocks,
                norm,
                output,
            } => {
                let mut all: Vec<_> = input.parameters().into();
                all.extend(blocks.iter().flat_map(Block::parameters));
                all.extend(norm.iter().flat_map(NormLayer::parameters));
                all.extend(output.parameters());
                all
            }
        }
    }

    pub fn parameter_names(&self) -> Vec<String> {
        self.parameters().into_iter().map(|(name, _)| name).collect()
    }

    /// Seeded initial values, in [`Self::parameter_names`] order.
    pub fn initial_parameters(&self, seed: u64) -> Vec<(String, ArrayD<f64>)> {
        let mut rng = KeyedRng::new(seed, stream::INIT);
        let linear = |l: &Linear, rng: &mut KeyedRng| {
            let (w, b) = l.initial_values(rng);
            [(l.weight_name(), w), (l.bias_name(), b)]
        };
        match &self.body {
            Body::Chain { layers, .. } => layers.iter().flat_map(|l| linear(l, &mut rng)).collect(),
            Body::Blocks {
                input,
                blocks,
                norm,
                output,
            } => {
                let mut all: Vec<_> = linear(input, &mut rng).into();
                for block in blocks {
                    all.extend(block.initial_values(&mut rng));
                }
                all.extend(norm.iter().flat_map(NormLayer::initial_values));
                all.extend(linear(output, &mut rng));
                all
            }
        }
    }
}
