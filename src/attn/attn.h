/* attn.h - the attention framework's internal interface.
 *
 * One call of the framework is a batch of items (gqa_attention: one item with
 * contiguous K/V; gqa_kv_attention: one item per sequence, K/V in cache
 * blocks). Every item shares the head layout and masking rules of the batch. */
#ifndef GQA_ATTN_ATTN_H
#define GQA_ATTN_ATTN_H

#include "kernels/kernel.h"

/* A run of keys j .. j_end-1 of one KV head stored at one stride: key j's K
 * row is at k + (j - key_base) * row_stride bytes (same for v). */
typedef struct gqa_kv_segment {
    const void *k, *v;
    int64_t key_base, row_stride, j_end;
    int64_t head_stride; /* bytes from head g's rows to head g+1's (same keys) */
} gqa_kv_segment;

typedef struct gqa_attn_item gqa_attn_item;

/* Where key j of KV head g of item `it` lives: fills seg so that it covers j
 * (and as many following keys as share its stride). */
typedef void (*gqa_kv_locate_fn)(const void *ctx, const gqa_attn_item *it, int g, int64_t j,
                                 gqa_kv_segment *seg);

struct gqa_attn_item {
    int64_t n_q, n_kv, q_pos; /* queries i at q_pos + i; keys at 0..n_kv-1 */
    const float *q;           /* n_q x H x d */
    float *out;               /* n_q x H x d */
    float *lse;               /* NULL or n_q x H */
    const void *k, *v;        /* contiguous source: key 0 of head 0 */
    const void *source;       /* locator's context for this item (paged: block table) */
};

typedef struct gqa_attn_batch {
    int H, G, d;
    float scale; /* resolved (never 0) */
    int causal, window;
    gqa_dtype dtype;
    int64_t row_stride;      /* contiguous source: bytes between keys (G*d*size) */
    gqa_kv_locate_fn locate; /* NULL: contiguous source */
    const void *locate_ctx;
    const gqa_attn_item *items;
    int n_items;
} gqa_attn_batch;

/* Tile the batch over (item, query-row block, KV head slice, key split), run
 * the micro-kernels of `ks` on the library's threads, merge and normalise.
 * Arguments are already validated. GQA_ERR_NO_MEMORY if the workspace cannot
 * grow. */
gqa_status gqa_attn_run(const gqa_attn_batch *b, const gqa_kernel_set *ks);

/* Check a descriptor (shared by every entry point): GQA_OK or the status and
 * message for the first bad field. */
gqa_status gqa_attn_check_desc(const gqa_attn_desc *desc);
/* Check the shared arguments of a call (desc already checked): counts,
 * positions, the causal constraint and every byte count that will be formed. */
gqa_status gqa_attn_check_call(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv, int64_t q_pos);
/* The softmax scale a descriptor asks for (0 means 1/sqrt(d)). */
float gqa_attn_scale(const gqa_attn_desc *desc);

/* Padded row length of q and acc buffers handed to kernels. */
static inline int gqa_dpad(int d)
{
    return (d + 15) & ~15;
}

#endif
