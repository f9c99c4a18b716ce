/* quant_ref.c - reference dequantisers and the reference matvec ("ref" kernel
 * set): plain C, one element at a time, double accumulation. */
#include <string.h>

#include "core/internal.h"
#include "gqa_model.h"
#include "model/quant.h"

int gqa_quant_supported(uint32_t t)
{
    switch (t) {
    case GQA_GGML_TYPE_F32:
    case GQA_GGML_TYPE_F16:
    case GQA_GGML_TYPE_BF16:
    case GQA_GGML_TYPE_Q8_0:
    case GQA_GGML_TYPE_Q4_0:
    case GQA_GGML_TYPE_Q4_1: return 1;
    default: return 0;
    }
}

void gqa_quant_block(uint32_t t, int64_t *block_elems, int64_t *block_bytes)
{
    int64_t e = 1, b = 4;
    switch (t) {
    case GQA_GGML_TYPE_F16:
    case GQA_GGML_TYPE_BF16: b = 2; break;
    case GQA_GGML_TYPE_Q8_0: e = GQA_QK, b = 2 + GQA_QK; break;
    case GQA_GGML_TYPE_Q4_0: e = GQA_QK, b = 2 + GQA_QK / 2; break;
    case GQA_GGML_TYPE_Q4_1: e = GQA_QK, b = 4 + GQA_QK / 2; break;
    default: break;
    }
    *block_elems = e;
    *block_bytes = b;
}

/* Unaligned little-endian reads: weights in a mapped file need not be aligned. */
static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static float rd_f32(const uint8_t *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The 32 values of one q* block starting at p. */
static void dequant_block(uint32_t t, const uint8_t *p, float *out)
{
    if (t == GQA_GGML_TYPE_Q8_0) {
        const float d = gqa_f16_to_f32(rd16(p));
        for (int i = 0; i < GQA_QK; i++)
            out[i] = (float)(int8_t)p[2 + i] * d;
        return;
    }
    const float d = gqa_f16_to_f32(rd16(p));
    const float m = t == GQA_GGML_TYPE_Q4_1 ? gqa_f16_to_f32(rd16(p + 2)) : 0.0f;
    const uint8_t *qs = p + (t == GQA_GGML_TYPE_Q4_1 ? 4 : 2);
    for (int i = 0; i < GQA_QK / 2; i++) {
        const int lo = qs[i] & 15, hi = qs[i] >> 4;
        if (t == GQA_GGML_TYPE_Q4_1) {
            out[i] = (float)lo * d + m;
            out[i + GQA_QK / 2] = (float)hi * d + m;
        } else {
            out[i] = (float)(lo - 8) * d;
            out[i + GQA_QK / 2] = (float)(hi - 8) * d;
        }
    }
}

void gqa_dequant_row_ref(uint32_t t, const void *src, int64_t n, float *dst)
{
    const uint8_t *p = src;
    int64_t be, bb;
    gqa_quant_block(t, &be, &bb);
    for (int64_t b = 0; b < n / be; b++, p += bb) {
        switch (t) {
        case GQA_GGML_TYPE_F32: dst[b] = rd_f32(p); break;
        case GQA_GGML_TYPE_F16: dst[b] = gqa_f16_to_f32(rd16(p)); break;
        case GQA_GGML_TYPE_BF16: dst[b] = gqa_bf16_to_f32(rd16(p)); break;
        default: dequant_block(t, p, dst + b * be); break;
        }
    }
}

void gqa_matvec_rows_ref(uint32_t t, const void *w, int64_t row_bytes, int64_t cols,
                         const float *x, float *y, int64_t r0, int64_t r1)
{
    int64_t be, bb;
    gqa_quant_block(t, &be, &bb);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * row_bytes;
        double sum = 0.0;
        float vals[GQA_QK];
        for (int64_t b = 0; b < cols / be; b++) {
            gqa_dequant_row_ref(t, row + b * bb, be, vals);
            for (int64_t i = 0; i < be; i++)
                sum += (double)vals[i] * (double)x[b * be + i];
        }
        y[r] = (float)sum;
    }
}
