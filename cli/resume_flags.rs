//! A resumed run goes on with the settings it was saved with. A setting flag typed with a
//! different value would be silently ignored, so it is refused instead; typed with the
//! saved value (the run's first command line, repeated) it is fine. Values are compared
//! as what they mean, not as text (`1e-3` is `0.001`, `ADAM` is `adam`, `-0` is `0`), and
//! a typed value the flag itself refuses gets that flag's own error first.

use crate::train_args::TrainArgs;
use anyhow::bail;
use chainrule::io::{Snapshot, TestSplit, Validation};
use chainrule::nn::{BlockSpec, MlpSpec};
use chainrule::optim::{LrSchedule, OptimizerConfig};
use chainrule::train::setup;

/// Fails naming the first typed flag that is invalid, or whose value differs from `path`'s.
pub fn check(a: &TrainArgs, s: &Snapshot, path: &str) -> anyhow::Result<()> {
    let (t, o, m) = (&s.settings, &s.optimizer, &s.model);
    let differs = |flag: &str, value: String, saved: String| -> anyhow::Result<()> {
        bail!(
            "{flag} {value} differs from {path}'s {saved}: a resumed run goes on with the settings it was saved with; drop {flag}, or start a new run without --resume"
        )
    };
    if let Some(lr) = a.step.lr.filter(|_| a.typed("lr")) {
        if setup::check_lr(lr)? != t.lr {
            differs("--lr", lr.to_string(), t.lr.to_string())?;
        }
    }
    if a.typed("schedule") && LrSchedule::parse(&a.schedule)? != t.schedule {
        differs("--schedule", a.schedule.clone(), t.schedule.describe())?;
    }
    optimizer_flags(a, o, path)?;
    if a.typed("activation") || a.typed("dropout") {
        let activation = if a.typed("activation") {
            &a.model.activation
        } else {
            &m.activation
        };
        let dropout = if a.typed("dropout") { a.model.dropout } else { m.dropout };
        let spec = MlpSpec::new(&m.layers_string(), activation, dropout)?;
        if spec.activation != m.activation {
            differs("--activation", a.model.activation.clone(), m.activation.clone())?;
        }
        if spec.dropout != m.dropout {
            differs("--dropout", a.model.dropout.to_string(), m.dropout.to_string())?;
        }
    }
    // The block flags typed, each over the saved value where it is not.
    if a.typed("block") || a.typed("norm") || a.typed("expansion") {
        let saved = m.blocks.as_ref();
        let mut flags = a.model.clone();
        if !a.typed("block") {
            flags.block = saved.map_or("plain", |b| b.kind.name()).to_string();
        }
        // A plain chain typed over a saved block net takes no norm or expansion from it.
        let saved_block = saved.filter(|_| flags.block != "plain");
        if !a.typed("norm") {
            flags.norm = saved_block.map(|b| b.norm.name().to_string());
        }
        if !a.typed("expansion") {
            flags.expansion = saved_block.map(|b| b.expansion);
        }
        let typed = flags.blocks()?;
        if typed.as_ref() != saved {
            bail!(
                "{} differs from {path}'s {}: a resumed run goes on with the model it was saved with; drop --block, --norm and --expansion, or start a new run without --resume",
                BlockSpec::flags(typed.as_ref()),
                BlockSpec::flags(saved)
            );
        }
    }
    let on = |b: bool| if b { "on" } else { "off" }.to_string();
    let rest = [
        ("nesterov", "--nesterov", on(a.step.nesterov), on(o.nesterov)),
        (
            "batch_size",
            "--batch-size",
            a.step.batch_size.to_string(),
            t.batch_size.to_string(),
        ),
        ("seed", "--seed", a.seed.to_string(), t.seed.to_string()),
        (
            "augment_shift",
            "--augment-shift",
            a.augment_shift.to_string(),
            t.augment_shift.to_string(),
        ),
        (
            "standardize",
            "--standardize",
            on(a.standardize),
            on(s.normalization.mean.is_some()),
        ),
    ];
    for (field, flag, value, saved) in rest {
        if a.typed(field) && value != saved {
            differs(flag, value, saved)?;
        }
    }
    Ok(())
}

/// The typed value where its flag was typed, else the saved one.
fn pick<T>(typed: bool, value: T, saved: T) -> T {
    if typed {
        value
    } else {
        saved
    }
}

