//! Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_` (norm 2) does it:
//! the norm is over every gradient of the step at once, `‖g‖ = sqrt(Σ g²)`, and each
//! gradient is multiplied by `min(1, max_norm / (‖g‖ + 1e-6))`. The rule lives here once;
//! the CPU applies it as written (backend/cpu/step_primitives.rs) and a GPU in
//! kernels/clip.cu. In a data-parallel job it runs on the summed gradients, so every rank
//! clips by the same norm, the norm of the global batch's gradient.

/// Why clipping and `--update-in-backward` do not go together.
pub const NO_CLIPPING_INSIDE_BACKWARD: &str = "clipping by the global norm needs every gradient before the first update (the norm is over all of them), and updates inside backward apply each one as soon as its own is complete";

/// PyTorch's guard against dividing by a zero norm.
pub const CLIP_EPS: f64 = 1e-6;

/// The factor each gradient is multiplied by: `sum_of_squares` is Σ g² over every gradient
/// as backward made them, `loss_scale` what they are scaled by (1 without loss scaling),
/// so the norm is that of the true gradients. Both devices sum the squares in f64, so their
/// factors agree to f32 rounding whatever order each sums in.
pub fn clip_factor(sum_of_squares: f64, loss_scale: f64, max_norm: f64) -> f32 {
    let norm = sum_of_squares.sqrt() / loss_scale;
    (max_norm / (norm + CLIP_EPS)).min(1.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_is_pytorchs() {
        // ‖(3, 4)‖ = 5: clipped to 1 by 1 / (5 + 1e-6), left alone under a larger maximum.
        assert_eq!(clip_factor(25.0, 1.0, 1.0), (1.0 / (5.0 + 1e-6)) as f32);
        assert_eq!(clip_factor(25.0, 1.0, 10.0), 1.0);
        // Under a loss scale of 1024 the gradients are 1024 times the true ones.
        assert_eq!(
            clip_factor(25.0 * 1024.0 * 1024.0, 1024.0, 1.0),
            clip_factor(25.0, 1.0, 1.0)
        );
        // A zero gradient is not divided by zero.
        assert_eq!(clip_factor(0.0, 1.0, 1.0), 1.0);
    }
}
