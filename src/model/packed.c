/* packed.c - the packed weight layout of packed.h: re-packing at load,
 * activation quantisation, the reference kernel (plain C over the packed
 * layout) and threading. The AVX-512 kernel is in packed_avx512.c. */
#include "model/packed.h"

#include <math.h>
#include <string.h>

#include <omp.h>

#include "core/internal.h"
#include "gqa_model.h"

#define QK 32

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

int gqa_pack_supported(uint32_t t)
{
    return t == GQA_GGML_TYPE_Q4_0 || t == GQA_GGML_TYPE_Q4_1 || t == GQA_GGML_TYPE_Q8_0;
}

static size_t group_block_bytes(uint32_t t)
{
    return t == GQA_GGML_TYPE_Q8_0   ? 32 + 16 * 32
           : t == GQA_GGML_TYPE_Q4_1 ? 64 + 8 * 32
                                     : 32 + 8 * 32;
}

/* Offset of the quants in a group's block (after the f16 scales). */
static size_t quant_offset(uint32_t t)
{
    return t == GQA_GGML_TYPE_Q4_1 ? 64 : 32;
}

size_t gqa_pack_bytes(uint32_t t, int64_t rows, int64_t cols)
{
    if (!gqa_pack_supported(t) || rows < 0 || cols % QK != 0)
        return 0;
    const size_t groups = (size_t)((rows + PACK_ROWS - 1) / PACK_ROWS);
    return align64(groups * (size_t)(cols / QK) * group_block_bytes(t));
}

static float f16(const void *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return gqa_f16_to_f32(h);
}

void gqa_pack_weight(uint32_t t, const void *src, int64_t rows, int64_t cols, unsigned char *dst,
                     packed_weight *w)
{
    const int q8 = t == GQA_GGML_TYPE_Q8_0;
    const size_t src_block = q8 ? 34 : t == GQA_GGML_TYPE_Q4_1 ? 20 : 18;
    w->type = t;
    w->rows = rows;
    w->cols = cols;
    w->n_groups = (rows + PACK_ROWS - 1) / PACK_ROWS;
    w->n_blocks = cols / QK;
    w->block_bytes = group_block_bytes(t);
    w->data = dst;
    memset(dst, 0, gqa_pack_bytes(t, rows, cols));
    const unsigned char *s = src;
    const size_t row_bytes = (size_t)w->n_blocks * src_block;
    for (int64_t g = 0; g < w->n_groups; g++)
        for (int64_t b = 0; b < w->n_blocks; b++) {
            unsigned char *o = dst + ((size_t)g * (size_t)w->n_blocks + (size_t)b) * w->block_bytes;
            unsigned char *q = o + quant_offset(t);
            for (int j = 0; j < PACK_ROWS; j++) {
                const int64_t r = g * PACK_ROWS + j;
                if (r >= rows)
                    break;
                const unsigned char *blk = s + (size_t)r * row_bytes + (size_t)b * src_block;
                memcpy(o + 2 * j, blk, 2); /* d, f16 bits */
                if (q8) {
                    /* pair p of row j at q[p][2j], q[p][2j+1] */
                    for (int p = 0; p < 16; p++) {
                        q[p * 32 + 2 * j] = blk[2 + 2 * p];
                        q[p * 32 + 2 * j + 1] = blk[2 + 2 * p + 1];
                    }
                } else {
                    const int q41 = t == GQA_GGML_TYPE_Q4_1;
                    const unsigned char *qs = blk + (q41 ? 4 : 2);
                    if (q41)
                        memcpy(o + 32 + 2 * j, blk + 2, 2); /* m, f16 bits */
                    for (int p = 0; p < 8; p++) {
                        q[p * 32 + 2 * j] = qs[2 * p];
                        q[p * 32 + 2 * j + 1] = qs[2 * p + 1];
                    }
                }
            }
        }
}

size_t gqa_packed_x_bytes(int64_t n, int64_t cols)
{
    const size_t nb = (size_t)(cols / QK);
    return align64((size_t)n * (size_t)cols * 2) + 2 * align64((size_t)n * nb * 4);
}

void gqa_packed_x_init(packed_x *px, void *mem, int64_t n, int64_t cols)
{
    unsigned char *p = mem;
    px->n = n;
    px->cols = cols;
    px->n_blocks = cols / QK;
    px->q = (int16_t *)(void *)p;
    p += align64((size_t)n * (size_t)cols * 2);
    px->d = (float *)(void *)p;
    p += align64((size_t)n * (size_t)px->n_blocks * 4);
    px->s = (float *)(void *)p;
}

