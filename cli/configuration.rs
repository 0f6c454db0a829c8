//! The full configuration a tool measured, in one line for its header and one JSON object
//! for its records, the same in every tool: a figure names every setting it depends on, so
//! it stays comparable when defaults move.

use crate::model_flags::{StepFlags, StepSettings};
use crate::train_report::{compact, thousands};
use chainrule::nn::MlpSpec;
use chainrule::optim::{OptimizerConfig, OptimizerKind};
use chainrule::train::Trainer;
use serde_json::{json, Value};

pub struct Configuration<'a> {
    pub spec: &'a MlpSpec,
    pub batch: usize,
    pub optimizer: &'a OptimizerConfig,
    pub lr: f64,
    pub dtype: &'a str,
    /// The checkpoint policy (or policies) as typed.
    pub checkpoint: String,
    pub update_in_backward: bool,
}

impl<'a> Configuration<'a> {
    /// What a measuring tool (bench, plan, remat, scale) runs: `spec` at `--batch-size`,
    /// trained as `step` resolved the step flags, under `checkpoint` (a policy or a list).
    pub fn measured(spec: &'a MlpSpec, flags: &'a StepFlags, step: &'a StepSettings, checkpoint: String) -> Self {
        Configuration {
            spec,
            batch: flags.batch_size,
            optimizer: &step.optimizer,
            lr: step.lr,
            dtype: flags.dtype(),
            checkpoint,
            update_in_backward: step.update_in_backward,
        }
    }

    /// A training run's configuration, in `dtype` (the device's precision).
    pub fn of_run(trainer: &'a Trainer, dtype: &'a str) -> Self {
        let c = &trainer.config;
        Configuration {
            spec: &trainer.mlp.spec,
            batch: c.settings.batch_size,
            optimizer: &c.optimizer,
            lr: c.settings.lr,
            dtype,
            checkpoint: c.checkpoint.to_string(),
            update_in_backward: c.update_in_backward,
        }
    }

    /// The optimizer and its settings, as the flags that give them.
    fn optimizer_words(&self) -> String {
        let o = self.optimizer;
        let mut words = format!(
            "{} lr {} weight decay {}",
            o.kind.name(),
            compact(self.lr),
            compact(o.weight_decay)
        );
        if o.kind == OptimizerKind::Sgd {
            words += &format!(" momentum {}", o.momentum);
            if o.nesterov {
                words += " nesterov";
            }
        }
        if let Some(max) = o.clip_grad_norm {
            words += &format!(" · clip grad norm {}", compact(max));
        }
        words
    }

    /// `MLP 784-512-256-10 (2 hidden) relu dropout 0.1 · 535,818 parameters · batch 128 · ...`
    pub fn line(&self) -> String {
        let s = self.spec;
        self.line_with_model(&format!(
            "{} · {} parameters",
            s.describe(),
            thousands(s.parameter_count() as u64)
        ))
    }

    /// [`Self::line`] with `model` in place of the model's words (a search over depths).
    pub fn line_with_model(&self, model: &str) -> String {
        format!(
            "{model} · batch {} · {} · {} · checkpoint {}{}",
            self.batch,
            self.optimizer_words(),
            self.dtype,
            self.checkpoint,
            if self.update_in_backward {
                " · updates inside backward"
            } else {
                ""
            }
        )
    }

    pub fn json(&self) -> Value {
        let (s, o) = (self.spec, self.optimizer);
        json!({
            "layers": s.layers_string(),
            "depth": s.depth(),
            "activation": s.activation,
            "dropout": s.dropout,
            "block": s.blocks.map_or("plain", |b| b.kind.name()),
            "norm": s.blocks.map(|b| b.norm.name()),
            "expansion": s.blocks.map(|b| b.expansion),
            "parameters": s.parameter_count(),
            "batch_size": self.batch,
            "optimizer": o.kind.name(),
            "lr": self.lr,
            "weight_decay": o.weight_decay,
            // SGD's alone: Adam and AdamW have none (null, not a 0 the flags never gave).
            "momentum": (o.kind == OptimizerKind::Sgd).then_some(o.momentum),
            "nesterov": (o.kind == OptimizerKind::Sgd).then_some(o.nesterov),
            "clip_grad_norm": o.clip_grad_norm,
            "loss": s.loss.name(),
            "dtype": self.dtype,
            "checkpoint": self.checkpoint,
            "update_in_backward": self.update_in_backward,
        })
    }

    /// [`Self::json`] with `more`'s fields added (a tool's measurements of this configuration).
    pub fn json_with(&self, more: Value) -> Value {
        let mut record = self.json();
        if let (Some(r), Value::Object(more)) = (record.as_object_mut(), more) {
            r.extend(more);
        }
        record
    }
}
