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

// Each tensor is read and written as stored (f32, or 16 bits in a low-precision step).
CR_KERNEL void activation_forward(float* out, ElementStorage out_storage, const float* x, ElementStorage x_storage, long long n,
                                  ActivationKind kind, float slope) {
    CR_FOR(i, n) {
        float v = cr_load(x, x_storage, i), y;
        switch (kind) {
            case ACTIVATION_RELU: y = (v > 0.f || isnan(v)) ? v : 0.f; break;  // NaN stays NaN, as on the CPU
            case ACTIVATION_LEAKY_RELU: y = v > 0.f ? v : slope * v; break;
            case ACTIVATION_GELU: y = 0.5f * v * (1.f + tanhf(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v))); break;
            case ACTIVATION_SIGMOID: y = 1.f / (1.f + expf(-v)); break;
            case ACTIVATION_TANH: y = tanhf(v); break;
            case ACTIVATION_EXP: y = expf(v); break;
            default: y = logf(v); break;  // ACTIVATION_LOG
        }
        cr_store(out, out_storage, i, y);
    }
}

CR_KERNEL void activation_backward(float* out, ElementStorage out_storage, const float* saved, ElementStorage saved_storage,
                                   const float* g, ElementStorage g_storage, long long n, ActivationKind kind, float slope) {
    CR_FOR(i, n) {
        float s = cr_load(saved, saved_storage, i), d = cr_load(g, g_storage, i), r;
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
        cr_store(out, out_storage, i, r);
    }
}

// A 16-bit Linear layer's output after its product (already rounded to 16 bits):
// out = relu?(out + bias), rounded again, in place. Rows along the grid's y, columns along
// x, so no thread divides to find its column. As on the CPU: ReLU keeps NaN.
CR_KERNEL void bias_activation_in_place(float* out, ElementStorage storage, const float* bias, long long rows, long long cols, int relu) {
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < cols; c += (long long)gridDim.x * blockDim.x) {
            long long i = r * cols + c;
            float z = cr_load(out, storage, i) + bias[c];
            cr_store(out, storage, i, (!relu || z > 0.f || isnan(z)) ? z : 0.f);
        }
    }
}
