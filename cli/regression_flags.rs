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
            bail!("--target-columns {columns} names a regression's targets: give --loss mse too (the model learns classes from the first column otherwise)");
        }
        return Ok(Learning { loss, targets: None });
    }
    let text = match (&a.target_columns, &saved) {
        (Some(t), Some((_, Some(s), path))) if t != s => bail!(
            "--target-columns {t} differs from {path}'s {s}: a resumed run reads the targets it was saved with; drop --target-columns, or start a new run without --resume"
        ),
        (Some(t), _) => t.clone(),
        (None, Some((_, Some(s), _))) => s.clone(),
        (None, _) => "1".to_string(),
    };
    let columns = TargetColumns::parse(&text).map_err(|why| anyhow::anyhow!("--target-columns {text}: {why}"))?;
    Ok(Learning {
        loss,
        targets: Some((text, columns)),
    })
}
