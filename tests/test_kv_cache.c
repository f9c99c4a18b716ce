/* test_kv_cache.c - the paged KV cache against a plain contiguous model.
 *
 *  - model-based: thousands of random operations (create, append, reserve +
 *    write_layer, write into old positions, fork, truncate, free, bad calls)
 *    go both to the cache and to a model that keeps every sequence as plain
 *    per-layer float arrays of the values the storage type should give back,
 *    plus an abstract block table. After every step read_layer must equal the
 *    model exactly, the status must be the one the model predicts (including
 *    GQA_ERR_CAPACITY), the cache's block tables must map one-to-one onto the
 *    model's (same sharing), and gqa_kv_cache_check() must pass. Every dtype,
 *    block sizes 1, 16 and 17;
 *  - capacity: GQA_ERR_CAPACITY at exactly budget / block_bytes * block_tokens
 *    tokens, nothing changed, room again after a free; copies of shared blocks
 *    count against the budget;
 *  - accounting: bytes per token against the formula, stats against the config;
 *  - q8_0: the stored bytes are GGML's Q8_0, and the round-trip error bound;
 *  - bad input: a status, a message naming the value, nothing changed.
 *
 * Uses src/kv/kv_internal.h for the consistency checker and the block tables.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "kv/kv_internal.h"
#include "test_util.h"


static const gqa_dtype all_dtypes[] = {GQA_F32, GQA_F16, GQA_BF16, GQA_Q8_0};
#define N_DTYPES 4

/* ------------------------------------------- expected storage values -- */
/* What each storage type should give back, written here independently of
 * src/kv (f16/bf16 use the library's scalar conversions, which
 * test_errors checks exhaustively). */

/* GGML's quantize_row_q8_0_ref for one block of 32. */
static void q8_block_ref(const float *x, uint16_t *scale_bits, int8_t *q)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    const float s = amax / 127.0f;
    const float inv = s == 0.0f ? 0.0f : 1.0f / s;
    *scale_bits = gqa_f32_to_f16(s);
    for (int j = 0; j < 32; j++)
        q[j] = (int8_t)roundf(x[j] * inv);
}

static void expect_row(gqa_dtype t, int d, const float *x, float *out)
{
    for (int i = 0; i < d; i++) {
        switch (t) {
        case GQA_F32: out[i] = x[i]; break;
        case GQA_F16: out[i] = gqa_f16_to_f32(gqa_f32_to_f16(x[i])); break;
        case GQA_BF16: out[i] = gqa_bf16_to_f32(gqa_f32_to_bf16(x[i])); break;
        case GQA_Q8_0: break;
        }
    }
    if (t == GQA_Q8_0)
        for (int b = 0; b < d / 32; b++) {
            uint16_t sb;
            int8_t q[32];
            q8_block_ref(x + 32 * b, &sb, q);
            const float s = gqa_f16_to_f32(sb);
            for (int j = 0; j < 32; j++)
                out[32 * b + j] = (float)q[j] * s;
        }
}

static uint64_t row_bytes_formula(int d, gqa_dtype t)
{
    switch (t) {
    case GQA_F32: return (uint64_t)d * 4;
    case GQA_F16:
    case GQA_BF16: return (uint64_t)d * 2;
    case GQA_Q8_0: return (uint64_t)d / 32 * 34;
    }
    return 0;
}

static uint64_t bpt_formula(int L, int G, int d, gqa_dtype t)
{
    return 2 * (uint64_t)L * (uint64_t)G * row_bytes_formula(d, t);
}

/* Random K/V values; for q8_0 each run of 32 gets its own magnitude so that
 * scales from tiny to large are exercised. */
static void random_values(tu_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 32) {
        const float mag = powf(10.0f, tu_rng_uniform(r, -3.0f, 3.0f));
        const size_t end = i + 32 < n ? i + 32 : n;
        for (size_t j = i; j < end; j++)
            x[j] = mag * tu_rng_uniform(r, -1.0f, 1.0f);
    }
}

/* --------------------------------------------------------------- model -- */

#define MAX_LAYERS 3
#define MAX_SEQS   64
#define MAX_LIVE   8

typedef struct model_seq {
    int live;
    int64_t len, cap;
    float *k[MAX_LAYERS], *v[MAX_LAYERS]; /* cap x G x d expected values per layer */
    int64_t *blk;                         /* abstract block ids */
    int64_t nblk, blk_cap;
} model_seq;

typedef struct model {
    int L, G, d, bt;
    gqa_dtype dtype;
    int64_t blocks_total, used;
    int32_t *rc;    /* refcount by abstract id */
    int64_t *stamp; /* per abstract id, for the one-to-one check */
    int64_t n_ids, id_cap;
    model_seq seq[MAX_SEQS]; /* indexed by the cache's sequence id */
    int n_live;
} model;

static size_t row_floats(const model *m)
{
    return (size_t)m->G * (size_t)m->d;
}

static int64_t model_new_block(model *m)
{
    if (m->n_ids == m->id_cap) {
        m->id_cap = m->id_cap ? 2 * m->id_cap : 1024;
        m->rc = realloc(m->rc, (size_t)m->id_cap * sizeof *m->rc);
        m->stamp = realloc(m->stamp, (size_t)m->id_cap * sizeof *m->stamp);
        if (!m->rc || !m->stamp) {
            printf("out of memory in the model\n");
            exit(2);
        }
    }
    m->rc[m->n_ids] = 1;
    m->stamp[m->n_ids] = -1;
    m->used++;
    return m->n_ids++;
}

static void model_release(model *m, int64_t id)
{
    if (--m->rc[id] == 0)
        m->used--;
}

static void model_seq_reserve(model *m, model_seq *s, int64_t tokens)
{
    if (tokens > s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        while (cap < tokens)
            cap *= 2;
        for (int l = 0; l < m->L; l++) {
            s->k[l] = realloc(s->k[l], (size_t)cap * row_floats(m) * sizeof(float));
            s->v[l] = realloc(s->v[l], (size_t)cap * row_floats(m) * sizeof(float));
            if (!s->k[l] || !s->v[l]) {
                printf("out of memory in the model\n");
                exit(2);
            }
        }
        s->cap = cap;
    }
    const int64_t blocks = (tokens + m->bt - 1) / m->bt;
    if (blocks > s->blk_cap) {
        s->blk_cap = blocks * 2;
        s->blk = realloc(s->blk, (size_t)s->blk_cap * sizeof *s->blk);
        if (!s->blk) {
            printf("out of memory in the model\n");
            exit(2);
        }
    }
}

static void model_seq_clear(model *m, model_seq *s)
{
    for (int64_t i = 0; i < s->nblk; i++)
        model_release(m, s->blk[i]);
    for (int l = 0; l < MAX_LAYERS; l++) {
        free(s->k[l]);
        free(s->v[l]);
    }
    free(s->blk);
    memset(s, 0, sizeof *s);
}

/* Blocks growing s by n tokens takes: new ones, plus a copy of a shared
 * partial last block that the new tokens land in. */
static int64_t model_grow_need(const model *m, const model_seq *s, int64_t n)
{
    const int64_t nb = (s->len + n + m->bt - 1) / m->bt;
    int64_t need = nb - s->nblk;
    if (s->len % m->bt && m->rc[s->blk[s->nblk - 1]] > 1)
        need++;
    return need;
}

static void model_unshare(model *m, model_seq *s, int64_t i)
{
    if (m->rc[s->blk[i]] > 1) {
        model_release(m, s->blk[i]);
        s->blk[i] = model_new_block(m);
    }
}

/* Grow by n zero tokens (the caller checked the need). */
static void model_grow(model *m, model_seq *s, int64_t n)
{
    model_seq_reserve(m, s, s->len + n);
    if (s->len % m->bt)
        model_unshare(m, s, s->nblk - 1);
    const int64_t nb = (s->len + n + m->bt - 1) / m->bt;
    while (s->nblk < nb)
        s->blk[s->nblk++] = model_new_block(m);
    for (int l = 0; l < m->L; l++) {
        memset(s->k[l] + (size_t)s->len * row_floats(m), 0, (size_t)n * row_floats(m) * 4);
        memset(s->v[l] + (size_t)s->len * row_floats(m), 0, (size_t)n * row_floats(m) * 4);
    }
    s->len += n;
}

