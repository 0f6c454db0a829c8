//! A multilayer perceptron traced from its [`MlpSpec`]: Linear layers with an activation
//! (and optional dropout) between them, logits out; or, with blocks (`BlockSpec`), the
//! hidden widths are the residual stream's, one block each, between an input projection
//! (`input`) and, after a last norm (`norm`), an output projection (`output`).

use super::block::Block;
use super::linear::{Init, Linear};
use super::mlp_spec::{MlpSpec, SpecError};
use super::norm_layer::NormLayer;
use super::param_layer::ParamLayer;
use crate::graph::GraphError;
use crate::ops::Activation;
use crate::rng::{stream, KeyedRng};
use crate::trace::{Tracer, Var};
use ndarray::ArrayD;

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

    /// Its layers that own parameters, in forward order.
    fn param_layers(&self) -> Vec<ParamLayer<'_>> {
        match &self.body {
            Body::Chain { layers, .. } => layers.iter().map(ParamLayer::Linear).collect(),
            Body::Blocks {
                input,
                blocks,
                norm,
                output,
            } => {
                let mut all = vec![ParamLayer::Linear(input)];
                all.extend(blocks.iter().flat_map(Block::param_layers));
                all.extend(norm.iter().map(ParamLayer::Norm));
                all.push(ParamLayer::Linear(output));
                all
            }
        }
    }

    /// Parameter names and shapes in forward order (weight then bias of each Linear), the
    /// names PyTorch gives the same module's `state_dict`.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        self.param_layers().iter().flat_map(ParamLayer::parameters).collect()
    }

    pub fn parameter_names(&self) -> Vec<String> {
        self.parameters().into_iter().map(|(name, _)| name).collect()
    }

    /// Buffers (state that is not trained: BatchNorm's running statistics), names and
    /// initial values in forward order, as PyTorch's `state_dict` names them.
    pub fn initial_buffers(&self) -> Vec<(String, ArrayD<f64>)> {
        self.param_layers().iter().flat_map(ParamLayer::buffers).collect()
    }

    /// Buffer names and shapes.
    pub fn buffers(&self) -> Vec<(String, Vec<usize>)> {
        let shapes = self.initial_buffers().into_iter();
        shapes.map(|(name, value)| (name, value.shape().to_vec())).collect()
    }

    pub fn buffer_names(&self) -> Vec<String> {
        self.buffers().into_iter().map(|(name, _)| name).collect()
    }

    /// The fewest rows a training step can run: 2 with BatchNorm (one row has no variance
    /// to normalize by), else 1.
    pub fn smallest_training_batch(&self) -> usize {
        match self.buffers().is_empty() {
            true => 1,
            false => 2,
        }
    }

    /// BatchNorm's `num_batches_tracked` names: scalars a saved model sets to its step count.
    pub fn batch_counters(&self) -> Vec<String> {
        self.param_layers()
            .iter()
            .filter_map(ParamLayer::batch_counter)
            .collect()
    }

    /// Every tensor a saved model holds: the parameters, the buffers, the batch counters.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut all = self.parameters();
        all.extend(self.buffers());
        all.extend(self.batch_counters().into_iter().map(|name| (name, Vec::new())));
        all
    }

    /// Seeded initial values, in [`Self::parameter_names`] order.
    pub fn initial_parameters(&self, seed: u64) -> Vec<(String, ArrayD<f64>)> {
        let mut rng = KeyedRng::new(seed, stream::INIT);
        self.param_layers()
            .iter()
            .flat_map(|layer| layer.initial_values(&mut rng))
            .collect()
    }
}
