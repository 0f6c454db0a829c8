//! Each rank of a data-parallel job measures the peak its plan predicted, as one process
//! does (the CPU's tracker counts what the plan counts), updating after or inside backward,
//! and so does a rank with no rows of a step.

use super::data_parallel::{batches, on_ranks, optimizers, trainer, updating_trainer};
use chainrule::optim::OptimizerConfig;
use chainrule::train::Trainer;

#[test]
fn each_rank_measures_the_peak_it_predicted_updating_after_or_inside_backward_rows_or_none() {
    let makers: [fn(&OptimizerConfig) -> Trainer; 2] = [trainer, updating_trainer];
    let rows: Vec<usize> = batches().iter().map(|(x, _)| x.nrows()).collect();
    for make in makers {
        for optimizer in optimizers() {
            let peaks = on_ranks(
                4,
                || make(&optimizer),
                |t| {
                    batches()
                        .iter()
                        .map(|(x, y)| {
                            let (_, measured, predicted) = t.train_step(x.clone(), y.clone(), 0.02).unwrap();
                            (measured.peak_total, predicted.peak_total)
                        })
                        .collect::<Vec<_>>()
                },
            );
            let mut without_rows = 0;
            for (rank, steps) in peaks.iter().enumerate() {
                for (step, (measured, predicted)) in steps.iter().enumerate() {
                    // A rank with no rows of the last batch (3 rows, 4 ranks) sums zeros of
                    // its own making: predicted too.
                    without_rows += chainrule::dist::shard_rows(rows[step], rank, 4).is_empty() as usize;
                    assert_eq!(measured, predicted, "rank {rank}, step {step}, {optimizer:?}");
                }
            }
            assert_eq!(without_rows, 1, "the last batch leaves one rank no rows");
        }
    }
}
