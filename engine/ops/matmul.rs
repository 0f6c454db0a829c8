//! Matrix product `op(a) · op(b)`, where `op` optionally transposes. Transposes are
//! strided views, never copies: the CPU's kernels take any strides (cpu_gemm.rs). GPU: cuBLAS, or
//! cuBLASLt for a fused Linear layer (backend/cuda/blas.rs, lt.rs).

use super::{Cost, Op, RecomputeClass};
use crate::graph::{Graph, GraphError, NodeId};
use crate::tensor::{Element, Shape};
use ndarray::{ArrayD, ArrayView2, Ix2};

fn rows_cols(s: &Shape, trans: bool) -> Option<(usize, usize)> {
    match *s.dims() {
        [r, c] if trans => Some((c, r)),
        [r, c] => Some((r, c)),
        _ => None,
    }
}

pub fn infer_shape(trans_a: bool, trans_b: bool, a: &Shape, b: &Shape) -> Result<Shape, GraphError> {
    let mismatch = |why: &str| GraphError::ShapeMismatch {
        op: "matmul",
        lhs: a.clone(),
        rhs: b.clone(),
        why: why.to_string(),
    };
    let (m, k1) = rows_cols(a, trans_a).ok_or_else(|| mismatch("both operands must be matrices"))?;
    let (k2, n) = rows_cols(b, trans_b).ok_or_else(|| mismatch("both operands must be matrices"))?;
    if k1 != k2 {
        let why = format!("inner dimensions differ: {k1} vs {k2} (transposed: a {trans_a}, b {trans_b})");
        return Err(mismatch(&why));
    }
    Ok(Shape(vec![m, n]))
}

fn view2<T: Element>(a: &ArrayD<T>, trans: bool) -> ArrayView2<'_, T> {
    let v = a.view().into_dimensionality::<Ix2>().expect("rank checked when traced");
    if trans {
        v.reversed_axes()
    } else {
        v
    }
}

pub fn forward<T: Element>(a: &ArrayD<T>, b: &ArrayD<T>, trans_a: bool, trans_b: bool) -> ArrayD<T> {
    let (av, bv) = (view2(a, trans_a), view2(b, trans_b));
    super::cpu_gemm::product(&av, &bv).into_dyn()
}

/// With `C = op(A)·op(B)` and upstream `G`: `d op(A) = G·op(B)ᵀ`, `d op(B) = op(A)ᵀ·G`,
/// each written as one matmul with the transposes folded into its flags.
pub fn vjp(
    graph: &mut Graph,
    a: NodeId,
    b: NodeId,
    trans_a: bool,
    trans_b: bool,
    g: NodeId,
    wants: &[bool],
) -> Result<Vec<Option<NodeId>>, GraphError> {
    let mm = |ta, tb| Op::MatMul {
        trans_a: ta,
        trans_b: tb,
    };
    let ga = if !wants[0] {
        None
    } else if trans_a {
        Some(graph.push(mm(trans_b, true), &[b, g])?)
    } else {
        Some(graph.push(mm(false, !trans_b), &[g, b])?)
    };
    let gb = if !wants[1] {
        None
    } else if trans_b {
        Some(graph.push(mm(true, trans_a), &[g, a])?)
    } else {
        Some(graph.push(mm(!trans_a, false), &[a, g])?)
    };
    Ok(vec![ga, gb])
}

/// `d(op(A)·op(B)) = op(dA)·op(B) + op(A)·op(dB)`.
pub fn jvp(
    graph: &mut Graph,
    a: NodeId,
    b: NodeId,
    trans_a: bool,
    trans_b: bool,
    t: &[Option<NodeId>],
) -> Result<NodeId, GraphError> {
    let op = Op::MatMul { trans_a, trans_b };
    let left = t[0].map(|ta| graph.push(op.clone(), &[ta, b])).transpose()?;
    let right = t[1].map(|tb| graph.push(op.clone(), &[a, tb])).transpose()?;
    match (left, right) {
        (Some(l), Some(r)) => graph.push(Op::Add, &[l, r]),
        (Some(x), None) | (None, Some(x)) => Ok(x),
        (None, None) => unreachable!("jvp is only called with a tangent"),
    }
}

pub fn cost(trans_a: bool, a: &Shape, out: &Shape, elem_bytes: u64) -> Cost {
    let (m, k) = rows_cols(a, trans_a).unwrap_or((0, 0));
    let n = out.dims().get(1).copied().unwrap_or(0);
    let (m, k, n) = (m as u64, k as u64, n as u64);
    Cost {
        flops: 2 * m * k * n,
        bytes_moved: (m * k + k * n + m * n) * elem_bytes,
        output_bytes: m * n * elem_bytes,
        recompute: RecomputeClass::Expensive,
    }
}
