// Batches from a dataset resident on the device: gather rows by index, shifting images by
// (dy, dx) on the way (the CPU's augmentation), filling uncovered pixels with fill[p]. A
// batch is the epoch's rows from the step clock's batch start on (kernels/common.cuh), so a
// captured step gathers each step's rows.
#include "common.cuh"

// Rows along the grid's y, features along x, written as `out` is stored (f32, or 16 bits in
// a low-precision step whose products alone read the batch). An unshifted row is a straight
// copy, eight values a thread access where rows are whole 16-byte chunks; a shifted image
// row divides to find each pixel's place (32-bit, per pixel, as the shift needs).
CR_KERNEL void gather_rows(float* out, ElementStorage out_storage, const float* data, const int* epoch_rows, const int* epoch_dy,
                           const int* epoch_dx, const unsigned long long* clock, const float* fill, int batch, int height,
                           int width) {
    unsigned long long start = clock[CLOCK_BATCH_START];
    const int *rows = epoch_rows + start, *dy = epoch_dy + start, *dx = epoch_dx + start;
    long long features = (long long)height * width;
    bool whole = features % CR_VECTOR == 0 && cr_aligned16(out) && cr_aligned16(data);
    for (int b = blockIdx.y; b < batch; b += gridDim.y) {
        const float* src = data + (long long)rows[b] * features;
        long long at = (long long)b * features;
        int sy = dy[b], sx = dx[b];
        if (whole && sy == 0 && sx == 0) {
            CR_FOR(c, features / CR_VECTOR) {
                float v[CR_VECTOR];
                cr_load8(src, STORAGE_F32, c * CR_VECTOR, v);
                cr_store8(out, out_storage, at + c * CR_VECTOR, v);
            }
            continue;
        }
        CR_FOR(p, features) {
            int y = (int)p / width - sy, x = (int)p % width - sx;
            float v = (y >= 0 && y < height && x >= 0 && x < width) ? src[y * width + x] : fill[p];
            cr_store(out, out_storage, at + p, v);
        }
    }
}

CR_KERNEL void gather_f32(float* out, const float* data, const int* epoch_rows, const unsigned long long* clock, int batch) {
    const int* rows = epoch_rows + clock[CLOCK_BATCH_START];
    CR_FOR(i, batch) out[i] = data[rows[i]];
}
