// The step guard: decides on the device whether a step's update is applied, so a training
// step needs no read-back. Its words are GuardWord's (common.cuh); the optimizer kernels skip
// their update while status[GUARD_FLAGS] is non-zero.
#include "common.cuh"

// status[GUARD_FLAGS] |= bit when any element of x is NaN or infinite.
CR_KERNEL void flag_nonfinite_f32(int* status, const float* x, long long n, GuardFlag bit) {
    CR_FOR(i, n) {
        if (!isfinite(x[i])) atomicOr(status + GUARD_FLAGS, (int)bit);
    }
}

// After a step's updates (one thread), for the step the clock names. A non-finite loss is fatal: its step is recorded and
// status[0] stays set, so no later update applies until the host stops the run. Otherwise,
// under dynamic loss scaling (engine/optim/loss_scale.rs has the same rules), an overflow
// halves the scale and growth_interval clean steps double it.
CR_KERNEL void guard_update(float* scale, int* status, const float* loss, int dynamic, int growth_interval,
                            const unsigned long long* clock, float min_scale, float max_scale) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    int step = (int)clock[CLOCK_GUARD_STEP];
    int flags = status[GUARD_FLAGS];
    if (flags & FLAG_NONFINITE_LOSS) {
        if (status[GUARD_NONFINITE_STEP] == 0) {
            status[GUARD_NONFINITE_STEP] = step;
            status[GUARD_NONFINITE_LOSS] = __float_as_int(loss[0]);
            status[GUARD_SKIPPED] += 1;
        }
        return;
    }
    if (!dynamic) {
        status[GUARD_UPDATES] += 1;
        return;
    }
    if (flags & FLAG_OVERFLOW) {
        scale[0] = fmaxf(scale[0] * 0.5f, min_scale);
        status[GUARD_CLEAN_STEPS] = 0;
        status[GUARD_SKIPPED] += 1;
    } else {
        status[GUARD_UPDATES] += 1;
        if (++status[GUARD_CLEAN_STEPS] >= growth_interval) {
            scale[0] = fminf(scale[0] * 2.f, max_scale);
            status[GUARD_CLEAN_STEPS] = 0;
        }
    }
    status[GUARD_FLAGS] = 0;
}

// dst = src, a buffer's value after this step (BatchNorm's running statistics), unless the
// step's loss was not finite: the run stops there, its model as it was.
CR_KERNEL void keep_unless_nonfinite_f32(float* dst, const float* src, long long n, const int* status) {
    if (status[GUARD_FLAGS] & FLAG_NONFINITE_LOSS) return;
    CR_FOR(i, n) dst[i] = src[i];
}
