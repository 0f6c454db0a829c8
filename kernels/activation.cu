// The activation family (ops/activation.rs), forward and backward. Backward takes the saved
// output for relu, leaky relu (slope > 0), sigmoid, tanh and exp, and the saved input for
// gelu (tanh form), silu and log, as on the CPU.
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
    ACTIVATION_SILU = 7,
};

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

// One value of the activation and of its derivative (times the incoming gradient d), from
// the saved input or output as the header says.
__device__ __forceinline__ float cr_activation(ActivationKind kind, float v, float slope) {
    switch (kind) {
        case ACTIVATION_RELU: return (v > 0.f || isnan(v)) ? v : 0.f;  // NaN stays NaN, as on the CPU
        case ACTIVATION_LEAKY_RELU: return v > 0.f ? v : slope * v;
        case ACTIVATION_GELU: return 0.5f * v * (1.f + tanhf(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)));
        case ACTIVATION_SIGMOID: return 1.f / (1.f + expf(-v));
        case ACTIVATION_TANH: return tanhf(v);
        case ACTIVATION_EXP: return expf(v);
        case ACTIVATION_SILU: return v / (1.f + expf(-v));
        default: return logf(v);  // ACTIVATION_LOG
    }
}

__device__ __forceinline__ float cr_activation_grad(ActivationKind kind, float s, float d, float slope) {
    switch (kind) {
        case ACTIVATION_RELU: return s > 0.f ? d : 0.f;
        case ACTIVATION_LEAKY_RELU: return s > 0.f ? d : slope * d;
        case ACTIVATION_GELU: {
            float t = tanhf(SQRT_2_OVER_PI * (s + GELU_CUBIC * s * s * s));
            return d * (0.5f * (1.f + t) + 0.5f * s * (1.f - t * t) * SQRT_2_OVER_PI * (1.f + 3.f * GELU_CUBIC * s * s));
        }
        case ACTIVATION_SIGMOID: return d * s * (1.f - s);
        case ACTIVATION_TANH: return d * (1.f - s * s);
        case ACTIVATION_EXP: return d * s;
        case ACTIVATION_SILU: {
            float sig = 1.f / (1.f + expf(-s));
            return d * (sig * (1.f + s * (1.f - sig)));
        }
        default: return d / s;  // ACTIVATION_LOG
    }
}

// Each tensor is read and written as stored (f32, or 16 bits in a low-precision step), eight
// values at a time where every buffer is 16-byte aligned (common.cuh). `out` may be `x`.
CR_KERNEL void activation_forward(float* out, ElementStorage out_storage, const float* x, ElementStorage x_storage, long long n,
                                  ActivationKind kind, float slope) {
    long long chunks = cr_aligned16(out) && cr_aligned16(x) ? n / CR_VECTOR : 0;
    CR_FOR(c, chunks) {
        float v[CR_VECTOR];
        cr_load8(x, x_storage, c * CR_VECTOR, v);
#pragma unroll
        for (int k = 0; k < CR_VECTOR; k++) v[k] = cr_activation(kind, v[k], slope);
        cr_store8(out, out_storage, c * CR_VECTOR, v);
    }
    CR_FOR_TAIL(i, chunks * CR_VECTOR, n) cr_store(out, out_storage, i, cr_activation(kind, cr_load(x, x_storage, i), slope));
}

CR_KERNEL void activation_backward(float* out, ElementStorage out_storage, const float* saved, ElementStorage saved_storage,
                                   const float* g, ElementStorage g_storage, long long n, ActivationKind kind, float slope) {
    long long chunks = cr_aligned16(out) && cr_aligned16(saved) && cr_aligned16(g) ? n / CR_VECTOR : 0;
    CR_FOR(c, chunks) {
        float s[CR_VECTOR], d[CR_VECTOR];
        cr_load8(saved, saved_storage, c * CR_VECTOR, s);
        cr_load8(g, g_storage, c * CR_VECTOR, d);
#pragma unroll
        for (int k = 0; k < CR_VECTOR; k++) d[k] = cr_activation_grad(kind, s[k], d[k], slope);
        cr_store8(out, out_storage, c * CR_VECTOR, d);
    }
    CR_FOR_TAIL(i, chunks * CR_VECTOR, n) {
        float r = cr_activation_grad(kind, cr_load(saved, saved_storage, i), cr_load(g, g_storage, i), slope);
        cr_store(out, out_storage, i, r);
    }
}

// A 16-bit Linear layer's output after its product (already rounded to 16 bits):
// out = relu?(out + bias), rounded again, in place. Rows along the grid's y, columns (eight
// at a time where rows are whole 16-byte chunks) along x, so no thread divides to find its
// column. As on the CPU: ReLU keeps NaN.
__device__ __forceinline__ float cr_bias_relu(float v, float b, int relu) {
    float z = v + b;
    return (!relu || z > 0.f || isnan(z)) ? z : 0.f;
}

CR_KERNEL void bias_activation_in_place(float* out, ElementStorage storage, const float* bias, long long rows, long long cols, int relu) {
    bool whole = cols % CR_VECTOR == 0 && cr_aligned16(out) && cr_aligned16(bias);
    long long chunks = whole ? cols / CR_VECTOR : 0;
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        CR_FOR(c, chunks) {
            float v[CR_VECTOR], b[CR_VECTOR];
            cr_load8(out, storage, r * cols + c * CR_VECTOR, v);
            cr_load8(bias, STORAGE_F32, c * CR_VECTOR, b);
#pragma unroll
            for (int k = 0; k < CR_VECTOR; k++) v[k] = cr_bias_relu(v[k], b[k], relu);
            cr_store8(out, storage, r * cols + c * CR_VECTOR, v);
        }
        CR_FOR_TAIL(c, chunks * CR_VECTOR, cols) cr_store(out, storage, r * cols + c, cr_bias_relu(cr_load(out, storage, r * cols + c), bias[c], relu));
    }
}
