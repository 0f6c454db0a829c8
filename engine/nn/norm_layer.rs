//! LayerNorm and RMSNorm as PyTorch's modules define them: the row normalization
//! ([`crate::ops::Norm`]) then an elementwise affine map, `weight` (ones at init) and, for
//! LayerNorm, `bias` (zeros), each `[features]`, with PyTorch's default `eps`.

use crate::graph::GraphError;
use crate::ops::Norm;
use crate::trace::{Tracer, Var};
use ndarray::ArrayD;

#[derive(Clone, Debug)]
pub struct NormLayer {
    /// The module's name, e.g. `blocks.3.norm`.
    pub name: String,
    pub norm: Norm,
    pub features: usize,
}

impl NormLayer {
    pub fn weight_name(&self) -> String {
        format!("{}.weight", self.name)
    }
    pub fn bias_name(&self) -> Option<String> {
        (self.norm == Norm::Layer).then(|| format!("{}.bias", self.name))
    }

    /// Names and shapes of its parameters: weight, then bias for LayerNorm.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        std::iter::once(self.weight_name())
            .chain(self.bias_name())
            .map(|n| (n, vec![self.features]))
            .collect()
    }

    pub fn forward<'t>(&self, tracer: &'t Tracer, x: &Var<'t>) -> Result<Var<'t>, GraphError> {
        let eps = self.norm.default_eps();
        let normalized = match self.norm {
            Norm::Layer => x.layer_norm(eps)?,
            Norm::Rms => x.rms_norm(eps)?,
        };
        let weight = tracer.parameter(&self.weight_name(), [self.features]);
        let scaled = normalized.mul(&weight)?;
        match self.bias_name() {
            Some(b) => scaled.add(&tracer.parameter(&b, [self.features])),
            None => Ok(scaled),
        }
    }

    /// PyTorch's initial values: weight ones, bias zeros.
    pub fn initial_values(&self) -> Vec<(String, ArrayD<f64>)> {
        self.parameters()
            .into_iter()
            .map(|(name, shape)| {
                let fill = if name == self.weight_name() { 1.0 } else { 0.0 };
                (name, ArrayD::from_elem(shape, fill))
            })
            .collect()
    }
}
