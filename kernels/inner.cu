// The inner family (ops/inner.rs): whole-tensor sums of products, which the mean squared
// error of ops/loss.rs uses too.
#include "common.cuh"

// What dot_f32 sums: a·b (Inner), a² (SquaredNorm) or (a−b)² (MeanSquaredError); build.rs
// generates the same enum for Rust.
enum DotMode { DOT_PRODUCTS = 0, DOT_SQUARES = 1, DOT_SQUARED_DIFFERENCES = 2 };

// Scalar reductions of whole tensors, one block, times scale.
CR_KERNEL void dot_f32(float* out, const float* a, const float* b, long long n, DotMode mode, float scale) {
    __shared__ float partial[1024];
    float acc = 0.f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        float x = a[i];
        float y = mode == DOT_SQUARES ? x : b[i];
        acc += mode == DOT_SQUARED_DIFFERENCES ? (x - y) * (x - y) : x * y;
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = partial[0] * scale;
}
