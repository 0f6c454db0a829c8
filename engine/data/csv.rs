//! CSV: one example per row, the integer label first, then the features. A first row
//! that is not numeric is taken as a header.

use super::{DataError, Dataset};
use ndarray::Array2;
use std::path::Path;

pub fn read_csv(path: &Path) -> Result<Dataset, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let fmt = |why: String| DataError::Format {
        path: path.to_path_buf(),
        why,
    };
    let mut width = None;
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let numeric: Vec<Option<f64>> = cells
            .iter()
            .map(|c| c.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect();
        if i == 0 && numeric.iter().any(Option::is_none) {
            continue; // header
        }
        let w = *width.get_or_insert(cells.len());
        if cells.len() != w {
            return Err(fmt(format!(
                "line {line_no}: {} columns, the first row has {w}",
                cells.len()
            )));
        }
        if w < 2 {
            return Err(fmt(format!("line {line_no}: needs a label and at least one feature")));
        }
        for (c, v) in numeric.iter().enumerate() {
            if v.is_none() {
                return Err(fmt(format!(
                    "line {line_no}, column {}: '{}' is not a number",
                    c + 1,
                    cells[c]
                )));
            }
        }
        let label = numeric[0].unwrap_or(f64::NAN);
        if label < 0.0 || label.fract() != 0.0 || label > 1e6 {
            return Err(fmt(format!(
                "line {line_no}, column 1: label '{}' is not a class index (0, 1, 2, ...)",
                cells[0]
            )));
        }
        labels.push(label as u32);
        values.extend(numeric[1..].iter().map(|v| v.unwrap_or(0.0) as f32));
    }
    let Some(w) = width else {
        return Err(fmt("no data rows".into()));
    };
    let features =
        Array2::from_shape_vec((labels.len(), w - 1), values).expect("every row checked to have the same width");
    Ok(Dataset {
        features,
        labels,
        image_shape: None,
    })
}
