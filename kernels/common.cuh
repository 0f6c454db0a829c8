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

// The step clock (engine/backend/cuda/clock.rs): the values that change from one training
// step to the next, read from device memory so that a captured step (a CUDA graph) replays
// with each step's own values. build.rs generates the same enum for Rust.
enum ClockWord {
    CLOCK_DROPOUT_STEP = 0,
    CLOCK_GUARD_STEP = 1,
    CLOCK_BATCH_START = 2,
    CLOCK_LEARNING_RATE = 3,
    CLOCK_WORDS = 4,
};

// The step guard's words (kernels/guard.cu; engine/backend/cuda/guard.rs), an int each:
// decided on the device, so a step needs no read-back. build.rs generates the same enum for Rust.
enum GuardWord {
    GUARD_FLAGS = 0,            // this step's GuardFlag bits; the optimizer skips its update while non-zero
    GUARD_CLEAN_STEPS = 1,      // clean steps since the loss scale last changed
    GUARD_SKIPPED = 2,          // steps skipped
    GUARD_NONFINITE_STEP = 3,   // the first step whose loss was not finite (0: none)
    GUARD_NONFINITE_LOSS = 4,   // that loss's f32 bits
    GUARD_UPDATES = 5,          // updates applied so far (Adam's bias corrections count them)
    GUARD_WORDS = 6,
};

// The bits of GUARD_FLAGS. build.rs generates the same enum for Rust.
enum GuardFlag {
    FLAG_OVERFLOW = 1,        // a gradient overflowed: loss scaling skips the step, halves the scale
    FLAG_NONFINITE_LOSS = 2,  // the loss is not finite: the run must stop
};

// The learning rate the clock holds (its f32 bits in the low half of the word).
__device__ __forceinline__ float cr_clock_lr(const unsigned long long* clock) {
    return __uint_as_float((unsigned int)clock[CLOCK_LEARNING_RATE]);
}

// f32 to bf16 bits, rounding to nearest even; NaN becomes the canonical quiet NaN.
__device__ __forceinline__ unsigned short cr_bf16_bits(float v) {
    unsigned int u = __float_as_uint(v);
    return (u & 0x7fffffffu) > 0x7f800000u ? (unsigned short)0x7fc0 : (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// A 16-bit value's bits widened to f32 (exactly).
__device__ __forceinline__ float cr_widen(unsigned int bits, ElementStorage s) {
    return s == STORAGE_BF16 ? __uint_as_float(bits << 16) : __half2float(__ushort_as_half((unsigned short)bits));
}

// f32 to a 16-bit value's bits, rounding to nearest even.
__device__ __forceinline__ unsigned int cr_narrow(float v, ElementStorage s) {
    return s == STORAGE_BF16 ? cr_bf16_bits(v) : __half_as_ushort(__float2half_rn(v));
}

// Element i of a tensor stored as s, widened to f32 (exactly).
__device__ __forceinline__ float cr_load(const float* p, ElementStorage s, long long i) {
    return s == STORAGE_F32 ? p[i] : cr_widen(((const unsigned short*)p)[i], s);
}

// Stores v as element i of a tensor stored as s (16 bits: rounded to nearest even).
__device__ __forceinline__ void cr_store(float* p, ElementStorage s, long long i, float v) {
    if (s == STORAGE_F32) p[i] = v;
    else ((unsigned short*)p)[i] = (unsigned short)cr_narrow(v, s);
}

// Vectorized access. An elementwise kernel moves 16 bytes per thread access where it can:
// with one 2-byte or 4-byte value per thread, too few bytes are in flight to fill HBM (a
// 16-bit kernel measured about 1 TB/s of the H200's 4.3 on 2-byte accesses). Kernels take
// eight values at a time (one 16-byte access at 16 bits, two at f32) from 16-byte aligned
// buffers, then do the remaining values one by one.
#define CR_VECTOR 8

__device__ __forceinline__ bool cr_aligned16(const void* p) {
    return ((unsigned long long)p & 15ull) == 0;
}

// The grid-stride loop over the values from `from` on: those after the last whole chunk.
#define CR_FOR_TAIL(i, from, n) for (long long i = (from) + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// Values i..i+7 (i a multiple of 8) of a 16-byte aligned tensor stored as s.
__device__ __forceinline__ void cr_load8(const float* p, ElementStorage s, long long i, float v[CR_VECTOR]) {
    if (s == STORAGE_F32) {
        float4 a = ((const float4*)(p + i))[0], b = ((const float4*)(p + i))[1];
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
        return;
    }
    uint4 w = *(const uint4*)((const unsigned short*)p + i);
    unsigned int words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {  // little-endian: the lower half of a word is the earlier value
        v[2 * k] = cr_widen(words[k] & 0xffffu, s);
        v[2 * k + 1] = cr_widen(words[k] >> 16, s);
    }
}

__device__ __forceinline__ void cr_store8(float* p, ElementStorage s, long long i, const float v[CR_VECTOR]) {
    if (s == STORAGE_F32) {
        ((float4*)(p + i))[0] = make_float4(v[0], v[1], v[2], v[3]);
        ((float4*)(p + i))[1] = make_float4(v[4], v[5], v[6], v[7]);
        return;
    }
    unsigned int words[4];
#pragma unroll
    for (int k = 0; k < 4; k++) words[k] = cr_narrow(v[2 * k], s) | (cr_narrow(v[2 * k + 1], s) << 16);
    *(uint4*)((unsigned short*)p + i) = make_uint4(words[0], words[1], words[2], words[3]);
}
