//! add, sub, mul (with NumPy broadcasting), scale and neg. GPU: kernels/arith.cu, launched
//! by backend/cuda/ops/arith.rs with the code [`binary_kernel`] names.

use super::cpu_map as cpu;
use super::{Cost, Op};
use crate::graph::{Graph, GraphError, NodeId};
use crate::kernels::BinaryOp;
use crate::tensor::{Element, Shape};
use ndarray::ArrayD;

/// NumPy broadcasting: shapes align on the right; each pair of dims is equal or one is 1.
pub fn broadcast_shape(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape, GraphError> {
    let rank = a.rank().max(b.rank());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = dim_from_right(a, rank - 1 - i);
        let db = dim_from_right(b, rank - 1 - i);
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(GraphError::ShapeMismatch {
                    op,
                    lhs: a.clone(),
                    rhs: b.clone(),
                    why: "not broadcastable".into(),
                })
            }
        };
    }
    Ok(Shape(out))
}

fn dim_from_right(s: &Shape, k: usize) -> usize {
    if k < s.rank() {
        s.dims()[s.rank() - 1 - k]
    } else {
        1
    }
}

pub fn same_shape(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape, GraphError> {
    if a == b {
        Ok(a.clone())
    } else {
        Err(GraphError::ShapeMismatch {
            op,
            lhs: a.clone(),
            rhs: b.clone(),
            why: "shapes must be equal".into(),
        })
    }
}

pub fn binary_forward<T: Element>(op: &Op, a: &ArrayD<T>, b: &ArrayD<T>, out: &Shape) -> ArrayD<T> {
    let av = a.broadcast(out.dims()).expect("broadcast checked when traced");
    let bv = b.broadcast(out.dims()).expect("broadcast checked when traced");
    match op {
        Op::Add => cpu::zip_map(av, bv, |x, y| x + y),
        Op::Sub => cpu::zip_map(av, bv, |x, y| x - y),
        Op::Mul => cpu::zip_map(av, bv, |x, y| x * y),
        _ => unreachable!("not a binary op"),
    }
}

pub fn scale_forward<T: Element>(a: &ArrayD<T>, s: T) -> ArrayD<T> {
    cpu::map(a, |x| x * s)
}

/// Sums a gradient of the broadcast output shape back to an input's shape.
pub fn unbroadcast(graph: &mut Graph, grad: NodeId, to: &Shape) -> Result<NodeId, GraphError> {
    if graph.shape(grad) == to {
        Ok(grad)
    } else {
        graph.push(
            Op::SumTo {
                axis: None,
                shape: to.clone(),
            },
            &[grad],
        )
    }
}

pub fn binary_vjp(
    graph: &mut Graph,
    op: &Op,
    a: NodeId,
    b: NodeId,
    grad: NodeId,
    wants: &[bool],
) -> Result<Vec<Option<NodeId>>, GraphError> {
    let (sa, sb) = (graph.shape(a).clone(), graph.shape(b).clone());
    let mut out = vec![None, None];
    if wants[0] {
        let ga = match op {
            Op::Mul => graph.push(Op::Mul, &[grad, b])?,
            _ => grad,
        };
        out[0] = Some(unbroadcast(graph, ga, &sa)?);
    }
    if wants[1] {
        let gb = match op {
            Op::Add => grad,
            Op::Sub => graph.push(Op::Neg, &[grad])?,
            Op::Mul => graph.push(Op::Mul, &[grad, a])?,
            _ => unreachable!("not a binary op"),
        };
        out[1] = Some(unbroadcast(graph, gb, &sb)?);
    }
    Ok(out)
}

/// Broadcasts a tangent of an input up to the output's shape.
fn to_output_shape(graph: &mut Graph, t: NodeId, out: &Shape) -> Result<NodeId, GraphError> {
    if graph.shape(t) == out {
        Ok(t)
    } else {
        graph.push(
            Op::Broadcast {
                axis: None,
                shape: out.clone(),
            },
            &[t],
        )
    }
}

pub fn binary_jvp(
    graph: &mut Graph,
    op: &Op,
    node: NodeId,
    a: NodeId,
    b: NodeId,
    t: &[Option<NodeId>],
) -> Result<NodeId, GraphError> {
    let out = graph.shape(node).clone();
    let ta = match (op, t[0]) {
        (Op::Mul, Some(ta)) => Some(graph.push(Op::Mul, &[ta, b])?),
        (_, ta) => ta,
    };
    let tb = match (op, t[1]) {
        (Op::Mul, Some(tb)) => Some(graph.push(Op::Mul, &[a, tb])?),
        (Op::Sub, Some(tb)) => Some(graph.push(Op::Neg, &[tb])?),
        (_, tb) => tb,
    };
    let sum = match (ta, tb) {
        (Some(x), Some(y)) => graph.push(Op::Add, &[x, y])?,
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => unreachable!("jvp is only called with a tangent"),
    };
    to_output_shape(graph, sum, &out)
}

/// The GPU's binary kernel code for `Add`, `Sub` or `Mul`.
pub fn binary_kernel(op: &Op) -> BinaryOp {
    match op {
        Op::Add => BinaryOp::Add,
        Op::Sub => BinaryOp::Sub,
        Op::Mul => BinaryOp::Mul,
        other => unreachable!("{} is not a binary op", other.name()),
    }
}

/// The VJP of a scaling (`Scale(s)` or `Neg`): the same scaling of the gradient.
pub fn scale_vjp(graph: &mut Graph, op: &Op, grad: NodeId) -> Result<NodeId, GraphError> {
    graph.push(op.clone(), &[grad])
}

/// One flop per element, memory-bound: cheap to recompute.
pub fn cost(inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    Cost::elementwise(1, inputs, out, elem_bytes)
}