static int64_t model_shared_in(const model *m, const model_seq *s, int64_t pos, int64_t n)
{
    int64_t c = 0;
    for (int64_t i = pos / m->bt; i <= (pos + n - 1) / m->bt; i++)
        c += m->rc[s->blk[i]] > 1;
    return c;
}

/* Store the expected values of layer l, positions pos..pos+n-1. */
static void model_write(model *m, model_seq *s, int l, int64_t pos, int64_t n, const float *k,
                        const float *v)
{
    for (int64_t t = 0; t < n; t++)
        for (int h = 0; h < m->G; h++) {
            const size_t src = ((size_t)t * m->G + h) * m->d;
            const size_t dst = ((size_t)(pos + t) * m->G + h) * m->d;
            expect_row(m->dtype, m->d, k + src, s->k[l] + dst);
            expect_row(m->dtype, m->d, v + src, s->v[l] + dst);
        }
}

/* ------------------------------------------------------------- harness -- */

typedef struct harness {
    model m;
    gqa_kv_cache *c;
    tu_rng rng;
    float *a, *b;   /* input K, V: up to MAX_LAYERS x 64 tokens x G x d */
    float *ra, *rb; /* read-back: capacity x G x d */
    int64_t step;
    int capacity_hits;
    const char *name;
} harness;

/* Everything that must hold after every step. Returns 1 if it does. */
static int verify(harness *h, const char *op)
{
    model *m = &h->m;
    char why[256] = "";
    gqa_kv_stats st;
    if (gqa_kv_cache_check(h->c) != GQA_OK) {
        snprintf(why, sizeof why, "checker: %s", gqa_last_error());
    } else if (gqa_kv_cache_stats(h->c, &st) != GQA_OK || st.blocks_used != m->used ||
               st.n_sequences != m->n_live || st.bytes_used != (uint64_t)m->used * st.block_bytes ||
               st.blocks_free != m->blocks_total - m->used) {
        snprintf(why, sizeof why, "stats: %lld blocks used (model %lld), %d sequences (model %d)",
                 (long long)st.blocks_used, (long long)m->used, (int)st.n_sequences, m->n_live);
    }
    /* Same sharing: cache block id <-> model block id must be one-to-one. */
    int32_t *c2m_set = calloc((size_t)m->blocks_total, sizeof *c2m_set);
    int64_t *c2m = calloc((size_t)m->blocks_total, sizeof *c2m);
    int64_t distinct_c = 0, distinct_m = 0;
    for (int id = 0; id < MAX_SEQS && !why[0]; id++) {
        const model_seq *s = &m->seq[id];
        const gqa_kv_sequence *cs = gqa_kv_seq_peek(h->c, id);
        if (!s->live) {
            if (cs)
                snprintf(why, sizeof why, "sequence %d is live in the cache only", id);
            continue;
        }
        if (!cs || gqa_kv_seq_length(cs) != s->len || gqa_kv_seq_len(h->c, id) != s->len ||
            gqa_kv_seq_n_blocks(cs) != s->nblk) {
            snprintf(why, sizeof why, "sequence %d: length or table size differs", id);
            break;
        }
        const int32_t *cb = gqa_kv_seq_blocks(cs);
        for (int64_t i = 0; i < s->nblk; i++) {
            const int32_t b = cb[i];
            if (!c2m_set[b]) {
                c2m_set[b] = 1;
                c2m[b] = s->blk[i];
                distinct_c++;
            } else if (c2m[b] != s->blk[i]) {
                snprintf(why, sizeof why, "sequence %d entry %lld: block %d shared differently", id,
                         (long long)i, (int)b);
                break;
            }
            if (m->stamp[s->blk[i]] != h->step) {
                m->stamp[s->blk[i]] = h->step;
                distinct_m++;
            }
        }
        for (int l = 0; l < m->L && !why[0] && s->len > 0; l++) {
            if (gqa_kv_read_layer(h->c, id, l, 0, s->len, h->ra, h->rb) != GQA_OK) {
                snprintf(why, sizeof why, "read_layer: %s", gqa_last_error());
                break;
            }
            const size_t nf = (size_t)s->len * row_floats(m);
            for (size_t i = 0; i < nf; i++)
                if (h->ra[i] != s->k[l][i] || h->rb[i] != s->v[l][i]) {
                    const size_t t = i / row_floats(m);
                    snprintf(why, sizeof why,
                             "sequence %d layer %d token %zu element %zu: K %g V %g, want %g %g",
                             id, l, t, i % row_floats(m), (double)h->ra[i], (double)h->rb[i],
                             (double)s->k[l][i], (double)s->v[l][i]);
                    break;
                }
        }
    }
    if (!why[0] && (distinct_c != distinct_m || distinct_c != m->used))
        snprintf(why, sizeof why, "%lld cache blocks map to %lld model blocks (%lld in use)",
                 (long long)distinct_c, (long long)distinct_m, (long long)m->used);
    free(c2m_set);
    free(c2m);
    CHECK(!why[0], "%s step %lld (%s): %s", h->name, (long long)h->step, op, why);
    return !why[0];
}

/* A live sequence id, or -1. */
static int pick_live(harness *h)
{
    int ids[MAX_SEQS], n = 0;
    for (int i = 0; i < MAX_SEQS; i++)
        if (h->m.seq[i].live)
            ids[n++] = i;
    return n ? ids[tu_rng_int(&h->rng, 0, n - 1)] : -1;
}

static int64_t random_count(harness *h)
{
    return tu_rng_int(&h->rng, 0, 1) ? tu_rng_int(&h->rng, 1, 4) : tu_rng_int(&h->rng, 1, 40);
}

/* The status the cache returned must be the one the model predicts. */
static int expect_status(harness *h, const char *op, gqa_status got, gqa_status want)
{
    int ok = got == want && (want == GQA_OK || gqa_last_error()[0] != '\0');
    h->capacity_hits += ok && want == GQA_ERR_CAPACITY;
    CHECK(ok, "%s step %lld (%s): status %s, want %s (%s)", h->name, (long long)h->step, op,
          gqa_status_string(got), gqa_status_string(want), gqa_last_error());
    return ok;
}

static int op_create(harness *h)
{
    int32_t id = -1;
    if (!expect_status(h, "create", gqa_kv_seq_create(h->c, &id), GQA_OK))
        return 0;
    if (id < 0 || id >= MAX_SEQS || h->m.seq[id].live) {
        CHECK(0, "%s: create gave id %d", h->name, (int)id);
        return 0;
    }
    h->m.seq[id].live = 1;
    h->m.n_live++;
    return 1;
}

static int op_append(harness *h, int id)
{
    model *m = &h->m;
    model_seq *s = &m->seq[id];
    const int64_t n = random_count(h);
    const size_t per_layer = (size_t)n * row_floats(m);
    random_values(&h->rng, h->a, per_layer * m->L);
    random_values(&h->rng, h->b, per_layer * m->L);
    const int fits = model_grow_need(m, s, n) <= m->blocks_total - m->used;
    if (!expect_status(h, "append", gqa_kv_seq_append(h->c, id, n, h->a, h->b),
                       fits ? GQA_OK : GQA_ERR_CAPACITY))
        return 0;
    if (fits) {
        const int64_t pos = s->len;
        model_grow(m, s, n);
        for (int l = 0; l < m->L; l++)
            model_write(m, s, l, pos, n, h->a + l * per_layer, h->b + l * per_layer);
    }
    return 1;
}

/* Reserve, then write some layers over a random part of the new slots; the
 * rest must read as zeros. */
