//! Each op's forward rule on the GPU: cuBLAS for matmul, our kernels for the rest.
//! Kernels see tensors of rank ≤ 4 (padded on the left), through explicit strides.

use super::{blas, driver_err, CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::ops::{dropout, Activation, Op, RunContext};
use crate::rng;
use crate::tensor::Shape;
use cudarc::driver::{DriverError, LaunchConfig};

const THREADS: u32 = 256;

pub fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn single_block(threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A generated launcher's result as ours.
pub fn launched(r: Result<(), DriverError>) -> Result<(), ExecError> {
    r.map_err(driver_err)
}

fn unsupported(why: String) -> ExecError {
    ExecError::Device(format!("not supported on the CUDA backend: {why}"))
}

fn contiguous_strides(dims: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as i64;
    }
    s
}

/// Left-pads (dims, strides) to rank 4 with unit dims of stride 0.
fn pad4(dims: &[usize], strides: &[i64]) -> Result<([i32; 4], [i64; 4]), ExecError> {
    if dims.len() > 4 {
        return Err(unsupported(format!("tensors of rank {} (at most 4)", dims.len())));
    }
    let mut d = [1i32; 4];
    let mut s = [0i64; 4];
    let off = 4 - dims.len();
    for i in 0..dims.len() {
        d[off + i] = dims[i] as i32;
        s[off + i] = strides[i];
    }
    Ok((d, s))
}

/// Strides that read `input` (right-aligned) as if broadcast to `out` dims.
fn broadcast_strides(input: &[usize], out: &[usize]) -> Vec<i64> {
    let cs = contiguous_strides(input);
    let lead = out.len() - input.len();
    (0..out.len())
        .map(|i| {
            if i < lead {
                0
            } else {
                let j = i - lead;
                if input[j] == 1 && out[i] != 1 {
                    0
                } else {
                    cs[j]
                }
            }
        })
        .collect()
}

pub fn fill(be: &CudaBackend, out: &mut DeviceTensor, v: f32) -> Result<(), ExecError> {
    let n = out.len() as i64;
    launched(be.kernels.fill_f32(&be.stream, grid(n as usize), out.slice(), n, v))
}

fn scale(be: &CudaBackend, x: &DeviceTensor, s: f32, out: &mut DeviceTensor) -> Result<(), ExecError> {
    let n = out.len() as i64;
    launched(
        be.kernels
            .scale_f32(&be.stream, grid(n as usize), out.slice(), x.slice(), n, s),
    )
}

/// `out = a (op) x` with broadcasting; op 0 add, 1 sub, 2 mul. `out` may be `a` itself
/// (each thread reads and writes only its own element).
pub(super) fn binary(
    be: &CudaBackend,
    code: i32,
    a: &DeviceTensor,
    x: &DeviceTensor,
    out: &DeviceTensor,
) -> Result<(), ExecError> {
    let od = out.shape.dims().to_vec();
    let (d, sa) = pad4(&od, &broadcast_strides(a.shape.dims(), &od))?;
    let (_, sb) = pad4(&od, &broadcast_strides(x.shape.dims(), &od))?;
    let n = out.len() as i64;
    launched(be.kernels.binary_f32(
        &be.stream,
        grid(n as usize),
        out.slice(),
        a.slice(),
        x.slice(),
        n,
        code,
        d[1],
        d[2],
        d[3],
        sa[0],
        sa[1],
        sa[2],
        sa[3],
        sb[0],
        sb[1],
        sb[2],
        sb[3],
    ))
}

fn broadcast(be: &CudaBackend, x: &DeviceTensor, axis: Option<usize>, out: &mut DeviceTensor) -> Result<(), ExecError> {
    let mut from = x.shape.dims().to_vec();
    if let Some(a) = axis {
        from.insert(a, 1);
    }
    let od = out.shape.dims().to_vec();
    let (d, s) = pad4(&od, &broadcast_strides(&from, &od))?;
    let n = out.len() as i64;
    let k = &be.kernels;
    let cfg = grid(n as usize);
    launched(k.strided_copy_f32(
        &be.stream,
        cfg,
        out.slice(),
        x.slice(),
        n,
        d[1],
        d[2],
        d[3],
        s[0],
        s[1],
        s[2],
        s[3],
    ))
}

/// Sums `x` over the axes marked in `reduced`, times `scale`, into `out` (the kept axes in order).
fn reduce(
    be: &CudaBackend,
    x: &DeviceTensor,
    reduced: &[bool],
    scale: f32,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let dims = x.shape.dims();
    if let ([rows, cols], [true, false]) = (dims, reduced) {
        // Column sums (every bias gradient): the dedicated kernel.
        let cfg = LaunchConfig {
            grid_dim: (cols.div_ceil(32).max(1) as u32, 1, 1),
            block_dim: (32, 32, 1),
            shared_mem_bytes: 0,
        };
        let (r, c) = (*rows as i64, *cols as i64);
        return launched(
            be.kernels
                .column_sums_f32(&be.stream, cfg, out.slice(), x.slice(), r, c, scale),
        );
    }
    let strides = contiguous_strides(dims);
    let (mut kd, mut ks, mut rd, mut rs) = (vec![], vec![], vec![], vec![]);
    for i in 0..dims.len() {
        if reduced[i] {
            rd.push(dims[i]);
            rs.push(strides[i]);
        } else {
            kd.push(dims[i]);
            ks.push(strides[i]);
        }
    }
    let (k, ks) = pad4(&kd, &ks)?;
    let (r, rs) = pad4(&rd, &rs)?;
    let n_out: i64 = kd.iter().product::<usize>() as i64;
    let n_red: i64 = rd.iter().product::<usize>() as i64;
    // Many outputs: a thread each (coalesced for column sums). Few: a block each.
    let (o, i, st) = (out.slice(), x.slice(), &be.stream);
    let kernels = &be.kernels;
    launched(if n_out >= 1024 {
        let cfg = grid(n_out as usize);
        kernels.reduce_thread_f32(
            st, cfg, o, i, n_out, n_red, k[1], k[2], k[3], ks[0], ks[1], ks[2], ks[3], r[1], r[2], r[3], rs[0], rs[1],
            rs[2], rs[3], scale,
        )
    } else {
        let mut cfg = grid(1);
        cfg.grid_dim.0 = n_out.clamp(1, 65535) as u32;
        kernels.reduce_block_f32(
            st, cfg, o, i, n_out, n_red, k[1], k[2], k[3], ks[0], ks[1], ks[2], ks[3], r[1], r[2], r[3], rs[0], rs[1],
            rs[2], rs[3], scale,
        )
    })
}

/// Which axes of `input` a `SumTo { axis, shape }` sums away.
fn sum_to_axes(input: &[usize], axis: Option<usize>, shape: &Shape) -> Vec<bool> {
    let mut target = shape.dims().to_vec();
    if let Some(a) = axis {
        target.insert(a, 1);
    }
    let lead = input.len() - target.len();
    (0..input.len())
        .map(|i| i < lead || (target[i - lead] == 1 && input[i] != 1))
        .collect()
}

fn dot(
    be: &CudaBackend,
    a: &DeviceTensor,
    x: &DeviceTensor,
    mode: i32,
    scale: f32,
    out: &mut DeviceTensor,
) -> Result<(), ExecError> {
    let n = a.len() as i64;
    let cfg = single_block(1024);
    launched(
        be.kernels
            .dot_f32(&be.stream, cfg, out.slice(), a.slice(), x.slice(), n, mode, scale),
    )
}

fn activation_code(a: Activation) -> (i32, f32) {
    match a {
        Activation::Relu => (0, 0.0),
        Activation::LeakyRelu(s) => (1, s as f32),
        Activation::Gelu => (2, 0.0),
        Activation::Sigmoid => (3, 0.0),
        Activation::Tanh => (4, 0.0),
        Activation::Exp => (5, 0.0),
        Activation::Log => (6, 0.0),
    }
}

/// `out = a(x)` elementwise; `out` may be `x` itself.
pub(super) fn activation(
    be: &CudaBackend,
    a: Activation,
    x: &DeviceTensor,
    out: &DeviceTensor,
) -> Result<(), ExecError> {
    let (kind, slope) = activation_code(a);
    let n = out.len() as i64;
    let cfg = grid(out.len());
    launched(
        be.kernels
            .activation_forward_f32(&be.stream, cfg, out.slice(), x.slice(), n, kind, slope),
    )
}

pub fn forward(
    be: &CudaBackend,
    op: &Op,
    x: &[&DeviceTensor],
    out: &mut DeviceTensor,
    ctx: &RunContext,
) -> Result<(), ExecError> {
    let n = out.len() as i64;
    match op {
        Op::Leaf(_) => unreachable!("leaves are bound, not computed"),
        Op::MatMul { trans_a, trans_b } => blas::matmul(be, x[0], x[1], *trans_a, *trans_b, out),
        Op::Add => binary(be, 0, x[0], x[1], out),
        Op::Sub => binary(be, 1, x[0], x[1], out),
        Op::Mul => binary(be, 2, x[0], x[1], out),
        Op::Scale(s) => scale(be, x[0], *s as f32, out),
        Op::Neg => scale(be, x[0], -1.0, out),
        Op::Sum { axis } | Op::Mean { axis } => {
            let dims = x[0].shape.dims();
            let reduced: Vec<bool> = (0..dims.len()).map(|i| axis.is_none_or(|a| a == i)).collect();
            let count: usize = dims
                .iter()
                .zip(&reduced)
                .filter(|(_, r)| **r)
                .map(|(d, _)| *d)
                .product();
            let s = if matches!(op, Op::Mean { .. }) {
                1.0 / count.max(1) as f32
            } else {
                1.0
            };
            reduce(be, x[0], &reduced, s, out)
        }
        Op::SumTo { axis, shape } => reduce(be, x[0], &sum_to_axes(x[0].shape.dims(), *axis, shape), 1.0, out),
        Op::Broadcast { axis, .. } => broadcast(be, x[0], *axis, out),
        Op::Unary(a) => activation(be, *a, x[0], out),
        Op::UnaryGrad(a) => {
            let (kind, slope) = activation_code(*a);
            let (o, saved, g) = (out.slice(), x[0].slice(), x[1].slice());
            launched(
                be.kernels
                    .activation_backward_f32(&be.stream, grid(n as usize), o, saved, g, n, kind, slope),
            )
        }
        Op::Dropout { p, key } => {
            if !ctx.training || *p == 0.0 {
                return be.stream.memcpy_dtod(x[0].slice(), out.slice_mut()).map_err(driver_err);
            }
            let prefix = rng::prefix(ctx.seed, rng::stream::DROPOUT, dropout::mask_key(*key, ctx.step));
            let scale = (1.0 / (1.0 - p)) as f32;
            let cfg = grid(n as usize);
            launched(
                be.kernels
                    .dropout_f32(&be.stream, cfg, out.slice(), x[0].slice(), n, prefix, *p, scale),
            )
        }
        Op::SoftmaxCrossEntropy => {
            let (rows, classes) = (x[0].shape.dims()[0] as i32, x[0].shape.dims()[1] as i32);
            let (o, logits, labels) = (out.slice(), x[0].slice(), x[1].slice());
            launched(
                be.kernels
                    .xent_forward_f32(&be.stream, single_block(THREADS), o, logits, labels, rows, classes),
            )
        }
        Op::SoftmaxCrossEntropyGrad => {
            let (rows, classes) = (x[0].shape.dims()[0] as i32, x[0].shape.dims()[1] as i32);
            let (o, logits, labels, g) = (out.slice(), x[0].slice(), x[1].slice(), x[2].slice());
            let cfg = grid(rows as usize);
            launched(
                be.kernels
                    .xent_backward_f32(&be.stream, cfg, o, logits, labels, g, rows, classes),
            )
        }
        Op::MeanSquaredError => dot(be, x[0], x[1], 2, 1.0 / x[0].len().max(1) as f32, out),
        Op::Inner => dot(be, x[0], x[1], 0, 1.0, out),
        Op::SquaredNorm => dot(be, x[0], x[0], 1, 1.0, out),
    }
}

/// Launchers for the data kernels (kernels/data.cu).
pub mod data {
    use super::{grid, launched, CudaBackend, DeviceTensor, ExecError};
    use crate::backend::cuda::DevPtr;

    /// Rows of `data` (indices `rows`), each image shifted by (`dy`, `dx`), into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn gather_rows(
        be: &CudaBackend,
        out: &mut DeviceTensor,
        data: &DeviceTensor,
        rows: &impl DevPtr<i32>,
        dy: &impl DevPtr<i32>,
        dx: &impl DevPtr<i32>,
        fill: &DeviceTensor,
        batch: usize,
        height: i32,
        width: i32,
    ) -> Result<(), ExecError> {
        let cfg = grid(out.len());
        let (o, d, f) = (out.slice(), data.slice(), fill.slice());
        launched(
            be.kernels
                .gather_rows_f32(&be.stream, cfg, o, d, rows, dy, dx, f, batch as i32, height, width),
        )
    }

    /// `sum += weight · x` for scalars: a loss summed on the device.
    pub fn accumulate(
        be: &CudaBackend,
        sum: &mut DeviceTensor,
        x: &DeviceTensor,
        weight: f32,
    ) -> Result<(), ExecError> {
        launched(
            be.kernels
                .axpy_f32(&be.stream, grid(1), sum.slice(), x.slice(), 1, weight),
        )
    }

    /// Sets every element of `t` to zero.
    pub fn zero(be: &CudaBackend, t: &mut DeviceTensor) -> Result<(), ExecError> {
        super::fill(be, t, 0.0)
    }

    /// Each row's first largest value's index, on the host: one i32 per row comes back.
    pub fn argmax_rows(be: &CudaBackend, logits: &DeviceTensor) -> Result<Vec<i32>, ExecError> {
        let (rows, classes) = (logits.shape.dims()[0], logits.shape.dims()[1]);
        // SAFETY: the kernel writes every row's index before it is read back.
        let out = unsafe { be.stream.alloc::<i32>(rows.max(1)) }.map_err(super::driver_err)?;
        let (r, c) = (rows as i32, classes as i32);
        launched(
            be.kernels
                .argmax_rows_f32(&be.stream, grid(rows), &out, logits.slice(), r, c),
        )?;
        let mut v = be.download_i32(&out)?;
        v.truncate(rows);
        Ok(v)
    }

    /// `out[i] = data[rows[i]]`.
    pub fn gather(
        be: &CudaBackend,
        out: &mut DeviceTensor,
        data: &DeviceTensor,
        rows: &impl DevPtr<i32>,
        batch: usize,
    ) -> Result<(), ExecError> {
        let (o, d) = (out.slice(), data.slice());
        launched(be.kernels.gather_f32(&be.stream, grid(batch), o, d, rows, batch as i32))
    }
}
