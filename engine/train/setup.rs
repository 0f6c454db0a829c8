//! What a user chose for a run, checked, and the engine's defaults for what they left out
//! (layer widths from the data, a learning rate per optimizer); the errors of making a run
//! ([`SetupError`]). A run is then made by [`super::run_spec`] on data [`super::run_data`]
//! prepares; [`super::out_of_memory`] says what to try when a step does not fit.

use crate::data::Dataset;
use crate::io::Validation;

use crate::optim::{optimizer::BadSetting, OptimizerConfig, OptimizerKind};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{flags} differs from the model in {file} ({saved})")]
    ModelDiffers { flags: String, file: String, saved: String },
    #[error("--lr {0}: must be a positive number")]
    LearningRate(f64),
    #[error("{0}")]
    Setting(String),
    #[error("{model} {layers}: the first width is {width} but the data ({data}) has {features} features per example")]
    Features {
        /// What names the model: `--layers`, or a resumed file's model.
        model: String,
        layers: String,
        width: usize,
        data: String,
        features: usize,
    },
    #[error("{model} {layers}: the last width is {width} but the data ({data}) has {classes} classes (labels 0..{})", classes.saturating_sub(1))]
    Classes {
        /// What names the model: `--layers`, or a resumed file's model.
        model: String,
        layers: String,
        width: usize,
        data: String,
        classes: usize,
    },
    #[error("{model} {layers}: the last width is {width} but the data ({data}) has {targets} target column{} (--target-columns) for a regression (--loss mse)", if *targets == 1 { "" } else { "s" })]
    Targets {
        /// What names the model: `--layers`, or a resumed file's model.
        model: String,
        layers: String,
        width: usize,
        data: String,
        targets: usize,
    },
    #[error("the saved normalization has {saved} features, the data {data}")]
    Normalization { saved: usize, data: usize },
    #[error("--augment-shift {shift}: at most {most} for {rows}x{cols} images (half the image or more moves the content out of view)")]
    AugmentShift {
        shift: usize,
        most: usize,
        rows: usize,
        cols: usize,
    },
    #[error("the data ({data}): feature {feature} of the {split} split's example {example} is {value} after normalization: {why}")]
    NonFiniteFeature {
        data: String,
        split: &'static str,
        why: &'static str,
        example: usize,
        feature: usize,
        value: f32,
    },
}

/// The widths a new run takes when none are given: `FEATURES-512-256-OUTPUTS`, its
/// classes or a regression's targets (a single target is one output).
pub fn default_layers(features: usize, outputs: usize) -> String {
    format!("{features}-512-256-{}", outputs.max(1))
}

/// The classes a model of this data needs, counting both splits (a class only the test
/// split has still needs an output).
pub fn class_count(train: &Dataset, test: &Dataset) -> usize {
    train.class_count().max(test.class_count())
}

/// The learning rate a run of `kind` takes when none is given.
pub fn default_lr(kind: OptimizerKind) -> f64 {
    if kind == OptimizerKind::Sgd {
        0.05
    } else {
        0.001
    }
}

/// An optimizer of `kind` with the user's settings (momentum and Nesterov are SGD's; any
/// optimizer clips), checked: a NaN or negative setting would only show up later as a
/// diverging loss.
pub fn optimizer(
    kind: OptimizerKind,
    weight_decay: f64,
    (momentum, nesterov): (f64, bool),
    clip_grad_norm: Option<f64>,
) -> Result<OptimizerConfig, SetupError> {
    let mut optimizer = OptimizerConfig::new(kind);
    optimizer.weight_decay = weight_decay;
    optimizer.clip_grad_norm = clip_grad_norm;
    if kind == OptimizerKind::Sgd {
        optimizer.momentum = momentum;
        optimizer.nesterov = nesterov;
    }
    optimizer.check().map_err(|bad| {
        SetupError::Setting(match bad {
            BadSetting::WeightDecay(w) => format!("--weight-decay {w}: must be a number >= 0"),
            BadSetting::Momentum(m) => format!("--momentum {m}: must be in [0, 1)"),
            BadSetting::NesterovWithoutMomentum => "--nesterov needs a --momentum above 0".into(),
            BadSetting::ClipGradNorm(c) => format!("--clip-grad-norm {c}: must be a number > 0"),
            other => other.to_string(),
        })
    })?;
    Ok(optimizer)
}

/// A validation split of `fraction` of the training rows, with early stopping after
/// `patience` epochs without a better validation loss.
pub fn validation(fraction: f64, patience: Option<u64>) -> Result<Validation, SetupError> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(SetupError::Setting(format!(
            "--val-fraction {fraction}: must be in [0, 1)"
        )));
    }
    if patience == Some(0) {
        return Err(SetupError::Setting(
            "--early-stop must be at least 1 (epochs without improvement)".into(),
        ));
    }
    Ok(Validation { fraction, patience })
}

/// Checks a learning rate a user gave.
pub fn check_lr(lr: f64) -> Result<f64, SetupError> {
    if lr > 0.0 && lr.is_finite() {
        Ok(lr)
    } else {
        Err(SetupError::LearningRate(lr))
    }
}

/// The largest `--augment-shift` for images of `rows`x`cols`: a shift of half the image
/// or more moves most of the content out of view.
pub fn check_augment_shift(shift: usize, image: Option<(usize, usize)>) -> Result<usize, SetupError> {
    match image {
        None => Ok(0),
        Some((rows, cols)) => {
            let most = (rows.min(cols).saturating_sub(1)) / 2;
            if shift > most {
                Err(SetupError::AugmentShift {
                    shift,
                    most,
                    rows,
                    cols,
                })
            } else {
                Ok(shift)
            }
        }
    }
}
