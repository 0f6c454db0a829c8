//! The data a run trains on: checked against the model (features in, classes out, the
//! saved normalization's width), normalized, and a validation split held out.

use super::setup::SetupError;
use crate::data::{Dataset, Normalization};
use crate::nn::MlpSpec;
use crate::rng::{stream, KeyedRng};

/// Checks that the model fits the data (features in, classes out, the saved
/// normalization's width), then normalizes both splits. `(model, source)` name the model
/// (`--layers`, or a resumed file's model) and the data.
pub fn prepare(
    mut train: Dataset,
    mut test: Dataset,
    norm: &Normalization,
    spec: &MlpSpec,
    (model, source): (&str, &str),
) -> Result<(Dataset, Dataset), SetupError> {
    let model = model.to_string();
    let layers = spec.layers_string();
    if train.feature_count() != spec.inputs() {
        return Err(SetupError::Features {
            model,
            layers,
            width: spec.inputs(),
            data: source.to_string(),
            features: train.feature_count(),
        });
    }
    if spec.loss.is_regression() {
        let targets = train.target_count();
        if targets != spec.classes() || test.target_count() != targets {
            return Err(SetupError::Targets {
                model,
                layers,
                width: spec.classes(),
                data: source.to_string(),
                targets: if targets == spec.classes() {
                    test.target_count()
                } else {
                    targets
                },
            });
        }
    } else {
        let classes = train.class_count().max(test.class_count());
        if classes != spec.classes() || train.targets.is_some() {
            return Err(SetupError::Classes {
                model,
                layers,
                width: spec.classes(),
                data: source.to_string(),
                classes,
            });
        }
    }
    if let Some(m) = norm.mean.as_ref().filter(|m| m.len() != spec.inputs()) {
        return Err(SetupError::Normalization {
            saved: m.len(),
            data: spec.inputs(),
        });
    }
    norm.apply(&mut train.features);
    norm.apply(&mut test.features);
    let why = match norm.std {
        Some(_) => {
            "standardized, its distance from the training rows' mean passes f32's largest value in their spreads"
        }
        None => "its value times the scale passes f32's largest value",
    };
    for (split, set) in [("training", &train), ("test", &test)] {
        if let Some(((example, feature), &value)) = set.features.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(SetupError::NonFiniteFeature {
                data: source.to_string(),
                split,
                why,
                example: example + 1,
                feature: feature + 1,
                value,
            });
        }
    }
    Ok((train, test))
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
