//! A training set resident on the GPU: uploaded once, then every batch is gathered (and
//! shifted, for images) on the device. An epoch's row order and shifts travel in one copy
//! at the epoch's start, into the same buffers every epoch, so a step copies nothing from
//! the host and a captured step keeps gathering from the right place.

use super::{driver_err, ops_launch, CudaBackend, DeviceTensor};
use crate::data::{augment::Shift, Dataset};
use crate::exec::ExecError;
use crate::kernels::ClockWord;
use crate::memory::Category;
use crate::plan::Storage;
use cudarc::driver::CudaSlice;
use ndarray::{Array1, ArrayD};
use std::sync::Arc;

pub struct DeviceDataset {
    be: Arc<CudaBackend>,
    features: DeviceTensor,
    labels: DeviceTensor,
    fill: DeviceTensor,
    height: i32,
    width: i32,
    /// The epoch's row order and shifts, room for every row: each epoch writes them in
    /// place, so a captured step's gathers keep reading the right buffers.
    epoch: EpochRows,
    /// Rows of the current epoch (`None` before the first).
    epoch_rows: Option<usize>,
}

impl DeviceDataset {
    pub fn upload(be: &Arc<CudaBackend>, data: &Dataset, shift: Option<&Shift>) -> Result<Self, ExecError> {
        let f = data.feature_count();
        let (height, width) = match (shift, data.image_shape) {
            (Some(_), Some((h, w))) => (h, w),
            _ => (1, f),
        };
        let fill = shift.map_or_else(|| vec![0.0; f], |s| s.fill.clone());
        let labels: Array1<f32> = data.labels.iter().map(|&l| l as f32).collect();
        // Empty slices cannot be allocated: room for one row at least.
        let room = vec![0i32; data.len().max(1)];
        Ok(DeviceDataset {
            be: be.clone(),
            features: be.upload(&data.features.clone().into_dyn(), Category::Temporaries)?,
            labels: be.upload(&labels.into_dyn(), Category::Temporaries)?,
            fill: be.upload(
                &ArrayD::from_shape_vec(vec![f], fill).expect("one value per feature"),
                Category::Temporaries,
            )?,
            height: height as i32,
            width: width as i32,
            epoch: EpochRows {
                rows: be.upload_i32(&room)?,
                dy: be.upload_i32(&room)?,
                dx: be.upload_i32(&room)?,
            },
            epoch_rows: None,
        })
    }

    /// Writes an epoch's rows, in order, with their (dy, dx) shifts.
    pub fn start_epoch(&mut self, rows: &[usize], offsets: &[(isize, isize)]) -> Result<(), ExecError> {
        if rows.len() > self.epoch.rows.len() || offsets.len() != rows.len() {
            return Err(ExecError::Device(format!(
                "an epoch of {} rows ({} shifts) for a training set of {} rows",
                rows.len(),
                offsets.len(),
                self.epoch.rows.len()
            )));
        }
        let idx: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let dy: Vec<i32> = offsets.iter().map(|o| o.0 as i32).collect();
        let dx: Vec<i32> = offsets.iter().map(|o| o.1 as i32).collect();
        let n = rows.len();
        for (host, device) in [
            (idx, &mut self.epoch.rows),
            (dy, &mut self.epoch.dy),
            (dx, &mut self.epoch.dx),
        ] {
            let mut at = device.slice_mut(..n);
            self.be.stream().memcpy_htod(&host, &mut at).map_err(driver_err)?;
        }
        self.epoch_rows = Some(n);
        Ok(())
    }

    /// Features `[b, f]` (stored as `storage`: 16 bits where only 16-bit products read them)
    /// and labels `[b]` of the epoch's rows `start..start + b`; the kernels read `start`
    /// from the step clock.
    pub fn gather(&self, start: usize, b: usize, storage: Storage) -> Result<(DeviceTensor, DeviceTensor), ExecError> {
        let Some(epoch_rows) = self.epoch_rows else {
            return Err(ExecError::Device("a held batch before start_epoch".into()));
        };
        if start.checked_add(b).is_none_or(|end| end > epoch_rows) {
            return Err(ExecError::Device(format!(
                "a held batch of rows {start}..{} in an epoch of {epoch_rows}",
                start.saturating_add(b)
            )));
        }
        let f = (self.height * self.width) as usize;
        let be = &self.be;
        let clock = be.hold_clock(&[(ClockWord::BatchStart, start as u64)])?;
        let shape = crate::Shape::new(&[b, f]);
        let mut x = be.alloc_out(crate::exec::Out {
            shape: &shape,
            category: Category::Temporaries,
            storage,
            fp8: None,
        })?;
        let mut y = be.alloc(&crate::Shape::new(&[b]), Category::Temporaries)?;
        let e = &self.epoch;
        let fill = &self.fill;
        ops_launch::gather_rows(
            be,
            &mut x,
            &self.features,
            [&e.rows, &e.dy, &e.dx],
            clock,
            fill,
            b,
            self.height,
            self.width,
        )?;
        ops_launch::gather(be, &mut y, &self.labels, &e.rows, clock, b)?;
        Ok((x, y))
    }
}

/// One epoch's row order and image shifts, on the device.
struct EpochRows {
    rows: CudaSlice<i32>,
    dy: CudaSlice<i32>,
    dx: CudaSlice<i32>,
}
