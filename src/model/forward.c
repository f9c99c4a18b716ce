/* forward.c - gqa_model_forward: the Llama forward pass over a batch of
 * sequences, with K/V kept in the paged cache.
 *
 * The tokens of all items are cut into micro-batches of at most UBATCH
 * tokens. In a micro-batch every weight matrix is applied to all of its
 * tokens at once (gqa_matmul reads the weights once for the batch), and
 * attention runs once per layer for all of its sequences (gqa_kv_attention).
 * Activations live in the calling thread's grow-only workspace, so decode
 * steps allocate nothing once warm.
 *
 * RoPE. Hugging Face Llama checkpoints rotate the pairs (i, i + d/2) of each
 * head ("rotate_half"). The GGUF converter permutes the rows of attn_q and
 * attn_k so that those pairs become adjacent, (2i, 2i + 1); ggml then rotates
 * adjacent pairs. The permutation commutes with the dot products of
 * attention (it is the same for q and k), so rotating adjacent pairs of the
 * permuted projections gives exactly the HF model's scores. We therefore use
 * the GGUF weights as stored and rotate (x[2i], x[2i+1]) by pos * theta_i,
 * theta_i = base^(-2i / n_rot); dims from n_rot up are not rotated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kv/kv_internal.h"
#include "model/llama_internal.h"
#include "model/quant.h"

/* Tokens per micro-batch: bounds the activation memory (about 25 KiB per
 * token for SmolLM2) while keeping each weight matrix's reuse high. */
#define UBATCH 512
/* Rows of logits computed per classifier call (bounds the scratch). */
#define LOGIT_ROWS 32

/* One item's share of a micro-batch: tokens off .. off + n - 1 of the item,
 * rows row0 .. row0 + n - 1 of the activations, positions pos0 .. */
typedef struct segment {
    int32_t item;
    int64_t off, n, row0, pos0;
} segment;

/* Pointers into the workspace for a micro-batch of up to T tokens. */
typedef struct scratch {
    float *x;                /* T x E: the residual stream */
    float *xb;               /* T x E: normed input of a block / block output */
    float *q;                /* T x H*d */
    float *k, *v;            /* T x G*d */
    float *att;              /* T x H*d: attention output */
    float *gate;             /* T x F */
    float *up;               /* T x F */
    float *rope;             /* T x n_rot: cos, sin of each pair, per token */
    float *logits;           /* LOGIT_ROWS x V */
    float *lrows;            /* LOGIT_ROWS x E: final-normed rows for the classifier */
    void *xq_mem;            /* room for a packed_x of T (or LOGIT_ROWS) rows of the
                              * widest input */
    packed_x px;             /* the input quantised for packed weights (see mm_input) */
    gqa_packed_fn packed_fn; /* NULL: use gqa_matmul on the GGUF layout */
    segment *seg;            /* up to n_items segments */
    gqa_kv_batch_item *kvb;  /* up to n_items attention items */
    int64_t *len0;           /* n_items: sequence lengths before the call */
} scratch;

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static gqa_status get_scratch(const gqa_model *m, int64_t T, int32_t n_items, scratch *s)
{
    int64_t wide = m->info.n_ff > m->info.n_embd ? m->info.n_ff : m->info.n_embd;
    if ((int64_t)m->info.n_heads * m->info.head_dim > wide)
        wide = (int64_t)m->info.n_heads * m->info.head_dim;
    const gqa_model_info *in = &m->info;
    const size_t E = (size_t)in->n_embd, Q = (size_t)in->n_heads * (size_t)in->head_dim,
                 KV = (size_t)in->n_kv_heads * (size_t)in->head_dim, F = (size_t)in->n_ff,
                 V = (size_t)in->n_vocab, t = (size_t)T, f = sizeof(float);
    const size_t sizes[] = {
        t * E * f,
        t * E * f,
        t * Q * f,
        t * KV * f,
        t * KV * f,
        t * Q * f,
        t * F * f,
        t * F * f,
        t * (size_t)in->n_rot * f + f,
        LOGIT_ROWS * V * f,
        LOGIT_ROWS * E * f,
        (size_t)n_items * sizeof(segment),
        (size_t)n_items * sizeof(gqa_kv_batch_item),
        (size_t)n_items * sizeof(int64_t),
        gqa_packed_x_bytes(T > LOGIT_ROWS ? T : LOGIT_ROWS, (wide + 31) / 32 * 32)};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += align64(sizes[i]);
    unsigned char *p = gqa_workspace_slot(GQA_WS_MODEL, total);
    if (!p)
        return GQA_ERR_NO_MEMORY;
    void **dst[] = {(void **)&s->x,    (void **)&s->xb,     (void **)&s->q,     (void **)&s->k,
                    (void **)&s->v,    (void **)&s->att,    (void **)&s->gate,  (void **)&s->up,
                    (void **)&s->rope, (void **)&s->logits, (void **)&s->lrows, (void **)&s->seg,
                    (void **)&s->kvb,  (void **)&s->len0,   (void **)&s->xq_mem};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = p;
        p += align64(sizes[i]);
    }
    s->packed_fn = gqa_packed_kernel();
    return GQA_OK;
}

