//! A model has a class for every label from 0 to the largest one seen, so labels that start
//! at 1 (or skip a value) train a class no example teaches: the model can still predict it.
//! A PyTorch user would want to know; the run says which classes are empty, and goes on.

use chainrule::data::Dataset;

/// The warning for `train`'s labels when some of a model's `classes` have no example.
pub fn warning(train: &Dataset, classes: usize) -> Option<String> {
    let mut seen = vec![false; classes];
    for &label in &train.labels {
        if let Some(s) = seen.get_mut(label as usize) {
            *s = true;
        }
    }
    let empty: Vec<String> = (0..classes).filter(|&c| !seen[c]).map(|c| c.to_string()).collect();
    if empty.is_empty() {
        return None;
    }
    let shift = match empty.as_slice() {
        [zero] if zero == "0" => "; if your labels start at 1, subtract 1 from them",
        _ => "",
    };
    Some(format!(
        "warning: the model has {classes} classes (labels 0 to {}), and no training example has label {}: {} never taught{shift}",
        classes - 1,
        empty.join(", "),
        if empty.len() == 1 { "that class is" } else { "those classes are" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn labels(labels: Vec<u32>) -> Dataset {
        Dataset {
            features: Array2::zeros((labels.len(), 1)),
            labels,
            image_shape: None,
        }
    }

    #[test]
    fn labels_from_one_and_gaps_are_named() {
        let w = warning(&labels(vec![1, 2, 3, 1]), 4).unwrap();
        assert!(w.contains("label 0") && w.contains("subtract 1"), "{w}");
        let w = warning(&labels(vec![0, 3, 0]), 4).unwrap();
        assert!(w.contains("label 1, 2") && !w.contains("subtract"), "{w}");
        assert_eq!(warning(&labels(vec![0, 1, 2]), 3), None);
    }
}
