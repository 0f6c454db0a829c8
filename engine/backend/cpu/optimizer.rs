//! The optimizer update on the CPU: the rules of [`OptimizerConfig`] applied in place to
//! the session's parameters, with state buffers counted as optimizer state.

use super::{Buffer, Session};
use crate::dist::{group::StepShare, Group};
use crate::exec::{ExecError, Parameters};
use crate::memory::{Category, MemoryError};
use crate::optim::{OptimizerConfig, OptimizerKind};
use crate::tensor::Element;
use ndarray::{ArrayD, Zip};
use std::collections::BTreeMap;

pub struct CpuOptimizer<T> {
    pub config: OptimizerConfig,
    /// State per parameter name, in [`OptimizerConfig::state_names`] order.
    state: BTreeMap<String, Vec<Buffer<T>>>,
    /// Updates applied so far (Adam's bias correction counts them).
    pub steps: u64,
}

impl<T: Element> CpuOptimizer<T> {
    /// Allocates zeroed state for each named parameter of `session`. Zero momentum equals
    /// PyTorch's "first gradient" initialisation, since buf = μ·0 + g.
    pub fn new(config: OptimizerConfig, session: &Session<T>, params: &[String]) -> Result<Self, MemoryError> {
        let mut state = BTreeMap::new();
        for name in params {
            let shape = session
                .param(name)
                .map(|p| p.raw_dim())
                .unwrap_or_else(|| ndarray::IxDyn(&[0]));
            let bufs = config
                .state_names()
                .iter()
                .map(|_| session.allocate(Category::OptimizerState, ArrayD::zeros(shape.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            state.insert(name.clone(), bufs);
        }
        Ok(CpuOptimizer {
            config,
            state,
            steps: 0,
        })
    }

    /// Every state tensor as (parameter, state name, data), for saving.
    pub fn state(&self) -> Vec<(&str, &'static str, &ArrayD<T>)> {
        let names = self.config.state_names();
        self.state
            .iter()
            .flat_map(|(p, bufs)| bufs.iter().zip(names).map(move |(b, n)| (p.as_str(), *n, &b.data)))
            .collect()
    }

    /// Mutable access to one state tensor, for loading.
    pub fn state_mut(&mut self, param: &str, name: &str) -> Option<&mut ArrayD<T>> {
        let idx = self.config.state_names().iter().position(|n| *n == name)?;
        self.state
            .get_mut(param)
            .and_then(|b| b.get_mut(idx))
            .map(|b| &mut b.data)
    }

    /// Applies one update with learning rate `lr` to each (name, gradient).
    pub fn step(&mut self, session: &mut Session<T>, grads: &[(&str, &ArrayD<T>)], lr: f64) {
        self.begin_step();
        for &(name, g) in grads {
            self.update_one(session, name, g, lr);
        }
    }

    /// Counts a step's update (Adam's bias corrections); then [`Self::update_one`] each
    /// parameter.
    pub fn begin_step(&mut self) {
        self.steps += 1;
    }

    /// The update of one parameter, in the step [`Self::begin_step`] began.
    pub fn update_one(&mut self, session: &mut Session<T>, name: &str, g: &ArrayD<T>, lr: f64) {
        let c = &self.config;
        let t = self.steps as i32;
        let lr_t = T::from_f64(lr);
        let wd = T::from_f64(c.weight_decay);
        {
            let Some(p) = session.param_mut(name) else {
                return;
            };
            let state = self.state.get_mut(name).map(|v| v.as_mut_slice()).unwrap_or(&mut []);
            match (c.kind, state) {
                (OptimizerKind::Sgd, []) => {
                    Zip::from(p).and(g).par_for_each(|p, &g| *p = *p - lr_t * (g + wd * *p));
                }
                (OptimizerKind::Sgd, [buf]) => {
                    let mu = T::from_f64(c.momentum);
                    let nesterov = c.nesterov;
                    Zip::from(p).and(g).and(&mut buf.data).par_for_each(|p, &g, b| {
                        let g = g + wd * *p;
                        *b = mu * *b + g;
                        let d = if nesterov { g + mu * *b } else { *b };
                        *p = *p - lr_t * d;
                    });
                }
                (OptimizerKind::Adam | OptimizerKind::AdamW, [m, v]) => {
                    let decoupled = c.kind == OptimizerKind::AdamW;
                    let (b1, b2) = (T::from_f64(c.beta1), T::from_f64(c.beta2));
                    let bc1 = T::from_f64(1.0 - c.beta1.powi(t));
                    let bc2 = T::from_f64(1.0 - c.beta2.powi(t));
                    let eps = T::from_f64(c.eps);
                    let one = T::one();
                    let shrink = T::from_f64(1.0 - lr * c.weight_decay);
                    Zip::from(p)
                        .and(g)
                        .and(&mut m.data)
                        .and(&mut v.data)
                        .par_for_each(|p, &g, m, v| {
                            let g = if decoupled {
                                *p = *p * shrink;
                                g
                            } else {
                                g + wd * *p
                            };
                            *m = b1 * *m + (one - b1) * g;
                            *v = b2 * *v + (one - b2) * g * g;
                            let denom = (*v / bc2).sqrt() + eps;
                            *p = *p - lr_t * (*m / bc1) / denom;
                        });
                }
                _ => unreachable!("state allocated for this optimizer in new()"),
            }
        }
    }
}

/// A step's updates inside backward on the CPU ([`crate::plan::updates`]): the executor
/// reads the parameters through it and hands it each complete gradient. Nothing changes in
/// a step whose loss is not finite.
/// As one rank of a data-parallel job (`dp`), the step's loss is summed over the ranks before
/// the first update and each gradient just before its own, so every rank applies the global
/// batch's updates as backward produces them.
pub struct InBackward<'a> {
    pub session: &'a mut Session<f32>,
    pub optimizer: &'a mut CpuOptimizer<f32>,
    pub lr: f64,
    begun: bool,
    dp: Option<(&'a Group, StepShare)>,
    /// The loss every update checks (the global one in a job), once known.
    pub loss: Option<f32>,
}

impl<'a> InBackward<'a> {
    pub fn new(
        session: &'a mut Session<f32>,
        optimizer: &'a mut CpuOptimizer<f32>,
        lr: f64,
        dp: Option<(&'a Group, StepShare)>,
    ) -> Self {
        InBackward {
            session,
            optimizer,
            lr,
            begun: false,
            dp,
            loss: None,
        }
    }
}

impl Parameters<Buffer<f32>> for InBackward<'_> {
    fn get_param(&self, name: &str) -> Option<&Buffer<f32>> {
        self.session.get_param(name)
    }

    fn update(&mut self, name: &str, grad: &mut Buffer<f32>, loss: &Buffer<f32>) -> Result<(), ExecError> {
        let loss = match (self.loss, self.dp) {
            (Some(l), _) => l,
            (None, Some((group, share))) => group.reduce_mean(share, loss.scalar())?,
            (None, None) => loss.scalar(),
        };
        self.loss = Some(loss);
        // Every rank sees the same global loss, so all skip (and skip the sums) together.
        if !loss.is_finite() {
            return Ok(());
        }
        if let Some((group, share)) = self.dp {
            if !grad.data.is_standard_layout() {
                grad.data = grad.data.as_standard_layout().into_owned();
            }
            group.reduce_gradients(share, [grad.data.as_slice_mut().expect("standard layout")])?;
        }
        if !self.begun {
            self.optimizer.begin_step();
            self.begun = true;
        }
        self.optimizer.update_one(self.session, name, &grad.data, self.lr);
        Ok(())
    }
}
