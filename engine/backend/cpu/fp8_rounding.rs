//! The CPU's reference of FP8 matrix products (`--dtype fp8`): each operand of a product
//! that [`crate::plan::fp8::operand_formats`] puts in FP8 is scaled by a power of two from
//! its current absolute maximum, rounded to the 8-bit format (to nearest even, saturating
//! at the largest finite value, as CUDA's `__nv_cvt_float_to_fp8(x, __NV_SATFINITE, ..)`
//! does) and scaled back. The scale is a power of two, so scaling back is exact and this
//! equals what the GPU computes (8-bit products summed in f32, times both inverse scales)
//! up to the order of the f32 sums.

use crate::plan::fp8::Fp8Format;
use crate::tensor::Element;
use ndarray::ArrayD;

/// The power of two an operand whose largest absolute value is `amax` is multiplied by
/// before rounding to `format`: the largest with `amax * scale <= format.max()` (computed
/// as the power of two at or below the f32 quotient `max / amax`, which a GPU kernel
/// computes bit for bit), 1 for an all-zero operand, at most 2^126 (so its inverse, which
/// the GPU's product multiplies by, is a normal number). NaN when `amax` is not finite, so
/// that a non-finite operand makes a non-finite product, as it would in f32.
pub fn scale_for(amax: f32, format: Fp8Format) -> f32 {
    if !amax.is_finite() {
        return f32::NAN;
    }
    if amax == 0.0 {
        return 1.0;
    }
    // The quotient is a normal number (at least 448 / f32::MAX); keeping its sign and
    // exponent bits alone leaves the power of two at or below it (kernels/fp8.cu alike).
    let quotient = (format.max() / amax).min(2f32.powi(126));
    f32::from_bits(quotient.to_bits() & 0xff80_0000)
}

/// `v` rounded to `format` (to nearest even; past the largest finite value, that value;
/// NaN stays NaN). Bit arithmetic on the f32, checked against the `float8` crate (which
/// the CUDA bindings' `f8` feature uses) in the tests below.
pub fn round_to(v: f32, format: Fp8Format) -> f32 {
    // Mantissa bits f32 has beyond the format's, and the format's smallest normal.
    let (dropped, smallest_normal) = match format {
        Fp8Format::E4M3 => (20, 2f32.powi(-6)),
        Fp8Format::E5M2 => (21, 2f32.powi(-14)),
    };
    let magnitude = v.abs();
    let rounded = if magnitude.is_nan() {
        return v;
    } else if magnitude >= format.max() {
        format.max()
    } else if magnitude < smallest_normal {
        // Subnormals are whole multiples of the smallest one: scale, round, scale back
        // (both scalings by powers of two, so exact).
        let step = smallest_normal * 2f32.powi(-(23 - dropped));
        (magnitude / step).round_ties_even() * step
    } else {
        let bits = magnitude.to_bits();
        let odd = (bits >> dropped) & 1;
        let half = (1u32 << (dropped - 1)) - 1;
        f32::from_bits((bits + half + odd) & !((1u32 << dropped) - 1)).min(format.max())
    };
    rounded.copysign(v)
}

/// The largest absolute value of `a` (NaN if it holds one).
pub fn absolute_max<T: Element>(a: &ArrayD<T>) -> f32 {
    a.iter().fold(0.0f32, |most, &v| {
        let v = (v.to_f64() as f32).abs();
        if v.is_nan() || most.is_nan() {
            f32::NAN
        } else {
            most.max(v)
        }
    })
}

