// Shared helpers for chainrule's kernels. Every kernel is extern "C" so Rust finds it by name.
#pragma once

#define CR_KERNEL extern "C" __global__

// Grid-stride loop over n elements.
#define CR_FOR(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// Flat index of a contiguous 4-d tensor of dims (d0..d3) to an offset under strides (s0..s3).
__device__ __forceinline__ long long cr_offset(long long i, int d1, int d2, int d3, long long s0, long long s1, long long s2, long long s3) {
    long long c3 = i % d3; i /= d3;
    long long c2 = i % d2; i /= d2;
    long long c1 = i % d1; i /= d1;
    return i * s0 + c1 * s1 + c2 * s2 + c3 * s3;
}
