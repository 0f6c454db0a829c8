// Row normalizations over the last axis (engine/ops/norm.rs has the same arithmetic on the
// CPU): LayerNorm `(x - mean) / sqrt(var + eps)` with the biased variance, RMSNorm
// `x / sqrt(mean(x²) + eps)`, and their symmetric Jacobians applied to a vector. One block
// of NORM_THREADS threads per row; f32 throughout, as the CPU reference of an f32 step.
#include "common.cuh"

// Which normalization. build.rs generates the same enum for Rust.
enum NormKind {
    NORM_LAYER = 0,
    NORM_RMS = 1,
};

#define NORM_THREADS 256

// The sum of every thread's `v` in the block, returned to all of them.
__device__ __forceinline__ float cr_block_sum(float v, float* scratch) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int s = NORM_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) scratch[threadIdx.x] += scratch[threadIdx.x + s];
        __syncthreads();
    }
    float total = scratch[0];
    __syncthreads();
    return total;
}

// A row's (center, reciprocal scale): two passes, as the CPU's (centered squares, not
// E[x²] - E[x]², which cancels).
__device__ __forceinline__ float2 cr_row_stats(const float* row, int cols, NormKind kind, float eps, float* scratch) {
    float center = 0.f;
    if (kind == NORM_LAYER) {
        float s = 0.f;
        for (int c = threadIdx.x; c < cols; c += NORM_THREADS) s += row[c];
        center = cr_block_sum(s, scratch) / cols;
    }
    float q = 0.f;
    for (int c = threadIdx.x; c < cols; c += NORM_THREADS) {
        float d = row[c] - center;
        q += d * d;
    }
    float spread = cr_block_sum(q, scratch) / cols;
    return make_float2(center, rsqrtf(spread + eps));
}

// out[r] = normalize(x[r]) for each of `rows` rows of `cols`; launched with one block a row.
CR_KERNEL void normalize_rows_f32(float* out, const float* x, long long rows, int cols, NormKind kind, float eps) {
    __shared__ float scratch[NORM_THREADS];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = x + r * cols;
        float2 st = cr_row_stats(row, cols, kind, eps, scratch);
        for (int c = threadIdx.x; c < cols; c += NORM_THREADS) out[r * cols + c] = (row[c] - st.x) * st.y;
    }
}

// out[r] = J(x[r]) v[r], the normalization's Jacobian at x applied to v (a gradient or a
// tangent): r·(v - mean(v) - ŷ·mean(v·ŷ)) for LayerNorm, r·(v - y·mean(v·y)) for RMSNorm.
CR_KERNEL void normalize_grad_rows_f32(float* out, const float* x, const float* v, long long rows, int cols, NormKind kind,
                                       float eps) {
    __shared__ float scratch[NORM_THREADS];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = x + r * cols;
        const float* vr = v + r * cols;
        float2 st = cr_row_stats(row, cols, kind, eps, scratch);
        float sv = 0.f, svy = 0.f;
        for (int c = threadIdx.x; c < cols; c += NORM_THREADS) {
            sv += vr[c];
            svy += vr[c] * (row[c] - st.x) * st.y;
        }
        float mean_v = kind == NORM_LAYER ? cr_block_sum(sv, scratch) / cols : 0.f;
        float mean_vy = cr_block_sum(svy, scratch) / cols;
        for (int c = threadIdx.x; c < cols; c += NORM_THREADS) {
            float y = (row[c] - st.x) * st.y;
            out[r * cols + c] = st.y * (vr[c] - mean_v - y * mean_vy);
        }
    }
}

// BatchNorm in training (engine/ops/norm.rs, Norm::Batch): LayerNorm's arithmetic down each
// column of a [rows, cols] tensor, a thread per column (neighbouring threads read neighbouring
// columns, so each row's read is coalesced), rows summed in order as the CPU sums them.
__device__ __forceinline__ float2 cr_col_stats(const float* x, long long rows, int cols, int c, float eps) {
    float s = 0.f;
    for (long long r = 0; r < rows; r++) s += x[r * cols + c];
    float center = s / rows;
    float q = 0.f;
    for (long long r = 0; r < rows; r++) {
        float d = x[r * cols + c] - center;
        q += d * d;
    }
    return make_float2(center, rsqrtf(q / rows + eps));
}

// out[:, c] = (x[:, c] - mean) / sqrt(var + eps), the batch's biased variance.
CR_KERNEL void normalize_cols_f32(float* out, const float* x, long long rows, int cols, float eps) {
    CR_FOR(c, cols) {
        float2 st = cr_col_stats(x, rows, cols, (int)c, eps);
        for (long long r = 0; r < rows; r++) out[r * cols + c] = (x[r * cols + c] - st.x) * st.y;
    }
}

// out[:, c] = J(x[:, c]) v[:, c]: r·(v - mean(v) - ŷ·mean(v·ŷ)), as normalize_grad_rows_f32 on rows.
CR_KERNEL void normalize_grad_cols_f32(float* out, const float* x, const float* v, long long rows, int cols, float eps) {
    CR_FOR(c, cols) {
        float2 st = cr_col_stats(x, rows, cols, (int)c, eps);
        float sv = 0.f, svy = 0.f;
        for (long long r = 0; r < rows; r++) {
            long long i = r * cols + c;
            sv += v[i];
            svy += v[i] * (x[i] - st.x) * st.y;
        }
        float mean_v = sv / rows, mean_vy = svy / rows;
        for (long long r = 0; r < rows; r++) {
            long long i = r * cols + c;
            float y = (x[i] - st.x) * st.y;
            out[i] = st.y * (v[i] - mean_v - y * mean_vy);
        }
    }
}

// BatchNorm's evaluation form (engine/ops/standardize.rs): out = (x - mean[c]) / sqrt(var[c] + eps),
// with the running statistics.
CR_KERNEL void standardize_cols_f32(float* out, const float* x, const float* mean, const float* var, long long n, int cols,
                                    float eps) {
    CR_FOR(i, n) {
        int c = (int)(i % cols);
        out[i] = (x[i] - mean[c]) * rsqrtf(var[c] + eps);
    }
}
