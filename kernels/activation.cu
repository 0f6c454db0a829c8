// Activations forward and backward. kind: 0 relu, 1 leaky relu (slope), 2 gelu (tanh form),
// 3 sigmoid, 4 tanh, 5 exp, 6 log. Backward takes the saved output for relu, leaky relu
// (slope > 0), sigmoid, tanh and exp, and the saved input for gelu and log, as on the CPU.
#include "common.cuh"

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

CR_KERNEL void activation_forward_f32(float* out, const float* x, long long n, int kind, float slope) {
    CR_FOR(i, n) {
        float v = x[i], y;
        switch (kind) {
            case 0: y = v > 0.f ? v : 0.f; break;
            case 1: y = v > 0.f ? v : slope * v; break;
            case 2: y = 0.5f * v * (1.f + tanhf(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v))); break;
            case 3: y = 1.f / (1.f + expf(-v)); break;
            case 4: y = tanhf(v); break;
            case 5: y = expf(v); break;
            default: y = logf(v); break;
        }
        out[i] = y;
    }
}

CR_KERNEL void activation_backward_f32(float* out, const float* saved, const float* g, long long n, int kind, float slope) {
    CR_FOR(i, n) {
        float s = saved[i], d = g[i], r;
        switch (kind) {
            case 0: r = s > 0.f ? d : 0.f; break;
            case 1: r = s > 0.f ? d : slope * d; break;
            case 2: {
                float t = tanhf(SQRT_2_OVER_PI * (s + GELU_CUBIC * s * s * s));
                float dy = 0.5f * (1.f + t) + 0.5f * s * (1.f - t * t) * SQRT_2_OVER_PI * (1.f + 3.f * GELU_CUBIC * s * s);
                r = d * dy;
                break;
            }
            case 3: r = d * s * (1.f - s); break;
            case 4: r = d * (1.f - s * s); break;
            case 5: r = d * s; break;
            default: r = d / s; break;
        }
        out[i] = r;
    }
}
