/* cache.c - the paged KV cache: blocks from one budget, sequences as block
 * tables, fork with copy-on-write, all-or-nothing growth.
 *
 * Every call that changes the cache first works out everything it needs -
 * free blocks (new ones and copies of shared ones it will write), table
 * memory - and fails before touching any state; only then does it commit.
 * That is what lets GQA_ERR_CAPACITY and GQA_ERR_NO_MEMORY promise "nothing
 * changed". */
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"

/* ------------------------------------------------------------ config -- */

/* 2 * n_layers * G * row_bytes, or 0 (with the error set) for bad input. */
static gqa_status bytes_per_token(int32_t n_layers, int32_t G, int32_t d, gqa_dtype dtype,
                                  uint64_t *out)
{
    *out = 0;
    if (n_layers < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_layers %d must be >= 1", (int)n_layers);
    if (G < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "n_kv_heads %d must be >= 1", (int)G);
    if (d < 1 || d > GQA_KV_MAX_HEAD_DIM)
        return gqa_fail(GQA_ERR_INVALID_ARG, "head_dim %d outside 1..%d", (int)d,
                        GQA_KV_MAX_HEAD_DIM);
    if (dtype != GQA_F32 && dtype != GQA_F16 && dtype != GQA_BF16 && dtype != GQA_Q8_0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "unknown KV dtype %d", (int)dtype);
    if (dtype == GQA_Q8_0 && d % GQA_KV_Q8_0_VALUES != 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "q8_0 storage needs head_dim %% 32 == 0, head_dim is %d", (int)d);
    const uint64_t row = gqa_kv_row_bytes(d, dtype);
    uint64_t b;
    if (__builtin_mul_overflow((uint64_t)2 * (uint64_t)n_layers, (uint64_t)G, &b) ||
        __builtin_mul_overflow(b, row, &b))
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "bytes per token overflow 64 bits (n_layers %d, n_kv_heads %d)",
                        (int)n_layers, (int)G);
    *out = b;
    return GQA_OK;
}

uint64_t gqa_kv_bytes_per_token(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim,
                                gqa_dtype dtype)
{
    uint64_t b;
    return bytes_per_token(n_layers, n_kv_heads, head_dim, dtype, &b) == GQA_OK ? b : 0;
}

/* Validate cfg and derive the sizes; the message names the bad value. */
static gqa_status check_config(const gqa_kv_config *cfg, uint64_t *bpt, uint64_t *block_bytes,
                               int64_t *n_blocks)
{
    if (cfg->block_tokens < 1 || cfg->block_tokens > GQA_KV_MAX_BLOCK_TOKENS)
        return gqa_fail(GQA_ERR_INVALID_ARG, "block_tokens %d outside 1..%d",
                        (int)cfg->block_tokens, GQA_KV_MAX_BLOCK_TOKENS);
    gqa_status st = bytes_per_token(cfg->n_layers, cfg->n_kv_heads, cfg->head_dim, cfg->dtype, bpt);
    if (st != GQA_OK)
        return st;
    if (__builtin_mul_overflow(*bpt, (uint64_t)cfg->block_tokens, block_bytes) ||
        *block_bytes > cfg->budget_bytes)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "budget_bytes %llu is below one block (%d tokens x %llu bytes per token)",
                        (unsigned long long)cfg->budget_bytes, (int)cfg->block_tokens,
                        (unsigned long long)*bpt);
    const uint64_t nb = cfg->budget_bytes / *block_bytes;
    if (nb > (uint64_t)GQA_KV_MAX_BLOCKS)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "budget_bytes %llu makes %llu blocks of %llu bytes; at most %lld blocks "
                        "are supported (use more block_tokens)",
                        (unsigned long long)cfg->budget_bytes, (unsigned long long)nb,
                        (unsigned long long)*block_bytes, (long long)GQA_KV_MAX_BLOCKS);
    *n_blocks = (int64_t)nb;
    return GQA_OK;
}

/* ------------------------------------------------------ create / free -- */

