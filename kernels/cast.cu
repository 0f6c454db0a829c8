// Casts between f32 and bf16/f16 (stored as 16-bit words): the low-precision operand copies
// that bf16 and f16 matrix products read. Round to nearest even; NaN stays NaN.
#include "common.cuh"
#include <cuda_fp16.h>

// The two f32-to-16-bit casts, eight values at a time where both buffers are 16-byte aligned.
__device__ __forceinline__ void cr_narrow_all(unsigned short* out, const float* in, long long n, ElementStorage s) {
    long long chunks = cr_aligned16(out) && cr_aligned16(in) ? n / CR_VECTOR : 0;
    CR_FOR(c, chunks) {
        float v[CR_VECTOR];
        cr_load8(in, STORAGE_F32, c * CR_VECTOR, v);
        cr_store8((float*)out, s, c * CR_VECTOR, v);
    }
    CR_FOR_TAIL(i, chunks * CR_VECTOR, n) out[i] = (unsigned short)cr_narrow(in[i], s);
}

CR_KERNEL void f32_to_bf16(unsigned short* out, const float* in, long long n) {
    cr_narrow_all(out, in, n, STORAGE_BF16);
}

CR_KERNEL void bf16_to_f32(float* out, const unsigned short* in, long long n) {
    CR_FOR(i, n) out[i] = __uint_as_float(((unsigned int)in[i]) << 16);
}

// f16 copies: values past 65504 become infinity, which the loss scaler finds in the gradients.
CR_KERNEL void f32_to_f16(unsigned short* out, const float* in, long long n) {
    cr_narrow_all(out, in, n, STORAGE_F16);
}

CR_KERNEL void f16_to_f32(float* out, const unsigned short* in, long long n) {
    CR_FOR(i, n) out[i] = __half2float(__ushort_as_half(in[i]));
}
