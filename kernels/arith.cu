// The arith family (ops/arith.rs): broadcasting add, sub and mul, scaling; and fill and
// axpy, which constants and the device's loss sum use.
#include "common.cuh"

// Which binary op binary runs; build.rs generates the same enum for Rust.
enum BinaryOp { BINARY_ADD = 0, BINARY_SUB = 1, BINARY_MUL = 2 };

CR_KERNEL void fill_f32(float* out, long long n, float value) {
    CR_FOR(i, n) out[i] = value;
}

CR_KERNEL void scale_f32(float* out, const float* in, long long n, float s) {
    CR_FOR(i, n) out[i] = in[i] * s;
}

// y += a * x
CR_KERNEL void axpy_f32(float* y, const float* x, long long n, float a) {
    CR_FOR(i, n) y[i] += a * x[i];
}

// out = a (op) b. out is contiguous with dims (d0..d3); a and b are read through their own
// strides (0 along broadcast axes). Each tensor is read and written as stored.
CR_KERNEL void binary(float* out, ElementStorage out_storage, const float* a, ElementStorage a_storage, const float* b,
                      ElementStorage b_storage, long long n, BinaryOp op, int d1, int d2, int d3,
                      long long as0, long long as1, long long as2, long long as3,
                      long long bs0, long long bs1, long long bs2, long long bs3) {
    CR_FOR(i, n) {
        float x = cr_load(a, a_storage, cr_offset(i, d1, d2, d3, as0, as1, as2, as3));
        float y = cr_load(b, b_storage, cr_offset(i, d1, d2, d3, bs0, bs1, bs2, bs3));
        cr_store(out, out_storage, i, op == BINARY_ADD ? x + y : (op == BINARY_SUB ? x - y : x * y));
    }
}

