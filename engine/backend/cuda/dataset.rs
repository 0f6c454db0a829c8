//! A training set resident on the GPU: uploaded once, then every batch is gathered (and
//! shifted, for images) on the device. An epoch's row order and shifts travel in one copy
//! at the epoch's start, so a step copies nothing from the host.

use super::{ops_launch, CudaBackend, DeviceTensor};
use crate::data::{augment::Shift, Dataset};
use crate::exec::ExecError;
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
        })
    }

    /// Uploads an epoch's rows, in order, with their (dy, dx) shifts.
    pub fn upload_epoch(&self, rows: &[usize], offsets: &[(isize, isize)]) -> Result<EpochRows, ExecError> {
        let idx: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let dy: Vec<i32> = offsets.iter().map(|o| o.0 as i32).collect();
        let dx: Vec<i32> = offsets.iter().map(|o| o.1 as i32).collect();
        // Empty slices cannot be allocated: an epoch always has a row, but stay safe.
        let pad = |mut v: Vec<i32>| {
            if v.is_empty() {
                v.push(0);
            }
            v
        };
        Ok(EpochRows {
            rows: self.be.upload_i32(&pad(idx))?,
            dy: self.be.upload_i32(&pad(dy))?,
            dx: self.be.upload_i32(&pad(dx))?,
        })
    }

    /// Features `[b, f]` (stored as `storage`: 16 bits where only 16-bit products read them)
    /// and labels `[b]` of the epoch's rows `start..start + b`.
    pub fn gather(
        &self,
        epoch: &EpochRows,
        start: usize,
        b: usize,
        storage: Storage,
    ) -> Result<(DeviceTensor, DeviceTensor), ExecError> {
        let f = (self.height * self.width) as usize;
        let range = start..start + b;
        let (idx, dy, dx) = (
            epoch.rows.slice(range.clone()),
            epoch.dy.slice(range.clone()),
            epoch.dx.slice(range),
        );
        let shape = crate::Shape::new(&[b, f]);
        let mut x = self.be.alloc_out(crate::exec::Out {
            shape: &shape,
            category: Category::Temporaries,
            storage,
        })?;
        let mut y = self.be.alloc(&crate::Shape::new(&[b]), Category::Temporaries)?;
        ops_launch::gather_rows(
            &self.be,
            &mut x,
            &self.features,
            &idx,
            &dy,
            &dx,
            &self.fill,
            b,
            self.height,
            self.width,
        )?;
        ops_launch::gather(&self.be, &mut y, &self.labels, &idx, b)?;
        Ok((x, y))
    }
}

/// One epoch's row order and image shifts, on the device.
pub struct EpochRows {
    rows: CudaSlice<i32>,
    dy: CudaSlice<i32>,
    dx: CudaSlice<i32>,
}
