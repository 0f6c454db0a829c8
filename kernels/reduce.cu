// The reduce family (ops/reduce.rs): sums over axes (Sum, Mean, SumTo) and broadcasts
// (strided copies).
#include "common.cuh"

// out (contiguous, dims d0..d3) = in read through strides: broadcasts and copies.
CR_KERNEL void strided_copy_f32(float* out, const float* in, long long n, int d1, int d2, int d3,
                                long long s0, long long s1, long long s2, long long s3) {
    CR_FOR(i, n) out[i] = in[cr_offset(i, d1, d2, d3, s0, s1, s2, s3)];
}

// Sums: output element o (kept coordinates, dims k*) gathers n_red input elements (reduced
// coordinates, dims r*). One thread per output: coalesced when the kept axes are innermost.
CR_KERNEL void reduce_thread_f32(float* out, const float* in, long long n_out, long long n_red,
                                 int k1, int k2, int k3, long long ks0, long long ks1, long long ks2, long long ks3,
                                 int r1, int r2, int r3, long long rs0, long long rs1, long long rs2, long long rs3,
                                 float scale) {
    CR_FOR(o, n_out) {
        long long base = cr_offset(o, k1, k2, k3, ks0, ks1, ks2, ks3);
        float acc = 0.f;
        for (long long r = 0; r < n_red; ++r) acc += in[base + cr_offset(r, r1, r2, r3, rs0, rs1, rs2, rs3)];
        out[o] = acc * scale;
    }
}

// Column sums of a contiguous [rows, cols] matrix, times scale (bias gradients): a block of
// 32x32 threads per 32 columns; each thread walks down its column in steps of 32 rows (a warp
// reads 32 adjacent floats), then the column's 32 partial sums are added in a fixed order.
// Deterministic (no atomics), no index division, and cols/32 blocks of 1024 threads in flight.
CR_KERNEL void column_sums(float* out, const float* in, ElementStorage in_storage, long long rows, long long cols, float scale) {
    __shared__ float partial[32][33];
    long long c = blockIdx.x * 32LL + threadIdx.x;
    float acc = 0.f;
    if (c < cols) {
        for (long long r = threadIdx.y; r < rows; r += 32) acc += cr_load(in, in_storage, r * cols + c);
    }
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float s = 0.f;
        for (int i = 0; i < 32; ++i) s += partial[i][threadIdx.x];
        out[c] = s * scale;
    }
}

// The same sum with one block of 256 threads per output, for few large reductions.
CR_KERNEL void reduce_block_f32(float* out, const float* in, long long n_out, long long n_red,
                                int k1, int k2, int k3, long long ks0, long long ks1, long long ks2, long long ks3,
                                int r1, int r2, int r3, long long rs0, long long rs1, long long rs2, long long rs3,
                                float scale) {
    __shared__ float partial[256];
    for (long long o = blockIdx.x; o < n_out; o += gridDim.x) {
        long long base = cr_offset(o, k1, k2, k3, ks0, ks1, ks2, ks3);
        float acc = 0.f;
        for (long long r = threadIdx.x; r < n_red; r += blockDim.x) acc += in[base + cr_offset(r, r1, r2, r3, rs0, rs1, rs2, rs3)];
        partial[threadIdx.x] = acc;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
            __syncthreads();
        }
        if (threadIdx.x == 0) out[o] = partial[0] * scale;
        __syncthreads();
    }
}

