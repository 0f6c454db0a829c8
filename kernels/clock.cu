// The step clock (engine/backend/cuda/clock.rs): written by a one-thread kernel whose values
// travel as launch arguments, so the host never copies from its memory (a copy from pageable
// memory may wait for the stream; one from pinned memory must not be overwritten before it
// runs) and the write lands in stream order, before the step (or its graph) that reads it.
#include "common.cuh"

CR_KERNEL void clock_set(unsigned long long* clock, unsigned long long dropout_step, unsigned long long guard_step,
                         unsigned long long batch_start, unsigned long long learning_rate) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    clock[CLOCK_DROPOUT_STEP] = dropout_step;
    clock[CLOCK_GUARD_STEP] = guard_step;
    clock[CLOCK_BATCH_START] = batch_start;
    clock[CLOCK_LEARNING_RATE] = learning_rate;
}
