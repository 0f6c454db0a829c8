//! The CPU's reference of low-precision matrix products (`--dtype bf16|f16`, and the bf16
//! values of `--dtype fp8`, whose FP8 copies are [`super::fp8_rounding`]'s): each operand
//! rounded to the 16-bit type exactly where the GPU makes its 16-bit copy (round to nearest
//! even, as kernels/cast.cu does; f16 overflows to infinity), then multiplied with f32
//! accumulation. So a GPU run in bf16 can be checked against a CPU run of the same
//! arithmetic, which differs from it only in the order of f32 sums.

use crate::backend::Precision;
use crate::tensor::Element;
use ndarray::ArrayD;

/// `v` rounded to `precision`'s 16-bit type and widened back.
pub fn round_value(v: f32, precision: Precision) -> f32 {
    match precision {
        Precision::F32 => v,
        // An FP8 step stores in bf16; its products' FP8 copies are `fp8_rounding`'s.
        Precision::Bf16 | Precision::Fp8 => half::bf16::from_f32(v).to_f32(),
        Precision::F16 => half::f16::from_f32(v).to_f32(),
    }
}

/// A copy of `a` with every value rounded to `precision` (kept in `a`'s element type).
pub fn rounded<T: Element>(a: &ArrayD<T>, precision: Precision) -> ArrayD<T> {
    a.mapv(|v| round_element(v, precision))
}

/// Every value of `a` rounded to `precision`, in place.
pub fn round_in_place<T: Element>(a: &mut ArrayD<T>, precision: Precision) {
    a.mapv_inplace(|v| round_element(v, precision));
}

fn round_element<T: Element>(v: T, precision: Precision) -> T {
    T::from_f64(round_value(v.to_f64() as f32, precision) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_nan_and_overflows_f16_to_infinity() {
        // 1 + 2^-8 lies halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(round_value(1.0 + 2f32.powi(-8), Precision::Bf16), 1.0);
        assert_eq!(
            round_value(1.0 + 3.0 * 2f32.powi(-8), Precision::Bf16),
            1.0 + 2f32.powi(-6)
        );
        assert_eq!(round_value(1.0 + 2f32.powi(-11), Precision::F16), 1.0);
        assert!(round_value(f32::NAN, Precision::Bf16).is_nan());
        assert_eq!(round_value(70000.0, Precision::F16), f32::INFINITY);
        assert_eq!(round_value(70000.0, Precision::Bf16), 70144.0);
        assert_eq!(round_value(0.1, Precision::F32), 0.1);
    }
}
