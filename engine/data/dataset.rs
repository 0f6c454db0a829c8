//! An in-memory dataset: features `[n, f]` in f32 and integer class labels, or for a
//! regression real-valued targets `[n, k]` (and no labels).

use ndarray::{Array1, Array2, Axis};
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

    /// Per-feature mean and standard deviation of the scaled training features (a feature
    /// with no spread keeps std 1, so it maps to zero instead of dividing by zero).
    pub fn standardized(scale: f32, raw_train: &Array2<f32>) -> Self {
        let scaled = raw_train * scale;
        let mean = scaled
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(scaled.ncols()));
        let std = scaled.std_axis(Axis(0), 0.0).mapv(|s| if s > 1e-6 { s } else { 1.0 });
        Normalization {
            scale,
            mean: Some(mean.to_vec()),
            std: Some(std.to_vec()),
        }
    }

    pub fn apply(&self, features: &mut Array2<f32>) {
        features.mapv_inplace(|v| v * self.scale);
        if let (Some(mean), Some(std)) = (&self.mean, &self.std) {
            for mut row in features.rows_mut() {
                for ((v, m), s) in row.iter_mut().zip(mean).zip(std) {
                    *v = (*v - m) / s;
                }
            }
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