static int op_reserve_write(harness *h, int id)
{
    model *m = &h->m;
    model_seq *s = &m->seq[id];
    const int64_t n = random_count(h);
    const int fits = model_grow_need(m, s, n) <= m->blocks_total - m->used;
    if (!expect_status(h, "reserve", gqa_kv_seq_reserve(h->c, id, n),
                       fits ? GQA_OK : GQA_ERR_CAPACITY))
        return 0;
    if (!fits)
        return 1;
    const int64_t pos = s->len;
    model_grow(m, s, n);
    for (int l = 0; l < m->L; l++) {
        if (tu_rng_int(&h->rng, 0, 3) == 0)
            continue; /* this layer stays zero */
        const int64_t p = pos + tu_rng_int(&h->rng, 0, (int)n - 1);
        const int64_t w = tu_rng_int(&h->rng, 1, (int)(pos + n - p));
        random_values(&h->rng, h->a, (size_t)w * row_floats(m));
        random_values(&h->rng, h->b, (size_t)w * row_floats(m));
        /* The new slots are private after reserve: no copy, cannot fail. */
        if (!expect_status(h, "write_layer after reserve",
                           gqa_kv_write_layer(h->c, id, l, p, w, h->a, h->b), GQA_OK))
            return 0;
        model_write(m, s, l, p, w, h->a, h->b);
    }
    return 1;
}

/* Overwrite old positions of one layer: copy-on-write of shared blocks. */
static int op_overwrite(harness *h, int id)
{
    model *m = &h->m;
    model_seq *s = &m->seq[id];
    if (s->len == 0)
        return 1;
    const int l = tu_rng_int(&h->rng, 0, m->L - 1);
    const int64_t p = tu_rng_int(&h->rng, 0, (int)s->len - 1);
    const int64_t w = tu_rng_int(&h->rng, 1, (int)(s->len - p < 40 ? s->len - p : 40));
    random_values(&h->rng, h->a, (size_t)w * row_floats(m));
    random_values(&h->rng, h->b, (size_t)w * row_floats(m));
    const int fits = model_shared_in(m, s, p, w) <= m->blocks_total - m->used;
    if (!expect_status(h, "write_layer", gqa_kv_write_layer(h->c, id, l, p, w, h->a, h->b),
                       fits ? GQA_OK : GQA_ERR_CAPACITY))
        return 0;
    if (fits) {
        for (int64_t i = p / m->bt; i <= (p + w - 1) / m->bt; i++)
            model_unshare(m, s, i);
        model_write(m, s, l, p, w, h->a, h->b);
    }
    return 1;
}

static int op_fork(harness *h, int id)
{
    model *m = &h->m;
    int32_t child = -1;
    if (!expect_status(h, "fork", gqa_kv_seq_fork(h->c, id, &child), GQA_OK))
        return 0;
    if (child < 0 || child >= MAX_SEQS || m->seq[child].live) {
        CHECK(0, "%s: fork gave id %d", h->name, (int)child);
        return 0;
    }
    const model_seq *p = &m->seq[id];
    model_seq *s = &m->seq[child];
    s->live = 1;
    m->n_live++;
    model_seq_reserve(m, s, p->len > 0 ? p->len : 1);
    for (int l = 0; l < m->L && p->len > 0; l++) {
        memcpy(s->k[l], p->k[l], (size_t)p->len * row_floats(m) * sizeof(float));
        memcpy(s->v[l], p->v[l], (size_t)p->len * row_floats(m) * sizeof(float));
    }
    for (int64_t i = 0; i < p->nblk; i++) {
        s->blk[i] = p->blk[i];
        m->rc[p->blk[i]]++;
    }
    s->nblk = p->nblk;
    s->len = p->len;
    return 1;
}

static int op_truncate(harness *h, int id)
{
    model *m = &h->m;
    model_seq *s = &m->seq[id];
    int64_t to = tu_rng_int(&h->rng, 0, 2) ? s->len - tu_rng_int(&h->rng, 0, 3)
                                           : tu_rng_int(&h->rng, 0, (int)s->len);
    if (to < 0)
        to = 0;
    if (!expect_status(h, "truncate", gqa_kv_seq_truncate(h->c, id, to), GQA_OK))
        return 0;
    const int64_t keep = (to + m->bt - 1) / m->bt;
    for (int64_t i = keep; i < s->nblk; i++)
        model_release(m, s->blk[i]);
    s->nblk = keep;
    s->len = to;
    return 1;
}

static int op_free(harness *h, int id)
{
    if (!expect_status(h, "free", gqa_kv_seq_free(h->c, id), GQA_OK))
        return 0;
    model_seq_clear(&h->m, &h->m.seq[id]);
    h->m.n_live--;
    return 1;
}

/* A call the cache must refuse without changing anything. */
static int op_bad(harness *h, int id)
{
    model *m = &h->m;
    int dead = -1;
    for (int i = 0; i < MAX_SEQS && dead < 0; i++)
        if (!m->seq[i].live)
            dead = i;
    const int64_t len = id >= 0 ? m->seq[id].len : 0;
    gqa_status st = GQA_OK;
    switch (tu_rng_int(&h->rng, 0, 6)) {
    case 0: st = gqa_kv_seq_append(h->c, dead, 1, h->a, h->b); break;
    case 1:
        st = id >= 0 ? gqa_kv_seq_append(h->c, id, 0, h->a, h->b) : gqa_kv_seq_free(h->c, dead);
        break;
    case 2:
        st = id >= 0 ? gqa_kv_read_layer(h->c, id, m->L, 0, 0, h->ra, h->rb)
                     : gqa_kv_seq_truncate(h->c, -1, 0);
        break;
    case 3:
        st = id >= 0 ? gqa_kv_seq_truncate(h->c, id, len + 1) : gqa_kv_seq_reserve(h->c, dead, 1);
        break;
    case 4:
        st = id >= 0 ? gqa_kv_write_layer(h->c, id, 0, len, 1, h->a, h->b)
                     : gqa_kv_seq_fork(h->c, dead, &dead);
        break;
    case 5: st = id >= 0 ? gqa_kv_seq_reserve(h->c, id, -5) : gqa_kv_seq_free(h->c, -3); break;
    default: st = gqa_kv_seq_fork(h->c, MAX_SEQS + 100, &dead); break;
    }
    return expect_status(h, "bad call", st, GQA_ERR_INVALID_ARG);
}

static void run_model_test(gqa_dtype dtype, int bt, int d, int n_ops, uint64_t seed)
{
    harness h;
    memset(&h, 0, sizeof h);
    model *m = &h.m;
    m->L = 2;
    m->G = 3;
    m->d = d;
    m->bt = bt;
    m->dtype = dtype;
    char name[64];
    snprintf(name, sizeof name, "model %s bt=%d d=%d", gqa_dtype_name(dtype), bt, d);
    h.name = name;
    tu_rng_seed(&h.rng, seed);

    const int64_t target_tokens = 160;
    m->blocks_total = (target_tokens + bt - 1) / bt;
    const uint64_t block_bytes = bpt_formula(m->L, m->G, d, dtype) * (uint64_t)bt;
    gqa_kv_config cfg = {m->L, m->G,  d,
                         bt,   dtype, block_bytes * (uint64_t)m->blocks_total + block_bytes / 2};
    if (gqa_kv_cache_create(&cfg, &h.c) != GQA_OK) {
        CHECK(0, "%s: create: %s", name, gqa_last_error());
        return;
    }
    const int64_t cap_tokens = m->blocks_total * bt;
    h.a = tu_xmalloc((size_t)MAX_LAYERS * 64 * row_floats(m) * sizeof(float));
    h.b = tu_xmalloc((size_t)MAX_LAYERS * 64 * row_floats(m) * sizeof(float));
    h.ra = tu_xmalloc((size_t)cap_tokens * row_floats(m) * sizeof(float));
    h.rb = tu_xmalloc((size_t)cap_tokens * row_floats(m) * sizeof(float));

    int counts[8] = {0};
    for (h.step = 0; h.step < n_ops; h.step++) {
        const int r = tu_rng_int(&h.rng, 0, 99);
        int id = pick_live(&h);
        int ok = 1, kind;
        if (id < 0 || (r < 12 && m->n_live < MAX_LIVE)) {
            kind = 0;
            ok = op_create(&h);
        } else if (r < 40) {
            kind = 1;
            ok = op_append(&h, id);
        } else if (r < 52) {
            kind = 2;
            ok = op_reserve_write(&h, id);
        } else if (r < 60) {
            kind = 3;
            ok = op_overwrite(&h, id);
        } else if (r < 72 && m->n_live < MAX_LIVE) {
            kind = 4;
            ok = op_fork(&h, id);
        } else if (r < 84) {
            kind = 5;
            ok = op_truncate(&h, id);
        } else if (r < 94) {
            kind = 6;
            ok = op_free(&h, id);
        } else {
            kind = 7;
            ok = op_bad(&h, id);
        }
        counts[kind]++;
        if (!ok || !verify(&h, "after op"))
            break;
    }
    printf("  %-28s %lld ops (create %d, append %d, reserve+write %d, overwrite %d, fork %d, "
           "truncate %d, free %d, bad %d; %d refused for capacity)\n",
           name, (long long)h.step, counts[0], counts[1], counts[2], counts[3], counts[4],
           counts[5], counts[6], counts[7], h.capacity_hits);
    CHECK(h.step == n_ops, "%s stopped at step %lld", name, (long long)h.step);
    CHECK(h.capacity_hits > 10, "%s: only %d calls found the cache full", name, h.capacity_hits);

    for (int i = 0; i < MAX_SEQS; i++)
        model_seq_clear(m, &m->seq[i]);
    free(m->rc);
    free(m->stamp);
    free(h.a);
    free(h.b);
    free(h.ra);
    free(h.rb);
    gqa_kv_cache_free(h.c);
}

