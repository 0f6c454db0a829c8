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
use rayon::prelude::*;

/// `a · b` (any strides: a transpose is a view), as a new row-major matrix.
pub fn product<T: Element>(a: &ArrayView2<'_, T>, b: &ArrayView2<'_, T>) -> Array2<T> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    if m == 0 || n == 0 || k == 0 {
        return Array2::<T>::zeros((m, n));
    }
    // `gemm` computes a row-major product as its transpose, packing `b` as the left operand;
    // from a column-major `b` (a Linear's `x · Wᵀ`) that packing gathers, rows a power of
    // two apart: 1024x1024 ran at 55% of the other products' rate. Tiled copies cost a pass
    // over what they copy and are repaid from a few dozen rows on: copy `b` into rows, or,
    // when that moves fewer elements, compute `(bᵀ · aᵀ)ᵀ`, whose right operand is then
    // `aᵀ`, copied into rows by the same rule, and copy the result back.
    let column_major = b.strides()[0] == 1 && b.strides()[1] > 1 && b.strides()[1] as usize >= k;
    if column_major && m >= ROWS_TO_REPAY_A_COPY {
        let a_copied = if a.strides()[1] == 1 { m * k } else { 0 };
        if a_copied + m * n < k * n {
            let transposed = product(&b.t(), &a.t());
            return rows_of(&transposed.t());
        }
        return product_into_rows(a, &rows_of(b).view());
    }
    product_into_rows(a, b)
}

/// Rows of `a` from which a copy of a column-major `b` costs less than the product loses.
const ROWS_TO_REPAY_A_COPY: usize = 32;

/// A column-major `b` (strides `(1, s)` with `s` at least its rows) as a row-major copy. Tiles of 16x16 are read whole (a cache line per
/// column of `b`) and written whole (a line per row of the copy), so no line is touched
/// twice, whatever the stride; the copy's rows are split among rayon's threads.
fn rows_of<T: Element>(b: &ArrayView2<'_, T>) -> Array2<T> {
    const TILE: usize = 16;
    let (k, n) = b.dim();
    let column_stride = b.strides()[1] as usize;
    // SAFETY: `b` has strides (1, column_stride), so its elements lie in this range: column
    // `c` at `c * column_stride .. c * column_stride + k`.
    let columns = unsafe { std::slice::from_raw_parts(b.as_ptr(), (n - 1) * column_stride + k) };
    let mut out = Array2::<T>::uninit((k, n));
    let Some(rows) = out.as_slice_mut() else {
        unreachable!("a new array is row-major")
    };
    rows.par_chunks_mut(TILE * n).enumerate().for_each(|(tile_row, chunk)| {
        let r0 = tile_row * TILE;
        let height = chunk.len() / n;
        let mut tile = [[T::zero(); TILE]; TILE];
        for c0 in (0..n).step_by(TILE) {
            let width = TILE.min(n - c0);
            for (c, column) in tile.iter_mut().enumerate().take(width) {
                let start = (c0 + c) * column_stride + r0;
                // A loop, not `copy_from_slice`: 16 elements are not worth a call to memcpy.
                for (to, &from) in column[..height].iter_mut().zip(&columns[start..start + height]) {
                    *to = from;
                }
            }
            for r in 0..height {
                let row = &mut chunk[r * n + c0..r * n + c0 + width];
                for (c, out) in row.iter_mut().enumerate() {
                    out.write(tile[c][r]);
                }
            }
        }
    });
    // SAFETY: the tiles cover every (row, column) of the copy, and each was written above.
    unsafe { out.assume_init() }
}

fn product_into_rows<T: Element>(a: &ArrayView2<'_, T>, b: &ArrayView2<'_, T>) -> Array2<T> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    // `gemm` writes every element before it reads any when told not to read the
    // destination (`read_dst` false), on the paths these sizes take; smaller products (its
    // 16x16 kernels) and sums of one or two terms get a zeroed one.
    let mut c = match m * n > 16 * 16 && k > 2 {
        true => Array2::<T>::uninit((m, n)),
        false => Array2::from_elem((m, n), std::mem::MaybeUninit::new(T::zero())),
    };
    let (a_strides, b_strides) = (a.strides(), b.strides());
    let threads = rayon::current_num_threads();
    let parallelism = match threads {
        1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    // SAFETY: the pointers and strides are those of live ndarray views of the shapes given
    // (c: m×n row-major, a: m×k, b: k×n); `c` is written only, alone, by this call, every
    // element of it (see above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().cast::<T>(),
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
        c.assume_init()
    }
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
        // 40x300x200 with a transposed b takes the `(bᵀ · aᵀ)ᵀ` path, 128x64x200 copies b.
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 17, 5),
            (65, 1, 33),
            (17, 130, 9),
            (128, 64, 200),
            (40, 300, 200),
        ] {
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

    /// `a · b` at 1 thread, and at 2, 3 and 8 asserted bit for bit the same.
    fn same_at_every_thread_count(a: &Array2<f32>, b: &ArrayView2<'_, f32>, what: &str) {
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| product(&a.view(), b))
        };
        let one = on(1);
        for threads in [2, 3, 8] {
            assert!(on(threads) == one, "{what}: {threads} threads changed the product");
        }
    }

    #[test]
    fn the_thread_count_does_not_change_a_bit() {
        let mut rng = KeyedRng::new(4, 4);
        let (a, b) = (random(&mut rng, 300, 500), random(&mut rng, 500, 200));
        same_at_every_thread_count(&a, &b.view(), "300x500x200");
    }

    #[test]
    fn copied_operands_do_not_change_a_bit_with_the_thread_count() {
        let mut rng = KeyedRng::new(5, 5);
        // A transposed b: copied into rows (300 rows, 200 columns), or the product taken
        // transposed (40 rows, 300 columns).
        for (m, k, n) in [(300, 500, 200), (40, 500, 300)] {
            let (a, b) = (random(&mut rng, m, k), random(&mut rng, n, k));
            same_at_every_thread_count(&a, &b.t(), &format!("{m}x{k}x{n}, b transposed"));
        }
    }

    #[test]
    fn a_product_never_reads_what_its_new_buffer_held() {
        // Freed NaN-filled blocks of the products' sizes, which the allocator hands out
        // again: a product that read its destination before writing it would carry a NaN.
        let mut rng = KeyedRng::new(7, 7);
        for &(m, k, n) in &[
            (20, 3, 20),
            (64, 300, 96),
            (40, 300, 200),
            (300, 40, 33),
            (300, 40, 1),
            (1, 40, 300),
            (300, 2, 300),
        ] {
            let (a, b) = (random(&mut rng, m, k), random(&mut rng, n, k));
            for _ in 0..3 {
                drop(vec![f32::NAN; m.max(k) * n.max(k)]);
                drop(vec![f32::NAN; m * n]);
                let rows = b.t().as_standard_layout().into_owned();
                for c in [product(&a.view(), &b.t()), product(&a.view(), &rows.view())] {
                    assert!(c.iter().all(|v| v.is_finite()), "{m}x{k}x{n}");
                }
            }
        }
    }

    #[test]
    fn a_tiled_copy_into_rows_is_the_matrix_at_every_ragged_edge() {
        let mut rng = KeyedRng::new(6, 6);
        for (rows, cols) in [(1, 1), (15, 17), (16, 16), (33, 5), (70, 129)] {
            let stored = random(&mut rng, cols, rows);
            let column_major = stored.t();
            let copy = rows_of(&column_major);
            assert_eq!(copy.strides(), &[cols as isize, 1]);
            assert!(copy == column_major, "{rows}x{cols}");
        }
    }
}
