/* model_pass.c - forward and backward passes of the trainable model over a
 * batch of B sequences x T tokens (N = B*T rows).
 *
 * Activation memory: one block, sized for the largest N seen, holding for
 * every layer what its backward reads (block input, the two normed inputs
 * and their 1/rms, Q and K after RoPE, V, the attention output and its lse,
 * the mid-block residual, gate, up and SwiGLU output), then the final norm,
 * the logits (turned into their gradient in place by the backward) and the
 * backward's scratch. Nothing is recomputed except the attention
 * probabilities (gqa_attention_backward recomputes them from lse). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "train/ops.h"
#include "train/train_internal.h"

typedef struct layer_acts {
    float *x_in, *xn1, *rstd1, *q, *k, *v, *att, *lse, *x_mid, *xn2, *rstd2, *g, *u, *h;
} layer_acts;

typedef struct head_acts {
    float *x_last, *xf, *rstdf, *logits, *ce_lse, *ce_loss;
    /* backward scratch */
    float *dres, *dxn, *dq, *dk, *dv, *datt, *dh, *dg, *du;
} head_acts;

/* Floats per row of one layer's block, and of the head + scratch. */
static int64_t layer_row_floats(const gqa_train_config *c)
{
    const int64_t E = c->n_embd, Q = (int64_t)c->n_heads * c->head_dim,
                  KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->n_ff;
    return 4 * E + 2 + 2 * Q + 2 * KV + c->n_heads + 3 * F;
}

static int64_t head_row_floats(const gqa_train_config *c)
{
    const int64_t E = c->n_embd, Q = (int64_t)c->n_heads * c->head_dim,
                  KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->n_ff;
    return 2 * E + 1 + c->n_vocab + 2 + 2 * E + 2 * Q + 2 * KV + 3 * F;
}

/* Carve n-row arrays from *p in the order given. */
static float *take(float **p, int64_t N, int64_t width)
{
    float *r = *p;
    *p += N * width;
    return r;
}

static void get_layer(const gqa_train_model *m, int32_t l, layer_acts *a)
{
    const gqa_train_config *c = &m->cfg;
    const int64_t N = m->cap_rows, E = c->n_embd, Q = (int64_t)c->n_heads * c->head_dim,
                  KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->n_ff;
    float *p = m->acts + (int64_t)l * N * layer_row_floats(c);
    a->x_in = take(&p, N, E);
    a->xn1 = take(&p, N, E);
    a->rstd1 = take(&p, N, 1);
    a->q = take(&p, N, Q);
    a->k = take(&p, N, KV);
    a->v = take(&p, N, KV);
    a->att = take(&p, N, Q);
    a->lse = take(&p, N, c->n_heads);
    a->x_mid = take(&p, N, E);
    a->xn2 = take(&p, N, E);
    a->rstd2 = take(&p, N, 1);
    a->g = take(&p, N, F);
    a->u = take(&p, N, F);
    a->h = take(&p, N, F);
}

static void get_head(const gqa_train_model *m, head_acts *a)
{
    const gqa_train_config *c = &m->cfg;
    const int64_t N = m->cap_rows, E = c->n_embd, Q = (int64_t)c->n_heads * c->head_dim,
                  KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->n_ff;
    float *p = m->acts + (int64_t)c->n_layers * N * layer_row_floats(c);
    a->x_last = take(&p, N, E);
    a->xf = take(&p, N, E);
    a->rstdf = take(&p, N, 1);
    a->logits = take(&p, N, c->n_vocab);
    a->ce_lse = take(&p, N, 1);
    a->ce_loss = take(&p, N, 1);
    a->dres = take(&p, N, E);
    a->dxn = take(&p, N, E);
    a->dq = take(&p, N, Q);
    a->dk = take(&p, N, KV);
    a->dv = take(&p, N, KV);
    a->datt = take(&p, N, Q);
    a->dh = take(&p, N, F);
    a->dg = take(&p, N, F);
    a->du = take(&p, N, F);
}