gqa_status gqa_kv_cache_create(const gqa_kv_config *cfg, gqa_kv_cache **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_kv_cache_create: out is NULL");
    *out = NULL;
    if (!cfg)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_kv_cache_create: cfg is NULL");
    uint64_t bpt = 0, block_bytes = 0;
    int64_t n_blocks = 0;
    gqa_status st = check_config(cfg, &bpt, &block_bytes, &n_blocks);
    if (st != GQA_OK)
        return st;
    /* n_blocks * block_bytes <= budget_bytes, so the product cannot wrap. */
    const uint64_t arena_bytes = (uint64_t)n_blocks * block_bytes;
    if (arena_bytes > (uint64_t)PTRDIFF_MAX || arena_bytes > (uint64_t)SIZE_MAX)
        return gqa_fail(GQA_ERR_NO_MEMORY, "cannot allocate a KV arena of %llu bytes",
                        (unsigned long long)arena_bytes);

    gqa_kv_cache *c = calloc(1, sizeof *c);
    if (!c)
        return gqa_fail(GQA_ERR_NO_MEMORY, "cannot allocate the KV cache");
    c->n_layers = cfg->n_layers;
    c->G = cfg->n_kv_heads;
    c->d = cfg->head_dim;
    c->block_tokens = cfg->block_tokens;
    c->dtype = cfg->dtype;
    c->row_bytes = gqa_kv_row_bytes(cfg->head_dim, cfg->dtype);
    c->bytes_per_token = bpt;
    c->block_bytes = (size_t)block_bytes;
    c->blocks_total = (int32_t)n_blocks;
    /* The arena is not touched here: blocks are zeroed slot by slot when a
     * sequence reserves them, so the pages of an unused budget stay unmapped. */
    c->arena = gqa_large_alloc((size_t)arena_bytes);
    c->refcount = calloc((size_t)n_blocks, sizeof *c->refcount);
    c->free_stack = malloc((size_t)n_blocks * sizeof *c->free_stack);
    if (!c->arena || !c->refcount || !c->free_stack) {
        gqa_kv_cache_free(c);
        return gqa_fail(GQA_ERR_NO_MEMORY, "cannot allocate a KV cache of %lld blocks (%llu bytes)",
                        (long long)n_blocks, (unsigned long long)arena_bytes);
    }
    /* Top of the stack is block 0: a fresh cache hands out blocks in order. */
    for (int32_t i = 0; i < c->blocks_total; i++)
        c->free_stack[i] = c->blocks_total - 1 - i;
    c->n_free = c->blocks_total;
    *out = c;
    return GQA_OK;
}

void gqa_kv_cache_free(gqa_kv_cache *cache)
{
    if (!cache)
        return;
    for (int32_t i = 0; i < cache->seq_cap; i++)
        free(cache->seqs[i].blocks);
    free(cache->seqs);
    free(cache->free_stack);
    free(cache->refcount);
    gqa_aligned_free(cache->arena);
    free(cache);
}

gqa_status gqa_kv_cache_stats(const gqa_kv_cache *cache, gqa_kv_stats *stats)
{
    if (!cache || !stats)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_kv_cache_stats: %s is NULL",
                        !cache ? "cache" : "stats");
    stats->blocks_total = cache->blocks_total;
    stats->blocks_used = cache->blocks_total - cache->n_free;
    stats->blocks_free = cache->n_free;
    stats->block_bytes = cache->block_bytes;
    stats->bytes_per_token = cache->bytes_per_token;
    stats->bytes_used = cache->bytes_used;
    stats->token_capacity = (int64_t)cache->blocks_total * cache->block_tokens;
    stats->n_sequences = cache->n_live;
    return GQA_OK;
}

/* ------------------------------------------------------------ blocks -- */

static int32_t take_block(gqa_kv_cache *c)
{
    const int32_t b = c->free_stack[--c->n_free];
    c->refcount[b] = 1;
    c->bytes_used += c->block_bytes;
    return b;
}

static void release_block(gqa_kv_cache *c, int32_t b)
{
    if (--c->refcount[b] == 0) {
        c->free_stack[c->n_free++] = b;
        c->bytes_used -= c->block_bytes;
    }
}