/// The optimizer's typed flags against the saved optimizer `o`.
fn optimizer_flags(a: &TrainArgs, o: &OptimizerConfig, path: &str) -> anyhow::Result<()> {
    let differs = |flag: &str, value: String, saved: String| -> anyhow::Result<()> {
        bail!(
            "{flag} {value} differs from {path}'s {saved}: a resumed run goes on with the settings it was saved with; drop {flag}, or start a new run without --resume"
        )
    };
    if a.typed("optimizer") {
        let kind = a.step.optimizer_kind()?;
        if kind != o.kind {
            differs("--optimizer", a.step.optimizer.clone(), o.kind.name().to_string())?;
        }
    }
    // The optimizer's own rules, on the typed values (or the saved ones where none is typed).
    let momentum = pick(a.typed("momentum"), a.step.momentum, o.momentum);
    let nesterov = pick(a.typed("nesterov"), a.step.nesterov, o.nesterov);
    let weight_decay = pick(a.typed("weight_decay"), a.step.weight_decay, o.weight_decay);
    let clip = pick(a.typed("clip_grad_norm"), a.step.clip_grad_norm, o.clip_grad_norm);
    setup::optimizer(o.kind, weight_decay, (momentum, nesterov), clip)?;
    if a.typed("clip_grad_norm") && clip != o.clip_grad_norm {
        let saved = o.clip_grad_norm.map_or("none".to_string(), |c| c.to_string());
        differs("--clip-grad-norm", clip.map_or(String::new(), |c| c.to_string()), saved)?;
    }
    for (field, flag, value, saved) in [
        ("weight_decay", "--weight-decay", a.step.weight_decay, o.weight_decay),
        ("momentum", "--momentum", a.step.momentum, o.momentum),
    ] {
        // `==`: -0 is 0.
        if a.typed(field) && value != saved {
            differs(flag, value.to_string(), saved.to_string())?;
        }
    }
    Ok(())
}

/// Where this run's test examples come from, by its flags: a share of `--csv` or files of
/// their own. `resumed`: the saved run this one goes on with.
pub fn test_split(a: &TrainArgs, resumed: Option<&Snapshot>) -> TestSplit {
    match (&a.csv, &a.test_csv) {
        (Some(_), None) => TestSplit::HeldOut(test_fraction(a, resumed).unwrap_or(0.2)),
        _ => TestSplit::Separate,
    }
}

/// `--test-fraction` as typed, else a resumed run's own held-out share where this run also
/// splits a `--csv` (its first command line need not be repeated), else none (the default,
/// 0.2, applies).
pub fn test_fraction(a: &TrainArgs, resumed: Option<&Snapshot>) -> Option<f64> {
    let splits = a.csv.is_some() && a.test_csv.is_none();
    let saved = resumed.filter(|_| splits).and_then(|s| match s.state.test_split {
        Some(TestSplit::HeldOut(f)) => Some(f),
        _ => None,
    });
    a.test_fraction.or(saved)
}

/// Fails when this run would test on other rows than the saved run did: its test rows
/// would be trained on, or its training rows tested on.
pub fn check_test_split(a: &TrainArgs, s: &Snapshot, path: &str) -> anyhow::Result<()> {
    let now = test_split(a, Some(s));
    match s.state.test_split {
        Some(saved) if saved != now => {
            let says = |t: TestSplit| match t {
                TestSplit::HeldOut(f) => format!("holds out {f} of --csv for test"),
                TestSplit::Separate => "tests on files of their own (--test-csv or MNIST)".to_string(),
            };
            bail!(
                "this run {} where {path}'s {}: a resumed run keeps its train/test split (give the same --csv, --test-csv and --test-fraction)",
                says(now),
                says(saved)
            )
        }
        _ => Ok(()),
    }
}

/// A resumed run holds out the validation rows its file's run held out (`saved`): another
/// `--val-fraction` is refused, and so are `--early-stop` and `--save-best` where it held
/// out none (they would have no validation loss to watch, and none can be added).
pub fn check_validation(a: &TrainArgs, saved: Validation, path: &str) -> anyhow::Result<()> {
    if let Some(f) = a.val_fraction.filter(|&f| f != saved.fraction) {
        bail!(
            "--val-fraction {f} differs from {path}'s ({}): a resumed run holds out the same rows; drop --val-fraction, or start a new run without --resume",
            saved.fraction
        );
    }
    if (a.early_stop.is_some() || a.save_best.is_some()) && saved.fraction == 0.0 {
        bail!(
            "--early-stop and --save-best watch the validation loss, and {path}'s run holds out no validation rows (a resumed run keeps its --val-fraction, 0): start a new run with --val-fraction to use them"
        );
    }
    Ok(())
}
