// FP8 copies of a product's operands (--dtype fp8). plan/fp8.rs decides which products and
// formats; engine/backend/cpu/fp8_rounding.rs is the CPU's form of the same arithmetic:
// the operand's absolute maximum, a power-of-two scale from it, then every value scaled,
// rounded to e4m3 or e5m2 (to nearest even, saturating at the largest finite value) and
// stored as one byte, transposed where cuBLASLt's FP8 kernels need it (they take A
// transposed and B not). The copy's last word holds the scale's inverse, which cuBLASLt
// multiplies the f32 sums by.
#include "common.cuh"
#include <cuda_fp8.h>

// The 8-bit formats. build.rs generates the same enum for Rust.
enum Fp8Kind {
    FP8_E4M3 = 0,  // 4 exponent bits, 3 mantissa bits, largest finite value 448
    FP8_E5M2 = 1,  // 5 exponent bits, 2 mantissa bits, largest finite value 57344
};

#define FP8_MAX_THREADS 256

// word[0] = max(word[0], |x|) as unsigned bits (word[0] starts at 0). The bits of
// non-negative floats order as the floats do, and NaN's exceed infinity's, so a NaN
// anywhere leaves the maximum NaN. A max is exact in any order: the result is deterministic.
CR_KERNEL void fp8_absolute_max(unsigned int* word, const float* x, ElementStorage x_storage, long long n) {
    __shared__ unsigned int partial[FP8_MAX_THREADS / 32];
    unsigned int most = 0u;
    CR_FOR(i, n) most = max(most, __float_as_uint(cr_load(x, x_storage, i)) & 0x7fffffffu);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) most = max(most, __shfl_xor_sync(0xffffffffu, most, offset));
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x / 32] = most;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < blockDim.x / 32; ++w) most = max(most, partial[w]);
        atomicMax(word, most);
    }
}

// word[0]: the absolute maximum's bits in, the scale's inverse out (one thread). The scale
// is scale_for in fp8_rounding.rs: the power of two at or below max_finite / amax (at most
// 2^126, so its inverse is a normal number), 1 for an all-zero operand, NaN for a
// non-finite one.
CR_KERNEL void fp8_inverse_scale(unsigned int* word, float max_finite) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    float amax = __uint_as_float(word[0]);
    float scale;
    if (!(amax <= 3.402823466e38f)) scale = __int_as_float(0x7fc00000);
    else if (amax == 0.f) scale = 1.f;
    else scale = __uint_as_float(__float_as_uint(fminf(__fdiv_rn(max_finite, amax), 8.507059173e37f)) & 0xff800000u);
    word[0] = __float_as_uint(__fdiv_rn(1.f, scale));
}

// One value scaled and rounded to kind's bits (NVIDIA's saturating conversion).
__device__ __forceinline__ unsigned char fp8_bits(float v, float scale, Fp8Kind kind) {
    return (unsigned char)__nv_cvt_float_to_fp8(v * scale, __NV_SATFINITE, kind == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2);
}

// out[i] = FP8(x[i] / inverse[0]) for the n values of x, in x's order.
CR_KERNEL void fp8_cast(unsigned char* out, const float* x, ElementStorage x_storage, long long n,
                        const float* inverse, Fp8Kind kind) {
    float scale = __fdiv_rn(1.f, inverse[0]);
    CR_FOR(i, n) out[i] = fp8_bits(cr_load(x, x_storage, i), scale, kind);
}

// The same for a row-major [rows, cols] x, written transposed ([cols, rows]): 32x32 tiles
// through shared memory, so both the reads and the writes of a warp are contiguous. Launch
// with blocks of 32x8 threads over a grid of (cols/32, rows/32) tiles (rounded up).
CR_KERNEL void fp8_cast_transposed(unsigned char* out, const float* x, ElementStorage x_storage, long long rows,
                                   long long cols, const float* inverse, Fp8Kind kind) {
    __shared__ unsigned char tile[32][33];
    float scale = __fdiv_rn(1.f, inverse[0]);
    long long c = blockIdx.x * 32LL + threadIdx.x;
    for (int k = threadIdx.y; k < 32; k += 8) {
        long long r = blockIdx.y * 32LL + k;
        if (r < rows && c < cols) tile[k][threadIdx.x] = fp8_bits(cr_load(x, x_storage, r * cols + c), scale, kind);
    }
    __syncthreads();
    long long r = blockIdx.y * 32LL + threadIdx.x;
    for (int k = threadIdx.y; k < 32; k += 8) {
        long long oc = blockIdx.x * 32LL + k;
        if (r < rows && oc < cols) out[oc * rows + r] = tile[threadIdx.x][k];
    }
}
