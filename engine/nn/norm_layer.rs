//! LayerNorm, RMSNorm and BatchNorm1d as PyTorch's modules define them: the normalization
//! ([`crate::ops::Norm`]) then an elementwise affine map, `weight` (ones at init) and, for
//! LayerNorm and BatchNorm, `bias` (zeros), each `[features]`, with PyTorch's default `eps`.
//!
//! BatchNorm also keeps buffers, as `nn.BatchNorm1d` does: `running_mean` (zeros at init)
//! and `running_var` (ones), and a saved model adds `num_batches_tracked` (the run's step
//! count). A training step normalizes by the batch's statistics and records the buffers'
//! next values with PyTorch's momentum, 0.1:
//! `running = (1 - 0.1)·running + 0.1·batch`, the batch's variance unbiased (times
//! `n/(n-1)`) there though biased in the normalization. The device keeps them after the
//! step (backend/step_protocol.rs), so a recomputation never updates them twice.
//! Evaluation normalizes by the running statistics.

use crate::graph::GraphError;
use crate::ops::Norm;
use crate::trace::{Tracer, Var};
use ndarray::ArrayD;

/// PyTorch's default `momentum` for the running statistics.
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;

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
        (self.norm != Norm::Rms).then(|| format!("{}.bias", self.name))
    }

    /// Names and shapes of its parameters: weight, then bias for LayerNorm and BatchNorm.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        std::iter::once(self.weight_name())
            .chain(self.bias_name())
            .map(|n| (n, vec![self.features]))
            .collect()
    }

    /// Names and initial values of the buffers a device holds for it (BatchNorm's running
    /// statistics), as PyTorch orders them.
    pub fn buffers(&self) -> Vec<(String, ArrayD<f64>)> {
        if self.norm != Norm::Batch {
            return Vec::new();
        }
        let f = self.features;
        vec![
            (self.buffer("running_mean"), ArrayD::zeros(vec![f])),
            (self.buffer("running_var"), ArrayD::ones(vec![f])),
        ]
    }

    /// BatchNorm's `num_batches_tracked`: one a training step, so a saved model writes the
    /// run's step count there (PyTorch reads it only when `momentum=None`).
    pub fn batch_counter(&self) -> Option<String> {
        (self.norm == Norm::Batch).then(|| self.buffer("num_batches_tracked"))
    }

    fn buffer(&self, name: &str) -> String {
        format!("{}.{name}", self.name)
    }

    pub fn forward<'t>(&self, tracer: &'t Tracer, x: &Var<'t>) -> Result<Var<'t>, GraphError> {
        let eps = self.norm.default_eps();
        let normalized = match self.norm {
            Norm::Layer => x.layer_norm(eps)?,
            Norm::Rms => x.rms_norm(eps)?,
            Norm::Batch if tracer.training() => {
                let normalized = x.batch_norm(eps)?;
                self.update_running_statistics(tracer, x)?;
                normalized
            }
            Norm::Batch => {
                let mean = tracer.parameter(&self.buffer("running_mean"), [self.features]);
                let var = tracer.parameter(&self.buffer("running_var"), [self.features]);
                x.standardize(&mean, &var, eps)?
            }
        };
        let weight = tracer.parameter(&self.weight_name(), [self.features]);
        let scaled = normalized.mul(&weight)?;
        match self.bias_name() {
            Some(b) => scaled.add(&tracer.parameter(&b, [self.features])),
            None => Ok(scaled),
        }
    }

    /// Records the buffers' values after this batch: the running statistics moved toward
    /// the batch's by the momentum.
    fn update_running_statistics<'t>(&self, tracer: &'t Tracer, x: &Var<'t>) -> Result<(), GraphError> {
        let rows = x.shape().dims()[0] as f64;
        let m = BATCH_NORM_MOMENTUM;
        let mean = x.mean_axis(0)?;
        let centered = x.sub(&mean)?;
        let var = centered.mul(&centered)?.mean_axis(0)?;
        let unbiased = var.scale(rows / (rows - 1.0))?;
        for (name, batch) in [("running_mean", mean), ("running_var", unbiased)] {
            let name = self.buffer(name);
            let running = tracer.parameter(&name, [self.features]);
            let next = running.scale(1.0 - m)?.add(&batch.scale(m)?)?;
            tracer.update_buffer(&name, &next);
        }
        Ok(())
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
