//! The optimizers' settings, with PyTorch's semantics so results carry over (each
//! backend's update kernel follows them: backend/cpu/optimizer.rs, kernels/optimizer.cu):
//! SGD (momentum buffer starts at the first gradient; optional Nesterov; L2 weight decay),
//! Adam (L2 weight decay folded into the gradient), AdamW (decoupled weight decay).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum OptimizerKind {
    Sgd,
    Adam,
    AdamW,
}

impl OptimizerKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sgd" => Some(OptimizerKind::Sgd),
            "adam" => Some(OptimizerKind::Adam),
            "adamw" => Some(OptimizerKind::AdamW),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }
}

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the gradients to this global L2 norm before each update (optim/clip.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
}

impl OptimizerConfig {
    pub fn new(kind: OptimizerKind) -> Self {
        OptimizerConfig {
            kind,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_grad_norm: None,
        }
    }

    /// Whether an update can run with these settings; the one rule for the command line's
    /// flags and for a saved file's settings.
    pub fn check(&self) -> Result<(), BadSetting> {
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(BadSetting::WeightDecay(self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.momentum) || (self.kind != OptimizerKind::Sgd && self.momentum != 0.0) {
            return Err(BadSetting::Momentum(self.momentum));
        }
        if self.nesterov && self.momentum == 0.0 {
            return Err(BadSetting::NesterovWithoutMomentum);
        }
        if let Some(beta) = [self.beta1, self.beta2].into_iter().find(|b| !(0.0..1.0).contains(b)) {
            return Err(BadSetting::Beta(beta));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(BadSetting::Eps(self.eps));
        }
        if let Some(max) = self.clip_grad_norm.filter(|m| !(m.is_finite() && *m > 0.0)) {
            return Err(BadSetting::ClipGradNorm(max));
        }
        Ok(())
    }

    /// Names of the per-parameter state tensors, as PyTorch calls them.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self.kind {
            OptimizerKind::Sgd if self.momentum == 0.0 => &[],
            OptimizerKind::Sgd => &["momentum_buffer"],
            OptimizerKind::Adam | OptimizerKind::AdamW => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// A setting an optimizer update cannot run with ([`OptimizerConfig::check`]), named by its
/// field; the command line names its flags instead.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum BadSetting {
    #[error("weight_decay {0} is not a number >= 0")]
    WeightDecay(f64),
    /// Out of [0, 1), or set for an optimizer without momentum (Adam, AdamW).
    #[error("momentum {0} is not in [0, 1), or not SGD's")]
    Momentum(f64),
    #[error("nesterov without momentum")]
    NesterovWithoutMomentum,
    #[error("a beta of {0} is not in [0, 1)")]
    Beta(f64),
    #[error("eps {0} is not a positive number")]
    Eps(f64),
    #[error("clip_grad_norm {0} is not a positive number")]
    ClipGradNorm(f64),
}
