//! In-place updates of a parameter and its optimizer state, element by element, on rayon's
//! threads. Where every operand is contiguous in standard order they run over slices in
//! chunks, loops the compiler vectorizes (ndarray's `Zip` over dynamic-rank arrays did not:
//! AdamW's update took a quarter of the README's training step); otherwise through `Zip`.
//! Each element gets the same function either way, so results are bitwise the same.

use ndarray::{ArrayD, Zip};
use rayon::prelude::*;

/// Elements per task: large enough that scheduling is noise, small enough to share a
/// Linear's weight among the threads.
const CHUNK: usize = 1 << 13;

/// `f(p, g)` for each element of a parameter `p` and its gradient `g`.
pub fn update2<T: Copy + Send + Sync>(p: &mut ArrayD<T>, g: &ArrayD<T>, f: impl Fn(&mut T, T) + Send + Sync) {
    if let (Some(ps), Some(gs)) = (p.as_slice_mut(), g.as_slice()) {
        ps.par_chunks_mut(CHUNK).zip(gs.par_chunks(CHUNK)).for_each(|(ps, gs)| {
            ps.iter_mut().zip(gs).for_each(|(p, &g)| f(p, g));
        });
        return;
    }
    Zip::from(p).and(g).par_for_each(|p, &g| f(p, g));
}

/// `f(p, g, s)` with one state tensor `s` (SGD's momentum).
pub fn update3<T: Copy + Send + Sync>(
    p: &mut ArrayD<T>,
    g: &ArrayD<T>,
    s: &mut ArrayD<T>,
    f: impl Fn(&mut T, T, &mut T) + Send + Sync,
) {
    if let (Some(ps), Some(gs), Some(ss)) = (p.as_slice_mut(), g.as_slice(), s.as_slice_mut()) {
        let chunks = ps.par_chunks_mut(CHUNK).zip(gs.par_chunks(CHUNK));
        chunks.zip(ss.par_chunks_mut(CHUNK)).for_each(|((ps, gs), ss)| {
            ps.iter_mut().zip(gs).zip(ss).for_each(|((p, &g), s)| f(p, g, s));
        });
        return;
    }
    Zip::from(p).and(g).and(s).par_for_each(|p, &g, s| f(p, g, s));
}

/// `f(p, g, s, t)` with two state tensors (Adam's moments).
pub fn update4<T: Copy + Send + Sync>(
    p: &mut ArrayD<T>,
    g: &ArrayD<T>,
    (s, t): (&mut ArrayD<T>, &mut ArrayD<T>),
    f: impl Fn(&mut T, T, &mut T, &mut T) + Send + Sync,
) {
    if let (Some(ps), Some(gs), Some(ss), Some(ts)) =
        (p.as_slice_mut(), g.as_slice(), s.as_slice_mut(), t.as_slice_mut())
    {
        let chunks = ps.par_chunks_mut(CHUNK).zip(gs.par_chunks(CHUNK));
        let chunks = chunks.zip(ss.par_chunks_mut(CHUNK)).zip(ts.par_chunks_mut(CHUNK));
        chunks.for_each(|(((ps, gs), ss), ts)| {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: each runs only on a CPU that has its instructions, checked here.
                if std::arch::is_x86_feature_detected!("avx512f") {
                    return unsafe { each4_avx512(ps, gs, ss, ts, &f) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    return unsafe { each4_avx2(ps, gs, ss, ts, &f) };
                }
            }
            each4(ps, gs, ss, ts, &f);
        });
        return;
    }
    Zip::from(p)
        .and(g)
        .and(s)
        .and(t)
        .par_for_each(|p, &g, s, t| f(p, g, s, t));
}

