// Casts between f32 and bf16/f16 (stored as 16-bit words): the low-precision operand copies
// that bf16 and f16 matrix products read. Round to nearest even; NaN stays NaN.
#include "common.cuh"
#include <cuda_fp16.h>

CR_KERNEL void f32_to_bf16(unsigned short* out, const float* in, long long n) {
    CR_FOR(i, n) {
        out[i] = cr_bf16_bits(in[i]);
    }
}

CR_KERNEL void bf16_to_f32(float* out, const unsigned short* in, long long n) {
    CR_FOR(i, n) out[i] = __uint_as_float(((unsigned int)in[i]) << 16);
}

// f16 copies: values past 65504 become infinity, which the loss scaler finds in the gradients.
CR_KERNEL void f32_to_f16(unsigned short* out, const float* in, long long n) {
    CR_FOR(i, n) out[i] = __half_as_ushort(__float2half_rn(in[i]));
}

CR_KERNEL void f16_to_f32(float* out, const unsigned short* in, long long n) {
    CR_FOR(i, n) out[i] = __half2float(__ushort_as_half(in[i]));
}