static gqa_status ensure_buffers(gqa_train_model *m, int64_t N, int32_t T)
{
    const gqa_train_config *c = &m->cfg;
    if (N > m->cap_rows) {
        const double floats = (double)N * ((double)c->n_layers * (double)layer_row_floats(c) +
                                           (double)head_row_floats(c));
        if (floats * 4.0 > (double)SIZE_MAX / 2)
            return gqa_fail(GQA_ERR_NO_MEMORY, "train activations: %g bytes", floats * 4.0);
        gqa_aligned_free(m->acts);
        free(m->tok);
        free(m->tgt);
        m->acts = gqa_aligned_alloc((size_t)floats * sizeof(float));
        m->tok = malloc((size_t)N * sizeof(int32_t));
        m->tgt = malloc((size_t)N * sizeof(int32_t));
        m->cap_rows = m->acts && m->tok && m->tgt ? N : 0;
        if (!m->cap_rows)
            return gqa_fail(GQA_ERR_NO_MEMORY,
                            "train activations: out of memory (%.0f MiB for "
                            "%lld rows)",
                            floats * 4.0 / 1048576.0, (long long)N);
    }
    if (T > m->rope_T) {
        free(m->rope);
        m->rope = malloc((size_t)T * (size_t)c->head_dim * sizeof(float));
        m->rope_T = m->rope ? T : 0;
        if (!m->rope)
            return gqa_fail(GQA_ERR_NO_MEMORY, "train RoPE table: out of memory");
        gqa_op_rope_table(T, c->head_dim, c->rope_base, m->rope);
    }
    return GQA_OK;
}

static gqa_attn_desc attn_desc(const gqa_train_config *c)
{
    const gqa_attn_desc d = {.n_q_heads = c->n_heads,
                             .n_kv_heads = c->n_kv_heads,
                             .head_dim = c->head_dim,
                             .scale = 0.0f,
                             .causal = 1,
                             .window = 0,
                             .kv_dtype = GQA_F32};
    return d;
}

static void add_into(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* One block: x_in (already in a->x_in) -> x_out. */
static gqa_status layer_fwd(gqa_train_model *m, int32_t l, const layer_acts *a, float *x_out)
{
    const gqa_train_config *c = &m->cfg;
    const train_layer *P = &m->P[l];
    const int64_t N = (int64_t)m->B * m->T, T = m->T, E = c->n_embd, H = c->n_heads,
                  d = c->head_dim, Q = H * d, KV = (int64_t)c->n_kv_heads * d, F = c->n_ff;
    gqa_op_rmsnorm_fwd(a->x_in, P->attn_norm, N, E, c->rms_eps, a->xn1, a->rstd1);
    gqa_op_linear_fwd(a->xn1, P->wq, N, E, Q, a->q);
    gqa_op_linear_fwd(a->xn1, P->wk, N, E, KV, a->k);
    gqa_op_linear_fwd(a->xn1, P->wv, N, E, KV, a->v);
    gqa_op_rope_fwd(a->q, N, T, c->n_heads, c->head_dim, m->rope);
    gqa_op_rope_fwd(a->k, N, T, c->n_kv_heads, c->head_dim, m->rope);
    const gqa_attn_desc desc = attn_desc(c);
    for (int32_t b = 0; b < m->B; b++) {
        gqa_status s = gqa_attention(&desc, T, T, 0, a->q + b * T * Q, a->k + b * T * KV,
                                     a->v + b * T * KV, a->att + b * T * Q, a->lse + b * T * H);
        if (s != GQA_OK)
            return s;
    }
    gqa_op_linear_fwd(a->att, P->wo, N, Q, E, a->x_mid);
    add_into(a->x_mid, a->x_in, N * E);
    gqa_op_rmsnorm_fwd(a->x_mid, P->ffn_norm, N, E, c->rms_eps, a->xn2, a->rstd2);
    gqa_op_linear_fwd(a->xn2, P->wg, N, E, F, a->g);
    gqa_op_linear_fwd(a->xn2, P->wu, N, E, F, a->u);
    gqa_op_swiglu_fwd(a->g, a->u, N * F, a->h);
    gqa_op_linear_fwd(a->h, P->wd, N, F, E, x_out);
    add_into(x_out, a->x_mid, N * E);
    return GQA_OK;
}

static gqa_status check_forward(const gqa_train_model *m, const int32_t *tokens,
                                const int32_t *targets, int32_t B, int32_t T)
{
    if (!m || !tokens)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_model_forward: NULL argument");
    if (B < 1 || T < 1 || T > m->cfg.n_ctx)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_train_model_forward: B %d, T %d (need B >= 1, 1 <= T <= n_ctx %d)",
                        (int)B, (int)T, (int)m->cfg.n_ctx);
    const int64_t N = (int64_t)B * T;
    for (int64_t i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= m->cfg.n_vocab)
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "gqa_train_model_forward: token %lld is %d, not in 0..%d", (long long)i,
                            (int)tokens[i], (int)m->cfg.n_vocab - 1);
        if (targets && (targets[i] < 0 || targets[i] >= m->cfg.n_vocab))
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "gqa_train_model_forward: target %lld is %d, not in 0..%d",
                            (long long)i, (int)targets[i], (int)m->cfg.n_vocab - 1);
    }
    return GQA_OK;
}

