/* model.c - the trainable model's parameters: the tensor table (GGUF names
 * and shapes), one flat array of parameters and one of gradients, seeded
 * initialisation, and loading from a GGUF file. The passes are in
 * model_pass.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "gqa_model.h"
#include "train/train_internal.h"

static gqa_status check_config(const gqa_train_config *c)
{
#define RANGE(field, lo, hi)                                                                       \
    if (c->field < (lo) || c->field > (hi))                                                        \
        return gqa_fail(GQA_ERR_INVALID_ARG, "train config: " #field " = %d is not in %d..%d",     \
                        (int)c->field, (int)(lo), (int)(hi));
    RANGE(n_vocab, 1, 1 << 22);
    RANGE(n_layers, 1, 1024);
    RANGE(n_embd, 1, 1 << 16);
    RANGE(n_heads, 1, 1024);
    RANGE(n_kv_heads, 1, c->n_heads);
    RANGE(head_dim, 2, 256);
    RANGE(n_ff, 1, 1 << 18);
    RANGE(n_ctx, 1, 1 << 20);
#undef RANGE
    if (c->n_heads % c->n_kv_heads != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "train config: n_heads %d is not a multiple of "
                        "n_kv_heads %d",
                        (int)c->n_heads, (int)c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "train config: head_dim %d is odd (RoPE rotates pairs)", (int)c->head_dim);
    if (!(c->rope_base > 1.0f) || !isfinite(c->rope_base))
        return gqa_fail(GQA_ERR_INVALID_ARG, "train config: rope_base %g must be > 1",
                        (double)c->rope_base);
    if (!(c->rms_eps >= 0.0f) || !isfinite(c->rms_eps))
        return gqa_fail(GQA_ERR_INVALID_ARG, "train config: rms_eps %g must be >= 0",
                        (double)c->rms_eps);
    return GQA_OK;
}

static void add_tensor(gqa_train_model *m, const char *name, int64_t d0, int64_t d1, int decay)
{
    train_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = d1 > 0 ? 2 : 1;
    t->dims[0] = d0;
    t->dims[1] = d1 > 0 ? d1 : 1;
    t->n = t->dims[0] * t->dims[1];
    t->off = m->n_params;
    /* keep every tensor 64-byte aligned in the flat arrays */
    m->n_params += (t->n + 15) / 16 * 16;
    t->decay = decay;
}

/* The tensor table in GGUF order: token_embd, output_norm, output (untied),
 * then each block's tensors. */
static void build_table(gqa_train_model *m)
{
    const gqa_train_config *c = &m->cfg;
    const int64_t E = c->n_embd, Q = (int64_t)c->n_heads * c->head_dim,
                  KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->n_ff;
    char nm[64];
    add_tensor(m, "token_embd.weight", E, c->n_vocab, 0);
    add_tensor(m, "output_norm.weight", E, 0, 0);
    if (!c->tied_output)
        add_tensor(m, "output.weight", E, c->n_vocab, 1);
    for (int32_t l = 0; l < c->n_layers; l++) {
        const struct {
            const char *s;
            int64_t d0, d1;
            int decay;
        } t[] = {{"attn_norm", E, 0, 0}, {"attn_q", E, Q, 1},      {"attn_k", E, KV, 1},
                 {"attn_v", E, KV, 1},   {"attn_output", Q, E, 1}, {"ffn_norm", E, 0, 0},
                 {"ffn_gate", E, F, 1},  {"ffn_up", E, F, 1},      {"ffn_down", F, E, 1}};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", (int)l, t[i].s);
            add_tensor(m, nm, t[i].d0, t[i].d1, t[i].decay);
        }
    }
}

