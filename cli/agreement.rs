//! The start-up agreement of a data-parallel job: every rank must have been started alike
//! (settings, the files asked of it, data, starting weights), or ranks started by hand with
//! different flags or files would train a wrong model without a word. Each part is hashed and
//! agreed over the collective ([`chainrule::dist::Group::agree`]), so the error names the part.

use crate::train_args::TrainArgs;
use anyhow::bail;
use chainrule::data::Dataset;
use chainrule::dist::{Collective, Group};
use chainrule::train::Trainer;
use std::sync::Arc;

/// Which of --save, --save-best, --plot and --metrics-out this rank was given (before a rank
/// past 0 drops them): part of what every rank must agree on, so a file asked of one rank
/// alone is not silently never written.
static OUTPUTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Notes which output files this rank was asked for (before a rank past 0 drops them).
pub fn record_outputs(a: &TrainArgs) {
    let asked = [&a.save, &a.save_best, &a.plot, &a.metrics_out].map(Option::is_some);
    let _ = OUTPUTS.set(format!("{asked:?}"));
}

/// Fails unless every rank of the job was started alike: the same settings, data, starting
/// state and program (a hash of them, agreed over the collective). Ranks started by hand with
/// different flags or files would otherwise train a wrong model without a word.
pub fn same_job(
    collective: Option<&Arc<dyn Collective>>,
    trainer: &Trainer,
    data: [Option<&Dataset>; 3],
    log_every: u64,
) -> anyhow::Result<()> {
    use std::hash::{Hash, Hasher};
    let Some(c) = collective else {
        return Ok(());
    };
    let hasher = std::collections::hash_map::DefaultHasher::new;
    let floats = |h: &mut std::collections::hash_map::DefaultHasher, values: &mut dyn Iterator<Item = f32>| {
        let bytes: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
        h.write(&bytes);
    };
    let (config, spec, state) = (&trainer.config, &trainer.mlp.spec, &trainer.state);
    let mut settings = hasher();
    let normalization = &trainer.normalization;
    format!(
        "{config:?}|{spec:?}|{state:?}|{normalization:?}|{log_every}|{}",
        env!("CARGO_PKG_VERSION")
    )
    .hash(&mut settings);
    let mut outputs = hasher();
    OUTPUTS.get().hash(&mut outputs);
    let mut examples = hasher();
    for d in data.into_iter().flatten() {
        floats(&mut examples, &mut d.features.iter().copied());
        floats(&mut examples, &mut d.labels.iter().map(|&l| l as f32));
    }
    let mut weights = hasher();
    for (name, t) in trainer.to_snapshot()?.tensors {
        floats(&mut weights, &mut name.bytes().map(f32::from));
        floats(&mut weights, &mut t.iter().copied());
    }
    // Every rank asks the same four questions in the same order, so all agree on the answer.
    let group = Group::new(c.clone());
    for (what, h) in [
        (
            "settings (flags, or the --resume file's run, or chainrule's version)",
            settings,
        ),
        (
            "output files (--save, --save-best, --plot, --metrics-out given to some ranks only)",
            outputs,
        ),
        ("data (the training, validation or test examples)", examples),
        (
            "starting weights or optimizer state (different --resume files)",
            weights,
        ),
    ] {
        if !group.agree(h.finish())? {
            bail!("the ranks of this job were started differently: their {what} differ; start every rank with the same command");
        }
    }
    Ok(())
}
