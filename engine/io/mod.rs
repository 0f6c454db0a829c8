//! Persistence: atomic writes and the safetensors snapshot format (a saved training run).

pub mod atomic;
mod hidden_name;
pub mod lock;
pub mod onnx;
mod onnx_graph;
mod safetensors_writer;
pub mod snapshot;
mod snapshot_check;
pub mod train_settings;

pub use atomic::{save_target, stream_target, write_atomic};
pub use lock::SaveLock;
pub use snapshot::{BestEpoch, Snapshot, SnapshotError, TestSplit, TrainState, Validation};
pub use snapshot_check::MAX_STEPS;
pub use train_settings::TrainSettings;
