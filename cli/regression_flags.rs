//! `--loss` and `--target-columns`: what a run learns (classes, or a regression's
//! real-valued targets) and which `--csv` columns hold the targets. A resumed run goes on
//! with its saved model's loss and its record's columns; typed again, they must agree.

use crate::train_args::TrainArgs;
use anyhow::bail;
use chainrule::data::regression_csv::TargetColumns;
use chainrule::io::Snapshot;
use chainrule::nn::LossKind;

/// What a run learns from its data.
pub struct Learning {
    pub loss: LossKind,
    /// A regression's target columns: as typed (or saved), and parsed.
    pub targets: Option<(String, TargetColumns)>,
}

/// The run's loss and target columns, from the flags or `resumed`'s file (`path`).
pub fn learning(a: &TrainArgs, resumed: Option<(&Snapshot, &str)>) -> anyhow::Result<Learning> {
    let typed = a
        .loss
        .as_deref()
        .map(|l| LossKind::parse(l).ok_or_else(|| anyhow::anyhow!("--loss '{l}': expected cross-entropy or mse")))
        .transpose()?;
    let saved = resumed.map(|(s, path)| {
        let columns = s.state.data.as_ref().and_then(|d| d.target_columns.clone());
        (s.model.loss, columns, path)
    });
    let saved_inputs = resumed.map(|(s, _)| s.model.inputs());
    let loss = match (typed, &saved) {
        (Some(t), Some((s, _, path))) if t != *s => bail!(
            "--loss {} differs from {path}'s {}: a resumed run goes on with the model it was saved with; drop --loss, or start a new run without --resume",
            t.name(),
            s.name()
        ),
        (Some(t), _) => t,
        (None, Some((s, _, _))) => *s,
        (None, None) => LossKind::CrossEntropy,
    };
    if !loss.is_regression() {
        if let Some(columns) = &a.target_columns {
            match &saved {
                Some((_, _, path)) => bail!("--target-columns {columns} names a regression's targets, and {path} is a classifier (cross-entropy); start a new run with --loss mse for a regression"),
                None => bail!("--target-columns {columns} names a regression's targets: give --loss mse too (the model learns classes from the first column otherwise)"),
            }
        }
        return Ok(Learning { loss, targets: None });
    }
    // Compared column by column in the file the model was trained on (its inputs and its
    // targets wide): `2-3,6` is `2,3,6`, and `last` of six columns is `6`.
    let parse =
        |text: &str| TargetColumns::parse(text).map_err(|why| anyhow::anyhow!("--target-columns {text}: {why}"));
    let typed = a.target_columns.as_deref().map(parse).transpose()?;
    let saved_columns = saved.as_ref().and_then(|(_, c, path)| c.as_deref().map(|c| (c, *path)));
    let columns = match (typed, saved_columns) {
        (Some(t), Some((s, path))) => {
            let (typed_text, saved) = (a.target_columns.as_deref().unwrap_or_default(), parse(s)?);
            let width = saved_inputs.unwrap_or(0) + saved.count();
            let same = match (t.resolve(width), saved.resolve(width)) {
                (Ok(typed), Ok(saved)) => typed == saved,
                // Columns named twice are wrong in any file, and said so as a new run says it.
                (Err(why), _) if why.contains("twice") => bail!("--target-columns {typed_text}: {why}"),
                _ => t.canonical() == saved.canonical(),
            };
            if !same {
                bail!(
                    "--target-columns {typed_text} differs from {path}'s {s}: a resumed run reads the targets it was saved with; drop --target-columns, or start a new run without --resume"
                );
            }
            saved
        }
        (Some(t), None) => t,
        (None, Some((s, _))) => parse(s)?,
        (None, None) => parse("1")?,
    };
    let text = columns.canonical();
    Ok(Learning {
        loss,
        targets: Some((text, columns)),
    })
}
