/* attn.h - the attention framework's internal interface. */
#ifndef GQA_ATTN_ATTN_H
#define GQA_ATTN_ATTN_H

#include "kernels/kernel.h"

/* A validated gqa_attention call. */
typedef struct gqa_attn_problem {
    int H, G, d;
    float scale;      /* resolved (never 0) */
    int causal;
    int window;
    gqa_dtype dtype;
    int64_t n_q, n_kv, q_pos;
    const float *q;
    const void *k, *v;
    float *out, *lse;
    int64_t row_stride; /* bytes from one key's row of a KV head to the next key's (G*d*size) */
} gqa_attn_problem;

/* Tile the problem over query-row blocks, KV heads and KV splits, run the
 * micro-kernels of `ks` on the library's threads, merge and normalise. */
gqa_status gqa_attn_run(const gqa_attn_problem *p, const gqa_kernel_set *ks);

/* Padded row length of q and acc buffers handed to kernels. */
static inline int gqa_dpad(int d)
{
    return (d + 15) & ~15;
}

#endif
