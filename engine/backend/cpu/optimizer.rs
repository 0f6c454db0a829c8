//! The optimizer update on the CPU: the rules of [`OptimizerConfig`] applied in place to
//! the session's parameters, with state buffers counted as optimizer state.

use super::each_element::{update2, update3, update4};
use super::{Buffer, Session};
use crate::memory::{Category, MemoryError};
use crate::optim::{OptimizerConfig, OptimizerKind};
use crate::tensor::Element;
use ndarray::ArrayD;
use std::collections::BTreeMap;

pub struct CpuOptimizer<T> {
    pub config: OptimizerConfig,
    /// State per parameter name, in [`OptimizerConfig::state_names`] order.
    state: BTreeMap<String, Vec<Buffer<T>>>,
    /// Updates applied so far (Adam's bias corrections count them).
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

    /// Applies one update with learning rate `lr` to each (name, gradient), and counts it.
    pub fn step(&mut self, session: &mut Session<T>, grads: &[(&str, &ArrayD<T>)], lr: f64) {
        for &(name, g) in grads {
            self.update_one(session, name, g, lr);
        }
        self.count_update();
    }

    /// Counts a step whose update was applied (Adam's bias corrections count them), once
    /// [`Self::update_one`] has updated each parameter.
    pub fn count_update(&mut self) {
        self.steps += 1;
    }

    /// The update of one parameter in the step after the [`Self::steps`] counted so far.
    pub fn update_one(&mut self, session: &mut Session<T>, name: &str, g: &ArrayD<T>, lr: f64) {
        let c = &self.config;
        let t = (self.steps + 1) as i32;
        let lr_t = T::from_f64(lr);
        let wd = T::from_f64(c.weight_decay);
        {
            let Some(p) = session.param_mut(name) else {
                return;
            };
            let state = self.state.get_mut(name).map(|v| v.as_mut_slice()).unwrap_or(&mut []);
            match (c.kind, state) {
                (OptimizerKind::Sgd, []) => {
                    update2(p, g, |p, g| *p = *p - lr_t * (g + wd * *p));
                }
                (OptimizerKind::Sgd, [buf]) => {
                    let mu = T::from_f64(c.momentum);
                    let nesterov = c.nesterov;
                    update3(p, g, &mut buf.data, |p, g, b| {
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
                    update4(p, g, (&mut m.data, &mut v.data), |p, g, m, v| {
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
