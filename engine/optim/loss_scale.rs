//! Dynamic loss scaling, as PyTorch's GradScaler does it: the backward pass is seeded with
//! `scale` instead of 1, so gradients too small for f16 survive their f16 copies; the
//! optimizer divides the scale back out. A step whose gradients overflowed is skipped and
//! the scale halves; after `growth_interval` clean steps in a row it doubles. Scales are
//! powers of two, so scaling and unscaling are exact in f32.
//!
//! The CPU runs these rules here; the GPU runs the same rules on the device
//! (kernels/guard.cu, `guard_update`) so that a step needs no read-back.

/// The first scale (PyTorch's default too).
pub const INITIAL_LOSS_SCALE: f32 = 65536.0;
/// Clean steps before the scale doubles (PyTorch's default).
pub const GROWTH_INTERVAL: u32 = 2000;
/// The scale never leaves [2^-24, 2^24]: past either end something else is wrong.
pub const MIN_LOSS_SCALE: f32 = 1.0 / 16_777_216.0;
pub const MAX_LOSS_SCALE: f32 = 16_777_216.0;

/// Updates inside backward and dynamic loss scaling do not mix, stated once for every place
/// that checks it (a training step, the trainer, the command line's flags): an overflowing
/// gradient is found only once backward has made it, after earlier layers were updated.
pub const NO_UPDATES_INSIDE_BACKWARD: &str = "updates inside backward cannot be combined with loss scaling: a gradient that overflows late in backward would leave the layers updated before it changed";

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub scale: f32,
    pub growth_interval: u32,
    /// Clean steps since the scale last changed.
    pub clean_steps: u32,
    /// Steps skipped because their gradients overflowed.
    pub skipped: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: INITIAL_LOSS_SCALE,
            growth_interval: GROWTH_INTERVAL,
            clean_steps: 0,
            skipped: 0,
        }
    }
}

impl LossScaler {
    /// Records a step's outcome; returns whether its update may be applied.
    pub fn after_step(&mut self, overflowed: bool) -> bool {
        if overflowed {
            self.scale = (self.scale * 0.5).max(MIN_LOSS_SCALE);
            self.clean_steps = 0;
            self.skipped += 1;
            return false;
        }
        self.clean_steps += 1;
        if self.clean_steps >= self.growth_interval {
            self.scale = (self.scale * 2.0).min(MAX_LOSS_SCALE);
            self.clean_steps = 0;
        }
        true
    }

    /// What multiplies each gradient before the update.
    pub fn unscale(&self) -> f32 {
        1.0 / self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_halves_and_skips_clean_steps_double_after_the_interval() {
        let mut s = LossScaler {
            growth_interval: 3,
            ..LossScaler::default()
        };
        assert!(!s.after_step(true));
        assert_eq!((s.scale, s.skipped), (32768.0, 1));
        assert!(s.after_step(false) && s.after_step(false));
        assert_eq!(s.scale, 32768.0);
        assert!(s.after_step(false));
        assert_eq!((s.scale, s.clean_steps), (65536.0, 0));
        // An overflow resets the run of clean steps.
        s.after_step(false);
        s.after_step(true);
        s.after_step(false);
        s.after_step(false);
        assert_eq!(s.scale, 32768.0);
        for _ in 0..100 {
            s.after_step(true);
        }
        assert_eq!(s.scale, MIN_LOSS_SCALE);
    }
}