static unsigned char *block_ptr(gqa_kv_cache *c, int32_t b)
{
    return c->arena + (size_t)b * c->block_bytes;
}

/* gqa_kv_row_ptr for writing. */
static unsigned char *row_mut(gqa_kv_cache *c, int32_t b, int32_t layer, int kind, int32_t head)
{
    return c->arena + (gqa_kv_row_ptr(c, b, layer, kind, head) - c->arena);
}

/* Zero token slots t0..t1-1 of every (layer, kind) run of block b. */
static void zero_slots(gqa_kv_cache *c, int32_t b, int32_t t0, int32_t t1)
{
    if (t1 <= t0)
        return;
    const size_t ts = gqa_kv_token_stride(c);
    const size_t run = (size_t)c->block_tokens * ts;
    const size_t runs = (size_t)2 * (size_t)c->n_layers;
    unsigned char *p = block_ptr(c, b) + (size_t)t0 * ts;
    for (size_t r = 0; r < runs; r++)
        memset(p + r * run, 0, (size_t)(t1 - t0) * ts);
}

/* Give sequence s its own copy of table entry i if that block is shared.
 * The caller has checked that a block is free. */
static void unshare(gqa_kv_cache *c, gqa_kv_sequence *s, int32_t i)
{
    const int32_t old = s->blocks[i];
    if (c->refcount[old] <= 1)
        return;
    const int32_t fresh = take_block(c);
    memcpy(block_ptr(c, fresh), block_ptr(c, old), c->block_bytes);
    release_block(c, old);
    s->blocks[i] = fresh;
}

/* Shared blocks among table entries first..last of s. */
static int64_t count_shared(const gqa_kv_cache *c, const gqa_kv_sequence *s, int64_t first,
                            int64_t last)
{
    int64_t n = 0;
    for (int64_t i = first; i <= last; i++)
        n += c->refcount[s->blocks[i]] > 1;
    return n;
}

/* --------------------------------------------------------- sequences -- */

gqa_status gqa_kv_seq_lookup(const gqa_kv_cache *c, int32_t seq, const gqa_kv_sequence **out)
{
    const gqa_kv_sequence *s = gqa_kv_seq_peek(c, seq);
    if (!s)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "unknown sequence id %d (never created or already freed)", (int)seq);
    *out = s;
    return GQA_OK;
}

/* The mutable slot of a live sequence; NULL with the error set otherwise. */
static gqa_kv_sequence *seq_mut(gqa_kv_cache *c, const char *fn, int32_t seq)
{
    if (!c) {
        gqa_fail(GQA_ERR_INVALID_ARG, "%s: cache is NULL", fn);
        return NULL;
    }
    const gqa_kv_sequence *s;
    if (gqa_kv_seq_lookup(c, seq, &s) != GQA_OK)
        return NULL;
    return &c->seqs[seq];
}

/* A free slot id, growing the slot table if every slot is live. */
static gqa_status free_slot(gqa_kv_cache *c, int32_t *id)
{
    for (int32_t i = 0; i < c->seq_cap; i++)
        if (!c->seqs[i].live) {
            *id = i;
            return GQA_OK;
        }
    if (c->seq_cap >= INT32_MAX / 2)
        return gqa_fail(GQA_ERR_CAPACITY, "too many sequences (%d live)", (int)c->n_live);
    const int32_t cap = c->seq_cap ? c->seq_cap * 2 : 8;
    gqa_kv_sequence *p = realloc(c->seqs, (size_t)cap * sizeof *p);
    if (!p)
        return gqa_fail(GQA_ERR_NO_MEMORY, "cannot grow the sequence table to %d slots", (int)cap);
    memset(p + c->seq_cap, 0, (size_t)(cap - c->seq_cap) * sizeof *p);
    c->seqs = p;
    *id = c->seq_cap;
    c->seq_cap = cap;
    return GQA_OK;
}

/* Make room for n entries in s's block table (capacity doubling). Changes
 * only the capacity, so a later failure leaves nothing visible changed. */