gqa_status gqa_train_model_forward(gqa_train_model *m, const int32_t *tokens,
                                   const int32_t *targets, int32_t B, int32_t T, float *loss,
                                   float *logits)
{
    gqa_status s = check_forward(m, tokens, targets, B, T);
    if (s != GQA_OK)
        return s;
    const gqa_train_config *c = &m->cfg;
    const int64_t N = (int64_t)B * T, E = c->n_embd, V = c->n_vocab;
    m->ready = 0;
    if ((s = ensure_buffers(m, N, T)) != GQA_OK)
        return s;
    m->B = B;
    m->T = T;
    memcpy(m->tok, tokens, (size_t)N * sizeof(int32_t));
    if (targets)
        memcpy(m->tgt, targets, (size_t)N * sizeof(int32_t));
    head_acts h;
    get_head(m, &h);
    layer_acts a;
    get_layer(m, 0, &a);
    gqa_op_embed_fwd(m->tok_embd, m->tok, N, E, a.x_in);
    for (int32_t l = 0; l < c->n_layers; l++) {
        layer_acts next;
        float *x_out = h.x_last;
        if (l + 1 < c->n_layers) {
            get_layer(m, l + 1, &next);
            x_out = next.x_in;
        }
        get_layer(m, l, &a);
        if ((s = layer_fwd(m, l, &a, x_out)) != GQA_OK)
            return s;
    }
    gqa_op_rmsnorm_fwd(h.x_last, m->out_norm, N, E, c->rms_eps, h.xf, h.rstdf);
    gqa_op_linear_fwd(h.xf, m->out, N, E, V, h.logits);
    if (logits)
        memcpy(logits, h.logits, (size_t)(N * V) * sizeof(float));
    if (!targets)
        return GQA_OK;
    gqa_op_ce_fwd(h.logits, m->tgt, N, V, h.ce_lse, h.ce_loss);
    double sum = 0.0;
    for (int64_t i = 0; i < N; i++)
        sum += (double)h.ce_loss[i];
    if (loss)
        *loss = (float)(sum / (double)N);
    m->ready = 1;
    return GQA_OK;
}

