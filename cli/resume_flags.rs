//! A resumed run goes on with the settings it was saved with. A setting flag typed with a
//! different value would be silently ignored, so it is refused instead; typed with the
//! saved value (the run's first command line, repeated) it is fine.

use crate::train_args::TrainArgs;
use chainrule::io::Snapshot;
use chainrule::optim::LrSchedule;

/// Fails naming the first typed flag whose value differs from `path`'s.
pub fn check(a: &TrainArgs, s: &Snapshot, path: &str) -> anyhow::Result<()> {
    let (t, o, m) = (&s.state, &s.optimizer, &s.model);
    let schedule = LrSchedule::parse(&a.schedule).map_or_else(|_| a.schedule.clone(), |l| l.describe());
    // (field, flag, the value typed, the saved value), as the same text.
    let settings = [
        (
            "lr",
            "--lr",
            a.lr.map_or(String::new(), |l| l.to_string()),
            t.lr.to_string(),
        ),
        ("schedule", "--schedule", schedule, t.schedule.describe()),
        (
            "optimizer",
            "--optimizer",
            a.optimizer.clone(),
            o.kind.name().to_string(),
        ),
        (
            "weight_decay",
            "--weight-decay",
            a.weight_decay.to_string(),
            o.weight_decay.to_string(),
        ),
        ("momentum", "--momentum", a.momentum.to_string(), o.momentum.to_string()),
        ("nesterov", "--nesterov", a.nesterov.to_string(), o.nesterov.to_string()),
        (
            "batch_size",
            "--batch-size",
            a.batch_size.to_string(),
            t.batch_size.to_string(),
        ),
        ("seed", "--seed", a.seed.to_string(), t.seed.to_string()),
        ("activation", "--activation", a.activation.clone(), m.activation.clone()),
        ("dropout", "--dropout", a.dropout.to_string(), m.dropout.to_string()),
        (
            "augment_shift",
            "--augment-shift",
            a.augment_shift.to_string(),
            t.augment_shift.to_string(),
        ),
        (
            "standardize",
            "--standardize",
            a.standardize.to_string(),
            s.normalization.mean.is_some().to_string(),
        ),
    ];
    for (field, flag, typed, saved) in settings {
        if a.given.iter().any(|g| g == field) && typed != saved {
            anyhow::bail!(
                "{flag} {typed} differs from {path}'s {saved}: a resumed run goes on with the settings it was saved with; drop {flag}, or start a new run without --resume"
            );
        }
    }
    Ok(())
}