static gqa_status reserve_table(gqa_kv_sequence *s, int64_t n)
{
    if (n <= s->cap)
        return GQA_OK;
    int64_t cap = s->cap ? (int64_t)s->cap * 2 : 4;
    if (cap < n)
        cap = n;
    if (cap > GQA_KV_MAX_BLOCKS)
        cap = GQA_KV_MAX_BLOCKS;
    int32_t *p = realloc(s->blocks, (size_t)cap * sizeof *p);
    if (!p)
        return gqa_fail(GQA_ERR_NO_MEMORY, "cannot grow a block table to %lld entries",
                        (long long)cap);
    s->blocks = p;
    s->cap = (int32_t)cap;
    return GQA_OK;
}

gqa_status gqa_kv_seq_create(gqa_kv_cache *cache, int32_t *seq)
{
    if (!cache || !seq)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_kv_seq_create: %s is NULL",
                        !cache ? "cache" : "seq");
    int32_t id = -1;
    gqa_status st = free_slot(cache, &id);
    if (st != GQA_OK)
        return st;
    gqa_kv_sequence *s = &cache->seqs[id];
    s->live = 1;
    s->len = 0;
    s->n_blocks = 0;
    cache->n_live++;
    *seq = id;
    return GQA_OK;
}

gqa_status gqa_kv_seq_free(gqa_kv_cache *cache, int32_t seq)
{
    gqa_kv_sequence *s = seq_mut(cache, "gqa_kv_seq_free", seq);
    if (!s)
        return GQA_ERR_INVALID_ARG;
    for (int32_t i = 0; i < s->n_blocks; i++)
        release_block(cache, s->blocks[i]);
    free(s->blocks);
    memset(s, 0, sizeof *s);
    cache->n_live--;
    return GQA_OK;
}

gqa_status gqa_kv_seq_fork(gqa_kv_cache *cache, int32_t parent, int32_t *child)
{
    if (!seq_mut(cache, "gqa_kv_seq_fork", parent))
        return GQA_ERR_INVALID_ARG;
    if (!child)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_kv_seq_fork: child is NULL");
    int32_t id = -1;
    gqa_status st = free_slot(cache, &id); /* may move cache->seqs */
    if (st != GQA_OK)
        return st;
    const gqa_kv_sequence *p = &cache->seqs[parent];
    gqa_kv_sequence *s = &cache->seqs[id];
    if ((st = reserve_table(s, p->n_blocks)) != GQA_OK)
        return st;
    for (int32_t i = 0; i < p->n_blocks; i++) {
        s->blocks[i] = p->blocks[i];
        cache->refcount[p->blocks[i]]++;
    }
    s->n_blocks = p->n_blocks;
    s->len = p->len;
    s->live = 1;
    cache->n_live++;
    *child = id;
    return GQA_OK;
}

int64_t gqa_kv_seq_len(const gqa_kv_cache *cache, int32_t seq)
{
    if (!cache) {
        gqa_fail(GQA_ERR_INVALID_ARG, "gqa_kv_seq_len: cache is NULL");
        return -1;
    }
    const gqa_kv_sequence *s;
    if (gqa_kv_seq_lookup(cache, seq, &s) != GQA_OK)
        return -1;
    return s->len;
}

gqa_status gqa_kv_seq_truncate(gqa_kv_cache *cache, int32_t seq, int64_t new_len)
{
    gqa_kv_sequence *s = seq_mut(cache, "gqa_kv_seq_truncate", seq);
    if (!s)
        return GQA_ERR_INVALID_ARG;
    if (new_len < 0 || new_len > s->len)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "truncate of sequence %d to %lld tokens: outside 0..%lld", (int)seq,
                        (long long)new_len, (long long)s->len);
    const int32_t keep = (int32_t)((new_len + cache->block_tokens - 1) / cache->block_tokens);
    for (int32_t i = keep; i < s->n_blocks; i++)
        release_block(cache, s->blocks[i]);
    s->n_blocks = keep;
    s->len = new_len;
    return GQA_OK;
}

/* ---------------------------------------------------- growth, writes -- */

