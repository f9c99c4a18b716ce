/* api.c - gqa_attention: argument checks, then the reference or the tiled
 * framework (plan.c). */
#include <math.h>

#include "attn/attn.h"
#include "core/internal.h"
#include "kernels/kernel.h"

gqa_status gqa_attn_check_desc(const gqa_attn_desc *desc)
{
    if (!desc)
        return gqa_fail(GQA_ERR_INVALID_ARG, "desc is NULL");
    const int32_t H = desc->n_q_heads, G = desc->n_kv_heads, d = desc->head_dim;
    if (H <= 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_q_heads (H) = %d, must be > 0", (int)H);
    if (G <= 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_kv_heads (G) = %d, must be > 0", (int)G);
    if (H % G != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "n_q_heads (H) = %d is not a multiple of n_kv_heads (G) = %d (H %% G = %d)",
                        (int)H, (int)G, (int)(H % G));
    if (d < 1 || d > GQA_MAX_HEAD_DIM)
        return gqa_fail(GQA_ERR_INVALID_ARG, "head_dim = %d, must be in 1..%d", (int)d,
                        GQA_MAX_HEAD_DIM);
    if (!isfinite(desc->scale) || desc->scale < 0.0f)
        return gqa_fail(GQA_ERR_INVALID_ARG, "scale = %g, must be finite and >= 0 (0: 1/sqrt(d))",
                        (double)desc->scale);
    if (desc->window < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "window = %d, must be >= 0", (int)desc->window);
    switch (desc->kv_dtype) {
    case GQA_F32:
    case GQA_F16:
    case GQA_BF16: break;
    case GQA_Q8_0:
        if (d % 32 != 0)
            return gqa_fail(GQA_ERR_UNSUPPORTED,
                            "kv_dtype q8_0 needs head_dim %% 32 == 0, got head_dim = %d", (int)d);
        break;
    default:
        return gqa_fail(GQA_ERR_INVALID_ARG, "kv_dtype = %d is not a known gqa_dtype",
                        (int)desc->kv_dtype);
    }
    return GQA_OK;
}

float gqa_attn_scale(const gqa_attn_desc *desc)
{
    return desc->scale != 0.0f ? desc->scale : 1.0f / sqrtf((float)desc->head_dim);
}

gqa_status gqa_attn_check_call(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv, int64_t q_pos)
{
    if (n_q < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_q = %lld, must be >= 0", (long long)n_q);
    if (n_kv <= 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_kv = %lld, must be > 0", (long long)n_kv);
    if (q_pos < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "q_pos = %lld, must be >= 0", (long long)q_pos);
    if (desc->causal && (q_pos > n_kv || n_q > n_kv - q_pos))
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "causal attention needs q_pos + n_q <= n_kv, got q_pos = %lld, n_q = %lld, "
                        "n_kv = %lld",
                        (long long)q_pos, (long long)n_q, (long long)n_kv);
    /* Every byte count that the kernels will form must fit in int64 and size_t;
     * kernels take key indices as int32, so n_kv is capped there (positions
     * may be larger: visible ranges are clamped to the keys). */
    const int64_t H = desc->n_q_heads, G = desc->n_kv_heads, d = desc->head_dim;
    int64_t q_elems, kv_elems, q_bytes, kv_bytes, end_pos;
    if (gqa_mul_overflow_i64(n_q, H * d, &q_elems) || gqa_mul_overflow_i64(q_elems, 4, &q_bytes) ||
        (uint64_t)q_bytes > (uint64_t)SIZE_MAX)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_q = %lld: the q/out byte count overflows",
                        (long long)n_q);
    if (gqa_mul_overflow_i64(n_kv, G, &kv_elems) ||
        gqa_mul_overflow_i64(kv_elems, gqa_row_bytes(d, desc->kv_dtype), &kv_bytes) ||
        (uint64_t)kv_bytes > (uint64_t)SIZE_MAX || n_kv > INT32_MAX)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_kv = %lld: the k/v byte count overflows",
                        (long long)n_kv);
    if (__builtin_add_overflow(q_pos, n_q, &end_pos))
        return gqa_fail(GQA_ERR_INVALID_ARG, "q_pos + n_q = %lld + %lld overflows",
                        (long long)q_pos, (long long)n_q);
    return GQA_OK;
}

gqa_status gqa_attention(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv, int64_t q_pos,
                         const float *q, const void *k, const void *v, float *out, float *lse)
{
    gqa_status st = gqa_attn_check_desc(desc);
    if (st != GQA_OK)
        return st;
    st = gqa_attn_check_call(desc, n_q, n_kv, q_pos);
    if (st != GQA_OK)
        return st;
    if (!k)
        return gqa_fail(GQA_ERR_INVALID_ARG, "k is NULL");
    if (!v)
        return gqa_fail(GQA_ERR_INVALID_ARG, "v is NULL");
    if (n_q == 0)
        return GQA_OK;
    if (!q)
        return gqa_fail(GQA_ERR_INVALID_ARG, "q is NULL");
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "out is NULL");

    const int64_t H = desc->n_q_heads, G = desc->n_kv_heads, d = desc->head_dim;
    const gqa_kernel_set *ks = gqa_kernels_active();
    if (!ks) {
        gqa_attention_ref(desc, n_q, n_kv, q_pos, q, k, v, out, lse);
        return GQA_OK;
    }
    const gqa_attn_item item = {
        .n_q = n_q, .n_kv = n_kv, .q_pos = q_pos, .q = q, .out = out, .lse = lse, .k = k, .v = v,
    };
    const gqa_attn_batch batch = {
        .H = (int)H,
        .G = (int)G,
        .d = (int)d,
        .scale = gqa_attn_scale(desc),
        .causal = desc->causal != 0,
        .window = desc->window,
        .dtype = desc->kv_dtype,
        .row_stride = G * gqa_row_bytes(d, desc->kv_dtype),
        .items = &item,
        .n_items = 1,
    };
    return gqa_attn_run(&batch, ks);
}
