//! The start-up agreement of a data-parallel job, as the CLI asks it: the parts the trainer
//! defines ([`Trainer::fingerprint`]) and the output files each rank was given, agreed over
//! the job's collective ([`agree_on_start`]) and named in the words of the flags that set them.

use crate::train_args::TrainArgs;
use chainrule::data::Dataset;
use chainrule::dist::{agree_on_start, Group, Part, StableHash};
use chainrule::train::Trainer;

/// Fails unless every rank of the job was started alike: the parts the trainer defines, and
/// which output files each rank was given (a file asked of a rank past 0 alone would never
/// be written), each named in the words of the flags that set it.
pub fn same_start(group: &Group, trainer: &Trainer, examples: &[&Dataset], a: &TrainArgs) -> anyhow::Result<()> {
    let run = trainer.fingerprint(examples)?;
    let asked = [&a.save, &a.save_best, &a.plot, &a.metrics_out].map(|p| u8::from(p.is_some()));
    let outputs = StableHash::new().bytes(&asked).finish();
    let part = |what, fingerprint| Part { what, fingerprint };
    let parts = [
        part(
            "settings (flags, or the --resume file's run, or chainrule's version)",
            run.settings,
        ),
        part(
            "output files (--save, --save-best, --plot, --metrics-out given to some ranks only)",
            outputs,
        ),
        part("data (the training, validation or test examples)", run.data),
        part(
            "starting weights or optimizer state (different --resume files)",
            run.starting_state,
        ),
    ];
    Ok(agree_on_start(group, &parts)?)
}
