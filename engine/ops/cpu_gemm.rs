//! The CPU's matrix products, through the `gemm` crate: AVX-512 kernels on CPUs that have
//! it and AVX2 (or plain) ones elsewhere, chosen at run time, so one binary serves them
//! all; threads from rayon's one pool (the one `--threads` sizes). matrixmultiply, before
//! it, had no AVX-512 kernels and kept threads of its own.
//!
//! Results do not depend on the thread count: threads split the output into blocks, and
//! every element's sum over the inner dimension runs in one thread, in the same order, at
//! any count. They may depend on the instruction set, which sets the kernels' blocking of
//! that sum (a requeued job on another CPU can differ in the last bits).

use crate::tensor::Element;
use ndarray::{Array2, ArrayView2};

/// `a · b` (any strides: a transpose is a view), as a new row-major matrix.
pub fn product<T: Element>(a: &ArrayView2<'_, T>, b: &ArrayView2<'_, T>) -> Array2<T> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let mut c = Array2::<T>::zeros((m, n));
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    let (a_strides, b_strides) = (a.strides(), b.strides());
    let threads = rayon::current_num_threads();
    let parallelism = match threads {
        1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    // SAFETY: the pointers and strides are those of live ndarray views of the shapes given
    // (c: m×n row-major, a: m×k, b: k×n); `c` is written only, alone, by this call.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_strides[1],
            a_strides[0],
            b.as_ptr(),
            b_strides[1],
            b_strides[0],
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::KeyedRng;

    fn random(rng: &mut KeyedRng, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || rng.uniform() as f32 - 0.5)
    }

    #[test]
    fn products_of_any_shape_and_transpose_match_an_f64_sum() {
        let mut rng = KeyedRng::new(3, 3);
        for &(m, k, n) in &[(1, 1, 1), (3, 17, 5), (65, 1, 33), (17, 130, 9), (128, 64, 200)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = if ta {
                    random(&mut rng, k, m)
                } else {
                    random(&mut rng, m, k)
                };
                let b = if tb {
                    random(&mut rng, n, k)
                } else {
                    random(&mut rng, k, n)
                };
                let (av, bv) = (
                    if ta { a.view().reversed_axes() } else { a.view() },
                    if tb { b.view().reversed_axes() } else { b.view() },
                );
                let c = product(&av, &bv);
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k).map(|l| f64::from(av[[i, l]]) * f64::from(bv[[l, j]])).sum();
                        let err = (f64::from(c[[i, j]]) - want).abs();
                        assert!(err <= 1e-5 * (k as f64).sqrt().max(1.0), "{m}x{k}x{n} {ta} {tb}: {err}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_thread_count_does_not_change_a_bit() {
        let mut rng = KeyedRng::new(4, 4);
        let (a, b) = (random(&mut rng, 300, 500), random(&mut rng, 500, 200));
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| product(&a.view(), &b.view().reversed_axes().reversed_axes()))
        };
        let one = on(1);
        for threads in [2, 3, 8] {
            assert!(on(threads) == one, "{threads} threads changed the product");
        }
    }
}
