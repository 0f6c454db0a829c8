//! MNIST from a folder of the four IDX files, gzipped or not, under either common naming:
//! `train-images-idx3-ubyte` or `train-images.idx3-ubyte` (and `t10k-`/`test-` for the
//! test split), with any prefix such as `mnist-12k-`.

use super::idx::{parse_idx, read_idx, shape_text, IdxArray};
use super::{DataError, Dataset};
use ndarray::Array2;
use std::path::{Path, PathBuf};

pub struct MnistFiles {
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

fn find_one(dir: &Path, splits: &[&str], kind: &str, idx: &str) -> Result<PathBuf, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let suffixes: Vec<String> = splits
        .iter()
        .flat_map(|s| [format!("{s}-{kind}-{idx}-ubyte"), format!("{s}-{kind}.{idx}-ubyte")])
        .collect();
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Hidden files include macOS's `._name` resource forks, which shadow the real ones.
            if name.starts_with('.') {
                return false;
            }
            let name = name.strip_suffix(".gz").unwrap_or(name);
            suffixes.iter().any(|s| {
                name == s || (name.ends_with(s.as_str()) && name[..name.len() - s.len()].ends_with(['-', '_', '.']))
            })
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(DataError::Missing {
            dir: dir.to_path_buf(),
            why: format!("no MNIST file named like {}[.gz]", suffixes.join(" or ")),
        }),
        _ => Err(DataError::Missing {
            dir: dir.to_path_buf(),
            why: format!(
                "several files could be the {} {kind}: {}",
                splits[0],
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

pub fn find(dir: &Path) -> Result<MnistFiles, DataError> {
    check_folder(dir)?;
    Ok(MnistFiles {
        train_images: find_one(dir, &["train"], "images", "idx3")?,
        train_labels: find_one(dir, &["train"], "labels", "idx1")?,
        test_images: find_one(dir, &["t10k", "test"], "images", "idx3")?,
        test_labels: find_one(dir, &["t10k", "test"], "labels", "idx1")?,
    })
}

/// Raw pixel values (0..255 as f32) and labels of one split.
pub fn load_split(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    split_from_idx(images, read_idx(images)?, labels, read_idx(labels)?)
}

/// The MNIST subset built into the binary (see data/README.md): 10,000 training and
/// 2,000 test images, the first of the official splits.
pub fn builtin() -> Result<(Dataset, Dataset), DataError> {
    const TRAIN_IMAGES: &[u8] = include_bytes!("../../data/mnist-12k-train-images-idx3-ubyte.gz");
    const TRAIN_LABELS: &[u8] = include_bytes!("../../data/mnist-12k-train-labels-idx1-ubyte.gz");
    const TEST_IMAGES: &[u8] = include_bytes!("../../data/mnist-12k-test-images-idx3-ubyte.gz");
    const TEST_LABELS: &[u8] = include_bytes!("../../data/mnist-12k-test-labels-idx1-ubyte.gz");
    let split = |im: &str, imb: &[u8], lb: &str, lbb: &[u8]| {
        let (im, lb) = (Path::new(im), Path::new(lb));
        split_from_idx(im, parse_idx(im, imb)?, lb, parse_idx(lb, lbb)?)
    };
    Ok((
        split(
            "<built-in>/mnist-12k-train-images",
            TRAIN_IMAGES,
            "<built-in>/mnist-12k-train-labels",
            TRAIN_LABELS,
        )?,
        split(
            "<built-in>/mnist-12k-test-images",
            TEST_IMAGES,
            "<built-in>/mnist-12k-test-labels",
            TEST_LABELS,
        )?,
    ))
}

fn split_from_idx(images: &Path, img: IdxArray, labels: &Path, lab: IdxArray) -> Result<Dataset, DataError> {
    let fmt = |path: &Path, why: String| DataError::Format {
        path: path.to_path_buf(),
        why,
    };
    if img.dims.len() != 3 {
        return Err(fmt(
            images,
            format!(
                "expected images with 3 dimensions (count, rows, cols), found {}",
                shape_text(&img.dims)
            ),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(fmt(
            labels,
            format!("expected labels with 1 dimension, found {}", shape_text(&lab.dims)),
        ));
    }
    let (n, pixels) = (img.dims[0], img.dims[1] * img.dims[2]);
    if lab.dims[0] != n {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            n_images: n,
            labels: labels.to_path_buf(),
            n_labels: lab.dims[0],
        });
    }
    if let Some(bad) = lab.values().find(|&l| !(0.0..=9.0).contains(&l) || l.fract() != 0.0) {
        return Err(fmt(labels, format!("label {bad} is not a digit 0-9")));
    }
    let features = Array2::from_shape_vec((n, pixels), img.values().map(|v| v as f32).collect())
        .expect("length checked against the header");
    Ok(Dataset {
        features,
        labels: lab.values().map(|l| l as u32).collect(),
        image_shape: Some((img.dims[1], img.dims[2])),
        targets: None,
    })
}

/// Train and test splits of the MNIST files in `dir`, raw pixel values.
pub fn load(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let f = find(dir)?;
    let (train, test) = (
        load_split(&f.train_images, &f.train_labels)?,
        load_split(&f.test_images, &f.test_labels)?,
    );
    if train.image_shape != test.image_shape {
        let side = |s: Option<(usize, usize)>| s.map_or("?".into(), |(r, c)| format!("{r}x{c}"));
        return Err(DataError::Format {
            path: f.test_images,
            why: format!(
                "images are {} pixels, the training images {}",
                side(test.image_shape),
                side(train.image_shape)
            ),
        });
    }
    Ok((train, test))
}

/// The test split of the MNIST files in `dir` alone (evaluation needs no training files).
pub fn load_test(dir: &Path) -> Result<Dataset, DataError> {
    check_folder(dir)?;
    let images = find_one(dir, &["t10k", "test"], "images", "idx3")?;
    let labels = find_one(dir, &["t10k", "test"], "labels", "idx1")?;
    load_split(&images, &labels)
}

fn check_folder(dir: &Path) -> Result<(), DataError> {
    let why = if dir.is_dir() {
        return Ok(());
    } else if dir.exists() {
        "a file, not a folder: --data takes the folder that holds the MNIST files (--csv takes a file)"
    } else {
        "no such folder"
    };
    Err(DataError::Missing {
        dir: dir.to_path_buf(),
        why: why.into(),
    })
}