void gqa_packed_x_quantize(packed_x *px, const float *x)
{
    const int64_t nb = px->n_blocks;
    for (int64_t t = 0; t < px->n; t++)
        for (int64_t b = 0; b < nb; b++) {
            const float *xb = x + t * px->cols + b * QK;
            int16_t *q = px->q + t * px->cols + b * QK;
            float amax = 0.0f, sum = 0.0f;
            for (int i = 0; i < QK; i++) {
                amax = fmaxf(amax, fabsf(xb[i]));
                sum += xb[i];
            }
            const float d = amax / 32767.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
            for (int i = 0; i < QK; i++)
                q[i] = (int16_t)lrintf(xb[i] * id);
            px->d[t * nb + b] = d;
            px->s[t * nb + b] = sum;
        }
}

/* The reference: the packed layout read element by element. */
void gqa_packed_rows_ref(const packed_weight *w, const packed_x *px, int64_t g0, int64_t g1,
                         float *y, int64_t ldy)
{
    const int q8 = w->type == GQA_GGML_TYPE_Q8_0;
    for (int64_t t = 0; t < px->n; t++)
        for (int64_t g = g0; g < g1; g++) {
            float acc[PACK_ROWS] = {0};
            for (int64_t b = 0; b < w->n_blocks; b++) {
                const unsigned char *o =
                    w->data + ((size_t)g * (size_t)w->n_blocks + (size_t)b) * w->block_bytes;
                const unsigned char *qb = o + quant_offset(w->type);
                const int16_t *xq = px->q + t * px->cols + b * QK;
                const float dx = px->d[t * w->n_blocks + b], sx = px->s[t * w->n_blocks + b];
                for (int j = 0; j < PACK_ROWS; j++) {
                    const float d = f16(o + 2 * j);
                    int32_t isum = 0;
                    if (q8) {
                        const int8_t *q = (const int8_t *)(const void *)qb;
                        for (int p = 0; p < 16; p++)
                            isum += q[p * 32 + 2 * j] * xq[2 * p] +
                                    q[p * 32 + 2 * j + 1] * xq[2 * p + 1];
                        acc[j] += d * dx * (float)isum;
                    } else {
                        const float m =
                            w->type == GQA_GGML_TYPE_Q4_1 ? f16(o + 32 + 2 * j) : -8.0f * d;
                        for (int p = 0; p < 8; p++) {
                            const unsigned char b0 = qb[p * 32 + 2 * j],
                                                b1 = qb[p * 32 + 2 * j + 1];
                            isum += (b0 & 15) * xq[2 * p] + (b1 & 15) * xq[2 * p + 1] +
                                    (b0 >> 4) * xq[2 * p + 16] + (b1 >> 4) * xq[2 * p + 17];
                        }
                        acc[j] += d * dx * (float)isum + m * sx;
                    }
                }
            }
            for (int j = 0; j < PACK_ROWS && g * PACK_ROWS + j < w->rows; j++)
                y[t * ldy + g * PACK_ROWS + j] = acc[j];
        }
}

gqa_packed_fn gqa_packed_kernel(void)
{
    const char *name = gqa_kernel_name();
#if defined(__x86_64__) || defined(_M_X64)
    if (strcmp(name, "avx512") == 0)
        return gqa_packed_rows_avx512;
#endif
    (void)name;
    return NULL;
}

/* Below this much work (rows x cols x tokens) the matmul stays on the
 * calling thread. */
#define PACKED_PAR_MIN (64 * 1024)

void gqa_packed_matmul(gqa_packed_fn fn, const packed_weight *w, const packed_x *px, float *y)
{
    gqa_packed_matmul_n(fn, &w, px, &y, 1);
}

/* Run groups [a, b) of the concatenation of the n matrices' groups. */
static void run_span(gqa_packed_fn fn, const packed_weight *const *w, const packed_x *px,
                     float *const *y, int n, int64_t a, int64_t b)
{
    int64_t base = 0;
    for (int i = 0; i < n && a < b; i++) {
        const int64_t g0 = a - base, g1 = b - base < w[i]->n_groups ? b - base : w[i]->n_groups;
        if (g0 < w[i]->n_groups && g1 > g0) {
            fn(w[i], px, g0, g1, y[i], w[i]->rows);
            a = base + g1;
        }
        base += w[i]->n_groups;
    }
}

void gqa_packed_matmul_n(gqa_packed_fn fn, const packed_weight *const *w, const packed_x *px,
                         float *const *y, int n)
{
    int64_t groups = 0;
    double work = 0.0;
    for (int i = 0; i < n; i++) {
        groups += w[i]->n_groups;
        work += (double)w[i]->rows * (double)w[i]->cols * (double)px->n;
    }
    int nt = gqa_threads_resolved();
    if (work < PACKED_PAR_MIN || groups < 2)
        nt = 1;
    if (nt == 1) {
        run_span(fn, w, px, y, n, 0, groups);
        return;
    }
    /* one parallel region for all n matrices (they share the input): each
     * thread takes a contiguous range of the concatenated row groups and
     * streams those weights once for all tokens */
#pragma omp parallel num_threads(nt)
    {
        const int64_t it = omp_get_thread_num(), nth = omp_get_num_threads();
        run_span(fn, w, px, y, n, groups * it / nth, groups * (it + 1) / nth);
    }
}