float gqa_llama_rms_norm_row(const float *x, const float *w, int64_t E, float eps, float *out)
{
    double ss = 0.0;
    for (int64_t i = 0; i < E; i++)
        ss += (double)x[i] * (double)x[i];
    const float r = (float)(1.0 / sqrt(ss / (double)E + (double)eps));
    for (int64_t i = 0; i < E; i++)
        out[i] = x[i] * r * w[i];
    return r;
}

/* out[t] = x[t] / rms(x[t]) * w for n rows of E. */
static void rms_norm(const float *x, const float *w, int64_t n, int64_t E, float eps, float *out)
{
    for (int64_t t = 0; t < n; t++)
        gqa_llama_rms_norm_row(x + t * E, w, E, eps, out + t * E);
}

/* cos and sin of every rotated pair for the micro-batch's positions. */
static void rope_table(const gqa_model *m, const segment *seg, int32_t n_seg, float *cs)
{
    const int32_t half = m->info.n_rot / 2;
    for (int32_t s = 0; s < n_seg; s++)
        for (int64_t j = 0; j < seg[s].n; j++) {
            float *row = cs + (seg[s].row0 + j) * 2 * half;
            const double pos = (double)(seg[s].pos0 + j);
            for (int32_t i = 0; i < half; i++) {
                const double th = pos * (double)m->rope_inv_freq[i];
                row[2 * i] = (float)cos(th);
                row[2 * i + 1] = (float)sin(th);
            }
        }
}

/* Rotate adjacent pairs of the first n_rot dims of each of n_heads heads. */
static void rope_apply(float *x, int64_t T, int32_t n_heads, int32_t d, int32_t n_rot,
                       const float *cs)
{
    for (int64_t t = 0; t < T; t++) {
        const float *c = cs + t * n_rot;
        for (int32_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * d;
            for (int32_t i = 0; i < n_rot / 2; i++) {
                const float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * c[2 * i] - x1 * c[2 * i + 1];
                v[2 * i + 1] = x0 * c[2 * i + 1] + x1 * c[2 * i];
            }
        }
    }
}

/* Quantise the T x cols input x for the packed weights that will read it
 * (a no-op when the forward pass uses the GGUF layout). Every mm() on x
 * must follow the mm_input() of that x. */
static void mm_input(scratch *s, int64_t T, int64_t cols, const float *x)
{
    if (!s->packed_fn || cols % 32 != 0)
        return;
    gqa_packed_x_init(&s->px, s->xq_mem, T, cols);
    gqa_packed_x_quantize(&s->px, x);
}

static gqa_status mm(const scratch *s, const llama_weight *w, int64_t T, const float *x, float *y)
{
    if (s->packed_fn && w->packed.data) {
        gqa_packed_matmul(s->packed_fn, &w->packed, &s->px, y);
        return GQA_OK;
    }
    return gqa_matmul(w->type, w->data, w->rows, w->cols, T, x, y);
}

