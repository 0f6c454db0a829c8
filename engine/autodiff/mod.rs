//! Automatic differentiation as graph transformation: both modes append nodes to the
//! graph they differentiate, so a training step is again just a graph.

pub mod forward;
pub mod reverse;

pub use forward::jvp;
pub use reverse::{backward, backward_scaled, LOSS_SCALE_INPUT};