/* Grow s by n >= 1 token slots, all or nothing. It needs the blocks past the
 * current last one plus, when the new slots start inside a partial last block
 * that is shared, a private copy of it. zero: clear the new slots (reserve);
 * append skips that because it writes them at once. */
static gqa_status grow(gqa_kv_cache *c, int32_t seq, gqa_kv_sequence *s, int64_t n, int zero)
{
    const int32_t bt = c->block_tokens;
    const int64_t capacity = (int64_t)c->blocks_total * bt;
    if (n > capacity - s->len)
        return gqa_fail(GQA_ERR_CAPACITY,
                        "sequence %d cannot grow by %lld tokens from %lld: the cache holds %lld",
                        (int)seq, (long long)n, (long long)s->len, (long long)capacity);
    const int64_t new_len = s->len + n;
    const int64_t new_blocks = (new_len + bt - 1) / bt;
    const int32_t fill = (int32_t)(s->len % bt); /* used slots of a partial last block */
    const int64_t copies = fill ? count_shared(c, s, s->n_blocks - 1, s->n_blocks - 1) : 0;
    const int64_t need = new_blocks - s->n_blocks + copies;
    if (need > c->n_free)
        return gqa_fail(GQA_ERR_CAPACITY,
                        "sequence %d: growing by %lld tokens needs %lld free blocks (%lld new + "
                        "%lld copies of shared blocks), %d are free",
                        (int)seq, (long long)n, (long long)need,
                        (long long)(new_blocks - s->n_blocks), (long long)copies, (int)c->n_free);
    gqa_status st = reserve_table(s, new_blocks);
    if (st != GQA_OK)
        return st;

    if (fill) {
        unshare(c, s, s->n_blocks - 1);
        if (zero)
            zero_slots(c, s->blocks[s->n_blocks - 1], fill,
                       gqa_kv_block_fill(c, new_len, s->n_blocks - 1));
    }
    for (int32_t i = s->n_blocks; i < new_blocks; i++) {
        s->blocks[i] = take_block(c);
        if (zero)
            zero_slots(c, s->blocks[i], 0, gqa_kv_block_fill(c, new_len, i));
    }
    s->n_blocks = (int32_t)new_blocks;
    s->len = new_len;
    return GQA_OK;
}

/* Encode positions pos..pos+n-1 of one layer (k, v: n x G x d floats). The
 * blocks written must not be shared. */
static void write_rows(gqa_kv_cache *c, const gqa_kv_sequence *s, int32_t layer, int64_t pos,
                       int64_t n, const float *k, const float *v)
{
    const int32_t bt = c->block_tokens, G = c->G, d = c->d;
    for (int64_t t = 0; t < n; t++) {
        const int64_t p = pos + t;
        const int32_t b = s->blocks[p / bt];
        const size_t slot = (size_t)(p % bt) * gqa_kv_token_stride(c);
        const size_t src = (size_t)t * (size_t)G * (size_t)d;
        for (int32_t h = 0; h < G; h++) {
            unsigned char *kr = row_mut(c, b, layer, 0, h) + slot;
            unsigned char *vr = row_mut(c, b, layer, 1, h) + slot;
            gqa_kv_row_encode(c->dtype, d, k + src + (size_t)h * d, kr);
            gqa_kv_row_encode(c->dtype, d, v + src + (size_t)h * d, vr);
        }
    }
}

