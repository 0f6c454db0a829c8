//! What a model's classes are, said once at the start of a run: a model has a class for
//! every label from 0 to the largest one seen, so labels that start at 1 (or skip a value)
//! train a class no example teaches, which the model can still predict. A PyTorch user
//! would want to know; the run names the classes, says which are empty, and goes on.

use crate::train_report::{four, thousands};
use crate::voice::Voice;
use chainrule::data::Dataset;
use chainrule::train::Trainer;

/// Refuses training labels that are all one value (all 0, or all 5): one class, nothing to
/// tell apart, whatever the model's width.
pub fn two_or_more(train: &Dataset, description: &str) -> anyhow::Result<()> {
    match train.labels.split_first() {
        Some((first, rest)) if rest.iter().all(|l| l == first) => anyhow::bail!(
            "{description}: every training label is {first}, one class: nothing to tell apart (a classifier needs two or more classes)"
        ),
        _ => Ok(()),
    }
}

/// Prints the classes line after the banner (a regression's targets line), and warns of
/// classes without examples.
pub fn report(trainer: &Trainer, train: &Dataset, voice: Voice) {
    let Some(record) = &trainer.state.data else {
        return;
    };
    if let (Some(targets), Some(columns)) = (&train.targets, &record.target_columns) {
        if voice.speaks() {
            println!("{}", targets_summary(targets, columns));
        }
        return;
    }
    if voice.speaks() {
        println!("{}", summary(&record.class_examples));
    }
    if let Some(warning) = warning(&record.class_examples) {
        voice.note(&warning);
    }
}

/// `classes: 10 (labels 0 to 9) · training examples per class 946 (class 5) to 1,127 (class 1)`.
pub fn summary(class_examples: &[u64]) -> String {
    let classes = class_examples.len();
    let fewest = (0..classes).min_by_key(|&c| class_examples[c]);
    let most = (0..classes).max_by_key(|&c| (class_examples[c], std::cmp::Reverse(c)));
    let spread = match (fewest, most) {
        (Some(f), Some(m)) if class_examples[f] == class_examples[m] => {
            format!("{} each", thousands(class_examples[f]))
        }
        (Some(f), Some(m)) => format!(
            "{} (class {f}) to {} (class {m})",
            thousands(class_examples[f]),
            thousands(class_examples[m])
        ),
        _ => "none".to_string(),
    };
    format!(
        "classes: {classes} (labels 0 to {}) · training examples per class {spread}",
        classes.saturating_sub(1)
    )
}

/// `targets: 2 (--target-columns 2,last) · training mean 3.1, -0.4 · std 1.2, 0.9 (...)`:
/// each target's scale (the first few of many), and the error of a model that predicts
/// the means, to read the run's RMSE against.
pub fn targets_summary(targets: &ndarray::Array2<f32>, columns: &str) -> String {
    const SHOWN: usize = 8;
    let stats: Vec<(f64, f64)> = targets
        .columns()
        .into_iter()
        .map(|c| {
            let n = c.len().max(1) as f64;
            let mean = c.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = c.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
            (mean, var)
        })
        .collect();
    let list = |f: &dyn Fn(&(f64, f64)) -> f64| {
        let mut shown: Vec<String> = stats.iter().take(SHOWN).map(|s| four(f(s))).collect();
        if stats.len() > SHOWN {
            shown.push(format!("... ({} more)", stats.len() - SHOWN));
        }
        shown.join(", ")
    };
    let baseline = (stats.iter().map(|s| s.1).sum::<f64>() / stats.len().max(1) as f64).sqrt();
    let reference = match stats.iter().any(|s| s.1 > 0.0) {
        true => format!("predicting the means scores RMSE {}, R² 0", four(baseline)),
        false => "no target varies: R² is undefined".to_string(),
    };
    format!(
        "targets: {} (--target-columns {columns}) · training mean {} · std {} ({reference})",
        stats.len(),
        list(&|s| s.0),
        list(&|s| s.1.sqrt())
    )
}

/// The warning when some classes have no training example.
pub fn warning(class_examples: &[u64]) -> Option<String> {
    let classes = class_examples.len();
    let empty: Vec<String> = (0..classes)
        .filter(|&c| class_examples[c] == 0)
        .map(|c| c.to_string())
        .collect();
    if empty.is_empty() {
        return None;
    }
    // A single label 999 leaves 999 classes empty: name the first few and count the rest.
    const NAMED: usize = 10;
    let named = match empty.len() {
        n if n > NAMED => format!("{} and {} more", empty[..NAMED].join(", "), n - NAMED),
        _ => empty.join(", "),
    };
    let shift = match empty.as_slice() {
        [zero] if zero == "0" => "; if your labels start at 1, subtract 1 from them",
        _ => "",
    };
    Some(format!(
        "warning: the model has {classes} classes (labels 0 to {}), and no training example has label {}: {} never taught{shift}",
        classes - 1,
        named,
        if empty.len() == 1 { "that class is" } else { "those classes are" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_one_and_gaps_are_named() {
        let w = warning(&[0, 2, 1, 1]).unwrap();
        assert!(w.contains("label 0") && w.contains("subtract 1"), "{w}");
        let w = warning(&[2, 0, 0, 1]).unwrap();
        assert!(w.contains("label 1, 2") && !w.contains("subtract"), "{w}");
        assert_eq!(warning(&[1, 1, 1]), None);
        let mut one_label = vec![0; 1000];
        one_label[999] = 4;
        let w = warning(&one_label).unwrap();
        assert!(w.contains("label 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 989 more"), "{w}");
    }

    #[test]
    fn the_summary_names_the_fewest_and_the_most() {
        assert_eq!(
            summary(&[946, 1127, 1000]),
            "classes: 3 (labels 0 to 2) · training examples per class 946 (class 0) to 1,127 (class 1)"
        );
        assert_eq!(
            summary(&[15, 15]),
            "classes: 2 (labels 0 to 1) · training examples per class 15 each"
        );
    }
}
