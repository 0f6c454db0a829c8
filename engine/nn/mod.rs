//! Layers that trace themselves onto a [`crate::Tracer`]: Linear, the norms, the residual
//! blocks, and the MLP built from them.

pub mod block;
pub mod linear;
pub mod loss_kind;
pub mod mlp;
pub mod mlp_spec;
pub mod norm_layer;
pub mod param_layer;

pub use block::{BlockKind, BlockSpec, NormChoice};
pub use linear::{Init, Linear};
pub use loss_kind::LossKind;
pub use mlp::Mlp;
pub use mlp_spec::{MlpSpec, SpecError};
pub use norm_layer::NormLayer;