static void point_layers(gqa_train_model *m, float *base, train_layer *L, float **emb,
                         float **onorm, float **out)
{
    const train_tensor *t = m->tensors;
    *emb = base + t[0].off;
    *onorm = base + t[1].off;
    int i = 2;
    *out = m->cfg.tied_output ? *emb : base + t[i++].off;
    for (int32_t l = 0; l < m->cfg.n_layers; l++, i += 9) {
        float **f[] = {&L[l].attn_norm, &L[l].wq, &L[l].wk, &L[l].wv, &L[l].wo,
                       &L[l].ffn_norm,  &L[l].wg, &L[l].wu, &L[l].wd};
        for (int j = 0; j < 9; j++)
            *f[j] = base + t[i + j].off;
    }
}

#define TWO_PI 6.283185307179586476925

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n values of N(0, std^2) by Box-Muller from a stream seeded by (seed, i). */
static void init_normal(float *x, int64_t n, uint64_t seed, int32_t i, double std)
{
    uint64_t s = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
    for (int64_t j = 0; j < n; j += 2) {
        const double u1 = ((double)(splitmix64(&s) >> 11) + 1.0) * 0x1.0p-53;
        const double u2 = (double)(splitmix64(&s) >> 11) * 0x1.0p-53;
        const double r = sqrt(-2.0 * log(u1)) * std;
        x[j] = (float)(r * cos(TWO_PI * u2));
        if (j + 1 < n)
            x[j + 1] = (float)(r * sin(TWO_PI * u2));
    }
}

static gqa_status alloc_model(const gqa_train_config *cfg, gqa_train_model **out)
{
    gqa_status s = check_config(cfg);
    if (s != GQA_OK)
        return s;
    gqa_train_model *m = calloc(1, sizeof *m);
    if (!m)
        return gqa_fail(GQA_ERR_NO_MEMORY, "train model: out of memory");
    m->cfg = *cfg;
    m->tensors = calloc((size_t)(3 + 9 * cfg->n_layers), sizeof *m->tensors);
    m->P = calloc((size_t)cfg->n_layers, sizeof *m->P);
    m->G = calloc((size_t)cfg->n_layers, sizeof *m->G);
    if (m->tensors && m->P && m->G) {
        build_table(m);
        m->params = gqa_aligned_alloc((size_t)m->n_params * sizeof(float));
        m->grads = gqa_aligned_alloc((size_t)m->n_params * sizeof(float));
    }
    if (!m->params || !m->grads) {
        gqa_train_model_free(m);
        return gqa_fail(GQA_ERR_NO_MEMORY, "train model: out of memory for %lld parameters",
                        (long long)m->n_params);
    }
    memset(m->params, 0, (size_t)m->n_params * sizeof(float));
    memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
    point_layers(m, m->params, m->P, &m->tok_embd, &m->out_norm, &m->out);
    point_layers(m, m->grads, m->G, &m->g_tok_embd, &m->g_out_norm, &m->g_out);
    *out = m;
    return GQA_OK;
}

gqa_status gqa_train_model_create(const gqa_train_config *cfg, uint64_t seed, gqa_train_model **out)
{
    if (out)
        *out = NULL;
    if (!cfg || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_model_create: NULL argument");
    gqa_train_model *m;
    gqa_status s = alloc_model(cfg, &m);
    if (s != GQA_OK)
        return s;
    const double proj_std = 0.02 / sqrt(2.0 * cfg->n_layers);
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const train_tensor *t = &m->tensors[i];
        float *p = m->params + t->off;
        if (t->n_dims == 1) {
            for (int64_t j = 0; j < t->n; j++)
                p[j] = 1.0f;
            continue;
        }
        const int proj = strstr(t->name, "attn_output") || strstr(t->name, "ffn_down");
        init_normal(p, t->n, seed, i, proj ? proj_std : 0.02);
    }
    *out = m;
    return GQA_OK;
}

