//! Losses: fused, numerically stable softmax cross-entropy with integer labels, and
//! mean squared error. Labels travel as floating-point class indices (exact below 2^24);
//! a label that is not an integer in [0, classes) makes the loss NaN, never a wrong number.
//! GPU: kernels/loss.cu (the mean squared error on kernels/inner.cu's dot kernel), launched
//! by backend/cuda/ops/loss.rs.

use super::{Cost, Op};
use crate::graph::{Graph, GraphError, NodeId};
use crate::tensor::{Element, Shape};
use ndarray::{ArrayD, ArrayView1, Axis, IxDyn};

pub fn xent_shape(logits: &Shape, labels: &Shape) -> Result<(), GraphError> {
    match (logits.dims(), labels.dims()) {
        (&[b, c], &[bl]) if b == bl && c > 0 => Ok(()),
        _ => Err(GraphError::ShapeMismatch {
            op: "softmax_cross_entropy",
            lhs: logits.clone(),
            rhs: labels.clone(),
            why: "expected logits [batch, classes] and labels [batch]".into(),
        }),
    }
}

/// The label as an index, if it is a valid one.
fn class_index<T: Element>(label: T, classes: usize) -> Option<usize> {
    let v = label.to_f64();
    (v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes).then_some(v as usize)
}

/// `(max, log Σ exp(row - max))` of one row.
fn log_sum_exp<T: Element>(row: ArrayView1<T>) -> (T, T) {
    let m = row.iter().fold(T::neg_infinity(), |a, &b| a.max(b));
    let s = row.iter().fold(T::zero(), |acc, &v| acc + (v - m).exp());
    (m, s.ln())
}

pub fn xent_forward<T: Element>(logits: &ArrayD<T>, labels: &ArrayD<T>) -> ArrayD<T> {
    let classes = logits.shape()[1];
    let batch = logits.shape()[0];
    let mut total = T::zero();
    for (row, &label) in logits.axis_iter(Axis(0)).zip(labels.iter()) {
        let Some(y) = class_index(label, classes) else {
            total = T::nan();
            break;
        };
        let (m, lse) = log_sum_exp(row.view().into_dimensionality().expect("rank 2"));
        total = total + (m + lse - row[y]);
    }
    ArrayD::from_elem(IxDyn(&[]), total / T::from_f64(batch as f64))
}

/// How many rows' prediction ([`argmax`]: NaN never wins, a row of nothing but NaN and −∞
/// predicts nothing) is their label, as a scalar.
pub fn count_correct_forward<T: Element>(logits: &ArrayD<T>, labels: &ArrayD<T>) -> ArrayD<T> {
    let classes = logits.shape()[1];
    let correct = logits
        .axis_iter(Axis(0))
        .zip(labels.iter())
        .filter(|(row, &label)| {
            let best = argmax(row.iter().map(|v| v.to_f32().unwrap_or(f32::NAN)));
            best.is_some() && class_index(label, classes) == best
        })
        .count();
    ArrayD::from_elem(IxDyn(&[]), T::from_f64(correct as f64))
}

pub fn xent_grad_forward<T: Element>(logits: &ArrayD<T>, labels: &ArrayD<T>, g: &ArrayD<T>) -> ArrayD<T> {
    let classes = logits.shape()[1];
    let scale = g.iter().next().copied().unwrap_or(T::zero()) / T::from_f64(logits.shape()[0] as f64);
    let mut out = logits.clone();
    for (mut row, &label) in out.axis_iter_mut(Axis(0)).zip(labels.iter()) {
        let y = class_index(label, classes);
        let (m, lse) = log_sum_exp(row.view().into_dimensionality().expect("rank 2"));
        for (c, v) in row.iter_mut().enumerate() {
            let p = (*v - m - lse).exp();
            let onehot = if Some(c) == y { T::one() } else { T::zero() };
            *v = match y {
                Some(_) => (p - onehot) * scale,
                None => T::nan(),
            };
        }
    }
    out
}

/// Labels are not differentiable: only the logits get a gradient.
pub fn xent_vjp(
    graph: &mut Graph,
    logits: NodeId,
    labels: NodeId,
    g: NodeId,
    wants: &[bool],
) -> Result<Vec<Option<NodeId>>, GraphError> {
    let gl = if wants[0] {
        Some(graph.push(Op::SoftmaxCrossEntropyGrad, &[logits, labels, g])?)
    } else {
        None
    };
    Ok(vec![gl, None])
}

