//! What a model is trained to do, which picks its loss: classify (softmax cross-entropy on
//! integer labels, PyTorch's `CrossEntropyLoss`) or regress (the mean squared error on
//! real-valued targets, `MSELoss` with its mean over every element). Saved with the model,
//! so evaluation, prediction and export know which outputs they have.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub enum LossKind {
    /// Outputs are class logits.
    #[default]
    CrossEntropy,
    /// Outputs are the predicted targets, one per target column.
    Mse,
}

impl LossKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "cross-entropy" | "cross_entropy" | "crossentropy" | "ce" => Some(LossKind::CrossEntropy),
            "mse" => Some(LossKind::Mse),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "cross-entropy",
            LossKind::Mse => "mse",
        }
    }

    pub fn is_regression(self) -> bool {
        self == LossKind::Mse
    }

    pub fn is_default(&self) -> bool {
        *self == LossKind::CrossEntropy
    }
}
