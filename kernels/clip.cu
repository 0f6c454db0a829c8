// Gradient clipping by global norm (engine/optim/clip.rs has the rule and the CPU's form):
// each gradient's sum of squares into a slot of its own, in f64 (one block each, a fixed
// order and no atomics, so a replayed step and the eager one agree bit for bit); then one
// thread adds the slots in order and makes the factor every gradient is multiplied by. All
// on the device, so a captured step clips with no read-back.
#include "common.cuh"

#define CLIP_THREADS 512

// slot[0] = the sum of x[i]^2 over x's n elements, in f64. Launch with one block of
// CLIP_THREADS threads.
CR_KERNEL void squares_sum_f32(double* slot, const float* x, long long n) {
    __shared__ double partial[CLIP_THREADS];
    double acc = 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        double v = (double)x[i];
        acc += v * v;
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) slot[0] = partial[0];
}

// factor[0] = min(1, max_norm / (norm + 1e-6)), norm = sqrt(the slots' sum) / scale[0] (the
// loss scale, 1 without loss scaling): clip_factor in engine/optim/clip.rs. One thread.
CR_KERNEL void clip_factor_f32(float* factor, const double* slots, int n_slots, const float* scale, double max_norm) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double squares = 0.0;
    for (int i = 0; i < n_slots; ++i) squares += slots[i];
    double norm = sqrt(squares) / (double)scale[0];
    factor[0] = (float)fmin(max_norm / (norm + 1e-6), 1.0);
}

// x *= factor[0], in place.
CR_KERNEL void scale_by_factor_f32(float* x, long long n, const float* factor) {
    float f = factor[0];
    CR_FOR(i, n) x[i] *= f;
}
