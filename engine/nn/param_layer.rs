//! A layer that owns parameters, as a model lists its layers in forward order: the
//! parameters' names and shapes and their seeded initial values both come from one such
//! list, so they cannot fall out of order.

use super::linear::Linear;
use super::norm_layer::NormLayer;
use crate::rng::KeyedRng;
use ndarray::ArrayD;

pub enum ParamLayer<'a> {
    Linear(&'a Linear),
    Norm(&'a NormLayer),
}

impl ParamLayer<'_> {
    /// Names and shapes of its parameters.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        match self {
            ParamLayer::Linear(l) => l.parameters().into(),
            ParamLayer::Norm(n) => n.parameters(),
        }
    }

    /// Its initial values, in [`Self::parameters`] order; a Linear draws from `rng`.
    pub fn initial_values(&self, rng: &mut KeyedRng) -> Vec<(String, ArrayD<f64>)> {
        match self {
            ParamLayer::Linear(l) => {
                let (w, b) = l.initial_values(rng);
                vec![(l.weight_name(), w), (l.bias_name(), b)]
            }
            ParamLayer::Norm(n) => n.initial_values(),
        }
    }

    /// Its buffers' names and initial values (a BatchNorm's running statistics).
    pub fn buffers(&self) -> Vec<(String, ArrayD<f64>)> {
        match self {
            ParamLayer::Linear(_) => Vec::new(),
            ParamLayer::Norm(n) => n.buffers(),
        }
    }

    /// Its count of training batches, saved with the model (a BatchNorm's).
    pub fn batch_counter(&self) -> Option<String> {
        match self {
            ParamLayer::Linear(_) => None,
            ParamLayer::Norm(n) => n.batch_counter(),
        }
    }
}
