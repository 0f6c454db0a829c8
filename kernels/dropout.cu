// Inverted dropout with the CPU's counter-based mask: element i is kept iff
// uniform(prefix, i) >= p, where prefix already mixes (seed, stream, node key, step) exactly
// as engine/rng.rs does, so both backends drop the same elements.
#include "common.cuh"

__device__ __forceinline__ unsigned long long cr_mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Element i of the batch is element first + i of the step's global batch (a data-parallel
// rank's rows start past the others').
CR_KERNEL void dropout_f32(float* out, const float* x, long long n, unsigned long long first, unsigned long long prefix, double p,
                           float scale) {
    CR_FOR(i, n) {
        double u = (double)(cr_mix64(prefix ^ (first + (unsigned long long)i)) >> 11) * (1.0 / 9007199254740992.0);
        out[i] = u >= p ? x[i] * scale : 0.f;
    }
}
