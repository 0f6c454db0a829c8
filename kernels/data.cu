// Batches from a dataset resident on the device: gather rows by index, shifting images by
// (dy, dx) on the way (the CPU's augmentation), filling uncovered pixels with fill[p].
#include "common.cuh"

CR_KERNEL void gather_rows_f32(float* out, const float* data, const int* rows, const int* dy, const int* dx,
                               const float* fill, int batch, int height, int width) {
    long long features = (long long)height * width;
    CR_FOR(i, (long long)batch * features) {
        int b = (int)(i / features);
        int p = (int)(i % features);
        int y = p / width, x = p % width;
        int sy = y - dy[b], sx = x - dx[b];
        out[i] = (sy >= 0 && sy < height && sx >= 0 && sx < width) ? data[(long long)rows[b] * features + sy * width + sx] : fill[p];
    }
}

CR_KERNEL void gather_f32(float* out, const float* data, const int* rows, int batch) {
    CR_FOR(i, batch) out[i] = data[rows[i]];
}
