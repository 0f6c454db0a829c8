// The step guard: decides on the device whether a step's update is applied, so a training
// step needs no read-back. status[0] holds this step's flags (1: a gradient overflowed,
// 2: the loss is not finite); the optimizer kernels skip their update while it is non-zero.
// status[1]: clean steps since the loss scale last changed; status[2]: steps skipped;
// status[3]: the first step whose loss was not finite (0: none); status[4]: that loss's bits;
// status[5]: updates applied so far (Adam's bias corrections count them).
#include "common.cuh"

// status[0] |= bit when any element of x is NaN or infinite.
CR_KERNEL void flag_nonfinite_f32(int* status, const float* x, long long n, int bit) {
    CR_FOR(i, n) {
        if (!isfinite(x[i])) atomicOr(status, bit);
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
    int flags = status[0];
    if (flags & 2) {
        if (status[3] == 0) {
            status[3] = step;
            status[4] = __float_as_int(loss[0]);
            status[2] += 1;
        }
        return;
    }
    if (!dynamic) {
        status[5] += 1;
        return;
    }
    if (flags & 1) {
        scale[0] = fmaxf(scale[0] * 0.5f, min_scale);
        status[1] = 0;
        status[2] += 1;
    } else {
        status[5] += 1;
        if (++status[1] >= growth_interval) {
            scale[0] = fminf(scale[0] * 2.f, max_scale);
            status[1] = 0;
        }
    }
    status[0] = 0;
}