/* ------------------------------------------------------------ capacity -- */

static gqa_kv_cache *make_cache(int L, int G, int d, int bt, gqa_dtype t, uint64_t budget)
{
    gqa_kv_config cfg = {L, G, d, bt, t, budget};
    gqa_kv_cache *c = NULL;
    gqa_status st = gqa_kv_cache_create(&cfg, &c);
    CHECK(st == GQA_OK, "create L%d G%d d%d bt%d %s budget %llu: %s", L, G, d, bt,
          gqa_dtype_name(t), (unsigned long long)budget, gqa_last_error());
    return c;
}

/* Read all layers of seq into k/v (layer-major, layer_floats per layer; the
 * rest is zeroed), for before/after comparisons. */
static void snapshot(gqa_kv_cache *c, int L, int32_t seq, size_t layer_floats, float *k, float *v)
{
    const int64_t len = gqa_kv_seq_len(c, seq);
    memset(k, 0, (size_t)L * layer_floats * sizeof(float));
    memset(v, 0, (size_t)L * layer_floats * sizeof(float));
    for (int l = 0; l < L && len > 0; l++)
        gqa_kv_read_layer(c, seq, l, 0, len, k + l * layer_floats, v + l * layer_floats);
}

static int same_floats(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void test_capacity_fill(gqa_dtype t, int bt)
{
    const int L = 2, G = 2, d = 32;
    const uint64_t block_bytes = bpt_formula(L, G, d, t) * (uint64_t)bt;
    const int64_t k_blocks = 40 / bt + 3;
    const uint64_t budget = block_bytes * (uint64_t)k_blocks + block_bytes - 1;
    const int64_t predicted = (int64_t)(budget / block_bytes) * bt;
    gqa_kv_cache *c = make_cache(L, G, d, bt, t, budget);
    if (!c)
        return;
    tu_rng r;
    tu_rng_seed(&r, 77 + (uint64_t)bt);
    const size_t row = (size_t)G * d, cap_floats = (size_t)predicted * row;
    const size_t most = (size_t)(bt > 8 ? bt : 8); /* tokens in one append */
    float *k = tu_xmalloc((size_t)L * most * row * sizeof(float));
    float *v = tu_xmalloc((size_t)L * most * row * sizeof(float));
    float *s0 = tu_xmalloc((size_t)L * cap_floats * 4),
          *s1 = tu_xmalloc((size_t)L * cap_floats * 4);
    float *s2 = tu_xmalloc((size_t)L * cap_floats * 4),
          *s3 = tu_xmalloc((size_t)L * cap_floats * 4);

    gqa_kv_stats st;
    gqa_kv_cache_stats(c, &st);
    CHECK(st.token_capacity == predicted && st.blocks_total == k_blocks,
          "bt %d: capacity %lld tokens / %lld blocks, predicted %lld / %lld", bt,
          (long long)st.token_capacity, (long long)st.blocks_total, (long long)predicted,
          (long long)k_blocks);

    /* One sequence, chunks of 1..7: CAPACITY exactly when it would pass the prediction. */
    int32_t a = -1;
    gqa_kv_seq_create(c, &a);
    int ok = 1;
    while (gqa_kv_seq_len(c, a) < predicted && ok) {
        const int64_t len = gqa_kv_seq_len(c, a), n = tu_rng_int(&r, 1, 7);
        random_values(&r, k, (size_t)L * n * row);
        random_values(&r, v, (size_t)L * n * row);
        snapshot(c, L, a, cap_floats, s0, s1);
        gqa_status s = gqa_kv_seq_append(c, a, n, k, v);
        if (len + n <= predicted) {
            ok = s == GQA_OK;
            CHECK(ok, "bt %d: append %lld at length %lld: %s", bt, (long long)n, (long long)len,
                  gqa_last_error());
        } else {
            ok = s == GQA_ERR_CAPACITY && gqa_kv_seq_len(c, a) == len;
            snapshot(c, L, a, cap_floats, s2, s3);
            ok = ok && same_floats(s0, s2, (size_t)L * cap_floats) &&
                 same_floats(s1, s3, (size_t)L * cap_floats);
            CHECK(ok, "bt %d: append %lld at length %lld of %lld: %s, contents kept: %d", bt,
                  (long long)n, (long long)len, (long long)predicted, gqa_status_string(s), ok);
            /* finish one token at a time */
            while (ok && gqa_kv_seq_len(c, a) < predicted)
                ok = gqa_kv_seq_append(c, a, 1, k, v) == GQA_OK;
        }
        CHECK(gqa_kv_cache_check(c) == GQA_OK, "bt %d: check: %s", bt, gqa_last_error());
    }
    CHECK(gqa_kv_seq_len(c, a) == predicted, "bt %d: filled to %lld, predicted %lld", bt,
          (long long)gqa_kv_seq_len(c, a), (long long)predicted);
    snapshot(c, L, a, cap_floats, s0, s1);
    CHECK(gqa_kv_seq_append(c, a, 1, k, v) == GQA_ERR_CAPACITY, "bt %d: append past the budget",
          bt);
    CHECK(gqa_kv_seq_reserve(c, a, 1) == GQA_ERR_CAPACITY, "bt %d: reserve past the budget", bt);
    int32_t b = -1;
    CHECK(gqa_kv_seq_create(c, &b) == GQA_OK, "bt %d: an empty sequence needs no block", bt);
    CHECK(gqa_kv_seq_append(c, b, 1, k, v) == GQA_ERR_CAPACITY && gqa_kv_seq_len(c, b) == 0,
          "bt %d: a second sequence finds no block", bt);
    snapshot(c, L, a, cap_floats, s2, s3);
    CHECK(gqa_kv_seq_len(c, a) == predicted && same_floats(s0, s2, (size_t)L * cap_floats) &&
              same_floats(s1, s3, (size_t)L * cap_floats),
          "bt %d: failed calls changed the full sequence", bt);
    gqa_kv_cache_stats(c, &st);
    CHECK(st.blocks_free == 0 && st.bytes_used == (uint64_t)k_blocks * block_bytes,
          "bt %d: full cache stats: %lld free, %llu bytes used", bt, (long long)st.blocks_free,
          (unsigned long long)st.bytes_used);

    /* Truncating by one block's worth frees exactly that much room. */
    CHECK(gqa_kv_seq_truncate(c, a, predicted - bt) == GQA_OK, "bt %d: truncate", bt);
    random_values(&r, k, (size_t)L * most * row);
    random_values(&r, v, (size_t)L * most * row);
    CHECK(gqa_kv_seq_append(c, b, bt, k, v) == GQA_OK, "bt %d: append into the freed block", bt);
    CHECK(gqa_kv_seq_append(c, b, 1, k, v) == GQA_ERR_CAPACITY, "bt %d: and no more", bt);
    /* Freeing makes room again. */
    CHECK(gqa_kv_seq_free(c, a) == GQA_OK, "bt %d: free", bt);
    gqa_kv_cache_stats(c, &st);
    CHECK(st.blocks_used == 1 && st.n_sequences == 1, "bt %d: after free: %lld blocks, %d seqs", bt,
          (long long)st.blocks_used, (int)st.n_sequences);
    CHECK(gqa_kv_seq_reserve(c, b, predicted - bt) == GQA_OK && gqa_kv_seq_len(c, b) == predicted,
          "bt %d: reserve to the full capacity after free: %s", bt, gqa_last_error());
    CHECK(gqa_kv_cache_check(c) == GQA_OK, "bt %d: check: %s", bt, gqa_last_error());
    free(k);
    free(v);
    free(s0);
    free(s1);
    free(s2);
    free(s3);
    gqa_kv_cache_free(c);
}

/* Copies of shared blocks are charged against the budget. */
static void test_capacity_cow(gqa_dtype t, int bt)
{
    const int L = 2, G = 1, d = 32, k_blocks = 3;
    const uint64_t block_bytes = bpt_formula(L, G, d, t) * (uint64_t)bt;
    const size_t row = (size_t)G * d;
    float *k = tu_xmalloc((size_t)L * (size_t)(k_blocks * bt) * row * 4);
    float *v = tu_xmalloc((size_t)L * (size_t)(k_blocks * bt) * row * 4);
    const size_t all = (size_t)L * (size_t)(k_blocks * bt) * row;
    float *s0 = tu_xmalloc(all * 4), *s1 = tu_xmalloc(all * 4), *s2 = tu_xmalloc(all * 4),
          *s3 = tu_xmalloc(all * 4);
    tu_rng r;
    tu_rng_seed(&r, 99);
    random_values(&r, k, all);
    random_values(&r, v, all);
    const size_t lf = (size_t)(k_blocks * bt) * row;

    if (bt > 1) {
        /* All blocks in use, the last one partial and shared after a fork. */
        gqa_kv_cache *c = make_cache(L, G, d, bt, t, block_bytes * k_blocks);
        int32_t a = -1, b = -1;
        gqa_kv_seq_create(c, &a);
        CHECK(gqa_kv_seq_append(c, a, k_blocks * bt - 1, k, v) == GQA_OK, "cow: fill");
        CHECK(gqa_kv_seq_fork(c, a, &b) == GQA_OK, "cow: fork");
        gqa_kv_stats st;
        gqa_kv_cache_stats(c, &st);
        CHECK(st.blocks_used == k_blocks && st.blocks_free == 0, "cow: fork took blocks");
        snapshot(c, L, a, lf, s0, s1);
        CHECK(gqa_kv_seq_append(c, b, 1, k, v) == GQA_ERR_CAPACITY,
              "cow: child append needs a copy");
        CHECK(gqa_kv_seq_append(c, a, 1, k, v) == GQA_ERR_CAPACITY,
              "cow: parent append needs a copy");
        CHECK(gqa_kv_seq_reserve(c, b, 1) == GQA_ERR_CAPACITY, "cow: reserve needs a copy");
        CHECK(gqa_kv_write_layer(c, b, 1, 0, 1, k, v) == GQA_ERR_CAPACITY,
              "cow: write into a shared block needs a copy");
        CHECK(gqa_kv_seq_len(c, a) == k_blocks * bt - 1 &&
                  gqa_kv_seq_len(c, b) == k_blocks * bt - 1,
              "cow: lengths changed");
        snapshot(c, L, a, lf, s2, s3);
        CHECK(same_floats(s0, s2, all) && same_floats(s1, s3, all), "cow: parent changed");
        snapshot(c, L, b, lf, s2, s3);
        CHECK(same_floats(s0, s2, all) && same_floats(s1, s3, all), "cow: child differs");
        CHECK(gqa_kv_cache_check(c) == GQA_OK, "cow: check: %s", gqa_last_error());
        /* Dropping the child's tokens unshares the parent's blocks. */
        CHECK(gqa_kv_seq_truncate(c, b, 0) == GQA_OK, "cow: truncate child");
        CHECK(gqa_kv_seq_append(c, a, 1, k, v) == GQA_OK, "cow: parent owns its block again: %s",
              gqa_last_error());
        CHECK(gqa_kv_cache_check(c) == GQA_OK, "cow: check: %s", gqa_last_error());
        gqa_kv_cache_free(c);

        /* One free block: the copy takes it, and the parent keeps its values. */
        c = make_cache(L, G, d, bt, t, block_bytes * k_blocks);
        gqa_kv_seq_create(c, &a);
        CHECK(gqa_kv_seq_append(c, a, (k_blocks - 1) * bt - 1, k, v) == GQA_OK, "cow1: fill");
        CHECK(gqa_kv_seq_fork(c, a, &b) == GQA_OK, "cow1: fork");
        snapshot(c, L, a, lf, s0, s1);
        CHECK(gqa_kv_seq_append(c, b, 1, k + 5, v + 7) == GQA_OK, "cow1: child append copies");
        gqa_kv_cache_stats(c, &st);
        CHECK(st.blocks_free == 0, "cow1: the copy took the free block");
        snapshot(c, L, a, lf, s2, s3);
        CHECK(same_floats(s0, s2, all) && same_floats(s1, s3, all), "cow1: parent changed");
        CHECK(gqa_kv_seq_append(c, a, 1, k, v) == GQA_OK,
              "cow1: parent's last block is private again: %s", gqa_last_error());
        CHECK(gqa_kv_cache_check(c) == GQA_OK, "cow1: check: %s", gqa_last_error());
        gqa_kv_cache_free(c);
    }

    /* A full shared last block needs no copy: one new block, no more. */
    gqa_kv_cache *c = make_cache(L, G, d, bt, t, block_bytes * k_blocks);
    int32_t a = -1, b = -1;
    gqa_kv_seq_create(c, &a);
    CHECK(gqa_kv_seq_append(c, a, (k_blocks - 1) * bt, k, v) == GQA_OK, "full: fill");
    CHECK(gqa_kv_seq_fork(c, a, &b) == GQA_OK, "full: fork");
    CHECK(gqa_kv_seq_append(c, b, 1, k, v) == GQA_OK, "full: child takes the one free block");
    CHECK(gqa_kv_seq_append(c, a, 1, k, v) == GQA_ERR_CAPACITY, "full: parent finds none");
    CHECK(gqa_kv_cache_check(c) == GQA_OK, "full: check: %s", gqa_last_error());
    gqa_kv_cache_free(c);
    free(k);
    free(v);
    free(s0);
    free(s1);
    free(s2);
    free(s3);
}

/* ---------------------------------------------------------- accounting -- */

static void test_accounting(void)
{
    static const int shapes[][3] = {{1, 1, 32},  {32, 8, 128}, {80, 8, 128}, {24, 2, 64},
                                    {30, 3, 64}, {3, 5, 256},  {2, 7, 96}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int j = 0; j < N_DTYPES; j++) {
            const int L = shapes[i][0], G = shapes[i][1], d = shapes[i][2];
            const gqa_dtype t = all_dtypes[j];
            const uint64_t want = bpt_formula(L, G, d, t);
            CHECK(gqa_kv_bytes_per_token(L, G, d, t) == want,
                  "bytes per token L%d G%d d%d %s: %llu, formula %llu", L, G, d, gqa_dtype_name(t),
                  (unsigned long long)gqa_kv_bytes_per_token(L, G, d, t), (unsigned long long)want);
        }
    /* Non-multiple-of-32 head dims for the plain types. */
    CHECK(gqa_kv_bytes_per_token(2, 3, 20, GQA_F16) == 2 * 2 * 3 * 40, "f16 d=20");
    CHECK(gqa_kv_bytes_per_token(1, 1, 1, GQA_F32) == 8, "f32 d=1");
    CHECK(gqa_kv_bytes_per_token(1, 1, 256, GQA_Q8_0) == 2 * 8 * 34, "q8_0 d=256");
    /* Invalid input gives 0. */
    CHECK(gqa_kv_bytes_per_token(0, 1, 32, GQA_F32) == 0, "L=0");
    CHECK(gqa_kv_bytes_per_token(1, 0, 32, GQA_F32) == 0, "G=0");
    CHECK(gqa_kv_bytes_per_token(1, 1, 0, GQA_F32) == 0, "d=0");
    CHECK(gqa_kv_bytes_per_token(1, 1, 257, GQA_F32) == 0, "d=257");
    CHECK(gqa_kv_bytes_per_token(1, 1, 48, GQA_Q8_0) == 0, "q8_0 d=48");
    CHECK(gqa_kv_bytes_per_token(1, 1, 32, (gqa_dtype)9) == 0, "dtype 9");
    CHECK(gqa_kv_bytes_per_token(INT32_MAX, INT32_MAX, 256, GQA_F32) == 0, "overflow");

    /* Stats agree with what was allocated, for each dtype and odd budgets. */
    for (int j = 0; j < N_DTYPES; j++) {
        const gqa_dtype t = all_dtypes[j];
        const int L = 3, G = 2, d = 64, bt = 17;
        const uint64_t bpt = bpt_formula(L, G, d, t), bb = bpt * bt;
        const uint64_t budgets[] = {bb, bb + 1, 5 * bb - 1, 5 * bb, 1000003};
        for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
            gqa_kv_cache *c = make_cache(L, G, d, bt, t, budgets[b]);
            if (!c)
                continue;
            gqa_kv_stats st;
            CHECK(gqa_kv_cache_stats(c, &st) == GQA_OK, "stats");
            const int64_t nb = (int64_t)(budgets[b] / bb);
            CHECK(st.bytes_per_token == bpt && st.block_bytes == bb && st.blocks_total == nb &&
                      st.blocks_free == nb && st.blocks_used == 0 && st.bytes_used == 0 &&
                      st.token_capacity == nb * bt && st.n_sequences == 0 &&
                      st.blocks_total * (int64_t)st.block_bytes <= (int64_t)budgets[b],
                  "stats %s budget %llu: %lld blocks of %llu, want %lld of %llu", gqa_dtype_name(t),
                  (unsigned long long)budgets[b], (long long)st.blocks_total,
                  (unsigned long long)st.block_bytes, (long long)nb, (unsigned long long)bb);
            /* block layout [layer][kind][token][head][row]: a token's heads
             * side by side, G * row_bytes from one token to the next */
            CHECK(c->row_bytes == row_bytes_formula(d, t) &&
                      gqa_kv_token_stride(c) == (size_t)G * c->row_bytes &&
                      gqa_kv_row_ptr(c, 1, 0, 0, 0) - gqa_kv_row_ptr(c, 0, 0, 0, 0) ==
                          (ptrdiff_t)bb &&
                      gqa_kv_row_ptr(c, 0, 1, 1, 1) - gqa_kv_row_ptr(c, 0, 0, 0, 0) ==
                          (ptrdiff_t)(((1 * 2 + 1) * (size_t)bt * G + 1) * c->row_bytes),
                  "layout %s", gqa_dtype_name(t));
            /* bytes used follow the blocks in use */
            int32_t s = -1;
            gqa_kv_seq_create(c, &s);
            if (nb >= 2) {
                gqa_kv_seq_reserve(c, s, bt + 1);
                gqa_kv_cache_stats(c, &st);
                CHECK(st.blocks_used == 2 && st.bytes_used == 2 * bb && st.n_sequences == 1,
                      "stats after reserve: %lld blocks, %llu bytes", (long long)st.blocks_used,
                      (unsigned long long)st.bytes_used);
            }
            CHECK(gqa_kv_cache_check(c) == GQA_OK, "check: %s", gqa_last_error());
            gqa_kv_cache_free(c);
        }
    }
}

