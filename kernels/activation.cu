// The activation family (ops/activation.rs), forward and backward. Backward takes the saved
// output for relu, leaky relu (slope > 0), sigmoid, tanh and exp, and the saved input for
// gelu (tanh form) and log, as on the CPU.
#include "common.cuh"

// Which activation a kernel computes (leaky relu takes its slope); build.rs generates the
// same enum for Rust.
enum ActivationKind {
    ACTIVATION_RELU = 0,
    ACTIVATION_LEAKY_RELU = 1,
    ACTIVATION_GELU = 2,
    ACTIVATION_SIGMOID = 3,
    ACTIVATION_TANH = 4,
    ACTIVATION_EXP = 5,
    ACTIVATION_LOG = 6,
};

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

CR_KERNEL void activation_forward_f32(float* out, const float* x, long long n, ActivationKind kind, float slope) {
    CR_FOR(i, n) {
        float v = x[i], y;
        switch (kind) {
            case ACTIVATION_RELU: y = (v > 0.f || isnan(v)) ? v : 0.f; break;  // NaN stays NaN, as on the CPU
            case ACTIVATION_LEAKY_RELU: y = v > 0.f ? v : slope * v; break;
            case ACTIVATION_GELU: y = 0.5f * v * (1.f + tanhf(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v))); break;
            case ACTIVATION_SIGMOID: y = 1.f / (1.f + expf(-v)); break;
            case ACTIVATION_TANH: y = tanhf(v); break;
            case ACTIVATION_EXP: y = expf(v); break;
            default: y = logf(v); break;  // ACTIVATION_LOG
        }
        out[i] = y;
    }
}

CR_KERNEL void activation_backward_f32(float* out, const float* saved, const float* g, long long n, ActivationKind kind, float slope) {
    CR_FOR(i, n) {
        float s = saved[i], d = g[i], r;
        switch (kind) {
            case ACTIVATION_RELU: r = s > 0.f ? d : 0.f; break;
            case ACTIVATION_LEAKY_RELU: r = s > 0.f ? d : slope * d; break;
            case ACTIVATION_GELU: {
                float t = tanhf(SQRT_2_OVER_PI * (s + GELU_CUBIC * s * s * s));
                float dy = 0.5f * (1.f + t) + 0.5f * s * (1.f - t * t) * SQRT_2_OVER_PI * (1.f + 3.f * GELU_CUBIC * s * s);
                r = d * dy;
                break;
            }
            case ACTIVATION_SIGMOID: r = d * s * (1.f - s); break;
            case ACTIVATION_TANH: r = d * (1.f - s * s); break;
            case ACTIVATION_EXP: r = d * s; break;
            default: r = d / s; break;  // ACTIVATION_LOG
        }
        out[i] = r;
    }
}
