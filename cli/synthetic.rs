//! The random batches `bench`, `remat` and `scale` time steps on: uniform features and
//! labels, made only after checking that the host has room for them, so an oversized
//! `--batch-size` is an error naming it instead of a failed allocation that aborts.

use chainrule::memory::Bytes;
use chainrule::rng::KeyedRng;
use ndarray::{Array1, Array2};

/// `batch` rows of `features` uniform values and labels below `classes`.
pub fn batch(
    rng: &mut KeyedRng,
    batch: usize,
    features: usize,
    classes: usize,
) -> anyhow::Result<(Array2<f32>, Array1<f32>)> {
    let bytes = batch
        .checked_mul(features + 1)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| anyhow::anyhow!("--batch-size {batch}: {batch} rows of {features} features overflow a size"))?;
    if let Some(free) = chainrule::backend::cpu::available_memory().filter(|&free| bytes as u64 > free) {
        anyhow::bail!(
            "--batch-size {batch}: its {batch} rows of {features} features take {} on the host, which has {} free",
            Bytes(bytes as u64),
            Bytes(free)
        );
    }
    let x = Array2::from_shape_simple_fn((batch, features), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(batch, || rng.below(classes as u64) as f32);
    Ok((x, y))
}
