//! A training set resident on the GPU: uploaded once, then every batch is gathered (and
//! shifted, for images) on the device from a few hundred bytes of row indices.

use crate::backend::cuda::{ops_launch, CudaBackend, DeviceTensor};
use crate::data::{augment::Shift, Dataset};
use crate::exec::ExecError;
use crate::memory::Category;
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

    /// Features `[b, f]` and labels `[b]` of `rows`, shifted by `offsets` (dy, dx) per row.
    pub fn gather(
        &self,
        rows: &[usize],
        offsets: &[(isize, isize)],
    ) -> Result<(DeviceTensor, DeviceTensor), ExecError> {
        let b = rows.len();
        let f = (self.height * self.width) as usize;
        let idx: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let dy: Vec<i32> = offsets.iter().map(|o| o.0 as i32).collect();
        let dx: Vec<i32> = offsets.iter().map(|o| o.1 as i32).collect();
        let (idx, dy, dx) = (
            self.be.upload_i32(&idx)?,
            self.be.upload_i32(&dy)?,
            self.be.upload_i32(&dx)?,
        );
        let mut x = self.be.alloc(&crate::Shape::new(&[b, f]), Category::Temporaries)?;
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
