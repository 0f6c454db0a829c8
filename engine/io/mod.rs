//! Persistence: atomic writes and the safetensors snapshot format (a saved training run).

pub mod atomic;
pub mod snapshot;

pub use atomic::write_atomic;
pub use snapshot::{Snapshot, SnapshotError, TrainState};
