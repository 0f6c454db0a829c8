//! Optimizers (SGD with momentum/Nesterov, Adam, AdamW) and learning-rate schedules.
//! Updates run in place on the session's parameters; state buffers are counted as
//! optimizer state.

pub mod loss_scale;
pub mod lr_schedule;
pub mod optimizer;

pub use loss_scale::LossScaler;
pub use lr_schedule::{LrSchedule, ScheduleError};
pub use optimizer::{Optimizer, OptimizerConfig, OptimizerKind};