/* y[i] = w[i] x for n weights sharing the input x: one parallel region when
 * all are packed, else one matmul each. */
static gqa_status mm_n(const scratch *s, const llama_weight *const *w, int n, int64_t T,
                       const float *x, float *const *y)
{
    int packed = s->packed_fn != NULL;
    const packed_weight *pw[4];
    for (int i = 0; i < n; i++) {
        packed &= w[i]->packed.data != NULL;
        pw[i] = &w[i]->packed;
    }
    if (packed) {
        gqa_packed_matmul_n(s->packed_fn, pw, &s->px, y, n);
        return GQA_OK;
    }
    for (int i = 0; i < n; i++) {
        gqa_status st = mm(s, w[i], T, x, y[i]);
        if (st != GQA_OK)
            return st;
    }
    return GQA_OK;
}

/* One transformer block over the micro-batch. */
static gqa_status layer_forward(const gqa_model *m, gqa_kv_cache *cache, int32_t il,
                                const gqa_forward_item *items, scratch *s, int32_t n_seg, int64_t T)
{
    const gqa_model_info *in = &m->info;
    const llama_layer *L = &m->layers[il];
    const int64_t E = in->n_embd, d = in->head_dim, Q = (int64_t)in->n_heads * d,
                  KV = (int64_t)in->n_kv_heads * d, F = in->n_ff;
    gqa_status st;

    rms_norm(s->x, L->attn_norm, T, E, in->rms_eps, s->xb);
    mm_input(s, T, E, s->xb);
    const llama_weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
    float *const qkv_out[3] = {s->q, s->k, s->v};
    if ((st = mm_n(s, qkv, 3, T, s->xb, qkv_out)) != GQA_OK)
        return st;
    rope_apply(s->q, T, in->n_heads, in->head_dim, in->n_rot, s->rope);
    rope_apply(s->k, T, in->n_kv_heads, in->head_dim, in->n_rot, s->rope);
    for (int32_t i = 0; i < n_seg; i++) {
        const segment *g = &s->seg[i];
        st = gqa_kv_write_layer(cache, items[g->item].seq, il, g->pos0, g->n, s->k + g->row0 * KV,
                                s->v + g->row0 * KV);
        if (st != GQA_OK)
            return st;
        s->kvb[i].seq = items[g->item].seq;
        s->kvb[i].n_q = g->n;
        s->kvb[i].q = s->q + g->row0 * Q;
        s->kvb[i].out = s->att + g->row0 * Q;
        s->kvb[i].lse = NULL;
    }
    const gqa_attn_desc desc = {.n_q_heads = in->n_heads,
                                .n_kv_heads = in->n_kv_heads,
                                .head_dim = in->head_dim,
                                .scale = 0.0f,
                                .causal = 1,
                                .window = 0,
                                .kv_dtype = cache->dtype};
    if ((st = gqa_kv_attention(cache, il, &desc, s->kvb, n_seg)) != GQA_OK)
        return st;
    mm_input(s, T, Q, s->att);
    if ((st = mm(s, &L->wo, T, s->att, s->xb)) != GQA_OK)
        return st;
    for (int64_t i = 0; i < T * E; i++)
        s->x[i] += s->xb[i];

    rms_norm(s->x, L->ffn_norm, T, E, in->rms_eps, s->xb);
    mm_input(s, T, E, s->xb);
    const llama_weight *gu[2] = {&L->w_gate, &L->w_up};
    float *const gu_out[2] = {s->gate, s->up};
    if ((st = mm_n(s, gu, 2, T, s->xb, gu_out)) != GQA_OK)
        return st;
    for (int64_t i = 0; i < T * F; i++) {
        const float g = s->gate[i];
        s->gate[i] = g / (1.0f + expf(-g)) * s->up[i]; /* SiLU(gate) * up */
    }
    mm_input(s, T, F, s->gate);
    if ((st = mm(s, &L->w_down, T, s->gate, s->xb)) != GQA_OK)
        return st;
    for (int64_t i = 0; i < T * E; i++)
        s->x[i] += s->xb[i];
    return GQA_OK;
}

