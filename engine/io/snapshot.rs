//! One safetensors file holds everything needed to resume or evaluate: parameters
//! (`layers.{i}.weight` `[out, in]`, `layers.{i}.bias` `[out]`), optimizer state
//! (`optimizer.{param}.{state}`), all f32 little-endian; and in the metadata, JSON for the
//! model spec, optimizer settings, input normalization and training state (epoch, step,
//! seed: all the RNG state there is, since every draw is keyed by them).

use super::atomic::write_atomic;
use super::train_settings::TrainSettings;
use crate::data::Normalization;
use crate::nn::MlpSpec;
use crate::optim::OptimizerConfig;
use ndarray::ArrayD;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The format this build writes. Each version adds to the one before, so every earlier
/// version still loads; the fields a version added are optional in the structs below.
///  - `chainrule/1`: model, optimizer, normalization, training settings and state.
///  - `chainrule/2`: adds `training.data`, the rows the run drew its examples from (count
///    and hash) and its classes with their training examples.
pub const FORMAT: &str = "chainrule/2";
/// Every format this build reads.
pub const READABLE_FORMATS: [&str; 2] = ["chainrule/1", FORMAT];

/// Where training stands, enough to continue bit for bit with its [`TrainSettings`].
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: u64,
    /// Batches completed in the current epoch (non-zero after an interrupted epoch).
    pub batch_in_epoch: u64,
    /// Training steps completed; keys dropout masks.
    pub step: u64,
    /// Dynamic loss scaling's state (f16 runs), so a resumed run goes on with the same scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<crate::optim::LossScaler>,
    /// The epoch with the lowest validation loss so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestEpoch>,
    /// The compute dtype the run trained in (`--dtype`: f32, bf16, f16); a resumed run goes
    /// on in it unless told otherwise. Absent in files saved before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Where the test examples came from, so a resumed run trains and tests on the same
    /// rows. Absent in files saved before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_split: Option<TestSplit>,
    /// (height, width) of the images it trained on, so `predict` can refuse an image of
    /// another shape with the same number of pixels. Absent for rows of features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_shape: Option<(usize, usize)>,
    /// The rows the run drew its examples from and its classes (format chainrule/2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<crate::data::DataRecord>,
}

/// Where a run's test examples came from.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
pub enum TestSplit {
    /// This share of the training file's rows, drawn with the run's seed (`--test-fraction`).
    HeldOut(f64),
    /// Files of their own (`--test-csv`, an MNIST test split).
    Separate,
}

impl TrainState {
    /// The dtype the run trained in. Files saved before it was recorded name none; the command
    /// line gave only f16 runs a loss scaler, so one with a scaler was an f16 run.
    pub fn saved_dtype(&self) -> Option<String> {
        self.dtype
            .clone()
            .or_else(|| self.loss_scaler.is_some().then(|| "f16".to_string()))
    }
}

/// A share of the training split held out (seeded) to watch generalization, and early
/// stopping on its loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Share of the training split held out (0: none).
    #[serde(default)]
    pub fraction: f64,
    /// Stop when the validation loss has not improved for this many epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<u64>,
}

/// The epoch whose validation loss is the lowest so far.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
pub struct BestEpoch {
    pub epoch: u64,
    pub val_loss: f64,
}

/// The metadata's `training` object: the settings and where training stands, side by side
/// as earlier files hold them.
#[derive(Serialize, Deserialize)]
struct Training {
    #[serde(flatten)]
    settings: TrainSettings,
    #[serde(flatten)]
    state: TrainState,
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub model: MlpSpec,
    pub optimizer: OptimizerConfig,
    pub normalization: Normalization,
    pub settings: TrainSettings,
    pub state: TrainState,
    /// Parameters and optimizer state by tensor name.
    pub tensors: BTreeMap<String, ArrayD<f32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    // The cause follows as the error's source (printed by `{:#}`).
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A save that failed: the message names the file (io/atomic.rs).
    #[error("{0}")]
    Write(std::io::Error),
    #[error("{path}: not a valid safetensors file (corrupt or truncated): {why}")]
    NotSafetensors { path: PathBuf, why: String },
    #[error("{path}: a safetensors file, but not a chainrule model ({why})")]
    Foreign { path: PathBuf, why: String },
    /// A format this build does not read: saved by a newer chainrule, or hand-edited.
    #[error("{path}: format '{format}' is newer than this chainrule reads ({}): a newer chainrule saved it; update chainrule to load it", READABLE_FORMATS.join(", "))]
    Version { path: PathBuf, format: String },
    #[error("{path}: {why}")]
    Inconsistent { path: PathBuf, why: String },
    #[error("cannot serialize the snapshot: {0}")]
    Serialize(String),
}

pub fn optimizer_tensor_name(param: &str, state: &str) -> String {
    format!("optimizer.{param}.{state}")
}

