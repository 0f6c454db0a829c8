//! What a loaded snapshot must satisfy beyond its format: every tensor finite, a
//! normalization that fits the model, and the recorded settings within the rules the
//! command line applies to them. No save writes a file that breaks one (saves refuse
//! non-finite weights, and the settings came through those rules), so such a file was
//! damaged or hand-made: it is refused as inconsistent rather than trained, evaluated or
//! exported into a silent wrong answer.

use super::snapshot::{Snapshot, TrainState};
use super::train_settings::TrainSettings;
use crate::nn::Mlp;

/// Why `s` (a file of the model `mlp`) cannot be used, naming the tensor or metadata field at fault.
pub(super) fn check(s: &Snapshot, mlp: &Mlp) -> Result<(), String> {
    for (name, t) in &s.tensors {
        if let Some(at) = t.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "tensor '{name}' holds {} at element {at}",
                t.iter().nth(at).copied().unwrap_or(f32::NAN)
            ));
        }
    }
    normalization(s)?;
    never_negative(s)?;
    batch_norm_buffers(s, mlp)?;
    s.optimizer
        .check()
        .map_err(|bad| format!("metadata 'optimizer': {bad}"))?;
    settings(&s.settings)
        .and_then(|()| state(&s.state))
        .and_then(|()| data_record(s))
        .map_err(|why| format!("metadata 'training': {why}"))
}

fn normalization(s: &Snapshot) -> Result<(), String> {
    let n = &s.normalization;
    let inputs = s.model.inputs();
    let field = |why: String| Err(format!("metadata 'normalization': {why}"));
    if !(n.scale.is_finite() && n.scale > 0.0) {
        return field(format!("scale {} is not a positive number", n.scale));
    }
    match (&n.mean, &n.std) {
        (None, None) => Ok(()),
        (Some(_), None) | (None, Some(_)) => field("a mean without a std, or a std without a mean".into()),
        (Some(mean), Some(std)) => {
            if mean.len() != inputs || std.len() != inputs {
                return field(format!(
                    "{} means and {} stds for a model of {inputs} inputs",
                    mean.len(),
                    std.len()
                ));
            }
            if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
                return field(format!("a mean of {m}"));
            }
            match std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                Some(s) => field(format!("a std of {s} (each must be a positive number)")),
                None => Ok(()),
            }
        }
    }
}

/// Tensors that are means of squares (BatchNorm's running variance, Adam's second moment)
/// are never negative: a negative one would take the square root of a negative number.
fn never_negative(s: &Snapshot) -> Result<(), String> {
    let squares = |name: &str| name.ends_with(".running_var") || name.ends_with(".exp_avg_sq");
    for (name, t) in s.tensors.iter().filter(|(n, _)| squares(n)) {
        if let Some((at, v)) = t.iter().enumerate().find(|(_, v)| **v < 0.0) {
            return Err(format!(
                "tensor '{name}' holds {v} at element {at}: a mean of squares is never negative"
            ));
        }
    }
    Ok(())
}

/// BatchNorm's `num_batches_tracked` is the run's step count (saves write it so).
fn batch_norm_buffers(s: &Snapshot, mlp: &Mlp) -> Result<(), String> {
    let step = s.state.step as f32;
    for name in mlp.batch_counters() {
        if let Some(v) = s
            .tensors
            .get(&name)
            .and_then(|t| t.iter().next().copied())
            .filter(|&v| v != step)
        {
            return Err(format!(
                "tensor '{name}' holds {v}, and a save writes the run's step count there ({})",
                s.state.step
            ));
        }
    }
    Ok(())
}

/// The training settings as `--lr`, `--schedule`, `--batch-size`, `--val-fraction` and
/// `--early-stop` allow them.
fn settings(t: &TrainSettings) -> Result<(), String> {
    if !(t.lr.is_finite() && t.lr > 0.0) {
        return Err(format!("lr {} is not a positive number", t.lr));
    }
    t.schedule
        .check()
        .map_err(|why| format!("schedule {}: {why}", t.schedule.describe()))?;
    if t.batch_size == 0 {
        return Err("batch_size 0".into());
    }
    if !(0.0..1.0).contains(&t.validation.fraction) || t.validation.patience == Some(0) {
        return Err(format!(
            "validation fraction {} with patience {:?}",
            t.validation.fraction, t.validation.patience
        ));
    }
    Ok(())
}

/// The data record against the model: a count for each class it has, and no more
/// training examples than rows they were drawn from.
fn data_record(s: &Snapshot) -> Result<(), String> {
    let Some(d) = &s.state.data else {
        return Ok(());
    };
    let classes = match s.model.loss.is_regression() {
        true => 0,
        false => s.model.classes(),
    };
    if d.class_examples.len() != classes {
        return Err(format!(
            "data records {} classes' training examples, the model has {classes} classes",
            d.class_examples.len()
        ));
    }
    // Summed wide: counts near u64::MAX must not wrap into a small sum.
    let examples: u128 = d.class_examples.iter().map(|&c| u128::from(c)).sum();
    if examples > d.origin.rows as u128 {
        return Err(format!(
            "data record of {examples} training examples drawn from {} rows",
            d.origin.rows
        ));
    }
    let columns = d
        .target_columns
        .as_deref()
        .map(crate::data::regression_csv::TargetColumns::parse);
    match (s.model.loss.is_regression(), columns) {
        (true, Some(Ok(c))) if c.count() == s.model.classes() => {}
        (false, None) => {}
        (true, c) => {
            return Err(format!(
                "data record's target columns '{}' do not name the model's {} targets",
                c.and(d.target_columns.as_deref()).unwrap_or("none"),
                s.model.classes()
            ))
        }
        (false, Some(_)) => return Err("data record names target columns for a classifier".into()),
    }
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if d.origin.hash.len() != 16 || !d.origin.hash.chars().all(hex) {
        return Err(format!(
            "data record's hash {:?} is not 16 lowercase hex digits",
            d.origin.hash
        ));
    }
    Ok(())
}

/// The most steps a run counts.
pub const MAX_STEPS: u64 = i32::MAX as u64;

/// What `--dtype` allows, a loss scale, a test split, and a position inside the run.
fn state(t: &TrainState) -> Result<(), String> {
    if let Some(d) = t
        .saved_dtype()
        .filter(|d| crate::backend::Precision::parse(d).is_none())
    {
        return Err(format!("dtype '{d}' is not {}", crate::backend::Precision::NAMES));
    }
    if let Some(s) = &t.loss_scaler {
        if !(s.scale.is_finite() && s.scale > 0.0) {
            return Err(format!("loss scale {} is not a positive number", s.scale));
        }
    }
    if let Some(super::snapshot::TestSplit::HeldOut(f)) = t.test_split {
        if !(0.0..1.0).contains(&f) {
            return Err(format!("test split {f} is not in [0, 1)"));
        }
    }
    if t.epoch > t.step {
        return Err(format!("{} epochs done in {} steps", t.epoch, t.step));
    }
    // A GPU's step guard and clock count steps in 31 bits; no run takes that many.
    if t.step > MAX_STEPS {
        return Err(format!(
            "step {}: more steps than a run counts (at most {MAX_STEPS})",
            t.step
        ));
    }
    Ok(())
}
