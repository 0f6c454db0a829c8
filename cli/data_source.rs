//! Where training and evaluation data come from: `--data DIR` (MNIST IDX files),
//! `--csv FILE` (label, then features), or the built-in MNIST subset.

use anyhow::Context;
use chainrule::data::regression_csv::TargetColumns;
use chainrule::data::test_split::{hold_out_test, test_rows};
use chainrule::data::{csv::read_dataset, mnist, DataOrigin, Dataset};
use std::path::PathBuf;

/// The most classes a CSV may have.
const MAX_CLASSES: usize = 10_000;

pub struct Loaded {
    pub train: Dataset,
    pub test: Dataset,
    /// What raw feature values to multiply by (1/255 for pixels).
    pub raw_scale: f32,
    pub description: String,
    /// The rows the examples were drawn from (a `--csv` file before its test rows were
    /// held out), as a saved run records them.
    pub origin: DataOrigin,
}

pub struct Source {
    pub data: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub test_csv: Option<PathBuf>,
    /// `--test-fraction`, which only a --csv file without --test-csv takes.
    pub test_fraction: Option<f64>,
    pub seed: u64,
    /// A regression's target columns (`--loss mse`); none: labelled classes.
    pub targets: Option<TargetColumns>,
}

pub fn load(src: &Source) -> anyhow::Result<Loaded> {
    if src.test_fraction.is_some() && (src.csv.is_none() || src.test_csv.is_some()) {
        anyhow::bail!(
            "--test-fraction splits a --csv file that has no --test-csv; to hold out part of any training split, use --val-fraction"
        );
    }
    if src.targets.is_some() && src.csv.is_none() {
        anyhow::bail!(
            "a regression (--loss mse) trains on real-valued targets in a --csv file (--target-columns names them): give --csv; {} holds classes",
            if src.data.is_some() { "--data's MNIST" } else { "the built-in MNIST subset" }
        );
    }
    match (&src.data, &src.csv) {
        (Some(_), Some(_)) => anyhow::bail!("--data and --csv are alternatives: give one"),
        (Some(dir), None) => {
            let (train, test) = mnist::load(dir).map_err(anyhow::Error::from).context("--data")?;
            Ok(Loaded {
                description: format!("MNIST files in {}", dir.display()),
                origin: DataOrigin::of(&train),
                train,
                test,
                raw_scale: 1.0 / 255.0,
            })
        }
        (None, Some(file)) => {
            let targets = src.targets.as_ref();
            let all = read_dataset(file, targets).context("--csv")?;
            let origin = DataOrigin::of(&all);
            let (train, test) = match &src.test_csv {
                Some(t) => (all, read_dataset(t, targets).context("--test-csv")?),
                None => {
                    let fraction = src.test_fraction.unwrap_or(0.2);
                    if !(0.0..1.0).contains(&fraction) {
                        anyhow::bail!("--test-fraction {fraction}: must be in [0, 1)");
                    }
                    if test_rows(all.len(), fraction) >= all.len() {
                        anyhow::bail!(
                            "--test-fraction {fraction}: holds out all {} rows of {}, leaving none to train on",
                            all.len(),
                            file.display()
                        );
                    }
                    hold_out_test(all, fraction, src.seed)
                }
            };
            // A label column in the wrong place makes every feature value a "class": refuse
            // before building an output layer of millions of units.
            let classes = train.class_count().max(test.class_count());
            if classes > MAX_CLASSES {
                anyhow::bail!(
                    "{}: labels go up to {} ({classes} classes, more than {MAX_CLASSES}); is the label the first column?",
                    file.display(),
                    classes - 1
                );
            }
            let test_name = src
                .test_csv
                .as_ref()
                .map_or(String::new(), |t| format!(" ({})", t.display()));
            if train.feature_count() != test.feature_count() {
                anyhow::bail!(
                    "the test CSV{test_name} has {} features, the training CSV ({}) {}",
                    test.feature_count(),
                    file.display(),
                    train.feature_count()
                );
            }
            // Scale features into [0, 1] by the training set's largest magnitude (16 for the
            // 8x8 digits, 255 for pixels); values already in range are left alone.
            let max = train.features.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let raw_scale = if max > 1.0 { 1.0 / max } else { 1.0 };
            Ok(Loaded {
                description: match &src.test_csv {
                    Some(t) => format!("{} (test: {})", file.display(), t.display()),
                    None => format!(
                        "{} ({} of {} rows held out for test)",
                        file.display(),
                        test.len(),
                        train.len() + test.len()
                    ),
                },
                origin,
                train,
                test,
                raw_scale,
            })
        }
        (None, None) => {
            let (train, test) = mnist::builtin().context("the built-in MNIST subset")?;
            Ok(Loaded {
                description: "built-in MNIST subset (data/README.md)".into(),
                origin: DataOrigin::of(&train),
                train,
                test,
                raw_scale: 1.0 / 255.0,
            })
        }
    }
}
