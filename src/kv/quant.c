/* quant.c - one K/V row to and from the cache's storage type. */
#include <math.h>
#include <string.h>

#include "kv/kv_internal.h"

size_t gqa_kv_row_bytes(int32_t d, gqa_dtype dtype)
{
    if (d < 1 || d > GQA_KV_MAX_HEAD_DIM)
        return 0;
    switch (dtype) {
    case GQA_F32:
    case GQA_F16:
    case GQA_BF16: break;
    case GQA_Q8_0:
        if (d % GQA_KV_Q8_0_VALUES != 0)
            return 0;
        break;
    default: return 0;
    }
    return (size_t)gqa_row_bytes(d, dtype);
}

/* GGML's quantize_row_q8_0_ref, block by block: the quants are rounded with
 * the f32 scale's inverse while the f16-rounded scale is what is stored and
 * used to dequantise, so a row quantised here is bit-identical to GGML's.
 * Non-finite input would make roundf's result unrepresentable as int8 (UB in
 * the conversion); such a block is stored as NaN instead. */
static void encode_q8_0(int32_t d, const float *x, unsigned char *row)
{
    for (int32_t b = 0; b < d / GQA_KV_Q8_0_VALUES; b++) {
        const float *xb = x + (size_t)b * GQA_KV_Q8_0_VALUES;
        unsigned char *out = row + (size_t)b * GQA_KV_Q8_0_BYTES;
        float amax = 0.0f;
        int finite = 1;
        for (int j = 0; j < GQA_KV_Q8_0_VALUES; j++) {
            const float a = fabsf(xb[j]);
            finite &= isfinite(a) != 0;
            amax = a > amax ? a : amax;
        }
        int8_t qs[GQA_KV_Q8_0_VALUES];
        uint16_t scale16;
        if (!finite) {
            scale16 = 0x7e00u; /* quiet NaN */
            memset(qs, 0, sizeof qs);
        } else {
            const float scale = amax / 127.0f;
            const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
            scale16 = gqa_f32_to_f16(scale);
            for (int j = 0; j < GQA_KV_Q8_0_VALUES; j++) {
                /* |x * inv| <= 127 up to rounding; the clamp only guards UB. */
                float q = roundf(xb[j] * inv);
                q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
                qs[j] = (int8_t)q;
            }
        }
        memcpy(out, &scale16, 2);
        memcpy(out + 2, qs, GQA_KV_Q8_0_VALUES);
    }
}

static void decode_q8_0(int32_t d, const unsigned char *row, float *x)
{
    for (int32_t b = 0; b < d / GQA_KV_Q8_0_VALUES; b++) {
        const unsigned char *in = row + (size_t)b * GQA_KV_Q8_0_BYTES;
        float *xb = x + (size_t)b * GQA_KV_Q8_0_VALUES;
        uint16_t scale16;
        memcpy(&scale16, in, 2);
        const float scale = gqa_f16_to_f32(scale16);
        const int8_t *qs = (const int8_t *)(in + 2);
        for (int j = 0; j < GQA_KV_Q8_0_VALUES; j++)
            xb[j] = (float)qs[j] * scale;
    }
}

void gqa_kv_row_encode(gqa_dtype dtype, int32_t d, const float *x, unsigned char *row)
{
    switch (dtype) {
    case GQA_F32: memcpy(row, x, (size_t)d * sizeof(float)); return;
    case GQA_F16:
        for (int32_t i = 0; i < d; i++) {
            const uint16_t h = gqa_f32_to_f16(x[i]);
            memcpy(row + 2 * (size_t)i, &h, 2);
        }
        return;
    case GQA_BF16:
        for (int32_t i = 0; i < d; i++) {
            const uint16_t h = gqa_f32_to_bf16(x[i]);
            memcpy(row + 2 * (size_t)i, &h, 2);
        }
        return;
    case GQA_Q8_0: encode_q8_0(d, x, row); return;
    }
}

void gqa_kv_row_decode(gqa_dtype dtype, int32_t d, const unsigned char *row, float *x)
{
    switch (dtype) {
    case GQA_F32: memcpy(x, row, (size_t)d * sizeof(float)); return;
    case GQA_F16:
        for (int32_t i = 0; i < d; i++) {
            uint16_t h;
            memcpy(&h, row + 2 * (size_t)i, 2);
            x[i] = gqa_f16_to_f32(h);
        }
        return;
    case GQA_BF16:
        for (int32_t i = 0; i < d; i++) {
            uint16_t h;
            memcpy(&h, row + 2 * (size_t)i, 2);
            x[i] = gqa_bf16_to_f32(h);
        }
        return;
    case GQA_Q8_0: decode_q8_0(d, row, x); return;
    }
}
