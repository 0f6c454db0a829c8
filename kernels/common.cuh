// Shared helpers for chainrule's kernels. Every kernel is extern "C" so Rust finds it by name.
#pragma once
#include <cuda_fp16.h>

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

// How a tensor's values are stored (plan/precision.rs): f32, or 16-bit bf16/f16 values two
// to a word in the same f32-typed buffer. build.rs generates the same enum for Rust.
enum ElementStorage {
    STORAGE_F32 = 0,
    STORAGE_BF16 = 1,
    STORAGE_F16 = 2,
};

// f32 to bf16 bits, rounding to nearest even; NaN becomes the canonical quiet NaN.
__device__ __forceinline__ unsigned short cr_bf16_bits(float v) {
    unsigned int u = __float_as_uint(v);
    return (u & 0x7fffffffu) > 0x7f800000u ? (unsigned short)0x7fc0 : (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Element i of a tensor stored as s, widened to f32 (exactly).
__device__ __forceinline__ float cr_load(const float* p, ElementStorage s, long long i) {
    if (s == STORAGE_F32) return p[i];
    unsigned short b = ((const unsigned short*)p)[i];
    return s == STORAGE_BF16 ? __uint_as_float(((unsigned int)b) << 16) : __half2float(__ushort_as_half(b));
}

// Stores v as element i of a tensor stored as s (16 bits: rounded to nearest even).
__device__ __forceinline__ void cr_store(float* p, ElementStorage s, long long i, float v) {
    if (s == STORAGE_F32) p[i] = v;
    else if (s == STORAGE_BF16) ((unsigned short*)p)[i] = cr_bf16_bits(v);
    else ((unsigned short*)p)[i] = __half_as_ushort(__float2half_rn(v));
}