gqa_status gqa_train_model_from_gguf(const char *path, gqa_train_model **out)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_model_from_gguf: NULL argument");
    gqa_model *rt;
    gqa_status s = gqa_model_load(path, &rt);
    if (s != GQA_OK)
        return s;
    gqa_model_info in;
    gqa_model_info_get(rt, &in);
    if (in.n_rot != in.head_dim) {
        gqa_model_free(rt);
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "%s: rope.dimension_count %d != head dimension %d (partial RoPE) is not "
                        "trainable here",
                        path, (int)in.n_rot, (int)in.head_dim);
    }
    const gqa_train_config cfg = {.n_vocab = in.n_vocab,
                                  .n_layers = in.n_layers,
                                  .n_embd = in.n_embd,
                                  .n_heads = in.n_heads,
                                  .n_kv_heads = in.n_kv_heads,
                                  .head_dim = in.head_dim,
                                  .n_ff = in.n_ff,
                                  .n_ctx = in.n_ctx_train > 0 ? in.n_ctx_train : 256,
                                  .rope_base = in.rope_base,
                                  .rms_eps = in.rms_eps,
                                  .tied_output = in.tied_output};
    gqa_train_model *m = NULL;
    if ((s = alloc_model(&cfg, &m)) != GQA_OK) {
        gqa_model_free(rt);
        return s;
    }
    const gqa_gguf *g = gqa_model_gguf(rt);
    for (int32_t i = 0; i < m->n_tensors && s == GQA_OK; i++) {
        const train_tensor *t = &m->tensors[i];
        gqa_gguf_tensor_info ti;
        /* shapes were checked by gqa_model_load */
        s = gqa_gguf_tensor(g, t->name, &ti);
        if (s == GQA_OK && ti.n_elements != t->n)
            s = gqa_fail(GQA_ERR_FORMAT, "%s: tensor %s has %lld elements, expected %lld", path,
                         t->name, (long long)ti.n_elements, (long long)t->n);
        if (s == GQA_OK)
            s = gqa_dequantize_row(ti.ggml_type, ti.data, t->n, m->params + t->off);
    }
    gqa_model_free(rt);
    if (s != GQA_OK) {
        gqa_train_model_free(m);
        return s;
    }
    *out = m;
    return GQA_OK;
}

void gqa_train_model_free(gqa_train_model *m)
{
    if (!m)
        return;
    gqa_aligned_free(m->params);
    gqa_aligned_free(m->grads);
    gqa_aligned_free(m->acts);
    free(m->tok);
    free(m->tgt);
    free(m->rope);
    free(m->tensors);
    free(m->P);
    free(m->G);
    free(m);
}

const gqa_train_config *gqa_train_model_config(const gqa_train_model *m)
{
    return m ? &m->cfg : NULL;
}

int32_t gqa_train_model_n_tensors(const gqa_train_model *m)
{
    return m ? m->n_tensors : 0;
}

gqa_status gqa_train_model_tensor(const gqa_train_model *m, int32_t i, gqa_train_tensor *t)
{
    if (!m || !t)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_model_tensor: NULL argument");
    if (i < 0 || i >= m->n_tensors)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_model_tensor: index %d not in 0..%d",
                        (int)i, (int)m->n_tensors - 1);
    const train_tensor *s = &m->tensors[i];
    t->name = s->name;
    t->n_dims = s->n_dims;
    t->dims[0] = s->dims[0];
    t->dims[1] = s->dims[1];
    t->data = m->params + s->off;
    t->grad = m->grads + s->off;
    t->decay = s->decay;
    return GQA_OK;
}

int32_t gqa_train_find_tensor(const gqa_train_model *m, const char *name)
{
    for (int32_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return i;
    return -1;
}

int64_t gqa_train_model_n_params(const gqa_train_model *m)
{
    return m ? m->n_params : 0;
}

float *gqa_train_model_params(gqa_train_model *m)
{
    return m ? m->params : NULL;
}

float *gqa_train_model_grads(gqa_train_model *m)
{
    return m ? m->grads : NULL;
}

void gqa_train_model_zero_grad(gqa_train_model *m)
{
    if (m)
        memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
}
