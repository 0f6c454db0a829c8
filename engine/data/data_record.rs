//! What a run's data was, as its saved file records it: the rows its training and test
//! examples were drawn from, by count and hash, so a file given later (to `eval`, or to a
//! resumed run) is known to be that data or not; and the classes, with how many training
//! examples each had, so a user reads what the model's outputs are without guessing.

use super::Dataset;
use crate::dist::StableHash;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct DataRecord {
    /// The rows the run drew its examples from.
    #[serde(flatten)]
    pub origin: DataOrigin,
    /// Training examples of each class; the classes are the labels 0 to `len - 1` (none
    /// for a regression).
    pub class_examples: Vec<u64>,
    /// A regression's target columns, as `--target-columns` took them (`1`, `2-4`, `last`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_columns: Option<String>,
}

/// Rows by count and hash: a `--csv` file before its test rows were held out, the training
/// split otherwise.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct DataOrigin {
    pub rows: usize,
    /// Their labels and raw feature values, hashed bit for bit ([`data_hash`]), in hex.
    pub hash: String,
}

impl DataOrigin {
    pub fn of(data: &Dataset) -> Self {
        DataOrigin {
            rows: data.len(),
            hash: data_hash(data),
        }
    }
}

impl DataRecord {
    /// `origin`: the rows the run drew from; `train`: its training examples; `classes`: the
    /// model's class count (a regression has none: its `target_columns` are given).
    pub fn new(origin: DataOrigin, train: &Dataset, classes: usize, target_columns: Option<String>) -> Self {
        DataRecord {
            origin,
            class_examples: match target_columns {
                Some(_) => Vec::new(),
                None => examples_per_class(train, classes),
            },
            target_columns,
        }
    }
}

/// The same on every machine: labels, then the features' raw bits row by row (-0 as 0: the
/// same number, written `-0` in one file and `0` in another), then the shape (so a file with
/// the same values in other rows hashes apart).
pub fn data_hash(data: &Dataset) -> String {
    let zero_as_zero = |v: &f32| if *v == 0.0 { 0.0 } else { *v };
    let mut h = StableHash::new();
    let labels: Vec<u8> = data.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    h.bytes(&labels);
    h.floats(data.features.iter().map(zero_as_zero));
    if let Some(t) = &data.targets {
        h.floats(t.iter().map(zero_as_zero));
    }
    h.bytes(&(data.len() as u64).to_le_bytes());
    h.bytes(&(data.feature_count() as u64).to_le_bytes());
    format!("{:016x}", h.finish())
}

/// How many of `data`'s examples have each label below `classes`.
pub fn examples_per_class(data: &Dataset, classes: usize) -> Vec<u64> {
    let mut counts = vec![0u64; classes];
    for &label in &data.labels {
        if let Some(c) = counts.get_mut(label as usize) {
            *c += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn data(labels: Vec<u32>, features: Vec<f32>) -> Dataset {
        let rows = labels.len();
        Dataset {
            features: Array2::from_shape_vec((rows, features.len() / rows), features).unwrap(),
            labels,
            image_shape: None,
            targets: None,
        }
    }

    #[test]
    fn a_change_to_any_value_label_or_shape_changes_the_hash() {
        let base = data(vec![0, 1], vec![1.0, 2.0, 3.0, 4.0]);
        let record = DataOrigin::of(&base);
        assert!(record == DataOrigin::of(&base.clone()));
        for other in [
            data(vec![0, 1], vec![1.0, 2.0, 3.0, 4.5]),
            data(vec![1, 1], vec![1.0, 2.0, 3.0, 4.0]),
            data(vec![0, 1, 0, 1], vec![1.0, 2.0, 3.0, 4.0]),
            data(vec![0, 1], vec![1.0, 2.0, 3.0, 0.0]),
        ] {
            assert!(record != DataOrigin::of(&other), "{other:?}");
        }
        // -0 is 0.
        let zero = data(vec![0, 1], vec![1.0, 0.0, 3.0, 4.0]);
        assert!(DataOrigin::of(&zero) == DataOrigin::of(&data(vec![0, 1], vec![1.0, -0.0, 3.0, 4.0])));
        // A 1x4 file and a 2x2 file of the same values and one label each differ by shape.
        let wide = data(vec![0], vec![1.0, 2.0, 3.0, 4.0]);
        let tall = data(vec![0, 0], vec![1.0, 2.0, 3.0, 4.0]);
        assert_ne!(data_hash(&wide), data_hash(&tall));
    }

    #[test]
    fn classes_count_their_training_examples() {
        let train = data(vec![1, 2, 2, 1, 2], vec![0.0; 5]);
        assert_eq!(examples_per_class(&train, 4), vec![0, 2, 3, 0]);
    }
}
