//! Optimizer updates on the GPU: one fused kernel per parameter, same rules as
//! engine/optim/optimizer.rs.

use super::clock::lr_word;
use super::guard::StepGuard;
use super::launch::{grid_chunks, launched};
use super::{CudaBackend, DeviceTensor};
use crate::exec::ExecError;
use crate::kernels::{ClockWord, ElementStorage};
use crate::optim::{OptimizerConfig, OptimizerKind};

/// One update of `p` with gradient `g`; `state` as [`OptimizerConfig::state_names`]. The
/// kernel skips it when `guard` flags the step, and divides `g` by the guard's loss scale.
pub fn step(
    be: &CudaBackend,
    c: &OptimizerConfig,
    lr: f64,
    p: &mut DeviceTensor,
    g: &DeviceTensor,
    state: &mut [DeviceTensor],
    guard: &StepGuard,
) -> Result<(), ExecError> {
    let (status, scale) = (guard.status(), guard.scale.slice());
    let n = p.len() as i64;
    // The parameter's 16-bit twin, written by the same update (none: f32, never written).
    let (twin, twin_storage) = match &p.twin {
        Some(t) => (t.slice(), be.element_storage(t)),
        None => (p.slice(), ElementStorage::F32),
    };
    let wd = c.weight_decay as f32;
    let clock = be.hold_clock(&[(ClockWord::LearningRate, lr_word(lr))])?;
    match (c.kind, state) {
        (OptimizerKind::Sgd, state) => {
            let momentum = i32::from(!state.is_empty());
            let nesterov = i32::from(c.nesterov);
            let mu = c.momentum as f32;
            // No momentum: the kernel never touches the buffer argument.
            let buf = state.first().map_or(g.slice(), |b| b.slice());
            let (k, cfg) = (be.kernels(), grid_chunks(n as usize));
            launched(k.sgd_f32(
                be.stream(),
                cfg,
                p.slice(),
                twin,
                twin_storage,
                g.slice(),
                buf,
                n,
                clock,
                wd,
                mu,
                momentum,
                nesterov,
                status,
                scale,
            ))
        }
        (OptimizerKind::Adam | OptimizerKind::AdamW, [m, v]) => {
            // The bias corrections come from the guard's count of applied updates.
            let (b1, b2, eps) = (c.beta1, c.beta2, c.eps as f32);
            let decoupled = i32::from(c.kind == OptimizerKind::AdamW);
            let (k, cfg) = (be.kernels(), grid_chunks(n as usize));
            let (p, g, m, v) = (p.slice(), g.slice(), m.slice(), v.slice());
            launched(k.adam_f32(
                be.stream(),
                cfg,
                p,
                twin,
                twin_storage,
                g,
                m,
                v,
                n,
                clock,
                b1,
                b2,
                eps,
                wd,
                decoupled,
                status,
                scale,
            ))
        }
        _ => Err(ExecError::Device("optimizer state does not match the optimizer".into())),
    }
}