/// One chunk of [`update4`], as an indexed loop the compiler inlines `f` into and vectorizes
/// for the instructions of the function it is inlined in: the binary is built for plain
/// x86-64 (SSE2, 4 lanes), and AdamW's divisions and square roots run 16 lanes wide under
/// AVX-512 (6% of the README command's time where they took 11%). The same IEEE
/// operations on each element, without fused multiply-adds (Rust never contracts), so the
/// bits do not depend on the instruction set.
#[inline(always)]
fn each4<T: Copy>(ps: &mut [T], gs: &[T], ss: &mut [T], ts: &mut [T], f: &impl Fn(&mut T, T, &mut T, &mut T)) {
    let n = ps.len();
    let (gs, ss, ts) = (&gs[..n], &mut ss[..n], &mut ts[..n]);
    for i in 0..n {
        f(&mut ps[i], gs[i], &mut ss[i], &mut ts[i]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn each4_avx512<T: Copy>(
    ps: &mut [T],
    gs: &[T],
    ss: &mut [T],
    ts: &mut [T],
    f: &impl Fn(&mut T, T, &mut T, &mut T),
) {
    each4(ps, gs, ss, ts, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn each4_avx2<T: Copy>(
    ps: &mut [T],
    gs: &[T],
    ss: &mut [T],
    ts: &mut [T],
    f: &impl Fn(&mut T, T, &mut T, &mut T),
) {
    each4(ps, gs, ss, ts, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn adam(p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        *m = 0.9 * *m + 0.1 * g;
        *v = 0.999 * *v + 0.001 * g * g;
        *p -= 0.01 * *m / (v.sqrt() + 1e-8);
    }

    #[test]
    fn chunked_slices_and_zip_give_a_sequential_loop_s_bits() {
        // Columns of 3 chunks and a ragged end, so threads split them unevenly.
        let (rows, cols) = (3, CHUNK + 5);
        let make = |salt: f32| {
            ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |i| {
                ((i[0] * cols + i[1]) as f32 * 0.37 + salt).sin()
            })
        };
        // Adam's second moment is never negative (its square root would be NaN, unequal to itself).
        let operands = || (make(0.0), make(1.0), make(2.0), make(3.0).mapv(f32::abs));

        let (mut want_p, g, mut want_m, mut want_v) = operands();
        for (((p, &g), m), v) in want_p.iter_mut().zip(&g).zip(&mut want_m).zip(&mut want_v) {
            adam(p, g, m, v);
        }
        assert!(want_p != make(0.0));

        let (mut p, g, mut m, mut v) = operands();
        update4(&mut p, &g, (&mut m, &mut v), adam);
        assert!(p == want_p && m == want_m && v == want_v, "slices");

        // Transposed (column-major) operands have no standard-order slice: Zip's path.
        let (p, g, m, v) = operands();
        let t = |a: ArrayD<f32>| a.reversed_axes();
        let (mut p, g, mut m, mut v) = (t(p), t(g), t(m), t(v));
        assert!(p.as_slice().is_none());
        update4(&mut p, &g, (&mut m, &mut v), adam);
        assert!(p.t() == want_p && m.t() == want_m && v.t() == want_v, "zip");

        // Each instruction set's loop, where this CPU has it, on one chunk.
        let (p0, g0, m0, v0) = operands();
        let slices = |a: &ArrayD<f32>| a.as_slice().unwrap().to_vec();
        let (mut ps, gs, mut ms, mut vs) = (slices(&p0), slices(&g0), slices(&m0), slices(&v0));
        each4(&mut ps, &gs, &mut ms, &mut vs, &adam);
        assert!(ps == slices(&want_p) && vs == slices(&want_v), "plain");
        #[cfg(target_arch = "x86_64")]
        for (name, has) in [
            ("avx2", is_x86_feature_detected!("avx2")),
            ("avx512f", is_x86_feature_detected!("avx512f")),
        ] {
            if !has {
                continue;
            }
            let (mut ps, gs, mut ms, mut vs) = (slices(&p0), slices(&g0), slices(&m0), slices(&v0));
            // SAFETY: this CPU has the instructions, checked above.
            unsafe {
                match name {
                    "avx2" => each4_avx2(&mut ps, &gs, &mut ms, &mut vs, &adam),
                    _ => each4_avx512(&mut ps, &gs, &mut ms, &mut vs, &adam),
                }
            }
            assert!(
                ps == slices(&want_p) && ms == slices(&want_m) && vs == slices(&want_v),
                "{name}"
            );
        }

        let sgd = |p: &mut f32, g: f32| *p -= 0.1 * g;
        let (mut p, g, _, _) = operands();
        update2(&mut p, &g, sgd);
        let (mut want, g, _, _) = operands();
        want.iter_mut().zip(&g).for_each(|(p, &g)| sgd(p, g));
        assert!(p == want, "update2");

        let momentum = |p: &mut f32, g: f32, b: &mut f32| {
            *b = 0.9 * *b + g;
            *p -= 0.1 * *b;
        };
        let (mut p, g, mut b, _) = operands();
        update3(&mut p, &g, &mut b, momentum);
        let (mut want, g, mut want_b, _) = operands();
        want.iter_mut()
            .zip(&g)
            .zip(&mut want_b)
            .for_each(|((p, &g), b)| momentum(p, g, b));
        assert!(p == want && b == want_b, "update3");
    }
}
