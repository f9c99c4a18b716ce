/* ref.c - the naive reference: double accumulation, two passes over the keys,
 * no tiling, no SIMD. Every fast path is tested against it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kernels/kernel.h"

static double load_elem(const void *base, gqa_dtype t, int64_t i)
{
    if (t == GQA_Q8_0) { /* rows are whole 32-value blocks: index the blocks */
        const unsigned char *blk = (const unsigned char *)base + (i / 32) * 34;
        uint16_t scale;
        memcpy(&scale, blk, sizeof scale);
        return (double)((const int8_t *)(blk + 2))[i % 32] * (double)gqa_f16_to_f32(scale);
    }
    switch (t) {
    case GQA_F16: return (double)gqa_f16_to_f32(((const uint16_t *)base)[i]);
    case GQA_BF16: return (double)gqa_bf16_to_f32(((const uint16_t *)base)[i]);
    default: return (double)((const float *)base)[i];
    }
}

static double dot(const float *q, const void *k, gqa_dtype t, int64_t off, int d)
{
    double s = 0.0;
    for (int i = 0; i < d; i++)
        s += (double)q[i] * load_elem(k, t, off + i);
    return s;
}

void gqa_attention_ref(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv, int64_t q_pos,
                       const float *q, const void *k, const void *v, float *out, float *lse)
{
    const int H = desc->n_q_heads, G = desc->n_kv_heads, d = desc->head_dim, R = H / G;
    const double scale = desc->scale != 0.0f ? (double)desc->scale : 1.0 / sqrt((double)d);
    double acc[GQA_MAX_HEAD_DIM];

    for (int64_t i = 0; i < n_q; i++) {
        const int64_t p = q_pos + i;
        int64_t lo = 0, hi = n_kv - 1;
        if (desc->window > 0) {
            lo = p - desc->window + 1 > 0 ? p - desc->window + 1 : 0;
            hi = p < hi ? p : hi;
        } else if (desc->causal) {
            hi = p < hi ? p : hi;
        }
        for (int h = 0; h < H; h++) {
            const int g = h / R;
            const float *qr = q + (i * H + h) * d;
            float *o = out + (i * H + h) * d;
            double m = -HUGE_VAL, l = 0.0;
            for (int64_t j = lo; j <= hi; j++) {
                double s = scale * dot(qr, k, desc->kv_dtype, (j * G + g) * d, d);
                if (s > m) /* a NaN score never wins; it still poisons l below */
                    m = s;
            }
            for (int c = 0; c < d; c++)
                acc[c] = 0.0;
            for (int64_t j = lo; j <= hi; j++) {
                double s = scale * dot(qr, k, desc->kv_dtype, (j * G + g) * d, d);
                double w = exp(s - m);
                l += w;
                for (int c = 0; c < d; c++)
                    acc[c] += w * load_elem(v, desc->kv_dtype, (j * G + g) * d + c);
            }
            for (int c = 0; c < d; c++)
                o[c] = l > 0.0 || isnan(l) ? (float)(acc[c] / l) : 0.0f;
            if (lse)
                lse[i * H + h] = l > 0.0 || isnan(l) ? (float)(m + log(l)) : -INFINITY;
        }
    }
}

gqa_status gqa_attention_backward_ref(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv,
                                      int64_t q_pos, const float *q, const float *k,
                                      const float *v, const float *out, const float *lse,
                                      const float *d_out, float *d_q, float *d_k, float *d_v)
{
    const int H = desc->n_q_heads, G = desc->n_kv_heads, d = desc->head_dim, R = H / G;
    const double scale = desc->scale != 0.0f ? (double)desc->scale : 1.0 / sqrt((double)d);
    const size_t n_kvd = (size_t)n_kv * (size_t)G * (size_t)d;
    double *dk = calloc(2 * n_kvd, sizeof *dk);
    if (!dk)
        return gqa_fail(GQA_ERR_NO_MEMORY, "reference attention backward: %zu doubles", 2 * n_kvd);
    double *dv = dk + n_kvd;
    double dq[GQA_MAX_HEAD_DIM];

    for (int64_t i = 0; i < n_q; i++) {
        const int64_t p = q_pos + i;
        int64_t lo = 0, hi = n_kv - 1;
        if (desc->window > 0)
            lo = p - desc->window + 1 > 0 ? p - desc->window + 1 : 0;
        if ((desc->causal || desc->window > 0) && p < hi)
            hi = p;
        for (int h = 0; h < H; h++) {
            const int g = h / R;
            const int64_t row = i * H + h;
            const float *qr = q + row * d, *o = out + row * d, *dor = d_out + row * d;
            double D = 0.0;
            for (int c = 0; c < d; c++) {
                D += (double)dor[c] * (double)o[c];
                dq[c] = 0.0;
            }
            for (int64_t j = lo; j <= hi; j++) {
                const int64_t kv = (j * G + g) * d;
                const double pj = exp(scale * dot(qr, k, GQA_F32, kv, d) - (double)lse[row]);
                const double ds = pj * (dot(dor, v, GQA_F32, kv, d) - D);
                for (int c = 0; c < d; c++) {
                    dq[c] += scale * ds * (double)k[kv + c];
                    dk[kv + c] += scale * ds * (double)qr[c];
                    dv[kv + c] += pj * (double)dor[c];
                }
            }
            for (int c = 0; c < d; c++)
                d_q[row * d + c] = (float)dq[c];
        }
    }
    for (size_t e = 0; e < n_kvd; e++) {
        d_k[e] = (float)dk[e];
        d_v[e] = (float)dv[e];
    }
    free(dk);
    return GQA_OK;
}