/* ---------------------------------------------------------------- q8_0 -- */

/* Round trip through the cache. Per block with s = max|x| / 127 (f32) and
 * s16 its stored f16 value, GGML rounds q = round(x * (1/s)) and reads
 * q * s16, so
 *   |x - q s16| <= |x - q s| + |q| |s - s16|
 *              <= s (1/2 + e) + 127 |s - s16| + (product rounding),
 * where e bounds the float error of x * fl(1/s) against x / s: two roundings
 * of relative 2^-24 on a value <= 127, under 2^-16. The product q * s16 is
 * rounded once more: 2^-24 * 127 * s16. For a normal f16 scale
 * |s - s16| <= 2^-11 s, which gives the familiar |x - deq| <= 0.5625 s; tiny
 * scales (f16 subnormal or flushed to 0) are covered by the exact |s - s16|
 * term. */
static void test_q8_0(void)
{
    const int L = 1, G = 1, d = 256, bt = 16, n = 64;
    gqa_kv_cache *c = make_cache(L, G, d, bt, GQA_Q8_0, 1 << 20);
    if (!c)
        return;
    tu_rng r;
    tu_rng_seed(&r, 5);
    float *x = tu_xmalloc((size_t)n * d * 4), *y = tu_xmalloc((size_t)n * d * 4);
    float *yk = tu_xmalloc((size_t)n * d * 4);
    for (int t = 0; t < n; t++)
        for (int b = 0; b < d / 32; b++) {
            float *blk = x + (size_t)t * d + 32 * b;
            const int kind = (t * 8 + b) % 9;
            const float mag = kind == 0   ? 0.0f
                              : kind == 1 ? 1e-9f /* scale flushes to 0 in f16 */
                              : kind == 2 ? 3e-4f /* f16 subnormal scale */
                              : kind == 3 ? 5e5f  /* near the top of f16 */
                                          : powf(10.0f, tu_rng_uniform(&r, -2.0f, 3.0f));
            for (int j = 0; j < 32; j++)
                blk[j] = mag * tu_rng_uniform(&r, -1.0f, 1.0f);
            if (kind == 5) { /* a single non-zero */
                memset(blk, 0, 32 * sizeof(float));
                blk[tu_rng_int(&r, 0, 31)] = -mag;
            }
            if (kind == 6) { /* scale exactly 1 and x / scale on exact ties k + 1/2 */
                for (int j = 0; j < 31; j++)
                    blk[j] = (float)(j - 16) + 0.5f;
                blk[31] = 127.0f;
            }
        }
    int32_t s = -1;
    gqa_kv_seq_create(c, &s);
    CHECK(gqa_kv_seq_append(c, s, n, x, x) == GQA_OK, "q8_0 append: %s", gqa_last_error());
    CHECK(gqa_kv_read_layer(c, s, 0, 0, n, y, yk) == GQA_OK, "q8_0 read");
    double worst_ratio = 0.0;
    int64_t bad_bound = 0, bad_headline = 0, bad_bytes = 0, normal_blocks = 0;
    const gqa_kv_sequence *seq = gqa_kv_seq_peek(c, s);
    for (int t = 0; t < n; t++)
        for (int b = 0; b < d / 32; b++) {
            const float *xb = x + (size_t)t * d + 32 * b, *yb = y + (size_t)t * d + 32 * b;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(xb[j]));
            const double sc = (double)(amax / 127.0f);
            const double s16 = (double)gqa_f16_to_f32(gqa_f32_to_f16(amax / 127.0f));
            const double bound =
                sc * (0.5 + 0x1p-16) + 127.0 * fabs(sc - s16) + 0x1p-24 * 127.0 * s16;
            const int normal = s16 >= 0x1p-14;
            normal_blocks += normal;
            for (int j = 0; j < 32; j++) {
                const double err = fabs((double)xb[j] - (double)yb[j]);
                if (err > bound)
                    bad_bound++;
                if (normal && err > 0.5626 * sc)
                    bad_headline++;
                if (normal && sc > 0 && err / sc > worst_ratio)
                    worst_ratio = err / sc;
            }
            /* The stored bytes are GGML's block: f16 scale, then 32 int8. */
            uint16_t sb;
            int8_t q[32];
            q8_block_ref(xb, &sb, q);
            const int32_t blk = gqa_kv_seq_blocks(seq)[t / bt];
            const unsigned char *row =
                gqa_kv_row_ptr(c, blk, 0, 0, 0) + (size_t)(t % bt) * c->row_bytes + 34 * b;
            bad_bytes += memcmp(row, &sb, 2) != 0 || memcmp(row + 2, q, 32) != 0;
        }
    printf("  q8_0 round trip: %d blocks (%lld with a normal f16 scale), worst |x - deq| / scale "
           "= %.4f\n",
           n * d / 32, (long long)normal_blocks, worst_ratio);
    CHECK(bad_bound == 0, "q8_0: %lld values outside the per-block bound", (long long)bad_bound);
    CHECK(bad_headline == 0, "q8_0: %lld values outside 0.5626 * scale", (long long)bad_headline);
    CHECK(bad_bytes == 0, "q8_0: %lld blocks differ from GGML's bytes", (long long)bad_bytes);
    CHECK(normal_blocks > n * d / 32 / 2, "q8_0: too few normal blocks tested");

    /* A non-finite value poisons its own block only. */
    for (int j = 0; j < d; j++)
        x[j] = (float)j * 0.01f;
    x[40] = INFINITY;
    x[200] = NAN;
    CHECK(gqa_kv_seq_append(c, s, 1, x, x) == GQA_OK, "q8_0 append inf/nan");
    CHECK(gqa_kv_read_layer(c, s, 0, n, 1, y, yk) == GQA_OK, "q8_0 read inf/nan");
    int nan_ok = 1;
    for (int j = 0; j < d; j++) {
        const int poisoned = (j / 32 == 1) || (j / 32 == 6);
        nan_ok &= poisoned ? isnan(y[j]) != 0 : fabsf(y[j] - x[j]) <= 0.02f;
    }
    CHECK(nan_ok, "q8_0: blocks with Inf / NaN read as NaN, the others unharmed");
    CHECK(gqa_kv_cache_check(c) == GQA_OK, "q8_0 check");
    free(x);
    free(y);
    free(yk);
    gqa_kv_cache_free(c);
}

