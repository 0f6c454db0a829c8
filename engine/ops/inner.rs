//! Inner product `Σ a·b` and squared norm `Σ a²`: scalar reductions of whole tensors.
//! GPU: kernels/inner.cu's dot kernel, launched by backend/cuda/ops/inner.rs with the
//! code [`dot_kernel`] names.

use super::{Cost, Op};
use crate::graph::{Graph, GraphError, NodeId};
use crate::kernels::DotMode;
use crate::tensor::{Element, Shape};
use ndarray::{ArrayD, IxDyn, Zip};

pub fn inner_forward<T: Element>(a: &ArrayD<T>, b: &ArrayD<T>) -> ArrayD<T> {
    let s = Zip::from(a).and(b).fold(T::zero(), |acc, &x, &y| acc + x * y);
    ArrayD::from_elem(IxDyn(&[]), s)
}

pub fn squared_norm_forward<T: Element>(a: &ArrayD<T>) -> ArrayD<T> {
    let s = a.iter().fold(T::zero(), |acc, &x| acc + x * x);
    ArrayD::from_elem(IxDyn(&[]), s)
}

/// `d⟨a,b⟩ = g·b` for a and `g·a` for b (g scalar, broadcast).
pub fn inner_vjp(
    graph: &mut Graph,
    a: NodeId,
    b: NodeId,
    g: NodeId,
    wants: &[bool],
) -> Result<Vec<Option<NodeId>>, GraphError> {
    let ga = if wants[0] {
        Some(graph.push(Op::Mul, &[b, g])?)
    } else {
        None
    };
    let gb = if wants[1] {
        Some(graph.push(Op::Mul, &[a, g])?)
    } else {
        None
    };
    Ok(vec![ga, gb])
}

pub fn inner_jvp(graph: &mut Graph, a: NodeId, b: NodeId, t: &[Option<NodeId>]) -> Result<NodeId, GraphError> {
    let l = t[0].map(|ta| graph.push(Op::Inner, &[ta, b])).transpose()?;
    let r = t[1].map(|tb| graph.push(Op::Inner, &[a, tb])).transpose()?;
    match (l, r) {
        (Some(l), Some(r)) => graph.push(Op::Add, &[l, r]),
        (Some(x), None) | (None, Some(x)) => Ok(x),
        (None, None) => unreachable!("jvp is only called with a tangent"),
    }
}

/// `d‖a‖² = 2g·a`.
pub fn squared_norm_vjp(graph: &mut Graph, a: NodeId, g: NodeId) -> Result<NodeId, GraphError> {
    let two_g = graph.push(Op::Scale(2.0), &[g])?;
    graph.push(Op::Mul, &[a, two_g])
}

pub fn squared_norm_jvp(graph: &mut Graph, a: NodeId, t: NodeId) -> Result<NodeId, GraphError> {
    let i = graph.push(Op::Inner, &[a, t])?;
    graph.push(Op::Scale(2.0), &[i])
}

/// What the GPU's dot kernel sums for `op`.
pub fn dot_kernel(op: &Op) -> DotMode {
    match op {
        Op::Inner => DotMode::Products,
        Op::SquaredNorm => DotMode::Squares,
        Op::MeanSquaredError => DotMode::SquaredDifferences,
        other => unreachable!("{} is not a dot product", other.name()),
    }
}

/// A reduction: keep its output.
pub fn cost(inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    Cost::reduction(inputs, out, elem_bytes)
}
