//! BatchNorm's evaluation form, before its affine parameters: `(x - mean) / sqrt(var + eps)`
//! for each column of `x [batch, features]`, with the running statistics `mean` and `var`
//! (`[features]`) in place of the batch's. Evaluation and prediction only, so it has no
//! derivative. GPU: kernels/norm.cu's `standardize_cols_f32`, launched by
//! backend/cuda/ops/norm.rs.

use super::{Cost, Op};
use crate::graph::GraphError;
use crate::tensor::{Element, Shape};
use ndarray::{ArrayD, Axis, Ix1, Ix2};

/// `x [batch, features]` with `mean` and `var` of `[features]` each.
pub fn infer_shape(op: &Op, x: &Shape, mean: &Shape, var: &Shape) -> Result<Shape, GraphError> {
    match x.dims() {
        &[_, features] if mean.dims() == [features] && var.dims() == [features] => Ok(x.clone()),
        _ => Err(GraphError::ShapeMismatch {
            op: op.name(),
            lhs: x.clone(),
            rhs: mean.clone(),
            why: format!("a [batch, features] input needs a mean and a variance of [features], got {mean} and {var}"),
        }),
    }
}

pub fn forward<T: Element>(eps: f64, x: &ArrayD<T>, mean: &ArrayD<T>, var: &ArrayD<T>) -> ArrayD<T> {
    let x = x.view().into_dimensionality::<Ix2>().expect("checked when traced");
    let mean = mean.view().into_dimensionality::<Ix1>().expect("checked when traced");
    let var = var.view().into_dimensionality::<Ix1>().expect("checked when traced");
    let eps = T::from_f64(eps);
    let scale: Vec<T> = var.iter().map(|&v| T::one() / (v + eps).sqrt()).collect();
    let mut out = x.to_owned();
    for mut row in out.axis_iter_mut(Axis(0)) {
        for ((o, &m), &r) in row.iter_mut().zip(mean.iter()).zip(&scale) {
            *o = (*o - m) * r;
        }
    }
    out.into_dyn()
}

/// One pass, memory-bound.
pub fn cost(inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    Cost::elementwise(2, inputs, out, elem_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};

    #[test]
    fn columns_are_standardized_by_the_statistics_given() {
        let x = arr2(&[[1.0f64, 10.0], [3.0, 6.0]]).into_dyn();
        let y = forward(0.0, &x, &arr1(&[2.0, 8.0]).into_dyn(), &arr1(&[1.0, 4.0]).into_dyn());
        assert_eq!(y, arr2(&[[-1.0, 1.0], [1.0, -1.0]]).into_dyn());
    }
}