/* ----------------------------------------------------------- bad input -- */

/* The status is `want` and the message contains `needle`. The message is
 * first set to something unrelated so a stale one cannot pass. */
#define EXPECT_ERR(call, want, needle)                                                             \
    do {                                                                                           \
        (void)gqa_kv_bytes_per_token(1, 1, 999, GQA_F32);                                          \
        gqa_status st_ = (call);                                                                   \
        CHECK(st_ == (want) && strstr(gqa_last_error(), (needle)) != NULL,                         \
              "%s: status %s (want %s), message '%s' (want '%s')", #call, gqa_status_string(st_),  \
              gqa_status_string(want), gqa_last_error(), (needle));                                \
    } while (0)

static void test_bad_config(void)
{
    gqa_kv_cache *c = (gqa_kv_cache *)&c; /* must be set to NULL on failure */
    const gqa_kv_config good = {2, 2, 64, 16, GQA_F16, 1 << 20};
    gqa_kv_config cfg;
    EXPECT_ERR(gqa_kv_cache_create(NULL, &c), GQA_ERR_INVALID_ARG, "cfg is NULL");
    CHECK(c == NULL, "*out not cleared on failure");
    EXPECT_ERR(gqa_kv_cache_create(&good, NULL), GQA_ERR_INVALID_ARG, "out is NULL");
#define BAD_CFG(field, value, want, needle)                                                        \
    do {                                                                                           \
        cfg = good;                                                                                \
        cfg.field = value;                                                                         \
        c = (gqa_kv_cache *)&c;                                                                    \
        EXPECT_ERR(gqa_kv_cache_create(&cfg, &c), want, needle);                                   \
        CHECK(c == NULL, "*out not cleared for %s = %s", #field, #value);                          \
    } while (0)
    BAD_CFG(n_layers, 0, GQA_ERR_INVALID_ARG, "n_layers 0");
    BAD_CFG(n_layers, -3, GQA_ERR_INVALID_ARG, "n_layers -3");
    BAD_CFG(n_kv_heads, 0, GQA_ERR_INVALID_ARG, "n_kv_heads 0");
    BAD_CFG(head_dim, 0, GQA_ERR_INVALID_ARG, "head_dim 0");
    BAD_CFG(head_dim, 257, GQA_ERR_INVALID_ARG, "head_dim 257");
    BAD_CFG(block_tokens, 0, GQA_ERR_INVALID_ARG, "block_tokens 0");
    BAD_CFG(block_tokens, 65537, GQA_ERR_INVALID_ARG, "block_tokens 65537");
    BAD_CFG(dtype, (gqa_dtype)7, GQA_ERR_INVALID_ARG, "dtype 7");
    BAD_CFG(budget_bytes, 0, GQA_ERR_INVALID_ARG, "budget_bytes 0");
    /* one block is 16 * 2*2*2*64*2 = 16384 bytes */
    BAD_CFG(budget_bytes, 16383, GQA_ERR_INVALID_ARG, "budget_bytes 16383");
    BAD_CFG(budget_bytes, UINT64_MAX, GQA_ERR_INVALID_ARG, "blocks");
    cfg = good;
    cfg.dtype = GQA_Q8_0;
    cfg.head_dim = 48;
    EXPECT_ERR(gqa_kv_cache_create(&cfg, &c), GQA_ERR_UNSUPPORTED, "head_dim is 48");
    /* A budget of blocks that could never be mapped: refused before malloc. */
    cfg = (gqa_kv_config){1024, 64, 256, 65536, GQA_F32, UINT64_MAX};
    EXPECT_ERR(gqa_kv_cache_create(&cfg, &c), GQA_ERR_NO_MEMORY, "bytes");
    cfg = (gqa_kv_config){INT32_MAX, INT32_MAX, 256, 65536, GQA_F32, UINT64_MAX};
    EXPECT_ERR(gqa_kv_cache_create(&cfg, &c), GQA_ERR_INVALID_ARG, "overflow");
    gqa_kv_cache_free(NULL);
    tu_passed++;
#undef BAD_CFG
}

static void test_bad_calls(void)
{
    const int L = 2, G = 2, d = 32;
    gqa_kv_cache *c = make_cache(L, G, d, 4, GQA_F32, 64 * bpt_formula(L, G, d, GQA_F32));
    if (!c)
        return;
    const size_t row = (size_t)G * d;
    float *k = tu_xmalloc(8 * row * L * 4), *v = tu_xmalloc(8 * row * L * 4);
    float *s0 = tu_xmalloc(8 * row * L * 4), *s1 = tu_xmalloc(8 * row * L * 4);
    float *s2 = tu_xmalloc(8 * row * L * 4), *s3 = tu_xmalloc(8 * row * L * 4);
    tu_rng r;
    tu_rng_seed(&r, 3);
    random_values(&r, k, 8 * row * L);
    random_values(&r, v, 8 * row * L);
    int32_t a = -1, dead = -1, x = -1;
    gqa_kv_seq_create(c, &a);
    gqa_kv_seq_create(c, &dead);
    gqa_kv_seq_append(c, a, 6, k, v);
    gqa_kv_seq_free(c, dead);
    snapshot(c, L, a, 8 * row, s0, s1);
    gqa_kv_stats before, after;
    gqa_kv_cache_stats(c, &before);

    EXPECT_ERR(gqa_kv_seq_create(NULL, &x), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_seq_create(c, NULL), GQA_ERR_INVALID_ARG, "seq is NULL");
    EXPECT_ERR(gqa_kv_seq_free(NULL, a), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_seq_free(c, dead), GQA_ERR_INVALID_ARG, "sequence id 1");
    EXPECT_ERR(gqa_kv_seq_free(c, -1), GQA_ERR_INVALID_ARG, "sequence id -1");
    EXPECT_ERR(gqa_kv_seq_free(c, 4444), GQA_ERR_INVALID_ARG, "sequence id 4444");
    EXPECT_ERR(gqa_kv_seq_fork(NULL, a, &x), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_seq_fork(c, a, NULL), GQA_ERR_INVALID_ARG, "child is NULL");
    EXPECT_ERR(gqa_kv_seq_fork(c, dead, &x), GQA_ERR_INVALID_ARG, "sequence id 1");
    CHECK(gqa_kv_seq_len(c, dead) == -1 && strstr(gqa_last_error(), "sequence id 1"),
          "len of a freed id");
    CHECK(gqa_kv_seq_len(NULL, a) == -1, "len of a NULL cache");
    EXPECT_ERR(gqa_kv_seq_truncate(NULL, a, 0), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_seq_truncate(c, dead, 0), GQA_ERR_INVALID_ARG, "sequence id 1");
    EXPECT_ERR(gqa_kv_seq_truncate(c, a, 7), GQA_ERR_INVALID_ARG, "7");
    EXPECT_ERR(gqa_kv_seq_truncate(c, a, -1), GQA_ERR_INVALID_ARG, "-1");
    EXPECT_ERR(gqa_kv_seq_append(NULL, a, 1, k, v), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_seq_append(c, dead, 1, k, v), GQA_ERR_INVALID_ARG, "sequence id 1");
    EXPECT_ERR(gqa_kv_seq_append(c, a, 0, k, v), GQA_ERR_INVALID_ARG, "n = 0");
    EXPECT_ERR(gqa_kv_seq_append(c, a, -2, k, v), GQA_ERR_INVALID_ARG, "n = -2");
    EXPECT_ERR(gqa_kv_seq_append(c, a, 1, NULL, v), GQA_ERR_INVALID_ARG, "k is NULL");
    EXPECT_ERR(gqa_kv_seq_append(c, a, 1, k, NULL), GQA_ERR_INVALID_ARG, "v is NULL");
    EXPECT_ERR(gqa_kv_seq_append(c, a, INT64_MAX, k, v), GQA_ERR_CAPACITY, "cannot grow");
    EXPECT_ERR(gqa_kv_seq_reserve(NULL, a, 1), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_seq_reserve(c, dead, 1), GQA_ERR_INVALID_ARG, "sequence id 1");
    EXPECT_ERR(gqa_kv_seq_reserve(c, a, 0), GQA_ERR_INVALID_ARG, "n = 0");
    EXPECT_ERR(gqa_kv_seq_reserve(c, a, INT64_MIN), GQA_ERR_INVALID_ARG, "n = ");
    EXPECT_ERR(gqa_kv_write_layer(NULL, a, 0, 0, 1, k, v), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_write_layer(c, dead, 0, 0, 1, k, v), GQA_ERR_INVALID_ARG, "sequence id 1");
    EXPECT_ERR(gqa_kv_write_layer(c, a, 2, 0, 1, k, v), GQA_ERR_INVALID_ARG, "layer 2");
    EXPECT_ERR(gqa_kv_write_layer(c, a, -1, 0, 1, k, v), GQA_ERR_INVALID_ARG, "layer -1");
    EXPECT_ERR(gqa_kv_write_layer(c, a, 0, 5, 2, k, v), GQA_ERR_INVALID_ARG, "pos 5, n 2");
    EXPECT_ERR(gqa_kv_write_layer(c, a, 0, -1, 1, k, v), GQA_ERR_INVALID_ARG, "pos -1");
    EXPECT_ERR(gqa_kv_write_layer(c, a, 0, 0, -1, k, v), GQA_ERR_INVALID_ARG, "n -1");
    EXPECT_ERR(gqa_kv_write_layer(c, a, 0, 1, INT64_MAX, k, v), GQA_ERR_INVALID_ARG, "pos 1");
    EXPECT_ERR(gqa_kv_write_layer(c, a, 0, 0, 1, NULL, v), GQA_ERR_INVALID_ARG, "k is NULL");
    EXPECT_ERR(gqa_kv_read_layer(NULL, a, 0, 0, 1, k, v), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_read_layer(c, dead, 0, 0, 1, s2, s3), GQA_ERR_INVALID_ARG, "sequence id 1");
    EXPECT_ERR(gqa_kv_read_layer(c, a, 2, 0, 1, s2, s3), GQA_ERR_INVALID_ARG, "layer 2");
    EXPECT_ERR(gqa_kv_read_layer(c, a, 0, 6, 1, s2, s3), GQA_ERR_INVALID_ARG, "pos 6, n 1");
    EXPECT_ERR(gqa_kv_read_layer(c, a, 0, 7, 0, s2, s3), GQA_ERR_INVALID_ARG, "pos 7");
    EXPECT_ERR(gqa_kv_read_layer(c, a, 0, 0, 1, s2, NULL), GQA_ERR_INVALID_ARG, "v is NULL");
    EXPECT_ERR(gqa_kv_cache_stats(NULL, &after), GQA_ERR_INVALID_ARG, "cache is NULL");
    EXPECT_ERR(gqa_kv_cache_stats(c, NULL), GQA_ERR_INVALID_ARG, "stats is NULL");
    EXPECT_ERR(gqa_kv_cache_check(NULL), GQA_ERR_INVALID_ARG, "cache is NULL");
    /* n == 0 reads and writes are no-ops at any position inside 0..len. */
    CHECK(gqa_kv_read_layer(c, a, 0, 6, 0, NULL, NULL) == GQA_OK, "empty read at the end");
    CHECK(gqa_kv_write_layer(c, a, 1, 0, 0, NULL, NULL) == GQA_OK, "empty write");

    gqa_kv_cache_stats(c, &after);
    snapshot(c, L, a, 8 * row, s2, s3);
    CHECK(gqa_kv_seq_len(c, a) == 6 && same_floats(s0, s2, 6 * row) &&
              same_floats(s0 + 8 * row, s2 + 8 * row, 6 * row) && same_floats(s1, s3, 6 * row) &&
              before.blocks_used == after.blocks_used && before.bytes_used == after.bytes_used &&
              before.n_sequences == after.n_sequences,
          "bad calls changed the cache");
    CHECK(gqa_kv_cache_check(c) == GQA_OK, "check after bad calls: %s", gqa_last_error());
    /* Ids are reused after free; the cache hands out the lowest free one. */
    CHECK(gqa_kv_seq_create(c, &x) == GQA_OK && x == dead, "freed id %d reused: got %d", (int)dead,
          (int)x);
    free(k);
    free(v);
    free(s0);
    free(s1);
    free(s2);
    free(s3);
    gqa_kv_cache_free(c);
}

int main(void)
{
    const double t0 = tu_seconds();
    printf("model-based random operations:\n");
    static const int block_sizes[] = {1, 16, 17};
    for (int j = 0; j < N_DTYPES; j++)
        for (int b = 0; b < 3; b++) {
            const gqa_dtype t = all_dtypes[j];
            const int d = t == GQA_Q8_0 ? 64 : t == GQA_F32 ? 20 : t == GQA_F16 ? 8 : 12;
            run_model_test(t, block_sizes[b], d, 1000, 1000 + 10 * (uint64_t)j + (uint64_t)b);
        }
    const double t1 = tu_seconds();
    for (int j = 0; j < N_DTYPES; j++)
        for (int b = 0; b < 3; b++) {
            test_capacity_fill(all_dtypes[j], block_sizes[b]);
            test_capacity_cow(all_dtypes[j], block_sizes[b]);
        }
    test_accounting();
    test_q8_0();
    test_bad_config();
    test_bad_calls();
    const double t2 = tu_seconds();
    printf("time: model %.2f s, the rest %.2f s\n", t1 - t0, t2 - t1);
    return tu_summary();
}
