//! Persistence: atomic writes and the safetensors checkpoint format.

pub mod atomic;
pub mod checkpoint;

pub use atomic::write_atomic;
pub use checkpoint::{Checkpoint, CheckpointError, TrainState};