/* Classifier for the n final-normed rows in s->lrows; row r goes to dst[r]. */
static gqa_status flush_logits(const gqa_model *m, scratch *s, float **dst, int32_t n)
{
    const int64_t V = m->info.n_vocab;
    mm_input(s, n, m->info.n_embd, s->lrows);
    gqa_status st = mm(s, &m->output, n, s->lrows, s->logits);
    for (int32_t r = 0; st == GQA_OK && r < n; r++)
        memcpy(dst[r], s->logits + (int64_t)r * V, (size_t)V * sizeof(float));
    return st;
}

/* Final norm and classifier for the rows that want logits, LOGIT_ROWS at a
 * time so that the classifier's weights are read once per group. */
static gqa_status logits_forward(const gqa_model *m, const gqa_forward_item *items, scratch *s,
                                 int32_t n_seg)
{
    const int64_t E = m->info.n_embd, V = m->info.n_vocab;
    float *dst[LOGIT_ROWS];
    int32_t n = 0;
    for (int32_t i = 0; i < n_seg; i++) {
        const segment *g = &s->seg[i];
        const gqa_forward_item *it = &items[g->item];
        for (int64_t j = 0; it->logits && j < g->n; j++) {
            const int64_t tok = g->off + j;
            if (!it->all_logits && tok != it->n_tokens - 1)
                continue;
            rms_norm(s->x + (g->row0 + j) * E, m->out_norm, 1, E, m->info.rms_eps,
                     s->lrows + n * E);
            dst[n++] = it->logits + (it->all_logits ? tok * V : 0);
            if (n == LOGIT_ROWS) {
                gqa_status st = flush_logits(m, s, dst, n);
                if (st != GQA_OK)
                    return st;
                n = 0;
            }
        }
    }
    return n > 0 ? flush_logits(m, s, dst, n) : GQA_OK;
}

static gqa_status check_call(const gqa_model *m, const gqa_kv_cache *cache,
                             const gqa_forward_item *items, int32_t n_items, int64_t *total)
{
    if (!m || !cache || n_items < 0 || (n_items > 0 && !items))
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_forward: %s",
                        n_items < 0 ? "n_items < 0" : "NULL argument");
    const gqa_model_info *in = &m->info;
    if (cache->n_layers != in->n_layers || cache->G != in->n_kv_heads || cache->d != in->head_dim)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_model_forward: the cache holds %d layers x %d KV heads x d %d, the "
                        "model needs %d x %d x %d (use gqa_model_kv_config)",
                        cache->n_layers, cache->G, cache->d, in->n_layers, in->n_kv_heads,
                        in->head_dim);
    *total = 0;
    for (int32_t i = 0; i < n_items; i++) {
        const gqa_forward_item *it = &items[i];
        if (it->n_tokens < 1 || !it->tokens)
            return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_forward: item %d has %s", (int)i,
                            it->n_tokens < 1 ? "no tokens" : "tokens == NULL");
        for (int64_t j = 0; j < it->n_tokens; j++)
            if (it->tokens[j] < 0 || it->tokens[j] >= in->n_vocab)
                return gqa_fail(GQA_ERR_INVALID_ARG,
                                "gqa_model_forward: item %d, token %lld: id %d is not in "
                                "0..%d",
                                (int)i, (long long)j, (int)it->tokens[j], (int)in->n_vocab - 1);
        if (gqa_kv_seq_len(cache, it->seq) < 0)
            return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_forward: item %d: no sequence %d",
                            (int)i, (int)it->seq);
        for (int32_t j = 0; j < i; j++)
            if (items[j].seq == it->seq)
                return gqa_fail(GQA_ERR_INVALID_ARG,
                                "gqa_model_forward: items %d and %d both name sequence %d", (int)j,
                                (int)i, (int)it->seq);
        *total += it->n_tokens;
    }
    return GQA_OK;
}

