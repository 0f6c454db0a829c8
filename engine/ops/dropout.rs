//! Inverted dropout with a counter-based mask: element i of node `key` at step s is kept
//! iff uniform(seed, s, key, i) >= p. Its adjoint and its tangent are the same op applied
//! to the gradient (same key), so backward and any recomputation see the forward's mask.
//! GPU: kernels/dropout.cu (the same keyed generator), launched by
//! backend/cuda/ops/dropout.rs.

use super::cpu_map as cpu;
use super::{Cost, Op, RunContext};
use crate::graph::{Graph, GraphError, NodeId};
use crate::rng;
use crate::tensor::{Element, Shape};
use ndarray::ArrayD;

pub fn mask_key(key: u64, step: u64) -> u64 {
    rng::mix64(step) ^ key
}

pub fn keeps(seed: u64, key: u64, step: u64, element: u64, p: f64) -> bool {
    rng::uniform_at(mask_prefix(seed, key, step), element) >= p
}

/// What every element of one mask shares, mixed once rather than per element.
fn mask_prefix(seed: u64, key: u64, step: u64) -> u64 {
    rng::prefix(seed, rng::stream::DROPOUT, mask_key(key, step))
}

pub fn forward<T: Element>(x: &ArrayD<T>, p: f64, key: u64, ctx: &RunContext) -> ArrayD<T> {
    if !ctx.training || p == 0.0 {
        return x.clone();
    }
    let scale = T::from_f64(1.0 / (1.0 - p));
    let (seed, step) = (ctx.seed, ctx.step);
    let first = first_element(x.shape(), ctx);
    let prefix = mask_prefix(seed, key, step);
    cpu::map_indexed(x, move |i, v| {
        if rng::uniform_at(prefix, first + i) >= p {
            v * scale
        } else {
            T::zero()
        }
    })
}

/// The mask index of a batch's first element: its first row's place in the step's global
/// batch ([`RunContext::first_row`]) times the elements of a row.
pub fn first_element(shape: &[usize], ctx: &RunContext) -> u64 {
    let row: usize = shape.iter().skip(1).product();
    ctx.first_row * row as u64
}

/// The VJP and the JVP alike: the same mask (same `p`, same key) on the gradient or tangent.
pub fn vjp(graph: &mut Graph, p: f64, key: u64, grad: NodeId) -> Result<NodeId, GraphError> {
    graph.push(Op::Dropout { p, key }, &[grad])
}

/// A masked copy: cheap to recompute (the mask is replayed, not stored).
pub fn cost(inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    Cost::elementwise(1, inputs, out, elem_bytes)
}
