/* quantize.c - f32 values to the weight types a converted tensor is written
 * in: f32, f16, bf16, and ggml's q8_0, q4_0 and q4_1 blocks (layouts in
 * src/model/quant.h).
 *
 * The q* quantisers reproduce ggml's reference quantisers
 * (quantize_row_q*_ref in ggml-quants.c) bit for bit, as plain ISO C float
 * arithmetic without FMA contraction: the quants are computed with the f32
 * scale (and its f32 inverse), while the f16-rounded scale is what is stored.
 * tests/convert/check_convert.py compares them with the PyPI gguf package's
 * quantisers, which follow the same rules. Everything is written byte by byte
 * in little-endian order, so dst needs no alignment. */
#include <math.h>
#include <string.h>

#include "convert/convert_internal.h"
#include "gqa_model.h"

#define QK 32 /* values per q* block */

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

static int block_finite(const float *x)
{
    for (int i = 0; i < QK; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* d = amax / 127, q = round(x / d) (half away from zero). 34 bytes. */
static void quant_q8_0(const float *x, unsigned char *out)
{
    float amax = 0.0f;
    for (int i = 0; i < QK; i++) {
        const float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put16(out, gqa_f32_to_f16(d));
    for (int i = 0; i < QK; i++) {
        /* |x * id| <= 127 up to rounding; the clamp keeps the cast defined */
        float q = roundf(x[i] * id);
        q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
        out[2 + i] = (unsigned char)(int8_t)q;
    }
}

/* Nibble of v + bias truncated toward zero, at most 15; v + bias >= 0 by
 * construction (the clamp below 0 only guards rounding at the extremes). */
static unsigned nibble(float v)
{
    int q = (int)v;
    return (unsigned)(q < 0 ? 0 : q > 15 ? 15 : q);
}

/* d = max / -8 where max is the value of largest magnitude (the first such,
 * sign kept), q = min(15, (int)(x / d + 8.5)). 18 bytes. */
static void quant_q4_0(const float *x, unsigned char *out)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < QK; i++) {
        const float a = fabsf(x[i]);
        if (amax < a) {
            amax = a;
            max = x[i];
        }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put16(out, gqa_f32_to_f16(d));
    for (int i = 0; i < QK / 2; i++) {
        const float x0 = x[i] * id, x1 = x[i + QK / 2] * id;
        out[2 + i] = (unsigned char)(nibble(x0 + 8.5f) | nibble(x1 + 8.5f) << 4);
    }
}

/* d = (max - min) / 15, m = min, q = min(15, (int)((x - min) / d + 0.5)).
 * 20 bytes. */
static void quant_q4_1(const float *x, unsigned char *out)
{
    float min = x[0], max = x[0];
    for (int i = 1; i < QK; i++) {
        min = x[i] < min ? x[i] : min;
        max = x[i] > max ? x[i] : max;
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put16(out, gqa_f32_to_f16(d));
    put16(out + 2, gqa_f32_to_f16(min));
    for (int i = 0; i < QK / 2; i++) {
        const float x0 = (x[i] - min) * id, x1 = (x[i + QK / 2] - min) * id;
        out[4 + i] = (unsigned char)(nibble(x0 + 0.5f) | nibble(x1 + 0.5f) << 4);
    }
}

static gqa_status encode_blocks(uint32_t t, const float *src, int64_t n, unsigned char *p)
{
    int64_t be, bb;
    gqa_gguf_type_block(t, &be, &bb);
    for (int64_t b = 0; b < n / QK; b++, p += bb) {
        const float *x = src + b * QK;
        if (!block_finite(x))
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "cannot quantise to %s: a non-finite value in elements %lld..%lld",
                            gqa_gguf_type_name(t), (long long)(b * QK), (long long)(b * QK + 31));
        if (t == GQA_GGML_TYPE_Q8_0)
            quant_q8_0(x, p);
        else if (t == GQA_GGML_TYPE_Q4_0)
            quant_q4_0(x, p);
        else
            quant_q4_1(x, p);
    }
    return GQA_OK;
}

gqa_status gqa_conv_encode(uint32_t t, const float *src, int64_t n, void *dst)
{
    unsigned char *p = dst;
    if (!gqa_conv_writable(t))
        return gqa_fail(GQA_ERR_UNSUPPORTED, "cannot write tensors of type %s",
                        gqa_gguf_type_name(t));
    if (n < 0 || ((t == GQA_GGML_TYPE_Q8_0 || t == GQA_GGML_TYPE_Q4_0 || t == GQA_GGML_TYPE_Q4_1) &&
                  n % QK != 0))
        return gqa_fail(GQA_ERR_INVALID_ARG, "cannot encode %lld values as %s (whole blocks of %d)",
                        (long long)n, gqa_gguf_type_name(t), QK);
    switch (t) {
    case GQA_GGML_TYPE_F32:
        for (int64_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &src[i], 4);
            p[4 * i] = (unsigned char)u, p[4 * i + 1] = (unsigned char)(u >> 8);
            p[4 * i + 2] = (unsigned char)(u >> 16), p[4 * i + 3] = (unsigned char)(u >> 24);
        }
        return GQA_OK;
    case GQA_GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            put16(p + 2 * i, gqa_f32_to_f16(src[i]));
        return GQA_OK;
    case GQA_GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            put16(p + 2 * i, gqa_f32_to_bf16(src[i]));
        return GQA_OK;
    default: return encode_blocks(t, src, n, p);
    }
}
