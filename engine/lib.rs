//! chainrule: a deep-learning training engine that follows the chain rule literally.
//!
//! The pipeline reads top-down, one module per stage:
//! trace ([`trace`]) → graph ([`graph`], [`ops`]) → autodiff ([`autodiff`]) → plan
//! ([`plan`]) → execute ([`exec`]) on a backend ([`backend`]) with memory accounting
//! ([`memory`]). Above it: [`nn`], [`optim`], [`data`], [`io`].

pub mod autodiff;
pub mod backend;
pub mod dist;
pub mod exec;
pub mod graph;
pub mod kernels;
pub mod memory;
pub mod ops;
pub mod plan;
pub mod rng;
pub mod tensor;
pub mod trace;

pub use graph::{Graph, GraphError, NodeId};
/// The array type parameters, data and results come in, for code that uses chainrule.
pub use ndarray;
pub use tensor::{DType, Element, Shape};
pub use trace::{Tracer, Var};
pub mod data;
pub mod io;
pub mod nn;
pub mod optim;
pub mod train;
pub use train::scale;

#[cfg(test)]
mod layering;
