// Batches from a dataset resident on the device: gather rows by index, shifting images by
// (dy, dx) on the way (the CPU's augmentation), filling uncovered pixels with fill[p].
#include "common.cuh"

// Rows along the grid's y, features along x. An unshifted row is a straight copy, four
// floats a thread access where rows are 16-byte aligned; a shifted image row divides to find
// each pixel's place (32-bit, per pixel, as the shift needs).
CR_KERNEL void gather_rows_f32(float* out, const float* data, const int* rows, const int* dy, const int* dx,
                               const float* fill, int batch, int height, int width) {
    long long features = (long long)height * width;
    bool whole = features % 4 == 0 && cr_aligned16(out) && cr_aligned16(data);
    for (int b = blockIdx.y; b < batch; b += gridDim.y) {
        const float* src = data + (long long)rows[b] * features;
        float* dst = out + (long long)b * features;
        int sy = dy[b], sx = dx[b];
        if (whole && sy == 0 && sx == 0) {
            CR_FOR(q, features / 4) ((float4*)dst)[q] = ((const float4*)src)[q];
            continue;
        }
        CR_FOR(p, features) {
            int y = (int)p / width - sy, x = (int)p % width - sx;
            dst[p] = (y >= 0 && y < height && x >= 0 && x < width) ? src[y * width + x] : fill[p];
        }
    }
}

CR_KERNEL void gather_f32(float* out, const float* data, const int* rows, int batch) {
    CR_FOR(i, batch) out[i] = data[rows[i]];
}
