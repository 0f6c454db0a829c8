//! A multilayer perceptron from a spec like `784-512-256-10`: Linear layers with an
//! activation (and optional dropout) between them, logits out.

use super::linear::{Init, Linear};
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
    #[error("--activation '{0}': expected one of relu, leaky_relu, gelu, tanh, sigmoid")]
    Activation(String),
    #[error("--dropout {0}: must be in [0, 1)")]
    Dropout(f64),
}

/// What the model is, as saved in a checkpoint's metadata.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct MlpSpec {
    /// Input features, hidden widths, classes.
    pub widths: Vec<usize>,
    pub activation: String,
    pub dropout: f64,
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
        })
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

    /// Hidden layers: widths between the input and the classes.
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
    pub fn parameter_count(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }
}

#[derive(Clone, Debug)]
pub struct Mlp {
    pub spec: MlpSpec,
    pub layers: Vec<Linear>,
    activation: Activation,
}

impl Mlp {
    pub fn new(spec: MlpSpec) -> Result<Self, SpecError> {
        let activation =
            Activation::parse(&spec.activation).ok_or_else(|| SpecError::Activation(spec.activation.clone()))?;
        let init = match activation {
            Activation::Tanh | Activation::Sigmoid => Init::XavierUniform,
            _ => Init::KaimingNormal,
        };
        let layers = spec
            .widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear {
                name: format!("layers.{i}"),
                in_features: w[0],
                out_features: w[1],
                init,
            })
            .collect();
        Ok(Mlp {
            spec,
            layers,
            activation,
        })
    }

    /// Logits for input `x` `[batch, inputs]`. Dropout follows each hidden activation.
    pub fn forward<'t>(&self, tracer: &'t Tracer, x: &Var<'t>) -> Result<Var<'t>, GraphError> {
        let mut h = *x;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(tracer, &h)?;
            if i < last {
                h = h.activation(self.activation)?;
                if self.spec.dropout > 0.0 {
                    h = h.dropout(self.spec.dropout)?;
                }
            }
        }
        Ok(h)
    }

    /// Parameter names in a fixed order: weight then bias of each layer.
    pub fn parameter_names(&self) -> Vec<String> {
        self.layers
            .iter()
            .flat_map(|l| [l.weight_name(), l.bias_name()])
            .collect()
    }

    /// Seeded initial values, in [`Self::parameter_names`] order.
    pub fn initial_parameters(&self, seed: u64) -> Vec<(String, ArrayD<f64>)> {
        let mut rng = KeyedRng::new(seed, stream::INIT);
        self.layers
            .iter()
            .flat_map(|l| {
                let (w, b) = l.initial_values(&mut rng);
                [(l.weight_name(), w), (l.bias_name(), b)]
            })
            .collect()
    }
}