impl Snapshot {
    pub fn to_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        let ser = |e: serde_json::Error| SnapshotError::Serialize(e.to_string());
        let training = Training {
            settings: self.settings.clone(),
            state: self.state.clone(),
        };
        let meta: BTreeMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("model", serde_json::to_string(&self.model).map_err(ser)?),
            ("optimizer", serde_json::to_string(&self.optimizer).map_err(ser)?),
            (
                "normalization",
                serde_json::to_string(&self.normalization).map_err(ser)?,
            ),
            ("training", serde_json::to_string(&training).map_err(ser)?),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(super::safetensors_writer::serialize(&meta, &self.tensors))
    }

    /// Writes atomically: an interrupted save leaves the previous file intact.
    pub fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes).map_err(SnapshotError::Write)
    }

    pub fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
        let bytes = crate::data::input_file::read_input(path).map_err(|source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let p = || path.to_path_buf();
        let not_st = |e: safetensors::SafeTensorError| SnapshotError::NotSafetensors {
            path: p(),
            why: describe(&e),
        };
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(not_st)?;
        let st = SafeTensors::deserialize(bytes).map_err(not_st)?;
        let meta = metadata.metadata().clone().unwrap_or_default();
        let foreign = |why: String| SnapshotError::Foreign { path: p(), why };
        match meta.get("format") {
            Some(f) if READABLE_FORMATS.contains(&f.as_str()) => {}
            Some(f) if is_newer(f) => {
                return Err(SnapshotError::Version {
                    path: p(),
                    format: f.clone(),
                })
            }
            Some(f) => {
                return Err(foreign(format!(
                    "format {f:?}, which no chainrule writes; this one reads {}",
                    READABLE_FORMATS.join(", ")
                )))
            }
            None => return Err(foreign("no chainrule metadata".into())),
        }
        fn field<T: serde::de::DeserializeOwned>(
            meta: &HashMap<String, String>,
            key: &str,
            path: &Path,
        ) -> Result<T, SnapshotError> {
            let raw = meta.get(key).ok_or_else(|| SnapshotError::Inconsistent {
                path: path.to_path_buf(),
                why: format!("metadata has no '{key}'"),
            })?;
            serde_json::from_str(raw).map_err(|e| SnapshotError::Inconsistent {
                path: path.to_path_buf(),
                why: format!("metadata '{key}' is corrupt: {e}"),
            })
        }
        let model: MlpSpec = field(&meta, "model", path)?;
        let optimizer: OptimizerConfig = field(&meta, "optimizer", path)?;
        let normalization: Normalization = field(&meta, "normalization", path)?;
        let Training { settings, state } = field(&meta, "training", path)?;
        let bad = |why: String| SnapshotError::Inconsistent { path: p(), why };
        if let Err(e) = model.validated() {
            return Err(bad(format!(
                "invalid model (layers {}, activation '{}', dropout {}): {e}",
                model.layers_string(),
                model.activation,
                model.dropout
            )));
        }
        let mlp = crate::nn::Mlp::new(model.clone()).map_err(|e| bad(format!("invalid model: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let a = ArrayD::from_shape_vec(view.shape().to_vec(), values)
                .map_err(|e| bad(format!("tensor '{name}': {e}")))?;
            tensors.insert(name, a);
        }
        // Every tensor is the model's or its optimizer's: a hand-edited model (a gated net
        // called residual, a norm removed) must not load as another model, silently.
        let states = optimizer.state_names();
        let optimizer_tensors = mlp
            .parameter_names()
            .into_iter()
            .flat_map(|p| states.iter().map(move |s| optimizer_tensor_name(&p, s)));
        let known: std::collections::HashSet<String> = mlp
            .tensors()
            .into_iter()
            .map(|(name, _)| name)
            .chain(optimizer_tensors)
            .collect();
        if let Some(stray) = tensors.keys().find(|name| !known.contains(*name)) {
            return Err(bad(format!(
                "tensor '{stray}' is not part of the model the metadata describes ({}, {} optimizer state)",
                model.describe(),
                optimizer.kind.name()
            )));
        }
        for (name, shape) in mlp.tensors() {
            match tensors.get(&name) {
                None => return Err(bad(format!("missing tensor '{name}' for {}", model.describe()))),
                Some(a) if a.shape() != shape.as_slice() => {
                    return Err(bad(format!(
                        "tensor '{name}' has shape {:?}, the model needs {shape:?}",
                        a.shape()
                    )))
                }
                Some(_) => {}
            }
        }
        let snapshot = Snapshot {
            model,
            optimizer,
            normalization,
            settings,
            state,
            tensors,
        };
        super::snapshot_check::check(&snapshot, &mlp).map_err(bad)?;
        Ok(snapshot)
    }
}

/// Whether `format` names a later version than this build writes (`chainrule/N`, N written
/// as a chainrule writes it, above ours).
fn is_newer(format: &str) -> bool {
    let ours: u32 = FORMAT["chainrule/".len()..]
        .parse()
        .expect("FORMAT ends in its version");
    format
        .strip_prefix("chainrule/")
        .and_then(|n| n.parse::<u32>().ok().filter(|v| v.to_string() == n))
        .is_some_and(|v| v > ours)
}

/// What is wrong with a file the safetensors reader refused, in words (its own messages
/// are the names of its error variants).
fn describe(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => "shorter than a safetensors header".into(),
        E::HeaderTooLarge => "the header claims to be larger than 100 MB".into(),
        E::InvalidHeaderLength => "the header length runs past the end of the file".into(),
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            "the header is not the JSON a safetensors file starts with".into()
        }
        E::JsonError(j) => format!("the header is not valid JSON ({j})"),
        E::TensorNotFound(n) => format!("no tensor '{n}'"),
        // The reader checks offsets in order: the tensor named is the first whose data does
        // not start where the one before it ends (overlapping, a gap, or past the end).
        E::InvalidOffset(n) => format!(
            "tensor '{n}' (or the one before it in the data) has data offsets that overlap, leave a gap or run past the data"
        ),
        E::TensorInvalidInfo | E::InvalidTensorView(..) => "a tensor's shape, type and size disagree".into(),
        E::MetadataIncompleteBuffer => "the tensors do not cover the data exactly (truncated or padded)".into(),
        E::ValidationOverflow => "a tensor's size overflows".into(),
        E::IoError(io) => io.to_string(),
    }
}