/// A copy of `a` as an FP8 product multiplies it: each value scaled by [`scale_for`] the
/// whole tensor, rounded to `format` and scaled back (kept in `a`'s element type).
pub fn quantized<T: Element>(a: &ArrayD<T>, format: Fp8Format) -> ArrayD<T> {
    let scale = scale_for(absolute_max(a), format);
    a.mapv(|v| T::from_f64((round_to(v.to_f64() as f32 * scale, format) / scale) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    #[test]
    fn rounding_is_to_nearest_even_with_subnormals_and_saturates_at_the_largest_finite_value() {
        let e4 = |v| round_to(v, Fp8Format::E4M3);
        let e5 = |v| round_to(v, Fp8Format::E5M2);
        // e4m3 keeps 3 mantissa bits: 1 + 2^-4 lies halfway between 1 and 1.125.
        assert_eq!(e4(1.0 + 2f32.powi(-4)), 1.0);
        assert_eq!(e4(1.0 + 3.0 * 2f32.powi(-4)), 1.25);
        assert_eq!(e4(448.0), 448.0);
        assert_eq!(e4(470.0), 448.0);
        assert_eq!(e4(-1e9), -448.0);
        // Its smallest subnormal is 2^-9; half of it ties to zero.
        assert_eq!(e4(2f32.powi(-9)), 2f32.powi(-9));
        assert_eq!(e4(2f32.powi(-10)), 0.0);
        assert_eq!(e4(3.0 * 2f32.powi(-10)), 2f32.powi(-8));
        // e5m2 keeps 2 mantissa bits and reaches 57344; its smallest subnormal is 2^-16.
        assert_eq!(e5(1.0 + 2f32.powi(-3)), 1.0);
        assert_eq!(e5(1.0 + 3.0 * 2f32.powi(-3)), 1.5);
        assert_eq!(e5(1e6), 57344.0);
        assert_eq!(e5(2f32.powi(-16)), 2f32.powi(-16));
        assert!(e4(f32::NAN).is_nan() && e5(f32::NAN).is_nan());
        assert_eq!(e4(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn rounding_agrees_with_the_float8_crate_on_a_sweep_of_every_binade_and_every_midpoint() {
        let oracle = |v: f32, format| match format {
            Fp8Format::E4M3 => float8::F8E4M3::from_f32(v).to_f32(),
            Fp8Format::E5M2 => float8::F8E5M2::from_f32(v).to_f32(),
        };
        let mut values: Vec<f32> = (0..u32::MAX / 251).map(|k| f32::from_bits(k * 251)).collect();
        // Every FP8 value, and the points halfway between neighbours (ties) and just off them.
        for bits in 0..=255u8 {
            for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
                let here = match format {
                    Fp8Format::E4M3 => float8::F8E4M3::from_bits(bits).to_f32(),
                    Fp8Format::E5M2 => float8::F8E5M2::from_bits(bits).to_f32(),
                };
                let next = match format {
                    Fp8Format::E4M3 => float8::F8E4M3::from_bits(bits.wrapping_add(1)).to_f32(),
                    Fp8Format::E5M2 => float8::F8E5M2::from_bits(bits.wrapping_add(1)).to_f32(),
                };
                let mid = ((here as f64 + next as f64) / 2.0) as f32;
                let around = [
                    f32::from_bits(mid.to_bits() + 1),
                    f32::from_bits(mid.to_bits().wrapping_sub(1)),
                ];
                values.extend([here, mid, around[0], around[1]]);
            }
        }
        for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
            for &v in values.iter().filter(|v| !v.is_nan()) {
                let (ours, theirs) = (round_to(v, format), oracle(v, format));
                assert_eq!(
                    ours.to_bits(),
                    theirs.to_bits(),
                    "{v:e} ({:#x}) in {}",
                    v.to_bits(),
                    format.name()
                );
            }
        }
    }

    #[test]
    fn the_scale_is_the_largest_power_of_two_that_keeps_the_maximum_in_range() {
        assert_eq!(scale_for(1.0, Fp8Format::E4M3), 256.0);
        assert_eq!(scale_for(448.0, Fp8Format::E4M3), 1.0);
        assert_eq!(scale_for(449.0, Fp8Format::E4M3), 0.5);
        assert_eq!(scale_for(1.0, Fp8Format::E5M2), 32768.0);
        assert_eq!(scale_for(0.0, Fp8Format::E4M3), 1.0);
        assert_eq!(scale_for(f32::MIN_POSITIVE / 4.0, Fp8Format::E4M3), 2f32.powi(126));
        assert_eq!(scale_for(448.0 * 2f32.powi(-120), Fp8Format::E4M3), 2f32.powi(120));
        assert_eq!(scale_for(f32::MAX, Fp8Format::E4M3), 2f32.powi(-120));
        assert!(scale_for(f32::INFINITY, Fp8Format::E4M3).is_nan());
        assert!(scale_for(f32::NAN, Fp8Format::E5M2).is_nan());
        for amax in [1e-30f32, 3e-7, 0.1, 1.0, 7.5, 1e5, 3e38] {
            for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
                let s = scale_for(amax, format);
                assert_eq!(s.to_bits() & 0x007f_ffff, 0, "{s} is a power of two");
                assert!(amax * s <= format.max() && amax * s * 2.0 > format.max(), "{amax} {s}");
            }
        }
    }

    #[test]
    fn a_quantized_operand_keeps_its_maximum_exactly_and_every_value_within_the_format_step() {
        let a = arr1(&[0.0f32, 3.0, -0.7, 1e-3, 2.9, -1e-7]).into_dyn();
        let q = quantized(&a, Fp8Format::E4M3);
        // amax 3 is scaled by 128 to 384, which e4m3 holds exactly.
        assert_eq!(q[1], 3.0);
        assert_eq!(q[0], 0.0);
        for (&v, &r) in a.iter().zip(q.iter()) {
            // 3 mantissa bits: a normal value moves by at most 2^-4 of itself; values under
            // the smallest normal (2^-6 / 128 here) by at most half a subnormal step.
            assert!(
                (v - r).abs() <= (v.abs() / 16.0).max(2f32.powi(-10) / 128.0),
                "{v} -> {r}"
            );
        }
        let with_nan = arr1(&[1.0f32, f32::NAN]).into_dyn();
        assert!(quantized(&with_nan, Fp8Format::E4M3).iter().all(|v| v.is_nan()));
        let with_infinity = arr1(&[1.0f32, f32::NEG_INFINITY]).into_dyn();
        assert!(quantized(&with_infinity, Fp8Format::E5M2).iter().all(|v| v.is_nan()));
    }
}
