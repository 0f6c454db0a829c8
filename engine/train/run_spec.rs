//! A run before it starts, made in one place: a new run from what the user chose
//! ([`RunSpec::new_run`]), or a saved run going on ([`RunSpec::going_on`]) with the few
//! choices a resumed run makes anew. Either way [`RunSpec::trainer`] makes its trainer.

use super::setup::{check_augment_shift, validation, SetupError};
use super::{TrainConfig, TrainError, Trainer};
use crate::backend::Device;
use crate::data::Normalization;
use crate::io::{Snapshot, TestSplit, TrainSettings};
use crate::nn::MlpSpec;
use crate::plan::CheckpointPolicy;
use std::sync::Arc;

pub struct RunSpec {
    pub spec: MlpSpec,
    pub config: TrainConfig,
    pub normalization: Normalization,
    /// Where the test examples came from and the images' (height, width), recorded in a new
    /// run's saves (a resumed run keeps its own).
    pub test_split: Option<TestSplit>,
    pub image_shape: Option<(usize, usize)>,
    /// A saved run's weights, optimizer state and position.
    resumed: Option<Snapshot>,
}

/// What a resumed run chooses anew; the rest is the saved run's.
pub struct GoingOn<'a> {
    /// The saved file, as the messages name it.
    pub file: &'a str,
    /// The model typed again (`--layers`, or `--depth`/`--width`): it must be the saved one.
    pub typed_model: Option<TypedModel>,
    /// The run's new total of epochs (`None`: the saved run's).
    pub epochs: Option<u64>,
    pub checkpoint: CheckpointPolicy,
    pub update_in_backward: bool,
    /// `--early-stop`: a new patience on the saved validation split.
    pub early_stop: Option<u64>,
    /// The images the run goes on with, which the saved shift must fit.
    pub image_shape: Option<(usize, usize)>,
}

/// A model typed again for a resumed run: the flags as the user gave them, for the message,
/// and the widths they make (`None`: they make no model at all).
pub struct TypedModel {
    pub flags: String,
    pub widths: Option<Vec<usize>>,
}

impl RunSpec {
    pub fn new_run(
        spec: MlpSpec,
        config: TrainConfig,
        normalization: Normalization,
        (test_split, image_shape): (TestSplit, Option<(usize, usize)>),
    ) -> Self {
        RunSpec {
            spec,
            config,
            normalization,
            test_split: Some(test_split),
            image_shape,
            resumed: None,
        }
    }

    /// `snapshot`'s run going on as `choices` say; `None` when it has already trained the
    /// epochs asked for.
    pub fn going_on(snapshot: Snapshot, choices: GoingOn) -> Result<Option<Self>, SetupError> {
        let file = choices.file;
        // Compared as widths: `784-032-10` is the saved `784-32-10`.
        if let Some(typed) = choices.typed_model {
            if typed.widths.as_ref() != Some(&snapshot.model.widths) {
                return Err(SetupError::ModelDiffers {
                    flags: typed.flags,
                    file: file.to_string(),
                    saved: snapshot.model.layers_string(),
                });
            }
        }
        let epochs = choices.epochs.unwrap_or(snapshot.settings.epochs);
        if snapshot.state.epoch >= epochs {
            return Ok(None);
        }
        let saved = &snapshot.settings;
        check_augment_shift(saved.augment_shift, choices.image_shape)
            .map_err(|e| SetupError::Setting(format!("{file}: the saved run's {e}")))?;
        let patience = choices.early_stop.or(saved.validation.patience);
        let config = TrainConfig {
            settings: TrainSettings {
                epochs,
                validation: validation(saved.validation.fraction, patience)?,
                ..saved.clone()
            },
            optimizer: snapshot.optimizer.clone(),
            checkpoint: choices.checkpoint,
            // The trainer keeps a saved scaler where the device needs one (see `restore`).
            loss_scaling: false,
            update_in_backward: choices.update_in_backward,
        };
        Ok(Some(RunSpec {
            spec: snapshot.model.clone(),
            config,
            normalization: snapshot.normalization.clone(),
            test_split: snapshot.state.test_split,
            image_shape: snapshot.state.image_shape,
            resumed: Some(snapshot),
        }))
    }

    /// For a resumed run: the epoch it goes on in (1-based: the interrupted one, or the one
    /// after the last complete epoch) and the steps done.
    pub fn resumed_at(&self) -> Option<(u64, u64)> {
        self.resumed.as_ref().map(|s| (s.state.epoch + 1, s.state.step))
    }

    /// The saved run, for a resumed one.
    pub fn resumed(&self) -> Option<&Snapshot> {
        self.resumed.as_ref()
    }

    /// The run's trainer on `device`: fresh weights, or the saved run's weights, optimizer
    /// state and position.
    pub fn trainer(self, device: &Arc<dyn Device>) -> Result<Trainer, TrainError> {
        let RunSpec { config, resumed, .. } = self;
        let update_in_backward = config.update_in_backward;
        let mut trainer = match resumed {
            None => {
                // Placed without updates inside backward, then switched as a resumed run
                // is: one rule refuses them beside loss scaling.
                let plain = TrainConfig {
                    update_in_backward: false,
                    ..config
                };
                let mut t = Trainer::new(self.spec, plain, self.normalization, device)?;
                t.state.test_split = self.test_split;
                t.state.image_shape = self.image_shape;
                t
            }
            Some(snapshot) => {
                let mut t = Trainer::from_snapshot(snapshot, config.settings.epochs, device)?;
                t.set_checkpoint(config.checkpoint);
                t.set_validation(config.settings.validation);
                t
            }
        };
        trainer.set_update_in_backward(update_in_backward)?;
        Ok(trainer)
    }
}

/// The dtype a run trains in: `--dtype` if given, else a resumed run's own, else f32.
pub fn dtype_of_run(flag: Option<&str>, resumed: Option<&Snapshot>) -> String {
    flag.map(str::to_string)
        .or_else(|| resumed.and_then(|s| s.state.saved_dtype()))
        .unwrap_or_else(|| "f32".to_string())
}
