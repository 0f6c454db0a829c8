//! Data: MNIST IDX files and CSV into a [`Dataset`], then seeded shuffling and batching.

pub mod augment;
pub mod batch;
pub mod csv;
pub mod data_record;
pub mod dataset;
pub mod gzip;
pub mod idx;
pub mod input_file;
pub mod mnist;
mod netpbm;
pub mod picture;
pub mod regression_csv;
pub mod test_split;

pub use batch::Batches;
pub use data_record::{DataOrigin, DataRecord};
pub use dataset::{Dataset, Normalization};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    // The cause follows as the error's source (printed by `{:#}`).
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Format { path: PathBuf, why: String },
    #[error("{dir}: {why}")]
    Missing { dir: PathBuf, why: String },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
}
