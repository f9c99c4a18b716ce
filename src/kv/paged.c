/* paged.c - batched attention over the paged KV cache.
 *
 * Each batch item is one sequence whose last n_q positions are the queries.
 * The attention framework (src/attn/plan.c) does the tiling, threading and
 * split-KV merging; this file only tells it where keys live: key j of KV head
 * g is in block-table entry j / block_tokens, and inside that block the
 * tokens' rows are laid out as in a contiguous [token][head][dim] array, so
 * every block is one run of keys for the kernels. */
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/internal.h"
#include "kv/kv_internal.h"

typedef struct paged_ctx {
    const gqa_kv_cache *cache;
    int32_t layer;
} paged_ctx;

static void locate_paged(const void *ctx, const gqa_attn_item *it, int g, int64_t j,
                         gqa_kv_segment *seg)
{
    const paged_ctx *pc = ctx;
    const gqa_kv_cache *c = pc->cache;
    const gqa_kv_sequence *s = it->source;
    const int64_t entry = j / c->block_tokens;
    const int32_t block = s->blocks[entry];
    seg->k = gqa_kv_row_ptr(c, block, pc->layer, 0, g);
    seg->v = gqa_kv_row_ptr(c, block, pc->layer, 1, g);
    seg->key_base = entry * c->block_tokens;
    seg->row_stride = (int64_t)gqa_kv_token_stride(c);
    seg->head_stride = (int64_t)c->row_bytes;
    const int64_t end = seg->key_base + c->block_tokens;
    seg->j_end = end < it->n_kv ? end : it->n_kv;
}

/* The reference path (GQA_KERNEL=ref): gather each sequence's keys as f32
 * and run the naive reference on them. Tests only; it allocates. */
static gqa_status attention_ref(const gqa_kv_cache *c, int32_t layer, const gqa_attn_desc *desc,
                                const gqa_kv_batch_item *items, int32_t n_items)
{
    gqa_attn_desc d32 = *desc;
    d32.kv_dtype = GQA_F32;
    for (int32_t i = 0; i < n_items; i++) {
        const int64_t len = gqa_kv_seq_len(c, items[i].seq);
        const size_t n = (size_t)len * (size_t)c->G * (size_t)c->d;
        float *k = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
        if (!k || !v) {
            free(k);
            free(v);
            return gqa_fail(GQA_ERR_NO_MEMORY, "reference paged attention: out of memory");
        }
        gqa_status st = gqa_kv_read_layer(c, items[i].seq, layer, 0, len, k, v);
        if (st == GQA_OK)
            gqa_attention_ref(&d32, items[i].n_q, len, len - items[i].n_q, items[i].q, k, v,
                              items[i].out, items[i].lse);
        free(k);
        free(v);
        if (st != GQA_OK)
            return st;
    }
    return GQA_OK;
}

gqa_status gqa_kv_attention(const gqa_kv_cache *cache, int32_t layer, const gqa_attn_desc *desc,
                            const gqa_kv_batch_item *items, int32_t n_items)
{
    if (!cache)
        return gqa_fail(GQA_ERR_INVALID_ARG, "cache is NULL");
    gqa_status st = gqa_attn_check_desc(desc);
    if (st != GQA_OK)
        return st;
    if (layer < 0 || layer >= cache->n_layers)
        return gqa_fail(GQA_ERR_INVALID_ARG, "layer = %d, the cache has layers 0..%d", (int)layer,
                        (int)cache->n_layers - 1);
    if (desc->n_kv_heads != cache->G)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_kv_heads = %d but the cache holds %d KV heads",
                        (int)desc->n_kv_heads, (int)cache->G);
    if (desc->head_dim != cache->d)
        return gqa_fail(GQA_ERR_INVALID_ARG, "head_dim = %d but the cache holds head_dim %d",
                        (int)desc->head_dim, (int)cache->d);
    if (desc->kv_dtype != cache->dtype)
        return gqa_fail(GQA_ERR_INVALID_ARG, "kv_dtype = %s but the cache stores %s",
                        gqa_dtype_name(desc->kv_dtype), gqa_dtype_name(cache->dtype));
    if (n_items < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_items = %d, must be >= 0", (int)n_items);
    if (n_items == 0)
        return GQA_OK;
    if (!items)
        return gqa_fail(GQA_ERR_INVALID_ARG, "items is NULL");
    for (int32_t i = 0; i < n_items; i++) {
        const gqa_kv_sequence *s;
        st = gqa_kv_seq_lookup(cache, items[i].seq, &s);
        if (st != GQA_OK)
            return st;
        if (items[i].n_q < 1 || items[i].n_q > s->len)
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "items[%d].n_q = %lld, must be in 1..%lld (sequence %d's length)",
                            (int)i, (long long)items[i].n_q, (long long)s->len, (int)items[i].seq);
        if (!items[i].q || !items[i].out)
            return gqa_fail(GQA_ERR_INVALID_ARG, "items[%d].%s is NULL", (int)i,
                            items[i].q ? "out" : "q");
    }

    const gqa_kernel_set *ks = gqa_kernels_active();
    if (!ks)
        return attention_ref(cache, layer, desc, items, n_items);

    gqa_attn_item *it = gqa_workspace_slot(GQA_WS_BATCH, (size_t)n_items * sizeof *it);
    if (!it)
        return GQA_ERR_NO_MEMORY;
    for (int32_t i = 0; i < n_items; i++) {
        const gqa_kv_sequence *s = gqa_kv_seq_peek(cache, items[i].seq);
        it[i] = (gqa_attn_item){
            .n_q = items[i].n_q,
            .n_kv = s->len,
            .q_pos = s->len - items[i].n_q,
            .q = items[i].q,
            .out = items[i].out,
            .lse = items[i].lse,
            .source = s,
        };
    }
    const paged_ctx ctx = {cache, layer};
    const gqa_attn_batch batch = {
        .H = desc->n_q_heads,
        .G = desc->n_kv_heads,
        .d = desc->head_dim,
        .scale = gqa_attn_scale(desc),
        .causal = desc->causal != 0,
        .window = desc->window,
        .dtype = desc->kv_dtype,
        .locate = locate_paged,
        .locate_ctx = &ctx,
        .items = it,
        .n_items = n_items,
    };
    return gqa_attn_run(&batch, ks);
}
