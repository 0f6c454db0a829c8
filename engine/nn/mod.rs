//! Layers that trace themselves onto a [`crate::Tracer`]: Linear and the MLP built from it.

pub mod linear;
pub mod mlp;

pub use linear::{Init, Linear};
pub use mlp::{Mlp, MlpSpec, SpecError};
