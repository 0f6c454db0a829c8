//! The CPU kernels' shared machinery (every op family's CPU rule uses it): elementwise maps that go parallel (rayon) once a
//! tensor is large enough to pay for the fork.

use crate::tensor::Element;
use ndarray::{ArrayD, ArrayViewD, Zip};
use rayon::prelude::*;

/// Below this many elements a parallel map costs more than it saves.
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 20;

pub fn map<T: Element>(a: &ArrayD<T>, f: impl Fn(T) -> T + Sync + Send) -> ArrayD<T> {
    if a.len() >= PARALLEL_MIN_ELEMENTS {
        Zip::from(a).par_map_collect(|&x| f(x))
    } else {
        a.mapv(f)
    }
}

/// `f(a, b)` elementwise over two views of one shape (either may be a broadcast view).
pub fn zip_map<T: Element>(a: ArrayViewD<T>, b: ArrayViewD<T>, f: impl Fn(T, T) -> T + Sync + Send) -> ArrayD<T> {
    if a.len() >= PARALLEL_MIN_ELEMENTS {
        Zip::from(&a).and(&b).par_map_collect(|&x, &y| f(x, y))
    } else {
        Zip::from(&a).and(&b).map_collect(|&x, &y| f(x, y))
    }
}

/// `f(flat_index, a)` elementwise, for kernels keyed by element position (dropout).
pub fn map_indexed<T: Element>(a: &ArrayD<T>, f: impl Fn(u64, T) -> T + Sync + Send) -> ArrayD<T> {
    let a = a.as_standard_layout();
    let src = a.as_slice().expect("standard layout is contiguous");
    let data: Vec<T> = if src.len() >= PARALLEL_MIN_ELEMENTS {
        src.par_iter().enumerate().map(|(i, &x)| f(i as u64, x)).collect()
    } else {
        src.iter().enumerate().map(|(i, &x)| f(i as u64, x)).collect()
    };
    ArrayD::from_shape_vec(a.shape(), data).expect("same length as the input")
}

/// `y = relu?(y + bias)` in place, `bias` one value per column of the 2-d `y`: the tail of a
/// fused Linear layer, the same arithmetic as the unfused add and ReLU (bit for bit).
pub fn add_bias_in_place<T: Element>(y: &mut ArrayD<T>, bias: &ArrayD<T>, relu: bool) {
    let zero = T::zero();
    let bias = bias
        .view()
        .into_dimensionality::<ndarray::Ix1>()
        .expect("a bias vector");
    let mut rows = y
        .view_mut()
        .into_dimensionality::<ndarray::Ix2>()
        .expect("a 2-d product");
    let row = |mut r: ndarray::ArrayViewMut1<T>| {
        Zip::from(&mut r).and(&bias).for_each(|v, &b| {
            let z = *v + b;
            *v = if !relu || z > zero || z.is_nan() { z } else { zero };
        })
    };
    if rows.len() >= PARALLEL_MIN_ELEMENTS {
        rows.axis_iter_mut(ndarray::Axis(0)).into_par_iter().for_each(row);
    } else {
        rows.axis_iter_mut(ndarray::Axis(0)).for_each(row);
    }
}

/// Sum of every element, in a fixed order so results are reproducible.
pub fn sum_all<T: Element>(a: &ArrayD<T>) -> T {
    a.iter().fold(T::zero(), |acc, &x| acc + x)
}