static gqa_status check_grow_args(const char *fn, gqa_kv_cache *cache, int32_t seq, int64_t n,
                                  gqa_kv_sequence **s)
{
    if (!(*s = seq_mut(cache, fn, seq)))
        return GQA_ERR_INVALID_ARG;
    if (n < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: n = %lld tokens, must be >= 1", fn, (long long)n);
    return GQA_OK;
}

gqa_status gqa_kv_seq_reserve(gqa_kv_cache *cache, int32_t seq, int64_t n)
{
    gqa_kv_sequence *s;
    gqa_status st = check_grow_args("gqa_kv_seq_reserve", cache, seq, n, &s);
    return st != GQA_OK ? st : grow(cache, seq, s, n, 1);
}

gqa_status gqa_kv_seq_append(gqa_kv_cache *cache, int32_t seq, int64_t n, const float *k,
                             const float *v)
{
    gqa_kv_sequence *s;
    gqa_status st = check_grow_args("gqa_kv_seq_append", cache, seq, n, &s);
    if (st != GQA_OK)
        return st;
    if (!k || !v)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_kv_seq_append: %s is NULL", !k ? "k" : "v");
    const int64_t pos = s->len;
    if ((st = grow(cache, seq, s, n, 0)) != GQA_OK)
        return st;
    /* grow left every block from pos on private to s. */
    const size_t layer_floats = (size_t)n * (size_t)cache->G * (size_t)cache->d;
    for (int32_t l = 0; l < cache->n_layers; l++)
        write_rows(cache, s, l, pos, n, k + l * layer_floats, v + l * layer_floats);
    return GQA_OK;
}

/* Shared checks of write_layer and read_layer. */
static gqa_status check_range(const char *fn, const gqa_kv_cache *cache, int32_t seq, int32_t layer,
                              int64_t pos, int64_t n, const float *k, const float *v,
                              const gqa_kv_sequence **s)
{
    if (!cache)
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: cache is NULL", fn);
    gqa_status st = gqa_kv_seq_lookup(cache, seq, s);
    if (st != GQA_OK)
        return st;
    if (layer < 0 || layer >= cache->n_layers)
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: layer %d outside 0..%d", fn, (int)layer,
                        (int)cache->n_layers - 1);
    if (n < 0 || pos < 0 || pos > (*s)->len || n > (*s)->len - pos)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "%s: pos %lld, n %lld: not a range inside sequence %d of length %lld", fn,
                        (long long)pos, (long long)n, (int)seq, (long long)(*s)->len);
    if (n > 0 && (!k || !v))
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: %s is NULL", fn, !k ? "k" : "v");
    return GQA_OK;
}

gqa_status gqa_kv_write_layer(gqa_kv_cache *cache, int32_t seq, int32_t layer, int64_t pos,
                              int64_t n, const float *k, const float *v)
{
    const gqa_kv_sequence *cs;
    gqa_status st = check_range("gqa_kv_write_layer", cache, seq, layer, pos, n, k, v, &cs);
    if (st != GQA_OK || n == 0)
        return st;
    gqa_kv_sequence *s = &cache->seqs[seq];
    const int64_t first = pos / cache->block_tokens, last = (pos + n - 1) / cache->block_tokens;
    const int64_t copies = count_shared(cache, s, first, last);
    if (copies > cache->n_free)
        return gqa_fail(GQA_ERR_CAPACITY,
                        "gqa_kv_write_layer: sequence %d positions %lld..%lld are in %lld shared "
                        "blocks to copy, but %d blocks are free",
                        (int)seq, (long long)pos, (long long)(pos + n - 1), (long long)copies,
                        (int)cache->n_free);
    for (int64_t i = first; i <= last; i++)
        unshare(cache, s, (int32_t)i);
    write_rows(cache, s, layer, pos, n, k, v);
    return GQA_OK;
}

gqa_status gqa_kv_read_layer(const gqa_kv_cache *cache, int32_t seq, int32_t layer, int64_t pos,
                             int64_t n, float *k, float *v)
{
    const gqa_kv_sequence *s;
    gqa_status st = check_range("gqa_kv_read_layer", cache, seq, layer, pos, n, k, v, &s);
    if (st != GQA_OK)
        return st;
    const int32_t bt = cache->block_tokens, G = cache->G, d = cache->d;
    for (int64_t t = 0; t < n; t++) {
        const int64_t p = pos + t;
        const int32_t b = s->blocks[p / bt];
        const size_t slot = (size_t)(p % bt) * gqa_kv_token_stride(cache);
        const size_t dst = (size_t)t * (size_t)G * (size_t)d;
        for (int32_t h = 0; h < G; h++) {
            gqa_kv_row_decode(cache->dtype, d, gqa_kv_row_ptr(cache, b, layer, 0, h) + slot,
                              k + dst + (size_t)h * d);
            gqa_kv_row_decode(cache->dtype, d, gqa_kv_row_ptr(cache, b, layer, 1, h) + slot,
                              v + dst + (size_t)h * d);
        }
    }
    return GQA_OK;
}