/* One block backward: h->dres holds dL/dx_out on entry, dL/dx_in on exit. */
static gqa_status layer_bwd(gqa_train_model *m, int32_t l, const layer_acts *a, const head_acts *h)
{
    const gqa_train_config *c = &m->cfg;
    const train_layer *P = &m->P[l], *G = &m->G[l];
    const int64_t N = (int64_t)m->B * m->T, T = m->T, E = c->n_embd, H = c->n_heads,
                  d = c->head_dim, Q = H * d, KV = (int64_t)c->n_kv_heads * d, F = c->n_ff;
    /* x_out = x_mid + down(h) */
    gqa_op_linear_bwd(a->h, P->wd, h->dres, N, F, E, 0.0f, h->dh, G->wd);
    gqa_op_swiglu_bwd(a->g, a->u, h->dh, N * F, h->dg, h->du);
    gqa_op_linear_bwd(a->xn2, P->wg, h->dg, N, E, F, 0.0f, h->dxn, G->wg);
    gqa_op_linear_bwd(a->xn2, P->wu, h->du, N, E, F, 1.0f, h->dxn, G->wu);
    gqa_op_rmsnorm_bwd(a->x_mid, P->ffn_norm, a->rstd2, h->dxn, N, E, h->dres, G->ffn_norm);
    /* x_mid = x_in + wo(att) */
    gqa_op_linear_bwd(a->att, P->wo, h->dres, N, Q, E, 0.0f, h->datt, G->wo);
    const gqa_attn_desc desc = attn_desc(c);
    for (int32_t b = 0; b < m->B; b++) {
        gqa_status s = gqa_attention_backward(
            &desc, T, T, 0, a->q + b * T * Q, a->k + b * T * KV, a->v + b * T * KV,
            a->att + b * T * Q, a->lse + b * T * H, h->datt + b * T * Q, h->dq + b * T * Q,
            h->dk + b * T * KV, h->dv + b * T * KV);
        if (s != GQA_OK)
            return s;
    }
    gqa_op_rope_bwd(h->dq, N, T, c->n_heads, c->head_dim, m->rope);
    gqa_op_rope_bwd(h->dk, N, T, c->n_kv_heads, c->head_dim, m->rope);
    gqa_op_linear_bwd(a->xn1, P->wq, h->dq, N, E, Q, 0.0f, h->dxn, G->wq);
    gqa_op_linear_bwd(a->xn1, P->wk, h->dk, N, E, KV, 1.0f, h->dxn, G->wk);
    gqa_op_linear_bwd(a->xn1, P->wv, h->dv, N, E, KV, 1.0f, h->dxn, G->wv);
    gqa_op_rmsnorm_bwd(a->x_in, P->attn_norm, a->rstd1, h->dxn, N, E, h->dres, G->attn_norm);
    return GQA_OK;
}

gqa_status gqa_train_model_backward(gqa_train_model *m, float scale)
{
    if (!m)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_model_backward: NULL model");
    if (!m->ready)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_model_backward: no forward with targets "
                                             "since the last backward");
    m->ready = 0;
    const gqa_train_config *c = &m->cfg;
    const int64_t N = (int64_t)m->B * m->T, E = c->n_embd, V = c->n_vocab;
    head_acts h;
    get_head(m, &h);
    /* the logits become their gradient in place */
    gqa_op_ce_bwd(h.logits, h.ce_lse, m->tgt, N, V, scale / (float)N, h.logits);
    gqa_op_linear_bwd(h.xf, m->out, h.logits, N, E, V, 0.0f, h.dxn, m->g_out);
    memset(h.dres, 0, (size_t)(N * E) * sizeof(float));
    gqa_op_rmsnorm_bwd(h.x_last, m->out_norm, h.rstdf, h.dxn, N, E, h.dres, m->g_out_norm);
    for (int32_t l = c->n_layers - 1; l >= 0; l--) {
        layer_acts a;
        get_layer(m, l, &a);
        gqa_status s = layer_bwd(m, l, &a, &h);
        if (s != GQA_OK)
            return s;
    }
    gqa_op_embed_bwd(h.dres, m->tok, N, E, m->g_tok_embd);
    return GQA_OK;
}
