// Inverted dropout with the CPU's counter-based mask: element i is kept iff
// uniform(prefix, i) >= p, where prefix mixes (seed, stream, node key, step) exactly as
// engine/rng.rs does, so both backends drop the same elements.
#include "common.cuh"

__device__ __forceinline__ unsigned long long cr_mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The mask's key mixes the node's key with the step, read from the clock, as
// ops/dropout.rs `mask_key` and engine/rng.rs `prefix_from` do: `stream_prefix` (the seed
// and the dropout stream, fixed for a run) comes by value.
__device__ __forceinline__ unsigned long long cr_dropout_prefix(unsigned long long stream_prefix, unsigned long long key,
                                                                 const unsigned long long* clock) {
    unsigned long long mask_key = cr_mix64(clock[CLOCK_DROPOUT_STEP]) ^ key;
    return cr_mix64(stream_prefix ^ (mask_key + 0x632be59bd9b4e019ULL));
}

// Element i of the batch is element first + i of the step's global batch (a data-parallel
// rank's rows start past the others').
CR_KERNEL void dropout_f32(float* out, const float* x, long long n, unsigned long long first, unsigned long long stream_prefix,
                           unsigned long long key, const unsigned long long* clock, double p, float scale) {
    unsigned long long prefix = cr_dropout_prefix(stream_prefix, key, clock);
    CR_FOR(i, n) {
        double u = (double)(cr_mix64(prefix ^ (first + (unsigned long long)i)) >> 11) * (1.0 / 9007199254740992.0);
        out[i] = u >= p ? x[i] * scale : 0.f;
    }
}
