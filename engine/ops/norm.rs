//! Normalizations as PyTorch's LayerNorm, RMSNorm and BatchNorm1d (in training) compute them
//! before their affine parameters (which are a product and a sum of their own):
//! `Op::Normalize` and its derivative `Op::NormalizeGrad`, side by side.
//!
//! - LayerNorm: `y = (x - mean) / sqrt(var + eps)` over each row, with the biased variance.
//! - RMSNorm: `y = x / sqrt(mean(x²) + eps)` over each row.
//! - BatchNorm (training): LayerNorm's arithmetic over each column of `[batch, features]`,
//!   the batch's statistics; its running statistics are ops of their own (nn/norm_layer.rs),
//!   and its evaluation form is `Op::Standardize` (ops/standardize.rs).
//!
//! The Jacobians are symmetric (LayerNorm's is `r·(I - 11ᵀ/n - ŷŷᵀ/n)`, RMSNorm's
//! `r·(I - yyᵀ/n)`, with `r` the row's reciprocal scale), so one derivative op, reading the
//! input and a vector, serves the VJP and the JVP; it recomputes the statistics from the
//! input, so backward keeps the input alone. GPU: kernels/norm.cu, launched by
//! backend/cuda/ops/norm.rs (a block per row; a thread per column for BatchNorm).

use super::{Cost, Op};
use crate::graph::{Graph, GraphError, NodeId};
use crate::kernels::NormKind;
use crate::tensor::{Element, Shape};
use ndarray::ArrayD;
use rayon::prelude::*;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Norm {
    Layer,
    Rms,
    /// Over the batch (axis 0) of a `[batch, features]` tensor.
    Batch,
}

/// PyTorch's default `eps` for LayerNorm and BatchNorm.
pub const DEFAULT_EPS: f64 = 1e-5;

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::Layer => "layer_norm",
            Norm::Rms => "rms_norm",
            Norm::Batch => "batch_norm",
        }
    }

    /// PyTorch's default `eps`: 1e-5 for LayerNorm and BatchNorm; for RMSNorm (`eps=None`)
    /// the machine epsilon of the input's dtype, which is f32 here (norms run in f32 in
    /// every step).
    pub fn default_eps(self) -> f64 {
        match self {
            Norm::Layer | Norm::Batch => DEFAULT_EPS,
            Norm::Rms => f32::EPSILON as f64,
        }
    }

    /// The GPU kernels' code for this normalization: BatchNorm centers its columns as
    /// LayerNorm centers its rows.
    pub fn kernel(self) -> NormKind {
        match self {
            Norm::Layer | Norm::Batch => NormKind::Layer,
            Norm::Rms => NormKind::Rms,
        }
    }

    /// The centering arithmetic, LayerNorm's or RMSNorm's.
    fn centers(self) -> bool {
        self != Norm::Rms
    }
}

/// One row's statistics: the value subtracted (the mean, or 0 for RMSNorm) and the
/// reciprocal scale `1 / sqrt(var + eps)` (or of `mean(x²) + eps`).
fn row_stats<T: Element>(norm: Norm, row: &[T], eps: T) -> (T, T) {
    let n = T::from_f64(row.len() as f64);
    let center = match norm.centers() {
        true => row.iter().copied().sum::<T>() / n,
        false => T::zero(),
    };
    // Two passes for LayerNorm: the centered squares, not E[x²] - E[x]², which cancels.
    let spread = row.iter().map(|&v| (v - center) * (v - center)).sum::<T>() / n;
    (center, T::one() / (spread + eps).sqrt())
}

