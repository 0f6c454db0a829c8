//! Optimizer updates on the GPU: one fused kernel per parameter, same rules as
//! engine/optim/optimizer.rs.

use super::ops::{grid, launch};
use super::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::optim::{OptimizerConfig, OptimizerKind};
use cudarc::driver::PushKernelArg;

/// One update of `p` with gradient `g`; `state` as [`OptimizerConfig::state_names`].
pub fn step(
    be: &CudaBackend,
    c: &OptimizerConfig,
    steps: u64,
    lr: f64,
    p: &mut DeviceTensor,
    g: &DeviceTensor,
    state: &mut [DeviceTensor],
) -> Result<(), ExecError> {
    let n = p.len() as i64;
    let (lr32, wd) = (lr as f32, c.weight_decay as f32);
    match (c.kind, state) {
        (OptimizerKind::Sgd, state) => {
            let momentum = i32::from(!state.is_empty());
            let nesterov = i32::from(c.nesterov);
            let mu = c.momentum as f32;
            let mut b = be.stream().launch_builder(&be.kernels().sgd);
            b.arg(p.slice_mut()).arg(g.slice());
            match state {
                [buf] => b.arg(buf.slice_mut()),
                // No momentum: the kernel never touches the buffer argument.
                _ => b.arg(g.slice()),
            };
            b.arg(&n).arg(&lr32).arg(&wd).arg(&mu).arg(&momentum).arg(&nesterov);
            launch(b, grid(n as usize))
        }
        (OptimizerKind::Adam | OptimizerKind::AdamW, [m, v]) => {
            let t = steps as i32;
            let (b1, b2, eps) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32);
            let bc1 = (1.0 - c.beta1.powi(t)) as f32;
            let bc2 = (1.0 - c.beta2.powi(t)) as f32;
            let decoupled = i32::from(c.kind == OptimizerKind::AdamW);
            let mut b = be.stream().launch_builder(&be.kernels().adam);
            b.arg(p.slice_mut())
                .arg(g.slice())
                .arg(m.slice_mut())
                .arg(v.slice_mut());
            b.arg(&n)
                .arg(&lr32)
                .arg(&b1)
                .arg(&b2)
                .arg(&bc1)
                .arg(&bc2)
                .arg(&eps)
                .arg(&wd)
                .arg(&decoupled);
            launch(b, grid(n as usize))
        }
        _ => Err(ExecError::Device("optimizer state does not match the optimizer".into())),
    }
}
