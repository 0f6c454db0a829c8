// Fused optimizer updates with PyTorch's semantics (see engine/optim/optimizer.rs).
// Every update first reads the step guard (kernels/guard.cu): a flagged step changes nothing.
// Gradients arrive multiplied by the loss scale (1 without loss scaling) and are divided by it.
// In a low-precision step a parameter has a 16-bit twin (twin_storage not STORAGE_F32) that
// the update writes too, rounded, so products never cast the parameter.
#include "common.cuh"

// SGD: d = g + wd·p; with momentum buf = mu·buf + d and d = nesterov ? d + mu·buf : buf.
CR_KERNEL void sgd_f32(float* p, float* twin, ElementStorage twin_storage, const float* g, float* buf, long long n, float lr, float wd,
                       float mu, int momentum, int nesterov, const int* status, const float* scale) {
    if (status[0]) return;
    float unscale = 1.f / scale[0];
    CR_FOR(i, n) {
        float d = g[i] * unscale + wd * p[i];
        if (momentum) {
            float b = mu * buf[i] + d;
            buf[i] = b;
            d = nesterov ? d + mu * b : b;
        }
        float q = p[i] - lr * d;
        p[i] = q;
        if (twin_storage != STORAGE_F32) cr_store(twin, twin_storage, i, q);
    }
}

// Adam (L2 decay folded into g) or AdamW (decoupled: p shrinks by 1 - lr·wd first).
// The bias corrections count the updates applied so far (status[5], kept by the step guard),
// so a step the guard skipped does not advance them, as in PyTorch; computed in double from
// the f64 betas, as the CPU does.
CR_KERNEL void adam_f32(float* p, float* twin, ElementStorage twin_storage, const float* g, float* m, float* v, long long n, float lr,
                        double beta1, double beta2, float eps, float wd, int decoupled, const int* status, const float* scale) {
    if (status[0]) return;
    float unscale = 1.f / scale[0];
    double t = (double)status[5] + 1.0;
    float bias_correction1 = (float)(1.0 - pow(beta1, t));
    float bias_correction2 = (float)(1.0 - pow(beta2, t));
    float b1 = (float)beta1, b2 = (float)beta2;
    CR_FOR(i, n) {
        float gi = g[i] * unscale;
        if (decoupled) p[i] *= 1.f - lr * wd; else gi += wd * p[i];
        float mi = b1 * m[i] + (1.f - b1) * gi;
        float vi = b2 * v[i] + (1.f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float q = p[i] - lr * (mi / bias_correction1) / (sqrtf(vi / bias_correction2) + eps);
        p[i] = q;
        if (twin_storage != STORAGE_F32) cr_store(twin, twin_storage, i, q);
    }
}