/* ---------------------------------------------------------- checking -- */

gqa_status gqa_kv_cache_check(const gqa_kv_cache *c)
{
    if (!c)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_kv_cache_check: cache is NULL");
    const int32_t nb = c->blocks_total;
    int32_t *count = calloc((size_t)nb, sizeof *count);
    unsigned char *on_free = calloc((size_t)nb, 1);
    gqa_status st = GQA_OK;
    if (!count || !on_free) {
        st = gqa_fail(GQA_ERR_NO_MEMORY, "gqa_kv_cache_check: no memory for %d blocks", (int)nb);
        goto done;
    }
    int32_t live = 0;
    for (int32_t i = 0; i < c->seq_cap && st == GQA_OK; i++) {
        const gqa_kv_sequence *s = &c->seqs[i];
        if (!s->live) {
            if (s->n_blocks || s->len || s->blocks)
                st = gqa_fail(GQA_ERR_FORMAT, "freed slot %d still holds blocks or length", (int)i);
            continue;
        }
        live++;
        const int64_t want = (s->len + c->block_tokens - 1) / c->block_tokens;
        if (s->len < 0 || s->n_blocks != want || s->n_blocks > s->cap) {
            st =
                gqa_fail(GQA_ERR_FORMAT,
                         "sequence %d: length %lld wants %lld blocks, table has %d (capacity %d)",
                         (int)i, (long long)s->len, (long long)want, (int)s->n_blocks, (int)s->cap);
            break;
        }
        for (int32_t j = 0; j < s->n_blocks; j++) {
            const int32_t b = s->blocks[j];
            if (b < 0 || b >= nb) {
                st = gqa_fail(GQA_ERR_FORMAT, "sequence %d entry %d: block id %d outside 0..%d",
                              (int)i, (int)j, (int)b, (int)nb - 1);
                break;
            }
            count[b]++;
        }
    }
    if (st == GQA_OK && live != c->n_live)
        st = gqa_fail(GQA_ERR_FORMAT, "%d live sequences, counter says %d", (int)live,
                      (int)c->n_live);
    for (int32_t b = 0; b < nb && st == GQA_OK; b++)
        if (count[b] != c->refcount[b])
            st = gqa_fail(GQA_ERR_FORMAT, "block %d: %d tables hold it, refcount is %d", (int)b,
                          (int)count[b], (int)c->refcount[b]);
    if (st == GQA_OK && (c->n_free < 0 || c->n_free > nb))
        st = gqa_fail(GQA_ERR_FORMAT, "free list length %d outside 0..%d", (int)c->n_free, (int)nb);
    for (int32_t i = 0; i < c->n_free && st == GQA_OK; i++) {
        const int32_t b = c->free_stack[i];
        if (b < 0 || b >= nb)
            st = gqa_fail(GQA_ERR_FORMAT, "free list entry %d: block id %d outside 0..%d", (int)i,
                          (int)b, (int)nb - 1);
        else if (on_free[b]++)
            st = gqa_fail(GQA_ERR_FORMAT, "block %d is on the free list twice", (int)b);
        else if (c->refcount[b] != 0)
            st = gqa_fail(GQA_ERR_FORMAT, "block %d is on the free list with refcount %d", (int)b,
                          (int)c->refcount[b]);
    }
    for (int32_t b = 0; b < nb && st == GQA_OK; b++)
        if (c->refcount[b] == 0 && !on_free[b])
            st = gqa_fail(GQA_ERR_FORMAT, "block %d has refcount 0 but is not on the free list",
                          (int)b);
    if (st == GQA_OK && c->bytes_used != (uint64_t)(nb - c->n_free) * (uint64_t)c->block_bytes)
        st = gqa_fail(GQA_ERR_FORMAT, "bytes used %llu != %d blocks in use x %llu bytes",
                      (unsigned long long)c->bytes_used, (int)(nb - c->n_free),
                      (unsigned long long)c->block_bytes);
done:
    free(count);
    free(on_free);
    return st;
}
