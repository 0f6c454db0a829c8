// NVIDIA's own FP8 conversion (cuda_fp8.h, the function kernels/fp8.cu calls) over a sweep
// of f32 values, for scripts/check-kernels.sh to hold the CPU's FP8 rounding
// (engine/backend/cpu/fp8_rounding.rs) against. Host code only: built with g++ against the
// pinned compiler's headers, so no GPU is needed.
// Output: for every 251st f32 bit pattern, its e4m3 and e5m2 conversions (saturating,
// nearest even) decoded back to f32, little-endian, two f32s per value.
#include <cuda_fp8.h>
#include <cstdint>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT_FILE\n", argv[0]);
        return 2;
    }
    FILE* out = std::fopen(argv[1], "wb");
    if (!out) return 1;
    for (uint64_t k = 0; k <= 0xffffffffull / 251; ++k) {
        uint32_t bits = (uint32_t)(k * 251);
        float v;
        std::memcpy(&v, &bits, 4);
        __nv_fp8_e4m3 a;
        a.__x = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
        __nv_fp8_e5m2 b;
        b.__x = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E5M2);
        float pair[2] = {float(a), float(b)};
        std::fwrite(pair, 4, 2, out);
    }
    return std::fclose(out) == 0 ? 0 : 1;
}
