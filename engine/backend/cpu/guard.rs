//! The step guard on the host, with the GPU's rules (kernels/guard.cu, `guard_update`): a
//! step whose loss is not finite or, under dynamic loss scaling, whose gradients overflowed
//! applies no update. A non-finite loss is fatal: its step and loss are recorded, and its
//! flag stays set, so no later update applies until the trainer reads the record and stops.

use crate::kernels::GuardFlag;
use crate::optim::LossScaler;
use ndarray::ArrayD;

#[derive(Default)]
pub struct HostGuard {
    /// This step's [`GuardFlag`] bits; updates are skipped while any is set.
    flags: i32,
    /// Dynamic loss scaling, when training with it (f16).
    pub scaler: Option<LossScaler>,
    /// The first step whose loss was not finite, and that loss.
    pub first_nonfinite: Option<(u64, f32)>,
}

impl HostGuard {
    pub fn new(scaler: Option<LossScaler>) -> Self {
        HostGuard {
            scaler,
            ..HostGuard::default()
        }
    }

    /// Sets `flag` for this step if any element of `values` is NaN or infinite.
    pub fn flag_nonfinite(&mut self, values: &ArrayD<f32>, flag: GuardFlag) {
        if values.iter().any(|v| !v.is_finite()) {
            self.flags |= flag as i32;
        }
    }

    /// Whether this step's loss (or an earlier one's) was not finite: the run stops there.
    pub fn loss_was_nonfinite(&self) -> bool {
        self.flags & GuardFlag::NonfiniteLoss as i32 != 0
    }

    /// Whether this step's update is off.
    pub fn skips_update(&self) -> bool {
        self.flags != 0
    }

    /// Closes step `step` (1-based) after its updates, whose loss was `loss`: records a
    /// non-finite loss, moves the loss scale. Returns whether the step's update was applied.
    pub fn close_step(&mut self, loss: f32, step: u64) -> bool {
        if self.flags & GuardFlag::NonfiniteLoss as i32 != 0 {
            if self.first_nonfinite.is_none() {
                self.first_nonfinite = Some((step, loss));
                if let Some(scaler) = &mut self.scaler {
                    scaler.skipped += 1;
                }
            }
            return false;
        }
        let overflowed = self.flags & GuardFlag::Overflow as i32 != 0;
        self.flags = 0;
        self.scaler.as_mut().is_none_or(|s| s.after_step(overflowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(v: f32) -> ArrayD<f32> {
        ArrayD::from_elem(vec![], v)
    }

    #[test]
    fn a_non_finite_loss_is_recorded_once_and_keeps_every_later_update_off() {
        let mut g = HostGuard::new(None);
        g.flag_nonfinite(&scalar(1.0), GuardFlag::NonfiniteLoss);
        assert!(!g.skips_update() && g.close_step(1.0, 1));
        g.flag_nonfinite(&scalar(f32::NAN), GuardFlag::NonfiniteLoss);
        assert!(g.skips_update() && !g.close_step(f32::NAN, 2));
        g.flag_nonfinite(&scalar(f32::INFINITY), GuardFlag::NonfiniteLoss);
        assert!(g.skips_update() && !g.close_step(f32::INFINITY, 3));
        g.flag_nonfinite(&scalar(1.0), GuardFlag::NonfiniteLoss);
        assert!(g.skips_update() && !g.close_step(1.0, 4));
        assert!(matches!(g.first_nonfinite, Some((2, l)) if l.is_nan()));
    }

    #[test]
    fn an_overflow_skips_one_step_and_halves_the_scale() {
        let mut g = HostGuard::new(Some(LossScaler::default()));
        let scale = g.scaler.as_ref().map(|s| s.scale);
        g.flag_nonfinite(&ArrayD::from_elem(vec![2], f32::INFINITY), GuardFlag::Overflow);
        assert!(g.skips_update() && !g.close_step(1.0, 1));
        assert_eq!(
            g.scaler.as_ref().map(|s| (2.0 * s.scale, s.skipped)),
            scale.map(|s| (s, 1))
        );
        assert!(!g.skips_update() && g.close_step(1.0, 2));
        assert_eq!(g.first_nonfinite, None);
    }
}
