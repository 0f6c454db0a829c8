//! What every rank of a data-parallel job must hold alike before it trains, as the trainer
//! defines it: the run's settings, its data, and its starting weights and optimizer state,
//! each a [`StableHash`] of a stable form (the settings as JSON, numbers bit for bit), so
//! the ranks can agree on them ([`crate::dist::agree_on_start`]) and name the part that differs.

use super::{TrainError, Trainer};
use crate::data::{Dataset, Normalization};
use crate::dist::StableHash;
use crate::io::TrainState;
use crate::nn::MlpSpec;
use serde::Serialize;

/// A run's fingerprint, part by part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunFingerprint {
    /// The settings, model, training state and normalization, how often the loss is read
    /// (ranks agree to stop at those steps), and chainrule's version.
    pub settings: u64,
    /// The examples: training, validation and test.
    pub data: u64,
    /// The starting weights and optimizer state.
    pub starting_state: u64,
}

/// The settings part, serialized as one JSON value: field names and exact numbers, unlike
/// `Debug` text, which no one promises to keep.
#[derive(Serialize)]
struct Settings<'a> {
    config: &'a super::TrainConfig,
    spec: &'a MlpSpec,
    state: TrainState,
    normalization: &'a Normalization,
    log_every: u64,
    version: &'a str,
}

impl Trainer {
    /// This run's fingerprint, with `data` (its training, validation and test examples).
    pub fn fingerprint(&self, data: &[&Dataset]) -> Result<RunFingerprint, TrainError> {
        let settings = Settings {
            config: &self.config,
            spec: &self.mlp.spec,
            // The data record describes the examples, which the data part compares (and names).
            state: TrainState {
                data: None,
                ..self.state.clone()
            },
            normalization: &self.normalization,
            log_every: self.log_every,
            version: env!("CARGO_PKG_VERSION"),
        };
        let json = serde_json::to_vec(&settings)
            .map_err(|e| TrainError::Config(format!("the run's settings could not be written as JSON: {e}")))?;
        let mut examples = StableHash::new();
        for d in data {
            examples.floats(d.features.iter().copied());
            examples.bytes(&d.labels.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<u8>>());
            if let Some(t) = &d.targets {
                examples.floats(t.iter().copied());
            }
        }
        let mut weights = StableHash::new();
        for (name, t) in self.to_snapshot()?.tensors {
            weights.bytes(name.as_bytes()).floats(t.iter().copied());
        }
        Ok(RunFingerprint {
            settings: StableHash::new().bytes(&json).finish(),
            data: examples.finish(),
            starting_state: weights.finish(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::TrainSettings;
    use crate::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
    use crate::plan::CheckpointPolicy;
    use ndarray::Array2;

    fn trainer(lr: f64) -> Trainer {
        let config = super::super::TrainConfig {
            settings: TrainSettings {
                epochs: 1,
                batch_size: 4,
                lr,
                schedule: LrSchedule::Constant,
                seed: 3,
                augment_shift: 0,
                validation: Default::default(),
            },
            optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
            checkpoint: CheckpointPolicy::None,
            loss_scaling: false,
            update_in_backward: false,
        };
        let spec = MlpSpec::new("3-4-2", "relu", 0.0).expect("a valid spec");
        Trainer::new(spec, config, Normalization::scale_only(1.0), &crate::backend::cpu()).expect("a CPU trainer")
    }

    fn data(first: f32) -> Dataset {
        Dataset {
            features: Array2::from_shape_vec((2, 3), vec![first, 1.0, 2.0, 3.0, 4.0, 5.0]).expect("2x3"),
            labels: vec![0, 1],
            image_shape: None,
            targets: None,
        }
    }

    #[test]
    fn the_settings_part_tells_learning_rates_apart_and_equal_runs_agree() {
        let d = data(0.0);
        let print = |lr| trainer(lr).fingerprint(&[&d]).expect("a fingerprint");
        let (a, b, c) = (print(0.1), print(0.1), print(0.01));
        assert_eq!(a, b);
        assert_ne!(a.settings, c.settings);
        // The same seed makes the same starting weights, whatever the learning rate.
        assert_eq!((a.data, a.starting_state), (c.data, c.starting_state));
    }

    #[test]
    fn the_data_part_sees_one_changed_value() {
        let t = trainer(0.1);
        let (a, b) = (data(0.0), data(-0.0));
        let (pa, pb) = (t.fingerprint(&[&a]).unwrap(), t.fingerprint(&[&b]).unwrap());
        assert_ne!(pa.data, pb.data);
        assert_eq!(pa.settings, pb.settings);
    }
}
