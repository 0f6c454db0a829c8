//! A fully connected layer `y = x·Wᵀ + b`, weights stored `[out, in]` as in PyTorch.

use crate::graph::GraphError;
use crate::rng::KeyedRng;
use crate::trace::{Tracer, Var};
use ndarray::ArrayD;

/// Weight initialisation, chosen by the activation that follows the layer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Init {
    /// He/Kaiming normal, std = √(2 / fan_in): keeps ReLU-family activations' variance.
    KaimingNormal,
    /// Glorot/Xavier uniform, U(±√(6 / (fan_in + fan_out))): for tanh and sigmoid.
    XavierUniform,
}

#[derive(Clone, Debug)]
pub struct Linear {
    pub name: String,
    pub in_features: usize,
    pub out_features: usize,
    pub init: Init,
}

impl Linear {
    pub fn weight_name(&self) -> String {
        format!("{}.weight", self.name)
    }
    pub fn bias_name(&self) -> String {
        format!("{}.bias", self.name)
    }

    /// Names and shapes of its parameters: weight `[out, in]`, bias `[out]`.
    pub fn parameters(&self) -> [(String, Vec<usize>); 2] {
        [
            (self.weight_name(), vec![self.out_features, self.in_features]),
            (self.bias_name(), vec![self.out_features]),
        ]
    }

    pub fn forward<'t>(&self, tracer: &'t Tracer, x: &Var<'t>) -> Result<Var<'t>, GraphError> {
        let w = tracer.parameter(&self.weight_name(), [self.out_features, self.in_features]);
        let b = tracer.parameter(&self.bias_name(), [self.out_features]);
        x.matmul_t(&w, false, true)?.add(&b)
    }

    /// Initial weight `[out, in]` and zero bias `[out]`.
    pub fn initial_values(&self, rng: &mut KeyedRng) -> (ArrayD<f64>, ArrayD<f64>) {
        let (fan_in, fan_out) = (self.in_features as f64, self.out_features as f64);
        let shape = vec![self.out_features, self.in_features];
        let w = match self.init {
            Init::KaimingNormal => {
                let std = (2.0 / fan_in).sqrt();
                ArrayD::from_shape_simple_fn(shape, || rng.normal() * std)
            }
            Init::XavierUniform => {
                let a = (6.0 / (fan_in + fan_out)).sqrt();
                ArrayD::from_shape_simple_fn(shape, || (2.0 * rng.uniform() - 1.0) * a)
            }
        };
        (w, ArrayD::zeros(vec![self.out_features]))
    }
}
