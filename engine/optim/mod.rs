//! The rules of an update, with no device in them: optimizer settings (SGD with
//! momentum/Nesterov, Adam, AdamW), gradient clipping, learning-rate schedules and dynamic
//! loss scaling.
//! Each backend runs them (backend/cpu/optimizer.rs, kernels/optimizer.cu, kernels/guard.cu).

pub mod clip;
pub mod loss_scale;
pub mod lr_schedule;
pub mod optimizer;

pub use loss_scale::LossScaler;
pub use lr_schedule::{LrSchedule, ScheduleError};
pub use optimizer::{OptimizerConfig, OptimizerKind};
