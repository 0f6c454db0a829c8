// Fused optimizer updates with PyTorch's semantics (see engine/optim/optimizer.rs).
// Every update first reads the step guard (kernels/guard.cu): a flagged step changes nothing.
// Gradients arrive multiplied by the loss scale (1 without loss scaling) and are divided by it.
// In a low-precision step a parameter has a 16-bit twin (twin_storage not STORAGE_F32) that
// the update writes too, rounded, so products never cast the parameter. The learning rate
// comes from the step clock (kernels/common.cuh), so a captured step replays with each step's.
#include "common.cuh"

// Each update runs eight values a thread access where every buffer it touches is 16-byte
// aligned (common.cuh), then the rest one by one; both through the same per-value rule.

// SGD: d = g + wd·p; with momentum buf = mu·buf + d and d = nesterov ? d + mu·buf : buf.
__device__ __forceinline__ float cr_sgd(float p, float g, float* b, float unscale, float lr, float wd, float mu, int momentum,
                                        int nesterov) {
    float d = g * unscale + wd * p;
    if (momentum) {
        float nb = mu * *b + d;
        *b = nb;
        d = nesterov ? d + mu * nb : nb;
    }
    return p - lr * d;
}

CR_KERNEL void sgd_f32(float* p, float* twin, ElementStorage twin_storage, const float* g, float* buf, long long n,
                       const unsigned long long* clock, float wd, float mu, int momentum, int nesterov, const int* status,
                       const float* scale) {
    if (status[GUARD_FLAGS]) return;
    float lr = cr_clock_lr(clock);
    float unscale = 1.f / scale[0];
    bool twinned = twin_storage != STORAGE_F32;
    bool aligned = cr_aligned16(p) && cr_aligned16(g) && (!momentum || cr_aligned16(buf)) && (!twinned || cr_aligned16(twin));
    long long chunks = aligned ? n / CR_VECTOR : 0;
    CR_FOR(c, chunks) {
        long long i = c * CR_VECTOR;
        float pv[CR_VECTOR], gv[CR_VECTOR], bv[CR_VECTOR];
        cr_load8(p, STORAGE_F32, i, pv);
        cr_load8(g, STORAGE_F32, i, gv);
        if (momentum) cr_load8(buf, STORAGE_F32, i, bv);
#pragma unroll
        for (int k = 0; k < CR_VECTOR; k++) pv[k] = cr_sgd(pv[k], gv[k], &bv[k], unscale, lr, wd, mu, momentum, nesterov);
        cr_store8(p, STORAGE_F32, i, pv);
        if (momentum) cr_store8(buf, STORAGE_F32, i, bv);
        if (twinned) cr_store8(twin, twin_storage, i, pv);
    }
    CR_FOR_TAIL(i, chunks * CR_VECTOR, n) {
        float b = momentum ? buf[i] : 0.f;
        float q = cr_sgd(p[i], g[i], &b, unscale, lr, wd, mu, momentum, nesterov);
        if (momentum) buf[i] = b;
        p[i] = q;
        if (twinned) cr_store(twin, twin_storage, i, q);
    }
}

// Adam (L2 decay folded into g) or AdamW (decoupled: p shrinks by 1 - lr·wd first).
// The bias corrections count the updates applied so far (status[GUARD_UPDATES], kept by the step guard),
// so a step the guard skipped does not advance them, as in PyTorch; computed in double from
// the f64 betas, as the CPU does.
__device__ __forceinline__ float cr_adam(float p, float g, float* m, float* v, float unscale, float lr, float b1, float b2,
                                         float bias_correction1, float bias_correction2, float eps, float wd, int decoupled) {
    float gi = g * unscale;
    if (decoupled) p *= 1.f - lr * wd; else gi += wd * p;
    float mi = b1 * *m + (1.f - b1) * gi;
    float vi = b2 * *v + (1.f - b2) * gi * gi;
    *m = mi;
    *v = vi;
    return p - lr * (mi / bias_correction1) / (sqrtf(vi / bias_correction2) + eps);
}

CR_KERNEL void adam_f32(float* p, float* twin, ElementStorage twin_storage, const float* g, float* m, float* v, long long n,
                        const unsigned long long* clock, double beta1, double beta2, float eps, float wd, int decoupled,
                        const int* status, const float* scale) {
    if (status[GUARD_FLAGS]) return;
    float lr = cr_clock_lr(clock);
    float unscale = 1.f / scale[0];
    double t = (double)status[GUARD_UPDATES] + 1.0;
    float bc1 = (float)(1.0 - pow(beta1, t));
    float bc2 = (float)(1.0 - pow(beta2, t));
    float b1 = (float)beta1, b2 = (float)beta2;
    bool twinned = twin_storage != STORAGE_F32;
    bool aligned = cr_aligned16(p) && cr_aligned16(g) && cr_aligned16(m) && cr_aligned16(v) && (!twinned || cr_aligned16(twin));
    long long chunks = aligned ? n / CR_VECTOR : 0;
    CR_FOR(c, chunks) {
        long long i = c * CR_VECTOR;
        float pv[CR_VECTOR], gv[CR_VECTOR], mv[CR_VECTOR], vv[CR_VECTOR];
        cr_load8(p, STORAGE_F32, i, pv);
        cr_load8(g, STORAGE_F32, i, gv);
        cr_load8(m, STORAGE_F32, i, mv);
        cr_load8(v, STORAGE_F32, i, vv);
#pragma unroll
        for (int k = 0; k < CR_VECTOR; k++)
            pv[k] = cr_adam(pv[k], gv[k], &mv[k], &vv[k], unscale, lr, b1, b2, bc1, bc2, eps, wd, decoupled);
        cr_store8(p, STORAGE_F32, i, pv);
        cr_store8(m, STORAGE_F32, i, mv);
        cr_store8(v, STORAGE_F32, i, vv);
        if (twinned) cr_store8(twin, twin_storage, i, pv);
    }
    CR_FOR_TAIL(i, chunks * CR_VECTOR, n) {
        float mi = m[i], vi = v[i];
        float q = cr_adam(p[i], g[i], &mi, &vi, unscale, lr, b1, b2, bc1, bc2, eps, wd, decoupled);
        m[i] = mi;
        v[i] = vi;
        p[i] = q;
        if (twinned) cr_store(twin, twin_storage, i, q);
    }
}