/// Applies `f(x_row, other_row, out_row)` to each row of the last axis of `x` (and of
/// `other`, of the same shape), in parallel when the tensor is large.
fn by_rows<T: Element>(
    x: &ArrayD<T>,
    other: Option<&ArrayD<T>>,
    f: impl Fn(&[T], &[T], &mut [T]) + Sync + Send,
) -> ArrayD<T> {
    let x = x.as_standard_layout();
    let other = other.map(|o| o.as_standard_layout());
    let cols = x.shape().last().copied().unwrap_or(1).max(1);
    let xs = x.as_slice().expect("standard layout");
    let os = other.as_ref().map(|o| o.as_slice().expect("standard layout"));
    let mut out = vec![T::zero(); xs.len()];
    let run = |(r, o): (usize, &mut [T])| {
        let rows = r * cols..(r + 1) * cols;
        f(&xs[rows.clone()], os.map_or(&[][..], |s| &s[rows]), o)
    };
    if xs.len() >= super::cpu_map::PARALLEL_MIN_ELEMENTS {
        out.par_chunks_mut(cols).enumerate().for_each(run);
    } else {
        out.chunks_mut(cols).enumerate().for_each(run);
    }
    ArrayD::from_shape_vec(x.shape(), out).expect("same length as the input")
}

/// Runs a row rule on the columns of a `[batch, features]` tensor (BatchNorm's), by
/// running it on the rows of the transpose.
fn on_lines<T: Element>(
    norm: Norm,
    x: &ArrayD<T>,
    other: Option<&ArrayD<T>>,
    rule: impl Fn(&ArrayD<T>, Option<&ArrayD<T>>) -> ArrayD<T>,
) -> ArrayD<T> {
    if norm != Norm::Batch {
        return rule(x, other);
    }
    let t = |a: &ArrayD<T>| a.t().as_standard_layout().into_owned();
    let out = rule(&t(x), other.map(t).as_ref());
    out.t().as_standard_layout().into_owned()
}

pub fn forward<T: Element>(norm: Norm, eps: f64, x: &ArrayD<T>) -> ArrayD<T> {
    on_lines(norm, x, None, |x, _| normalize_rows(norm, eps, x))
}

fn normalize_rows<T: Element>(norm: Norm, eps: f64, x: &ArrayD<T>) -> ArrayD<T> {
    let eps = T::from_f64(eps);
    by_rows(x, None, |row, _, out| {
        let (center, r) = row_stats(norm, row, eps);
        for (o, &v) in out.iter_mut().zip(row) {
            *o = (v - center) * r;
        }
    })
}

/// The Jacobian of the normalization at `x` applied to `v` (a gradient or a tangent).
pub fn grad<T: Element>(norm: Norm, eps: f64, x: &ArrayD<T>, v: &ArrayD<T>) -> ArrayD<T> {
    on_lines(norm, x, Some(v), |x, v| grad_rows(norm, eps, x, v.expect("a vector")))
}

fn grad_rows<T: Element>(norm: Norm, eps: f64, x: &ArrayD<T>, v: &ArrayD<T>) -> ArrayD<T> {
    let eps = T::from_f64(eps);
    by_rows(x, Some(v), |row, v, out| {
        let n = T::from_f64(row.len() as f64);
        let (center, r) = row_stats(norm, row, eps);
        let y = |v: T| (v - center) * r;
        let mean_v = match norm.centers() {
            true => v.iter().copied().sum::<T>() / n,
            false => T::zero(),
        };
        let mean_vy = row.iter().zip(v).map(|(&x, &g)| g * y(x)).sum::<T>() / n;
        for ((o, &x), &g) in out.iter_mut().zip(row).zip(v) {
            *o = r * (g - mean_v - y(x) * mean_vy);
        }
    })
}

/// A normalization keeps its input's shape. A row normalization needs a last axis to
/// normalize over; BatchNorm a `[batch, features]` tensor of more than one row, as PyTorch
/// requires in training (one row has no variance, and would normalize to zeros).
pub fn infer_shape(op: &Op, x: &Shape) -> Result<Shape, GraphError> {
    if let Op::Normalize { norm: Norm::Batch, .. } | Op::NormalizeGrad { norm: Norm::Batch, .. } = op {
        return match *x.dims() {
            [rows, _] if rows > 1 => Ok(x.clone()),
            [rows, _] => Err(GraphError::Invalid(format!(
                "BatchNorm in training needs more than 1 row a batch (its statistics are the batch's), and this batch has {rows}"
            ))),
            _ => Err(GraphError::Invalid(format!(
                "BatchNorm normalizes the columns of a [batch, features] tensor, and {x:?} is not one"
            ))),
        };
    }
    match x.dims().last() {
        Some(&n) if n > 0 => Ok(x.clone()),
        _ => Err(GraphError::Invalid(format!(
            "{} normalizes over the last axis, and {x:?} has none to normalize",
            op.name()
        ))),
    }
}

