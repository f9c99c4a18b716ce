/* kv_tensor.c - one K or V tensor given new heads (convert_internal.h,
 * gqa_conv_kv): the producer every converter hands its writer, whatever the
 * checkpoint format. Each new head is copied from an old head's bytes where
 * that is exact, else computed in f32 by heads.c from the dequantised old
 * tensor and encoded in the output type. At most the old tensor (as f32) and
 * one head are held in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert_internal.h"
#include "model/quant.h"

/* A copy needs the same type on both sides and whole blocks per head, and
 * then holds for FIRST and REPEAT, and for MEAN over byte-identical heads
 * (the mean of equal values is that value: requantising could only lose
 * it). */
int32_t gqa_conv_kv_copy_source(const gqa_conv_kv *t, int32_t j)
{
    int64_t be, bb;
    const gqa_conv_heads *c = &t->heads;
    if (c->method == GQA_CONVERT_RANDOM || t->out_type != t->in_type ||
        !gqa_gguf_type_block(t->in_type, &be, &bb) || c->head_elems % be != 0)
        return -1;
    const size_t hb = (size_t)(c->head_elems / be * bb);
    int32_t first, count;
    gqa_conv_members(c->g0, c->g, c->method, j, &first, &count);
    const unsigned char *h0 = (const unsigned char *)t->data + (size_t)first * hb;
    for (int32_t k = 1; k < count; k++)
        if (memcmp(h0, h0 + (size_t)k * hb, hb) != 0)
            return -1;
    return first;
}

gqa_status gqa_conv_kv_check(const gqa_conv_kv *t)
{
    for (int32_t j = 0; j < t->heads.g; j++)
        if (gqa_conv_kv_copy_source(t, j) < 0 && !gqa_quant_supported(t->in_type))
            return gqa_fail(GQA_ERR_UNSUPPORTED,
                            "tensor %s has type %s, which cannot be dequantised for %s (f32, "
                            "f16, bf16, q8_0, q4_0, q4_1 can; first and repeat with out-type "
                            "keep copy any type)",
                            t->name, gqa_gguf_type_name(t->in_type),
                            gqa_convert_method_name(t->heads.method));
    return GQA_OK;
}

static gqa_status name_failure(gqa_status s, const char *tensor)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", gqa_last_error());
    return gqa_fail(s, "tensor %s: %s", tensor, msg);
}

/* The old tensor as f32 (malloc'd into *old) and the RANDOM scale. */
static gqa_status load_old(const gqa_conv_kv *t, float **old, double *rms)
{
    const int64_t n = (int64_t)t->heads.g0 * t->heads.head_elems;
    *old = malloc((size_t)(n > 0 ? n : 1) * sizeof **old);
    if (!*old)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tensor %s: out of memory", t->name);
    gqa_dequant_row_ref(t->in_type, t->data, n, *old);
    *rms = gqa_conv_rms(*old, n);
    return GQA_OK;
}

gqa_status gqa_conv_kv_f32(const gqa_conv_kv *t, float *dst)
{
    if (!gqa_quant_supported(t->in_type))
        return gqa_fail(GQA_ERR_UNSUPPORTED, "tensor %s has type %s, which cannot be dequantised",
                        t->name, gqa_gguf_type_name(t->in_type));
    float *old = NULL;
    gqa_conv_heads c = t->heads;
    gqa_status s = load_old(t, &old, &c.rms);
    if (s == GQA_OK)
        gqa_conv_heads_f32(&c, old, dst);
    free(old);
    return s;
}

gqa_status gqa_conv_kv_fill(void *user, void *dst, uint64_t n_bytes)
{
    const gqa_conv_kv *t = user;
    gqa_conv_heads c = t->heads;
    int64_t bo, bbo;
    gqa_gguf_type_block(t->out_type, &bo, &bbo);
    const size_t out_head = (size_t)(c.head_elems / bo * bbo);
    if (out_head * (size_t)c.g != n_bytes)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tensor %s: %llu bytes asked, %zu computed", t->name,
                        (unsigned long long)n_bytes, out_head * (size_t)c.g);
    float *old = NULL, *head = NULL;
    gqa_status s = GQA_OK;
    for (int32_t j = 0; s == GQA_OK && j < c.g; j++) {
        unsigned char *o = (unsigned char *)dst + (size_t)j * out_head;
        const int32_t from = gqa_conv_kv_copy_source(t, j);
        if (from >= 0) { /* same type: an old head is out_head bytes too */
            memcpy(o, (const unsigned char *)t->data + (size_t)from * out_head, out_head);
            continue;
        }
        if (!old) {
            head = malloc((size_t)c.head_elems * sizeof *head);
            s = head ? load_old(t, &old, &c.rms)
                     : gqa_fail(GQA_ERR_NO_MEMORY, "tensor %s: out of memory", t->name);
            if (s != GQA_OK)
                break;
        }
        gqa_conv_head_f32(&c, old, j, head);
        s = gqa_conv_encode(t->out_type, head, c.head_elems, o);
        if (s != GQA_OK)
            s = name_failure(s, t->name);
    }
    free(old);
    free(head);
    return s;
}
