//! `train --verify-checkpoint`: the first step under the run's checkpoint plan against one
//! that keeps everything, before training.

use anyhow::Context;
use chainrule::data::Dataset;
use chainrule::train::Trainer;

/// `--verify-checkpoint`: the first step's gradients (and BatchNorm's running statistics)
/// under the policy against none.
pub fn run(trainer: &mut Trainer, train: &Dataset) -> anyhow::Result<()> {
    let (x, y) = chainrule::data::Batches::shuffled(
        train,
        trainer.config.settings.batch_size,
        trainer.config.settings.seed,
        trainer.state.epoch,
    )
    .next()
    .context("the training set is empty")?;
    // Only memory is the comparison's own fault: a policy that cannot be planned (a budget
    // nothing fits) is refused as training would refuse it.
    let (diff, param) = trainer.verify_checkpoint(x, y).map_err(|e| match e.out_of_memory_limit() {
        Some(_) => anyhow::Error::new(e).context(
            "--verify-checkpoint: the comparison step without checkpointing must fit the device (and --memory-limit) too; verify without the limit",
        ),
        None => e.into(),
    })?;
    let policy = trainer.config.checkpoint;
    let what = match trainer.mlp.buffer_names().is_empty() {
        true => "gradients",
        false => "gradients and BatchNorm running statistics",
    };
    match param {
        None => println!("verify-checkpoint: --checkpoint {policy} gives {what} identical to none on the first step"),
        Some(p) => println!(
            "verify-checkpoint: largest difference in {what} {diff:e} against none, in {p} (--checkpoint {policy})"
        ),
    }
    Ok(())
}
