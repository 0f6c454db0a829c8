//! `--dtype fp8`'s note on which layers multiply in FP8: a Linear layer's three products
//! (forward, weight gradient, input gradient) have the step's rows, its input width and its
//! output width as sides, so it runs in FP8 when all three are multiples of 16 (plan/fp8.rs)
//! and in bf16 otherwise. Said once, so a net that gains nothing from FP8 does not look as
//! if it did.

use chainrule::nn::MlpSpec;
use chainrule::plan::fp8::{takes_fp8, FP8_DIMENSION_MULTIPLE};
use chainrule::train::epoch_room::{epoch_batches, rank_shares};
use chainrule::train::Trainer;

/// The note for a run of `examples` training rows over `ranks` ranks, at the rows a step's
/// products see: a rank's share of each batch, and of an epoch's short last batch.
pub fn for_run(trainer: &Trainer, ranks: usize, examples: usize) -> String {
    let (full, last) = epoch_batches(examples, trainer.config.settings.batch_size);
    let last = last.map(|rows| rank_shares(rows, ranks));
    note(&trainer.mlp.spec, &rank_shares(full, ranks), last.as_deref())
}

/// The note for `spec` trained on steps of `rows` rows (one count, or a data-parallel
/// rank's share: `batch / ranks` or one more), with an epoch's last batch of `last` rows
/// when it is shorter (said when it runs another number of layers in FP8).
pub fn note(spec: &MlpSpec, rows: &[usize], last: Option<&[usize]>) -> String {
    let linears = spec.linears();
    let in_fp8 = |at: &[usize]| -> Vec<bool> {
        let all = |&(i, o): &(usize, usize)| at.iter().all(|&r| takes_fp8(r, o, i));
        linears.iter().map(all).collect()
    };
    let full = in_fp8(rows);
    let count = full.iter().filter(|&&f| f).count();
    let off: Vec<usize> = linears
        .iter()
        .zip(&full)
        .filter(|(_, &f)| !f)
        .flat_map(|(&(i, o), _)| rows.iter().copied().chain([i, o]))
        .collect();
    let who = match (count, linears.len() - count) {
        (0, 1) => "it is",
        (0, _) => "all are",
        (_, 1) => "the other is",
        _ => "the others are",
    };
    let layers = if linears.len() == 1 {
        "linear layer"
    } else {
        "linear layers"
    };
    let mut text = format!(
        "fp8: {count} of {} {layers} multiply in FP8 at {} a step{}",
        linears.len(),
        row_count(rows),
        not_multiples(&off, who)
    );
    if let Some(last) = last {
        let at_last = in_fp8(last).iter().filter(|&&f| f).count();
        if at_last != count {
            text += &format!("; an epoch's last batch, {}, runs {at_last} in FP8", row_count(last));
        }
    }
    text
}

/// "1 row", "128 rows", "42 or 43 rows".
fn row_count(rows: &[usize]) -> String {
    format!("{} row{}", joined(rows, " or "), if rows == [1] { "" } else { "s" })
}

/// " (WHO in bf16: a, b not a multiple of 16)" for the sides in `sides` that are not, or "".
fn not_multiples(sides: &[usize], who: &str) -> String {
    let mut off: Vec<usize> = sides
        .iter()
        .copied()
        .filter(|d| d % FP8_DIMENSION_MULTIPLE != 0)
        .collect();
    off.sort_unstable();
    off.dedup();
    match off.as_slice() {
        [] => String::new(),
        _ => format!(
            " ({who} in bf16: {} not a multiple of {FP8_DIMENSION_MULTIPLE})",
            joined(&off, ", ")
        ),
    }
}

fn joined(values: &[usize], separator: &str) -> String {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.dedup();
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_counts_the_layers_whose_sides_are_all_multiples_of_16_and_names_the_others() {
        let spec = MlpSpec::new("784-512-256-10", "relu", 0.0).unwrap();
        assert_eq!(
            note(&spec, &[128], Some(&[16])),
            "fp8: 2 of 3 linear layers multiply in FP8 at 128 rows a step (the other is in bf16: 10 not a multiple of 16)"
        );
        assert_eq!(
            note(&spec, &[100], None),
            "fp8: 0 of 3 linear layers multiply in FP8 at 100 rows a step (all are in bf16: 10, 100 not a multiple of 16)"
        );
        // A short last batch, and a data-parallel rank's shares of 128 rows over 3 ranks.
        assert_eq!(
            note(&spec, &[128], Some(&[40])),
            "fp8: 2 of 3 linear layers multiply in FP8 at 128 rows a step (the other is in bf16: 10 not a multiple of 16); \
             an epoch's last batch, 40 rows, runs 0 in FP8"
        );
        assert_eq!(
            note(&spec, &[401], Some(&[400])),
            "fp8: 0 of 3 linear layers multiply in FP8 at 401 rows a step (all are in bf16: 10, 401 not a multiple of 16); \
             an epoch's last batch, 400 rows, runs 2 in FP8"
        );
        let square = MlpSpec::new("64-64-32", "relu", 0.0).unwrap();
        assert_eq!(
            note(&square, &[42, 43], None),
            "fp8: 0 of 2 linear layers multiply in FP8 at 42 or 43 rows a step (all are in bf16: 42, 43 not a multiple of 16)"
        );
        assert_eq!(
            note(&square, &[32], None),
            "fp8: 2 of 2 linear layers multiply in FP8 at 32 rows a step"
        );
    }
}
