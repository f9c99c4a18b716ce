/* kv_internal.h - the paged KV cache's internal interface (see docs/kv-cache.md).
 *
 * Shared by the cache bookkeeping (cache.c), the row conversions (quant.c)
 * and the paged attention (paged.c). Not installed.
 *
 * Memory is one aligned arena of blocks_total blocks of block_bytes each.
 * Inside a block the layout is
 *
 *     [layer][kind: 0 = K, 1 = V][token in block][kv head][row_bytes]
 *
 * the same [token][head][dim] order as a contiguous K/V array, one block
 * being block_tokens of its tokens: an attention kernel streams a block as
 * one run of keys (gqa_tile_job: k = gqa_kv_row_ptr(...), row_stride =
 * G * row_bytes, head_stride = row_bytes, key_base = the position of the
 * block's first token), all heads of a token side by side.
 *
 * A row is head_dim elements of the cache's dtype: f32, f16 / bf16 bit
 * patterns, or for q8_0 head_dim / 32 GGML blocks of {f16 scale; int8 qs[32]}
 * (34 bytes each, value i = qs[i] * scale), packed without padding.
 *
 * Position p of a sequence lives in block table entry p / block_tokens, slot
 * p % block_tokens. A block is shared when its refcount is above 1; shared
 * blocks are never written (copy-on-write happens first).
 *
 * Thread safety: functions that change the cache must not run concurrently
 * with anything else on the same cache; readers (read_layer, attention) may
 * run concurrently with each other.
 */
#ifndef GQA_KV_INTERNAL_H
#define GQA_KV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

#define GQA_KV_MAX_HEAD_DIM     256
#define GQA_KV_MAX_BLOCK_TOKENS 65536
/* Block ids and counts are int32_t; one id is kept free as a sentinel. */
#define GQA_KV_MAX_BLOCKS ((int64_t)INT32_MAX - 1)

/* GGML Q8_0: 32 values per block, one f16 scale then 32 int8. */
#define GQA_KV_Q8_0_VALUES 32
#define GQA_KV_Q8_0_BYTES  34

/* One sequence slot. A slot whose `live` is 0 is free and its id may be
 * handed out again by gqa_kv_seq_create or gqa_kv_seq_fork. */
typedef struct gqa_kv_sequence {
    int32_t live;
    int32_t n_blocks; /* entries of `blocks` in use: ceil(len / block_tokens) */
    int32_t cap;      /* allocated entries of `blocks` */
    int64_t len;      /* tokens */
    int32_t *blocks;  /* block ids, cap entries (n_blocks valid); NULL if cap == 0 */
} gqa_kv_sequence;

struct gqa_kv_cache {
    /* shape, fixed at creation */
    int32_t n_layers;
    int32_t G; /* KV heads */
    int32_t d; /* head_dim */
    int32_t block_tokens;
    gqa_dtype dtype;
    size_t row_bytes;         /* one token's row of one head: d elements of dtype */
    size_t block_bytes;       /* block_tokens * bytes_per_token */
    uint64_t bytes_per_token; /* 2 * n_layers * G * row_bytes */
    unsigned char *arena;     /* blocks_total * block_bytes bytes, 64-byte aligned */

    /* blocks */
    int32_t blocks_total;
    int32_t *refcount;   /* blocks_total: sequences whose table holds the block */
    int32_t *free_stack; /* blocks_total entries, n_free valid: ids with refcount 0 */
    int32_t n_free;
    uint64_t bytes_used; /* kept separately so the checker can balance it */

    /* sequences */
    gqa_kv_sequence *seqs; /* seq_cap slots; ids are slot indices */
    int32_t seq_cap;
    int32_t n_live;
};

/* ---------------------------------------------------- reading helpers -- */

/* The slot of a live sequence, or NULL for an unknown or freed id (no error
 * is recorded; see gqa_kv_seq_lookup for the checked version). */
static inline const gqa_kv_sequence *gqa_kv_seq_peek(const gqa_kv_cache *c, int32_t seq)
{
    if (seq < 0 || seq >= c->seq_cap || !c->seqs[seq].live)
        return NULL;
    return &c->seqs[seq];
}

/* Checked lookup: GQA_ERR_INVALID_ARG with a message naming the id when
 * `seq` is not a live sequence of c (c must not be NULL). */
gqa_status gqa_kv_seq_lookup(const gqa_kv_cache *c, int32_t seq, const gqa_kv_sequence **out);

/* Number of blocks, the block id array and the length of a live sequence. */
static inline int32_t gqa_kv_seq_n_blocks(const gqa_kv_sequence *s)
{
    return s->n_blocks;
}
static inline const int32_t *gqa_kv_seq_blocks(const gqa_kv_sequence *s)
{
    return s->blocks;
}
static inline int64_t gqa_kv_seq_length(const gqa_kv_sequence *s)
{
    return s->len;
}

/* Tokens of block-table entry i of a sequence of length len (the last one
 * may be partial). */
static inline int32_t gqa_kv_block_fill(const gqa_kv_cache *c, int64_t len, int32_t i)
{
    const int64_t rest = len - (int64_t)i * c->block_tokens;
    return (int32_t)(rest < c->block_tokens ? rest : c->block_tokens);
}

/* Bytes from one token slot's rows to the next's (all KV heads of a token). */
static inline size_t gqa_kv_token_stride(const gqa_kv_cache *c)
{
    return (size_t)c->G * c->row_bytes;
}

/* The first row (token slot 0) of KV head `head` of `layer` in `block`;
 * kind 0 = K, 1 = V. Slot t's row is at + t * gqa_kv_token_stride(c). */
static inline const unsigned char *gqa_kv_row_ptr(const gqa_kv_cache *c, int32_t block,
                                                  int32_t layer, int kind, int32_t head)
{
    const size_t runs_before = (size_t)layer * 2 + (size_t)kind;
    return c->arena + (size_t)block * c->block_bytes +
           runs_before * (size_t)c->block_tokens * gqa_kv_token_stride(c) +
           (size_t)head * c->row_bytes;
}

/* ------------------------------------------------- row conversions -- */

/* Bytes of one row of d elements of dtype; 0 if d or dtype is invalid
 * (q8_0 needs d % 32 == 0). */
size_t gqa_kv_row_bytes(int32_t d, gqa_dtype dtype);

/* Encode d floats into one row of dtype (f32 copy, f16 / bf16 round to
 * nearest even, q8_0 as GGML's reference quantiser: scale = max|x| / 127
 * stored as f16, q = round(x / scale) with the unrounded scale; scale 0
 * gives all zeros). A q8_0 block holding a non-finite value is stored as a
 * NaN scale with zero quants, so it reads back as NaN. */
void gqa_kv_row_encode(gqa_dtype dtype, int32_t d, const float *x, unsigned char *row);
/* Decode one row back to d floats. */
void gqa_kv_row_decode(gqa_dtype dtype, int32_t d, const unsigned char *row, float *x);

/* ---------------------------------------------------------- checking -- */

/* Internal consistency check, for tests: recomputes every block's refcount
 * from the live sequences' block tables and compares it with the stored one;
 * checks that block ids are in range, that each table has exactly
 * ceil(len / block_tokens) entries, that the free stack holds exactly the
 * blocks with refcount 0 and no duplicates, that bytes_used ==
 * blocks_used * block_bytes, and the live-sequence count.
 * GQA_OK, or GQA_ERR_FORMAT with the first inconsistency in gqa_last_error();
 * GQA_ERR_NO_MEMORY for its scratch array; GQA_ERR_INVALID_ARG for NULL. */
gqa_status gqa_kv_cache_check(const gqa_kv_cache *c);

#endif
