//! Optimizer updates on the GPU: one fused kernel per parameter, same rules as
//! engine/optim/optimizer.rs.

use super::clock::lr_word;
use super::guard::StepGuard;
use super::launch::{grid_chunks, launched};
use super::{data_parallel, CudaBackend, DeviceTensor};
use crate::dist::{group::StepShare, Group};
use crate::exec::Backend;
use crate::exec::{ExecError, Parameters};
use crate::kernels::{ClockWord, ElementStorage, GuardFlag};
use crate::memory::Category;
use crate::optim::{OptimizerConfig, OptimizerKind};
use std::collections::HashMap;

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

/// A step's updates inside backward on the GPU ([`crate::plan::updates`]): the executor
/// reads the parameters through it and hands it each complete gradient. The first update
/// flags a non-finite loss in the step guard, which every update kernel then obeys.
pub struct InBackward<'a> {
    pub be: &'a CudaBackend,
    pub params: &'a mut HashMap<String, DeviceTensor>,
    pub state: &'a mut HashMap<String, Vec<DeviceTensor>>,
    pub config: &'a OptimizerConfig,
    pub lr: f64,
    pub guard: &'a StepGuard,
    pub loss_checked: bool,
    /// As one rank of a data-parallel job: the loss is summed over the ranks before the
    /// guard checks it (at the first update), each gradient just before its update.
    pub dp: Option<(&'a Group, StepShare)>,
    /// That summed loss, once made.
    pub global_loss: Option<DeviceTensor>,
}

impl Parameters<DeviceTensor> for InBackward<'_> {
    fn get_param(&self, name: &str) -> Option<&DeviceTensor> {
        self.params.get(name)
    }

    fn update(&mut self, name: &str, grad: &mut DeviceTensor, loss: &DeviceTensor) -> Result<(), ExecError> {
        if !self.loss_checked {
            let checked = match self.dp {
                Some((group, share)) => {
                    let mut global = self.be.duplicate(loss, Category::Temporaries)?;
                    data_parallel::start_mean(self.be, group, share, &mut global)?;
                    data_parallel::wait(group)?;
                    self.global_loss.insert(global)
                }
                None => loss,
            };
            self.guard.flag_nonfinite(self.be, checked, GuardFlag::NonfiniteLoss)?;
            self.loss_checked = true;
        }
        if let Some((group, share)) = self.dp {
            data_parallel::start_mean(self.be, group, share, grad)?;
            data_parallel::wait(group)?;
        }
        let (Some(p), Some(state)) = (self.params.get_mut(name), self.state.get_mut(name)) else {
            return Err(ExecError::MissingParameter(name.to_string()));
        };
        step(self.be, self.config, self.lr, p, grad, state, self.guard)
    }
}