/* Cut the next micro-batch from item *ci, token *co on: reserve its slots in
 * the cache and fill the segments. Returns the segment count in *n_seg and
 * the token count in *T. */
static gqa_status next_ubatch(gqa_kv_cache *cache, const gqa_forward_item *items, int32_t n_items,
                              int32_t *ci, int64_t *co, segment *seg, int32_t *n_seg, int64_t *T)
{
    *n_seg = 0;
    *T = 0;
    while (*ci < n_items && *T < UBATCH) {
        const gqa_forward_item *it = &items[*ci];
        int64_t n = it->n_tokens - *co;
        if (n > UBATCH - *T)
            n = UBATCH - *T;
        const int64_t pos0 = gqa_kv_seq_len(cache, it->seq);
        gqa_status st = gqa_kv_seq_reserve(cache, it->seq, n);
        if (st != GQA_OK)
            return st;
        seg[*n_seg] = (segment){.item = *ci, .off = *co, .n = n, .row0 = *T, .pos0 = pos0};
        (*n_seg)++;
        *T += n;
        *co += n;
        if (*co == it->n_tokens) {
            (*ci)++;
            *co = 0;
        }
    }
    return GQA_OK;
}

static gqa_status run_ubatch(const gqa_model *m, gqa_kv_cache *cache, const gqa_forward_item *items,
                             scratch *s, int32_t n_seg, int64_t T)
{
    const int64_t E = m->info.n_embd;
    int64_t be, bb;
    gqa_quant_block(m->tok_embd.type, &be, &bb);
    const size_t row_bytes = (size_t)(E / be * bb);
    for (int32_t i = 0; i < n_seg; i++) {
        const segment *g = &s->seg[i];
        const int32_t *tok = items[g->item].tokens + g->off;
        for (int64_t j = 0; j < g->n; j++) {
            const unsigned char *row =
                (const unsigned char *)m->tok_embd.data + (size_t)tok[j] * row_bytes;
            gqa_status st = gqa_dequantize_row(m->tok_embd.type, row, E, s->x + (g->row0 + j) * E);
            if (st != GQA_OK)
                return st;
        }
    }
    rope_table(m, s->seg, n_seg, s->rope);
    for (int32_t il = 0; il < m->info.n_layers; il++) {
        gqa_status st = layer_forward(m, cache, il, items, s, n_seg, T);
        if (st != GQA_OK)
            return st;
    }
    return logits_forward(m, items, s, n_seg);
}

gqa_status gqa_model_forward(const gqa_model *m, gqa_kv_cache *cache, const gqa_forward_item *items,
                             int32_t n_items)
{
    int64_t total = 0;
    gqa_status st = check_call(m, cache, items, n_items, &total);
    if (st != GQA_OK || n_items == 0)
        return st;
    scratch s;
    if ((st = get_scratch(m, total < UBATCH ? total : UBATCH, n_items, &s)) != GQA_OK)
        return st;
    for (int32_t i = 0; i < n_items; i++)
        s.len0[i] = gqa_kv_seq_len(cache, items[i].seq);
    int32_t ci = 0;
    int64_t co = 0;
    while (st == GQA_OK && ci < n_items) {
        int32_t n_seg;
        int64_t T;
        st = next_ubatch(cache, items, n_items, &ci, &co, s.seg, &n_seg, &T);
        if (st == GQA_OK)
            st = run_ubatch(m, cache, items, &s, n_seg, T);
    }
    if (st != GQA_OK) {
        /* all or nothing: give back every slot this call took */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", gqa_last_error());
        for (int32_t i = 0; i < n_items; i++)
            gqa_kv_seq_truncate(cache, items[i].seq, s.len0[i]);
        return gqa_fail(st, "%s", msg);
    }
    return GQA_OK;
}