pub fn xent_jvp(graph: &mut Graph, logits: NodeId, labels: NodeId, t: &[Option<NodeId>]) -> Result<NodeId, GraphError> {
    match t[0] {
        Some(tl) => {
            let one = graph.fill(1.0, Shape::scalar());
            let d = graph.push(Op::SoftmaxCrossEntropyGrad, &[logits, labels, one])?;
            graph.push(Op::Inner, &[d, tl])
        }
        None => Ok(graph.fill(0.0, Shape::scalar())),
    }
}

pub fn mse_forward<T: Element>(p: &ArrayD<T>, t: &ArrayD<T>) -> ArrayD<T> {
    let s = ndarray::Zip::from(p)
        .and(t)
        .fold(T::zero(), |acc, &a, &b| acc + (a - b) * (a - b));
    ArrayD::from_elem(IxDyn(&[]), s / T::from_f64(p.len() as f64))
}

/// `d/dp = 2(p - t)/N · g`, `d/dt = -d/dp`.
pub fn mse_vjp(
    graph: &mut Graph,
    p: NodeId,
    t: NodeId,
    g: NodeId,
    wants: &[bool],
) -> Result<Vec<Option<NodeId>>, GraphError> {
    let n = graph.shape(p).numel() as f64;
    let diff = graph.push(Op::Sub, &[p, t])?;
    let scaled = graph.push(Op::Scale(2.0 / n), &[diff])?;
    let gp = graph.push(Op::Mul, &[scaled, g])?;
    let gt = if wants[1] {
        Some(graph.push(Op::Neg, &[gp])?)
    } else {
        None
    };
    Ok(vec![wants[0].then_some(gp), gt])
}

pub fn mse_jvp(graph: &mut Graph, p: NodeId, t: NodeId, tan: &[Option<NodeId>]) -> Result<NodeId, GraphError> {
    let n = graph.shape(p).numel() as f64;
    let diff = graph.push(Op::Sub, &[p, t])?;
    let dt = match (tan[0], tan[1]) {
        (Some(a), Some(b)) => graph.push(Op::Sub, &[a, b])?,
        (Some(a), None) => a,
        (None, Some(b)) => graph.push(Op::Neg, &[b])?,
        (None, None) => unreachable!("jvp is only called with a tangent"),
    };
    let i = graph.push(Op::Inner, &[diff, dt])?;
    graph.push(Op::Scale(2.0 / n), &[i])
}

/// The index of the first largest value: a row's predicted class, as the GPU's argmax
/// kernel (kernels/loss.cu) picks it. NaN never wins; `None` when nothing does (every value
/// NaN or −∞) or when the largest is +∞: a diverged or overflowed model's output, which
/// predicts no class and is never counted right.
pub fn argmax(values: impl Iterator<Item = f32>) -> Option<usize> {
    // A strict `>` against the best so far (−∞ before any): NaN compares false, so never wins.
    let mut best: Option<(usize, f32)> = None;
    for (i, v) in values.enumerate() {
        if v > best.map_or(f32::NEG_INFINITY, |(_, top)| top) {
            best = Some((i, v));
        }
    }
    best.filter(|(_, top)| top.is_finite()).map(|(i, _)| i)
}

/// Cross-entropy and its gradient read every logit a few times: keep their outputs.
pub fn xent_cost(inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    Cost {
        flops: 5 * inputs[0].numel() as u64,
        ..Cost::reduction(inputs, out, elem_bytes)
    }
}

/// A reduction: keep its output.
pub fn mse_cost(inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    Cost::reduction(inputs, out, elem_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_of_nan_and_negative_infinity_predicts_no_class_and_is_never_counted_right() {
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        assert_eq!(argmax([1.0, 3.0, 3.0].into_iter()), Some(1));
        assert_eq!(argmax([nan, -1.0, nan].into_iter()), Some(1));
        assert_eq!(argmax([-inf, 2.0].into_iter()), Some(1));
        assert_eq!(argmax([0.0, inf, 0.0].into_iter()), None);
        assert_eq!(argmax([inf, inf, inf].into_iter()), None);
        assert_eq!(argmax([nan, nan].into_iter()), None);
        assert_eq!(argmax([-inf, nan, -inf].into_iter()), None);
        // Label 0 with NaN logits used to count as right (argmax fell back to class 0).
        let logits = ndarray::arr2(&[[nan, nan, nan], [0.0, 2.0, 1.0], [-inf, -inf, -inf], [inf, inf, inf]]).into_dyn();
        let labels = ndarray::arr1(&[0.0f32, 1.0, 0.0, 0.0]).into_dyn();
        assert_eq!(count_correct_forward(&logits, &labels).sum(), 1.0);
    }
}
