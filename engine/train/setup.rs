//! Making a run from what the user chose: the engine's defaults (layer widths from the
//! data, a learning rate per optimizer), a resumed run reconciled with new choices, the
//! data checked against the model, and what to try when a step runs out of memory.

use super::scale::{max_batch, resident_bytes_for, DEFAULT_MAX_RECOMPUTE};
use super::StepOptions;
use super::{TrainConfig, TrainError};
use crate::data::{Dataset, Normalization};
use crate::exec::ExecError;
use crate::io::{Snapshot, Validation};
use crate::memory::{Bytes, MemoryError};
use crate::nn::{Mlp, MlpSpec};
use crate::optim::{optimizer::BadSetting, OptimizerConfig, OptimizerKind};
use crate::plan::{CheckpointPolicy, HalfLayout};
use crate::rng::{stream, KeyedRng};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--layers {flag} differs from the model in {file} ({saved})")]
    LayersDiffer { flag: String, file: String, saved: String },
    #[error("--lr {0}: must be a positive number")]
    LearningRate(f64),
    #[error("{0}")]
    Setting(String),
    #[error("--layers {layers}: the first width is {width} but the data ({data}) has {features} features per example")]
    Features {
        layers: String,
        width: usize,
        data: String,
        features: usize,
    },
    #[error("--layers {layers}: the last width is {width} but the data ({data}) has {classes} classes (labels 0..{})", classes.saturating_sub(1))]
    Classes {
        layers: String,
        width: usize,
        data: String,
        classes: usize,
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
    #[error("the data ({data}): feature {feature} of example {example} is {value} after normalization; are the values far outside f32's range?")]
    NonFiniteFeature {
        data: String,
        example: usize,
        feature: usize,
        value: f32,
    },
}

