// Fused, numerically stable softmax cross-entropy with integer labels (as floats), and its
// gradient. A label that is not an integer in [0, classes) yields NaN, never a wrong number.
#include "common.cuh"

__device__ __forceinline__ int cr_label(float v, int classes) {
    int c = (int)v;
    return (v >= 0.f && (float)c == v && c < classes) ? c : -1;
}

// Mean over rows of logsumexp(row) - row[label]; one block of 256 threads.
CR_KERNEL void xent_forward_f32(float* out, const float* logits, const float* labels, int rows, int classes) {
    __shared__ float partial[256];
    float acc = 0.f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        const float* row = logits + (long long)r * classes;
        float m = -INFINITY;
        for (int c = 0; c < classes; ++c) m = fmaxf(m, row[c]);
        float s = 0.f;
        for (int c = 0; c < classes; ++c) s += expf(row[c] - m);
        int y = cr_label(labels[r], classes);
        acc += y < 0 ? NAN : (m + logf(s) - row[y]);
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = partial[0] / rows;
}

// g · (softmax(row) - onehot(label)) / rows, one thread per row.
CR_KERNEL void xent_backward_f32(float* out, const float* logits, const float* labels, const float* g, int rows, int classes) {
    float scale = g[0] / rows;
    CR_FOR(r, rows) {
        const float* row = logits + r * classes;
        float* o = out + r * classes;
        float m = -INFINITY;
        for (int c = 0; c < classes; ++c) m = fmaxf(m, row[c]);
        float s = 0.f;
        for (int c = 0; c < classes; ++c) s += expf(row[c] - m);
        float lse = logf(s);
        int y = cr_label(labels[r], classes);
        for (int c = 0; c < classes; ++c) {
            float p = expf(row[c] - m - lse);
            o[c] = y < 0 ? NAN : (p - (c == y ? 1.f : 0.f)) * scale;
        }
    }
}

// A row's predicted class: the first largest logit; NaN never wins (as on the CPU); -1 when
// no class wins (a row of NaN and -infinity) or the largest is +infinity (an overflowed or
// diverged output), which no label equals.
__device__ __forceinline__ int cr_argmax(const float* row, int classes) {
    int best = -1;  // no class wins a row of NaN and -infinity
    float top = -INFINITY;
    for (int c = 0; c < classes; ++c) {
        if (row[c] > top) {
            top = row[c];
            best = c;
        }
    }
    return isinf(top) && top > 0.f ? -1 : best;
}

// Predicted class of each row.
CR_KERNEL void argmax_rows_f32(int* out, const float* logits, int rows, int classes) {
    CR_FOR(r, rows) out[r] = cr_argmax(logits + r * classes, classes);
}

// How many rows' first largest logit (NaN never wins) is their label; one block of 256
// threads, a fixed-order sum, so the count is exact and deterministic.
CR_KERNEL void count_correct_f32(float* out, const float* logits, const float* labels, int rows, int classes) {
    __shared__ float partial[256];
    float acc = 0.f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        int best = cr_argmax(logits + (long long)r * classes, classes);
        acc += best >= 0 && cr_label(labels[r], classes) == best ? 1.f : 0.f;
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = partial[0];
}
