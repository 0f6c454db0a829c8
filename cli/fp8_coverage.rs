//! `--dtype fp8`'s note on which layers multiply in FP8: a Linear layer's three products
//! (forward, weight gradient, input gradient) have the batch, its input width and its output
//! width as sides, so it runs in FP8 when all three are multiples of 16 (plan/fp8.rs) and in
//! bf16 otherwise. Said once, so a net that gains nothing from FP8 does not look as if it did.

use chainrule::nn::MlpSpec;
use chainrule::plan::fp8::{takes_fp8, FP8_DIMENSION_MULTIPLE};

/// The note for `spec` trained at `batch` rows.
pub fn note(spec: &MlpSpec, batch: usize) -> String {
    let linears = spec.linears();
    let (fp8, bf16): (Vec<_>, Vec<_>) = linears.iter().partition(|&&(i, o)| takes_fp8(batch, o, i));
    let mut sides: Vec<usize> = bf16
        .iter()
        .flat_map(|&&(i, o)| [batch, i, o])
        .filter(|d| d % FP8_DIMENSION_MULTIPLE != 0)
        .collect();
    sides.sort_unstable();
    sides.dedup();
    let off = match sides.as_slice() {
        [] => String::new(),
        s => format!(
            " ({} in bf16: {} not a multiple of {FP8_DIMENSION_MULTIPLE})",
            if bf16.len() == 1 { "the other" } else { "the others" },
            s.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    format!(
        "fp8: {} of {} linear layers multiply in FP8 at batch {batch}{off}",
        fp8.len(),
        linears.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_counts_the_layers_whose_sides_are_all_multiples_of_16_and_names_the_others() {
        let spec = MlpSpec::new("784-512-256-10", "relu", 0.0).unwrap();
        assert_eq!(
            note(&spec, 128),
            "fp8: 2 of 3 linear layers multiply in FP8 at batch 128 (the other in bf16: 10 not a multiple of 16)"
        );
        assert_eq!(
            note(&spec, 100),
            "fp8: 0 of 3 linear layers multiply in FP8 at batch 100 (the others in bf16: 10, 100 not a multiple of 16)"
        );
        let square = MlpSpec::new("64-64-32", "relu", 0.0).unwrap();
        assert_eq!(
            note(&square, 32),
            "fp8: 2 of 2 linear layers multiply in FP8 at batch 32"
        );
    }
}
