//! The loss family on the GPU (ops/loss.rs, kernels/loss.cu): softmax cross-entropy and
//! its gradient; the mean squared error runs on the inner family's dot kernel.

use super::inner::dot;
use super::{grid, launched, single_block, THREADS};
use crate::backend::cuda::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::kernels::DotMode;

/// Mean over the batch of `-log softmax(logits)[label]`, one block.
pub fn xent_forward(
    be: &CudaBackend,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let (rows, classes) = (logits.shape.dims()[0] as i32, logits.shape.dims()[1] as i32);
    let (o, logits, labels) = (out.slice(), logits.slice(), labels.slice());
    launched(
        be.kernels
            .xent_forward_f32(&be.stream, single_block(THREADS), o, logits, labels, rows, classes),
    )
}

/// `g · (softmax(logits) - onehot(labels)) / B`, a thread per row.
pub fn xent_backward(
    be: &CudaBackend,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
    g: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let (rows, classes) = (logits.shape.dims()[0] as i32, logits.shape.dims()[1] as i32);
    let (o, logits, labels, g) = (out.slice(), logits.slice(), labels.slice(), g.slice());
    let cfg = grid(rows as usize);
    launched(
        be.kernels
            .xent_backward_f32(&be.stream, cfg, o, logits, labels, g, rows, classes),
    )
}

/// How many rows predict their label, one block.
pub fn count_correct(
    be: &CudaBackend,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let (rows, classes) = (logits.shape.dims()[0] as i32, logits.shape.dims()[1] as i32);
    let (o, logits, labels) = (out.slice(), logits.slice(), labels.slice());
    launched(
        be.kernels
            .count_correct_f32(&be.stream, single_block(THREADS), o, logits, labels, rows, classes),
    )
}

/// Mean of `(pred - target)²` over every element.
pub fn mse(
    be: &CudaBackend,
    pred: &DeviceTensor,
    target: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let scale = 1.0 / pred.len().max(1) as f32;
    dot(be, pred, target, DotMode::SquaredDifferences, scale, out)
}