/// The widths a new run takes when none are given: `FEATURES-512-256-CLASSES` (at least
/// two classes).
pub fn default_layers(features: usize, classes: usize) -> String {
    format!("{features}-512-256-{}", classes.max(2))
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

/// An optimizer of `kind` with the user's settings (momentum and Nesterov are SGD's),
/// checked: a NaN or negative setting would only show up later as a diverging loss.
pub fn optimizer(
    kind: OptimizerKind,
    weight_decay: f64,
    momentum: f64,
    nesterov: bool,
) -> Result<OptimizerConfig, SetupError> {
    let mut optimizer = OptimizerConfig::new(kind);
    optimizer.weight_decay = weight_decay;
    if kind == OptimizerKind::Sgd {
        optimizer.momentum = momentum;
        optimizer.nesterov = nesterov;
    }
    optimizer.check().map_err(|bad| {
        SetupError::Setting(match bad {
            BadSetting::WeightDecay(w) => format!("--weight-decay {w}: must be a number >= 0"),
            BadSetting::Momentum(m) => format!("--momentum {m}: must be in [0, 1)"),
            BadSetting::NesterovWithoutMomentum => "--nesterov needs a --momentum above 0".into(),
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

/// Holds out `fraction` of `train`'s rows for validation, chosen by `seed` alone (so a
/// resumed run holds out the same rows); `None` when `fraction` is 0.
pub fn hold_out_validation(train: Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Option<Dataset>), SetupError> {
    if fraction == 0.0 {
        return Ok((train, None));
    }
    let n = ((train.len() as f64 * fraction).round() as usize).max(1);
    if n >= train.len() {
        return Err(SetupError::Setting(format!(
            "--val-fraction {fraction} leaves no training rows of {}",
            train.len()
        )));
    }
    let order = KeyedRng::new(seed, stream::VALIDATION_SPLIT).permutation(train.len());
    let (train, validation) = train.split(&order[..n]);
    Ok((train, Some(validation)))
}

/// Checks a learning rate a user gave.
pub fn check_lr(lr: f64) -> Result<f64, SetupError> {
    if lr > 0.0 && lr.is_finite() {
        Ok(lr)
    } else {
        Err(SetupError::LearningRate(lr))
    }
}

/// What resuming `snapshot` (saved as `file`) with the user's `--layers` and `--epochs`
/// comes to: the run's new total of epochs, or `None` when it has already trained them.
pub fn resumed_epochs(
    snapshot: &Snapshot,
    file: &str,
    layers: Option<&str>,
    epochs: Option<u64>,
) -> Result<Option<u64>, SetupError> {
    let saved = snapshot.model.layers_string();
    // Compared as widths: `784-032-10` is the saved `784-32-10`.
    let same = |l: &str| {
        let model = &snapshot.model;
        MlpSpec::new(l, &model.activation, model.dropout).is_ok_and(|s| s.widths == model.widths)
    };
    if let Some(flag) = layers.filter(|l| !same(l)) {
        return Err(SetupError::LayersDiffer {
            flag: flag.to_string(),
            file: file.to_string(),
            saved,
        });
    }
    let epochs = epochs.unwrap_or(snapshot.settings.epochs);
    Ok((snapshot.state.epoch < epochs).then_some(epochs))
}

/// The epoch a resumed run goes on in (1-based): the interrupted one, or the next one
/// after the last complete epoch; either way one past the epochs completed.
/// The dtype a run trains in: `--dtype` if given, else a resumed run's own, else f32.
pub fn resumed_dtype(flag: Option<&str>, resumed: Option<&Snapshot>) -> String {
    flag.map(str::to_string)
        .or_else(|| resumed.and_then(|s| s.state.saved_dtype()))
        .unwrap_or_else(|| "f32".to_string())
}

pub fn resumed_at(snapshot: &Snapshot) -> u64 {
    snapshot.state.epoch + 1
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

/// Checks that the model fits the data (features in, classes out, the saved
/// normalization's width), then normalizes both splits. `source` names the data.
pub fn prepare(
    mut train: Dataset,
    mut test: Dataset,
    norm: &Normalization,
    spec: &MlpSpec,
    source: &str,
) -> Result<(Dataset, Dataset), SetupError> {
    let layers = spec.layers_string();
    if train.feature_count() != spec.inputs() {
        return Err(SetupError::Features {
            layers,
            width: spec.inputs(),
            data: source.to_string(),
            features: train.feature_count(),
        });
    }
    let classes = train.class_count().max(test.class_count());
    if classes != spec.classes() {
        return Err(SetupError::Classes {
            layers,
            width: spec.classes(),
            data: source.to_string(),
            classes,
        });
    }
    if let Some(m) = norm.mean.as_ref().filter(|m| m.len() != spec.inputs()) {
        return Err(SetupError::Normalization {
            saved: m.len(),
            data: spec.inputs(),
        });
    }
    norm.apply(&mut train.features);
    norm.apply(&mut test.features);
    for set in [&train, &test] {
        if let Some(((example, feature), &value)) = set.features.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(SetupError::NonFiniteFeature {
                data: source.to_string(),
                example: example + 1,
                feature: feature + 1,
                value,
            });
        }
    }
    Ok((train, test))
}

impl TrainError {
    /// The device's limit, when this is an out-of-memory error.
    pub fn out_of_memory_limit(&self) -> Option<u64> {
        let m = match self {
            TrainError::Memory(m) | TrainError::Exec(ExecError::Memory(m)) => m,
            TrainError::Evaluation { cause, .. } => return cause.out_of_memory_limit(),
            _ => return None,
        };
        let MemoryError::OutOfMemory { limit, .. } = m;
        Some(*limit)
    }
}

/// What `chainrule scale` would pick for `config`'s model within `limit` on a device that
/// holds 16-bit values as `layout` says: a checkpoint policy that fits its batch, or the
/// largest batch that fits.
///
/// Updates inside backward are suggested too where the run does not use them and may
/// (`scaled`: loss scaling, which they cannot be combined with).
pub fn out_of_memory_advice(
    spec: &MlpSpec,
    config: &TrainConfig,
    limit: u64,
    layout: HalfLayout,
    scaled: bool,
) -> String {
    let mlp = match Mlp::new(spec.clone()) {
        Ok(m) => m,
        Err(e) => return e.to_string(),
    };
    let (batch, resident) = (
        config.settings.batch_size,
        resident_bytes_for(spec, &config.optimizer, layout),
    );
    let inside = if config.update_in_backward || scaled {
        vec![config.update_in_backward]
    } else {
        vec![false, true]
    };
    let candidates = [
        CheckpointPolicy::None,
        CheckpointPolicy::Cheap,
        CheckpointPolicy::Sqrt,
        CheckpointPolicy::Budget(limit),
    ];
    let fits: Vec<(CheckpointPolicy, bool, usize)> = inside
        .iter()
        .flat_map(|&update_in_backward| {
            let options = StepOptions {
                layout,
                update_in_backward,
                ..Default::default()
            };
            let (mlp, resident) = (&mlp, &resident);
            candidates.iter().filter_map(move |&p| {
                max_batch(mlp, p, limit, resident, options, DEFAULT_MAX_RECOMPUTE).map(|b| (p, update_in_backward, b))
            })
        })
        .collect();
    let flag = |on: bool| {
        if on && !config.update_in_backward {
            " --update-in-backward"
        } else {
            ""
        }
    };
    match fits.iter().find(|(_, _, b)| *b >= batch) {
        Some((p, on, _)) => format!(
            "suggestion: --checkpoint {p}{} fits --batch-size {batch} in {} (see `chainrule scale`)",
            flag(*on),
            Bytes(limit)
        ),
        None => match fits.iter().max_by_key(|(_, _, b)| *b) {
            Some((p, on, b)) => format!(
                "suggestion: --checkpoint {p}{} --batch-size {b} is the largest batch that fits in {} (see `chainrule scale`)",
                flag(*on),
                Bytes(limit)
            ),
            None => format!("even a batch of 1 does not fit in {}: use a smaller model", Bytes(limit)),
        },
    }
}
