//! An in-memory dataset: features `[n, f]` in f32 and integer class labels, or for a
//! regression real-valued targets `[n, k]` (and no labels).

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug)]
pub struct Dataset {
    pub features: Array2<f32>,
    /// Each row's class; empty for a regression.
    pub labels: Vec<u32>,
    /// `(rows, cols)` when each example is an image (IDX data).
    pub image_shape: Option<(usize, usize)>,
    /// A regression's targets, `[n, k]`.
    pub targets: Option<Array2<f32>>,
}

/// How raw feature values become model inputs: `(raw · scale − mean) / std`. Saved with
/// the model so evaluation prepares data exactly as training did.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Normalization {
    pub scale: f32,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
}

impl Normalization {
    pub fn scale_only(scale: f32) -> Self {
        Normalization {
            scale,
            mean: None,
            std: None,
        }
    }

    /// Per-feature mean and (population) standard deviation of the raw training features,
    /// summed in f64. No scale comes first: standardizing divides each feature by its own
    /// spread, and scaling by the largest magnitude first would push every other feature
    /// toward f32's subnormals when one value is huge. A feature with no spread (relative
    /// to its size) keeps std 1, so it maps to zero instead of dividing by zero.
    pub fn standardized(raw_train: &Array2<f32>) -> Self {
        let rows = raw_train.nrows().max(1) as f64;
        let mut mean = Vec::with_capacity(raw_train.ncols());
        let mut std = Vec::with_capacity(raw_train.ncols());
        for column in raw_train.columns() {
            let m = column.iter().map(|&v| v as f64).sum::<f64>() / rows;
            let variance = column.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / rows;
            let s = variance.sqrt();
            let spread = s > 0.0 && s > 16.0 * f64::EPSILON * m.abs();
            mean.push(m as f32);
            // A spread below f32's smallest normal number would round to nothing (or to a
            // few bits): it is held at that number, so the feature maps close to zero.
            std.push(if spread { (s as f32).max(f32::MIN_POSITIVE) } else { 1.0 });
        }
        Normalization {
            scale: 1.0,
            mean: Some(mean),
            std: Some(std),
        }
    }

    /// `features` prepared as model inputs: `(v · scale − mean) / std` in f32, as the ONNX
    /// export computes it, so the two agree bit for bit. Where that overflows (a value whose
    /// distance from its mean passes f32's range, in a column of ±3.4e38) the value is
    /// computed again in f64 and rounded once, so it stays finite when its standardized
    /// value is (the export, in f32, gives NaN there; the README says so).
    pub fn apply(&self, features: &mut Array2<f32>) {
        match (&self.mean, &self.std) {
            (Some(mean), Some(std)) => {
                let scale = self.scale;
                for mut row in features.rows_mut() {
                    for ((v, &m), &s) in row.iter_mut().zip(mean).zip(std) {
                        let single = (*v * scale - m) / s;
                        *v = match single.is_finite() || !v.is_finite() {
                            true => single,
                            false => ((*v as f64 * scale as f64 - m as f64) / s as f64) as f32,
                        };
                    }
                }
            }
            _ => features.mapv_inplace(|v| v * self.scale),
        }
    }
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.features.nrows()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Targets a row of a regression (0: classification).
    pub fn target_count(&self) -> usize {
        self.targets.as_ref().map_or(0, |t| t.ncols())
    }
    pub fn feature_count(&self) -> usize {
        self.features.ncols()
    }
    /// One more than the largest label.
    pub fn class_count(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m as usize + 1)
    }
    /// Splits off the rows at `test` positions (used when a CSV has no test file).
    pub fn split(self, test: &[usize]) -> (Dataset, Dataset) {
        let mut is_test = vec![false; self.len()];
        for &i in test {
            is_test[i] = true;
        }
        let (tr, te): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| !is_test[i]);
        (self.select(&tr), self.select(&te))
    }
    pub fn select(&self, rows: &[usize]) -> Dataset {
        Dataset {
            features: self.features.select(Axis(0), rows),
            labels: match self.labels.is_empty() {
                true => Vec::new(),
                false => rows.iter().map(|&i| self.labels[i]).collect(),
            },
            image_shape: self.image_shape,
            targets: self.targets.as_ref().map(|t| t.select(Axis(0), rows)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr2;

    #[test]
    fn standardizing_beside_a_huge_value_keeps_every_other_feature_at_unit_spread() {
        // One feature spans f32's range; the other is ordinary. Each comes out with mean 0
        // and spread 1, the ordinary one unharmed by its neighbour's size.
        let raw = arr2(&[[0.5f32, 1.0], [1.5, -3.0e38], [1.0, 2.0], [2.0, 3.0e38]]);
        let n = Normalization::standardized(&raw);
        let mut x = raw.clone();
        n.apply(&mut x);
        for column in x.columns() {
            let mean = column.iter().map(|&v| v as f64).sum::<f64>() / 4.0;
            let spread = (column.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
            assert!(
                mean.abs() < 1e-6 && (spread - 1.0).abs() < 1e-5,
                "{column}: mean {mean}, spread {spread}"
            );
        }
        // A feature with no spread maps to zero.
        let constant = Normalization::standardized(&arr2(&[[7.0f32], [7.0], [7.0]]));
        assert_eq!(constant.std, Some(vec![1.0]));
        // A column of ±3.4e38: the distance from the mean passes f32's range, the
        // standardized value (±1 and 3) does not.
        let wide = arr2(&[
            [3.4e38f32],
            [-3.4e38],
            [-3.4e38],
            [-3.4e38],
            [-3.4e38],
            [-3.4e38],
            [-3.4e38],
            [-3.4e38],
            [-3.4e38],
            [-3.4e38],
        ]);
        let mut x = wide.clone();
        Normalization::standardized(&wide).apply(&mut x);
        assert!(x.iter().all(|v| v.is_finite()), "{x}");
        assert!((x[[0, 0]] - 3.0).abs() < 1e-5, "{}", x[[0, 0]]);
        // A spread under f32's smallest normal number stays finite.
        let tiny = arr2(&[[0.0f32], [1e-45], [0.0], [1e-45]]);
        let mut x = tiny.clone();
        Normalization::standardized(&tiny).apply(&mut x);
        assert!(x.iter().all(|v| v.is_finite()), "{x}");
    }
}
