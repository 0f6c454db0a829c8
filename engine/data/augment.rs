//! Random translations of images, the classic cheap augmentation for digits. Each
//! example's shift is keyed by (seed, epoch, example), so a resumed run replays it.

use crate::rng::{self, stream};
use ndarray::{Array2, ArrayViewMut1};

#[derive(Clone, Debug, PartialEq)]
pub struct Shift {
    pub rows: usize,
    pub cols: usize,
    /// Largest shift in pixels along each axis.
    pub max: usize,
    /// What uncovered pixels become (the normalized value of a blank pixel).
    pub fill: Vec<f32>,
}

impl Shift {
    /// Shifts row `i` of `batch`, which holds dataset example `example`.
    pub fn apply(&self, batch: &mut Array2<f32>, examples: &[usize], seed: u64, epoch: u64) {
        for (row, &example) in batch.rows_mut().into_iter().zip(examples) {
            let (dy, dx) = self.offsets(example, seed, epoch);
            self.shift_one(row, dy, dx);
        }
    }

    /// The (dy, dx) shift of dataset example `example` in `epoch`.
    pub fn offsets(&self, example: usize, seed: u64, epoch: u64) -> (isize, isize) {
        let span = 2 * self.max as u64 + 1;
        let r = rng::draw(seed, stream::AUGMENT, epoch, example as u64);
        (
            (r % span) as isize - self.max as isize,
            ((r >> 32) % span) as isize - self.max as isize,
        )
    }

    fn shift_one(&self, mut img: ArrayViewMut1<f32>, dy: isize, dx: isize) {
        if dy == 0 && dx == 0 {
            return;
        }
        let src = img.to_vec();
        let (h, w) = (self.rows as isize, self.cols as isize);
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (y - dy, x - dx);
                let p = (y * w + x) as usize;
                img[p] = if (0..h).contains(&sy) && (0..w).contains(&sx) {
                    src[(sy * w + sx) as usize]
                } else {
                    self.fill[p]
                };
            }
        }
    }
}
