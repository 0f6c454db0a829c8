//! sum and mean (over everything or one axis) and their adjoints: broadcast and sum_to.
//! GPU: kernels/reduce.cu, launched by backend/cuda/ops/reduce.rs.

use super::arith::broadcast_shape;
use super::cpu_map as cpu;
use super::{Cost, Op};
use crate::graph::{Graph, GraphError, NodeId};
use crate::tensor::{Element, Shape};
use ndarray::{ArrayD, Axis, IxDyn};

pub fn reduced_shape(op: &'static str, s: &Shape, axis: Option<usize>) -> Result<Shape, GraphError> {
    match axis {
        None => Ok(Shape::scalar()),
        Some(a) if a < s.rank() => {
            let mut d = s.0.clone();
            d.remove(a);
            Ok(Shape(d))
        }
        Some(a) => Err(GraphError::BadShape {
            op,
            shape: s.clone(),
            why: format!("axis {a} out of range"),
        }),
    }
}

pub fn expect_scalar(op: &'static str, s: &Shape) -> Result<(), GraphError> {
    if s.is_scalar() {
        Ok(())
    } else {
        Err(GraphError::BadShape {
            op,
            shape: s.clone(),
            why: "expected a scalar".into(),
        })
    }
}

fn with_unit_axis(op: &'static str, s: &Shape, axis: Option<usize>) -> Result<Shape, GraphError> {
    match axis {
        None => Ok(s.clone()),
        Some(a) if a <= s.rank() => {
            let mut d = s.0.clone();
            d.insert(a, 1);
            Ok(Shape(d))
        }
        Some(a) => Err(GraphError::BadShape {
            op,
            shape: s.clone(),
            why: format!("axis {a} out of range"),
        }),
    }
}

pub fn check_broadcast(input: &Shape, axis: Option<usize>, shape: &Shape) -> Result<Shape, GraphError> {
    let from = with_unit_axis("broadcast", input, axis)?;
    if from.rank() <= shape.rank() && broadcast_shape("broadcast", &from, shape)? == *shape {
        Ok(shape.clone())
    } else {
        Err(GraphError::ShapeMismatch {
            op: "broadcast",
            lhs: input.clone(),
            rhs: shape.clone(),
            why: "cannot broadcast".into(),
        })
    }
}

pub fn check_sum_to(input: &Shape, axis: Option<usize>, shape: &Shape) -> Result<Shape, GraphError> {
    let to = with_unit_axis("sum_to", shape, axis)?;
    if to.rank() <= input.rank() && broadcast_shape("sum_to", &to, input)? == *input {
        Ok(shape.clone())
    } else {
        Err(GraphError::ShapeMismatch {
            op: "sum_to",
            lhs: input.clone(),
            rhs: shape.clone(),
            why: "the target does not broadcast to the input".into(),
        })
    }
}

pub fn sum_forward<T: Element>(a: &ArrayD<T>, axis: Option<usize>, mean: bool) -> ArrayD<T> {
    match axis {
        None => {
            let mut s = cpu::sum_all(a);
            if mean {
                s = s / T::from_f64(a.len() as f64);
            }
            ArrayD::from_elem(IxDyn(&[]), s)
        }
        Some(ax) => {
            let mut s = a.sum_axis(Axis(ax));
            if mean {
                let n = T::from_f64(a.shape()[ax] as f64);
                s.mapv_inplace(|x| x / n);
            }
            s
        }
    }
}

pub fn broadcast_forward<T: Element>(a: &ArrayD<T>, axis: Option<usize>, shape: &Shape) -> ArrayD<T> {
    let mut v = a.view();
    if let Some(ax) = axis {
        v = v.insert_axis(Axis(ax));
    }
    v.broadcast(shape.dims()).expect("checked when traced").to_owned()
}

pub fn sum_to_forward<T: Element>(a: &ArrayD<T>, axis: Option<usize>, shape: &Shape) -> ArrayD<T> {
    let target = with_unit_axis("sum_to", shape, axis).expect("checked when traced");
    let lead = a.ndim() - target.rank();
    let mut r = if lead > 0 { a.sum_axis(Axis(0)) } else { a.clone() };
    for _ in 1..lead {
        r = r.sum_axis(Axis(0));
    }
    for (i, &d) in target.dims().iter().enumerate() {
        if d == 1 && r.shape()[i] != 1 {
            r = r.sum_axis(Axis(i)).insert_axis(Axis(i));
        }
    }
    if let Some(ax) = axis {
        r = r.remove_axis(Axis(ax));
    }
    r
}

/// The adjoint of a sum broadcasts the upstream gradient back over the summed axis.
pub fn sum_vjp(
    graph: &mut Graph,
    x: NodeId,
    axis: Option<usize>,
    mean: bool,
    grad: NodeId,
) -> Result<NodeId, GraphError> {
    let shape = graph.shape(x).clone();
    let g = if mean {
        let n = match axis {
            None => shape.numel(),
            Some(a) => shape.dims()[a],
        };
        graph.push(Op::Scale(1.0 / n as f64), &[grad])?
    } else {
        grad
    };
    graph.push(Op::Broadcast { axis, shape }, &[g])
}

/// The VJP of `Broadcast { axis }` from `x`: sum the gradient back to `x`'s shape.
pub fn broadcast_vjp(graph: &mut Graph, axis: Option<usize>, x: NodeId, grad: NodeId) -> Result<NodeId, GraphError> {
    let shape = graph.shape(x).clone();
    graph.push(Op::SumTo { axis, shape }, &[grad])
}

/// The VJP of `SumTo { axis }` from `x`: broadcast the gradient back to `x`'s shape.
pub fn sum_to_vjp(graph: &mut Graph, axis: Option<usize>, x: NodeId, grad: NodeId) -> Result<NodeId, GraphError> {
    let shape = graph.shape(x).clone();
    graph.push(Op::Broadcast { axis, shape }, &[grad])
}

/// Sums read far more than they write: keep their outputs. A broadcast is a cheap copy.
pub fn cost(op: &Op, inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    match op {
        Op::Broadcast { .. } => Cost::elementwise(1, inputs, out, elem_bytes),
        _ => Cost::reduction(inputs, out, elem_bytes),
    }
}