/// `NormalizeGrad` on the input and the upstream gradient.
pub fn vjp(graph: &mut Graph, norm: Norm, eps: f64, x: NodeId, grad: NodeId) -> Result<NodeId, GraphError> {
    graph.push(Op::NormalizeGrad { norm, eps }, &[x, grad])
}

/// The same Jacobian applied to the tangent (it is symmetric).
pub fn jvp(graph: &mut Graph, norm: Norm, eps: f64, x: NodeId, tangent: NodeId) -> Result<NodeId, GraphError> {
    graph.push(Op::NormalizeGrad { norm, eps }, &[x, tangent])
}

/// A few passes over each row, memory-bound: cheap to recompute next to the products
/// around it (the classic advice: throw away norms and activations, keep products).
pub fn cost(grad: bool, inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    Cost::elementwise(if grad { 10 } else { 6 }, inputs, out, elem_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr2;

    #[test]
    fn rows_come_out_as_pytorch_computes_them() {
        let x = arr2(&[[1.0f64, 2.0, 3.0], [-4.0, 0.0, 4.0]]).into_dyn();
        // torch.nn.functional.layer_norm(x, (3,), eps=0): ±sqrt(3/2) around 0.
        let y = forward(Norm::Layer, 0.0, &x);
        let s = 1.5f64.sqrt();
        for (got, want) in y.iter().zip([-s, 0.0, s, -s, 0.0, s]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        // RMSNorm of [1, 2, 3]: each over sqrt(14/3).
        let y = forward(Norm::Rms, 0.0, &x);
        let rms = (14.0f64 / 3.0).sqrt();
        assert!((y[[0, 2]] - 3.0 / rms).abs() < 1e-12);
    }

    #[test]
    fn batch_norm_normalizes_columns_as_layer_norm_normalizes_rows() {
        let x = arr2(&[[1.0f64, -4.0], [2.0, 0.0], [3.0, 4.0]]).into_dyn();
        let by_columns = forward(Norm::Batch, 1e-5, &x);
        let by_rows = forward(Norm::Layer, 1e-5, &x.t().to_owned());
        assert_eq!(by_columns, by_rows.t());
        let v = arr2(&[[0.5f64, 1.0], [-2.0, 3.0], [1.5, -1.0]]).into_dyn();
        assert_eq!(
            grad(Norm::Batch, 1e-5, &x, &v),
            grad(Norm::Layer, 1e-5, &x.t().to_owned(), &v.t().to_owned()).t()
        );
    }

    #[test]
    fn batch_norm_refuses_a_batch_of_one_row() {
        let op = Op::Normalize {
            norm: Norm::Batch,
            eps: 1e-5,
        };
        assert!(infer_shape(&op, &Shape::new(&[1, 4])).is_err());
        assert!(infer_shape(&op, &Shape::new(&[4])).is_err());
        assert!(infer_shape(&op, &Shape::new(&[2, 4])).is_ok());
    }

    #[test]
    fn a_constant_row_normalizes_to_zero_and_passes_no_gradient() {
        let x = arr2(&[[5.0f32; 4]]).into_dyn();
        assert!(forward(Norm::Layer, 1e-5, &x).iter().all(|&v| v == 0.0));
        let g = arr2(&[[1.0f32, -2.0, 3.0, 0.5]]).into_dyn();
        let dx = grad(Norm::Layer, 1e-5, &x, &g);
        // The gradient sums to zero along the row (shifting x changes nothing).
        assert!(dx.sum().abs() < 1e-3, "{dx}");
    }
}
