/* llama.c - loading a Llama-family model from GGUF: hyper-parameters from
 * the metadata, every tensor checked for presence, type and shape, and the
 * MHA twin used to prove the grouping (gqa_model_expand_kv). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/llama_internal.h"
#include "model/quant.h"

/* "{arch}.suffix" for the architecture's keys. */
static const char *arch_key(char *buf, size_t cap, const char *suffix)
{
    snprintf(buf, cap, "llama.%s", suffix);
    return buf;
}

/* A positive int32 hyper-parameter; `dflt` (> 0) when absent, or required
 * when dflt == 0. */
static gqa_status hparam(const gqa_gguf *g, const char *suffix, int32_t dflt, int32_t *out)
{
    char key[128];
    arch_key(key, sizeof key, suffix);
    if (gqa_gguf_find_key(g, key) < 0) {
        if (dflt > 0) {
            *out = dflt;
            return GQA_OK;
        }
        return gqa_fail(GQA_ERR_FORMAT, "model file lacks the key %s", key);
    }
    uint32_t v;
    gqa_status s = gqa_gguf_get_u32(g, key, &v);
    if (s != GQA_OK)
        return s;
    if (v == 0 || v > (1u << 24))
        return gqa_fail(GQA_ERR_FORMAT, "%s = %u is out of range", key, (unsigned)v);
    *out = (int32_t)v;
    return GQA_OK;
}

static gqa_status read_hparams(const gqa_gguf *g, gqa_model_info *in)
{
    const char *arch;
    size_t alen;
    gqa_status s = gqa_gguf_get_str(g, "general.architecture", &arch, &alen);
    if (s != GQA_OK)
        return s;
    if (alen != 5 || memcmp(arch, "llama", 5) != 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "architecture \"%.*s\" is not supported (this runtime runs \"llama\")",
                        (int)(alen > 64 ? 64 : alen), arch);
    if ((s = hparam(g, "block_count", 0, &in->n_layers)) != GQA_OK ||
        (s = hparam(g, "embedding_length", 0, &in->n_embd)) != GQA_OK ||
        (s = hparam(g, "attention.head_count", 0, &in->n_heads)) != GQA_OK ||
        (s = hparam(g, "attention.head_count_kv", in->n_heads, &in->n_kv_heads)) != GQA_OK ||
        (s = hparam(g, "feed_forward_length", 0, &in->n_ff)) != GQA_OK)
        return s;
    if (in->n_embd % in->n_heads != 0 && gqa_gguf_find_key(g, "llama.attention.key_length") < 0)
        return gqa_fail(GQA_ERR_FORMAT, "embedding_length %d is not a multiple of head_count %d",
                        in->n_embd, in->n_heads);
    if ((s = hparam(g, "attention.key_length", in->n_embd / in->n_heads, &in->head_dim)) != GQA_OK)
        return s;
    if (gqa_gguf_find_key(g, "llama.attention.value_length") >= 0) {
        int32_t vl = 0;
        if ((s = hparam(g, "attention.value_length", 0, &vl)) != GQA_OK)
            return s;
        if (vl != in->head_dim)
            return gqa_fail(GQA_ERR_UNSUPPORTED, "value_length %d != key_length %d", vl,
                            in->head_dim);
    }
    if ((s = hparam(g, "rope.dimension_count", in->head_dim, &in->n_rot)) != GQA_OK)
        return s;
    if (in->n_heads % in->n_kv_heads != 0)
        return gqa_fail(GQA_ERR_FORMAT, "head_count %d is not a multiple of head_count_kv %d",
                        in->n_heads, in->n_kv_heads);
    if (in->head_dim > 256)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "head dimension %d > 256", in->head_dim);
    if (in->n_rot > in->head_dim || in->n_rot % 2 != 0)
        return gqa_fail(GQA_ERR_FORMAT, "rope.dimension_count %d (head dimension %d)", in->n_rot,
                        in->head_dim);
    in->n_ctx_train = 0;
    if (gqa_gguf_find_key(g, "llama.context_length") >= 0 &&
        (s = hparam(g, "context_length", 0, &in->n_ctx_train)) != GQA_OK)
        return s;
    in->rope_base = 10000.0f;
    if (gqa_gguf_find_key(g, "llama.rope.freq_base") >= 0 &&
        (s = gqa_gguf_get_f32(g, "llama.rope.freq_base", &in->rope_base)) != GQA_OK)
        return s;
    if (!(in->rope_base > 1.0f) || !isfinite(in->rope_base))
        return gqa_fail(GQA_ERR_FORMAT, "llama.rope.freq_base = %g", (double)in->rope_base);
    if ((s = gqa_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &in->rms_eps)) != GQA_OK)
        return s;
    if (!(in->rms_eps >= 0.0f) || !isfinite(in->rms_eps))
        return gqa_fail(GQA_ERR_FORMAT, "layer_norm_rms_epsilon = %g", (double)in->rms_eps);
    /* RoPE variants this runtime does not implement must not load silently. */
    if (gqa_gguf_find_key(g, "llama.rope.scaling.type") >= 0) {
        const char *t;
        size_t tl;
        if ((s = gqa_gguf_get_str(g, "llama.rope.scaling.type", &t, &tl)) != GQA_OK)
            return s;
        if (!(tl == 4 && memcmp(t, "none", 4) == 0))
            return gqa_fail(GQA_ERR_UNSUPPORTED, "RoPE scaling \"%.*s\" is not supported",
                            (int)(tl > 32 ? 32 : tl), t);
    }
    if (gqa_gguf_find_tensor(g, "rope_freqs.weight") >= 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "rope_freqs.weight (Llama 3 RoPE scaling) is not "
                                             "supported");
    if (gqa_gguf_find_key(g, "general.name") >= 0) {
        const char *nm;
        size_t nl;
        if (gqa_gguf_get_str(g, "general.name", &nm, &nl) == GQA_OK) {
            if (nl >= sizeof in->name)
                nl = sizeof in->name - 1;
            memcpy(in->name, nm, nl);
            in->name[nl] = '\0';
        }
    }
    return GQA_OK;
}

/* Tensor `name` as a rows x cols weight of a type gqa_matvec handles
 * (rows == 0: take the rows from the file and check only cols). */
static gqa_status get_weight(gqa_model *m, const char *name, int64_t rows, int64_t cols,
                             llama_weight *w)
{
    gqa_gguf_tensor_info ti;
    gqa_status s = gqa_gguf_tensor(m->gguf, name, &ti);
    if (s != GQA_OK)
        return s;
    if (!gqa_quant_supported(ti.ggml_type))
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "tensor %s has type %s, which this runtime does "
                        "not support (f32, f16, bf16, q8_0, q4_0, q4_1)",
                        name, gqa_gguf_type_name(ti.ggml_type));
    if (ti.n_dims > 2 || ti.dims[0] != cols || (rows > 0 && ti.dims[1] != rows))
        return gqa_fail(GQA_ERR_FORMAT, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]",
                        name, (long long)ti.dims[0], (long long)ti.dims[1], (long long)cols,
                        (long long)rows);
    int64_t be, bb;
    gqa_quant_block(ti.ggml_type, &be, &bb);
    if (cols % be != 0)
        return gqa_fail(GQA_ERR_FORMAT, "tensor %s: rows of %lld elements are not whole %s blocks",
                        name, (long long)cols, gqa_gguf_type_name(ti.ggml_type));
    if (be == 1 && (uintptr_t)ti.data % (uintptr_t)bb != 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "tensor %s: %s data is not %lld-byte aligned", name,
                        gqa_gguf_type_name(ti.ggml_type), (long long)bb);
    w->type = ti.ggml_type;
    w->data = ti.data;
    w->rows = ti.dims[1];
    w->cols = cols;
    m->info.n_params += (uint64_t)ti.n_elements;
    m->info.weight_bytes += ti.n_bytes;
    return GQA_OK;
}

/* A norm vector of n elements, converted to f32 at dst. */
static gqa_status get_norm(gqa_model *m, const char *name, int64_t n, float *dst)
{
    gqa_gguf_tensor_info ti;
    gqa_status s = gqa_gguf_tensor(m->gguf, name, &ti);
    if (s != GQA_OK)
        return s;
    if (ti.n_dims != 1 || ti.dims[0] != n)
        return gqa_fail(GQA_ERR_FORMAT, "tensor %s has %lld elements in %d dims, expected [%lld]",
                        name, (long long)ti.n_elements, (int)ti.n_dims, (long long)n);
    if (ti.ggml_type != GQA_GGML_TYPE_F32 && ti.ggml_type != GQA_GGML_TYPE_F16 &&
        ti.ggml_type != GQA_GGML_TYPE_BF16)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "norm tensor %s has type %s (expected f32/f16/bf16)",
                        name, gqa_gguf_type_name(ti.ggml_type));
    /* the reference dequantiser reads element by element with memcpy, so
     * any alignment of an in-memory image is fine */
    gqa_dequant_row_ref(ti.ggml_type, ti.data, n, dst);
    m->info.n_params += (uint64_t)n;
    m->info.weight_bytes += ti.n_bytes;
    return GQA_OK;
}

static gqa_status load_layer(gqa_model *m, int32_t il, llama_layer *L)
{
    const gqa_model_info *in = &m->info;
    const int64_t E = in->n_embd, qd = (int64_t)in->n_heads * in->head_dim,
                  kvd = (int64_t)in->n_kv_heads * in->head_dim, F = in->n_ff;
    char nm[96];
    gqa_status s;
#define LAYER_T(field, suffix, rows, cols)                                                         \
    do {                                                                                           \
        snprintf(nm, sizeof nm, "blk.%d.%s.weight", (int)il, suffix);                              \
        if ((s = get_weight(m, nm, rows, cols, &L->field)) != GQA_OK)                              \
            return s;                                                                              \
    } while (0)
    float *an = m->norms + (size_t)(2 * il) * (size_t)E, *fn = an + E;
    snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", (int)il);
    if ((s = get_norm(m, nm, E, an)) != GQA_OK)
        return s;
    snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", (int)il);
    if ((s = get_norm(m, nm, E, fn)) != GQA_OK)
        return s;
    L->attn_norm = an;
    L->ffn_norm = fn;
    LAYER_T(wq, "attn_q", qd, E);
    LAYER_T(wk, "attn_k", kvd, E);
    LAYER_T(wv, "attn_v", kvd, E);
    LAYER_T(wo, "attn_output", E, qd);
    LAYER_T(w_gate, "ffn_gate", F, E);
    LAYER_T(w_up, "ffn_up", F, E);
    LAYER_T(w_down, "ffn_down", E, F);
#undef LAYER_T
    return GQA_OK;
}

static gqa_status init_rope(gqa_model *m)
{
    const int32_t half = m->info.n_rot / 2;
    m->rope_inv_freq = malloc((size_t)(half > 0 ? half : 1) * sizeof(float));
    if (!m->rope_inv_freq)
        return gqa_fail(GQA_ERR_NO_MEMORY, "RoPE table: out of memory");
    for (int32_t i = 0; i < half; i++)
        m->rope_inv_freq[i] =
            (float)pow((double)m->info.rope_base, -2.0 * i / (double)m->info.n_rot);
    return GQA_OK;
}

/* Every weight of the model, for walking them all. */
static int all_weights(gqa_model *m, llama_weight **out)
{
    int n = 0;
    out[n++] = &m->output;
    for (int32_t il = 0; il < m->info.n_layers; il++) {
        llama_layer *L = &m->layers[il];
        llama_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            out[n++] = ws[i];
    }
    return n;
}

/* Re-pack the weights into the decode layout of packed.h when the active
 * kernel set has a packed kernel: one allocation for all (huge pages where
 * the OS offers them), filled once. The classifier is packed even when it
 * is the tied embedding table (rows are still read from the GGUF copy). */
static gqa_status pack_weights(gqa_model *m)
{
    if (!gqa_packed_kernel())
        return GQA_OK;
    const int n_max = 1 + 7 * m->info.n_layers;
    llama_weight **ws = malloc((size_t)n_max * sizeof *ws);
    if (!ws)
        return gqa_fail(GQA_ERR_NO_MEMORY, "packing weights: out of memory");
    const int n = all_weights(m, ws);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += gqa_pack_bytes(ws[i]->type, ws[i]->rows, ws[i]->cols);
    if (total == 0) {
        free(ws);
        return GQA_OK;
    }
    m->packed_mem = gqa_large_alloc(total);
    if (!m->packed_mem) {
        free(ws);
        return gqa_fail(GQA_ERR_NO_MEMORY, "packing weights: out of memory (%zu bytes)", total);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        llama_weight *w = ws[i];
        const size_t b = gqa_pack_bytes(w->type, w->rows, w->cols);
        if (b == 0)
            continue;
        gqa_pack_weight(w->type, w->data, w->rows, w->cols, m->packed_mem + off, &w->packed);
        off += b;
    }
    if (m->info.tied_output)
        m->tok_embd.packed = m->output.packed;
    free(ws);
    return GQA_OK;
}

static gqa_status load_all(gqa_model *m)
{
    gqa_status s = read_hparams(m->gguf, &m->info);
    if (s != GQA_OK)
        return s;
    gqa_model_info *in = &m->info;
    if ((s = get_weight(m, "token_embd.weight", 0, in->n_embd, &m->tok_embd)) != GQA_OK)
        return s;
    if (m->tok_embd.rows < 1 || m->tok_embd.rows > INT32_MAX)
        return gqa_fail(GQA_ERR_FORMAT, "token_embd.weight has %lld rows",
                        (long long)m->tok_embd.rows);
    in->n_vocab = (int32_t)m->tok_embd.rows;
    in->tied_output = gqa_gguf_find_tensor(m->gguf, "output.weight") < 0;
    if (in->tied_output)
        m->output = m->tok_embd;
    else if ((s = get_weight(m, "output.weight", in->n_vocab, in->n_embd, &m->output)) != GQA_OK)
        return s;
    m->layers = calloc((size_t)in->n_layers, sizeof *m->layers);
    m->norms = malloc((size_t)(2 * in->n_layers + 1) * (size_t)in->n_embd * sizeof(float));
    if (!m->layers || !m->norms)
        return gqa_fail(GQA_ERR_NO_MEMORY, "model layers: out of memory");
    float *on = m->norms + (size_t)(2 * in->n_layers) * (size_t)in->n_embd;
    if ((s = get_norm(m, "output_norm.weight", in->n_embd, on)) != GQA_OK)
        return s;
    m->out_norm = on;
    for (int32_t il = 0; il < in->n_layers; il++)
        if ((s = load_layer(m, il, &m->layers[il])) != GQA_OK)
            return s;
    if ((s = init_rope(m)) != GQA_OK)
        return s;
    return pack_weights(m);
}

gqa_status gqa_model_load_gguf(const gqa_gguf *g, gqa_model **out)
{
    if (out)
        *out = NULL;
    if (!g || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_load_gguf: NULL argument");
    gqa_model *m = calloc(1, sizeof *m);
    if (!m)
        return gqa_fail(GQA_ERR_NO_MEMORY, "model: out of memory");
    m->gguf = g;
    gqa_status s = load_all(m);
    if (s != GQA_OK) {
        gqa_model_free(m);
        return s;
    }
    *out = m;
    return GQA_OK;
}

gqa_status gqa_model_load(const char *path, gqa_model **out)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_load: NULL argument");
    gqa_gguf *g;
    gqa_status s = gqa_gguf_open(path, &g);
    if (s != GQA_OK)
        return s;
    s = gqa_model_load_gguf(g, out);
    if (s != GQA_OK) {
        /* keep the loader's message, prefixed with the file */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", gqa_last_error());
        gqa_gguf_close(g);
        return gqa_fail(s, "%s: %s", path, msg);
    }
    (*out)->owns_gguf = 1;
    return GQA_OK;
}

void gqa_model_free(gqa_model *m)
{
    if (!m)
        return;
    free(m->layers);
    free(m->norms);
    free(m->rope_inv_freq);
    free(m->owned);
    gqa_aligned_free(m->packed_mem);
    if (m->owns_gguf)
        gqa_gguf_close((gqa_gguf *)m->gguf);
    free(m);
}

gqa_status gqa_model_info_get(const gqa_model *m, gqa_model_info *info)
{
    if (!m || !info)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_info_get: NULL argument");
    *info = m->info;
    return GQA_OK;
}

const gqa_gguf *gqa_model_gguf(const gqa_model *m)
{
    return m ? m->gguf : NULL;
}

gqa_status gqa_model_kv_config(const gqa_model *m, gqa_dtype dtype, int32_t block_tokens,
                               uint64_t budget_bytes, gqa_kv_config *cfg)
{
    if (!m || !cfg)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_kv_config: NULL argument");
    if (block_tokens < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_kv_config: block_tokens = %d",
                        (int)block_tokens);
    memset(cfg, 0, sizeof *cfg);
    cfg->n_layers = m->info.n_layers;
    cfg->n_kv_heads = m->info.n_kv_heads;
    cfg->head_dim = m->info.head_dim;
    cfg->block_tokens = block_tokens ? block_tokens : 16;
    cfg->dtype = dtype;
    cfg->budget_bytes = budget_bytes;
    return GQA_OK;
}

/* Copy of w with each group of `d` rows (one KV head) repeated `rep` times,
 * written at dst; returns the bytes used. */
static size_t expand_rows(const llama_weight *w, int32_t d, int32_t rep, unsigned char *dst,
                          llama_weight *out)
{
    int64_t be, bb;
    gqa_quant_block(w->type, &be, &bb);
    const size_t row_bytes = (size_t)(w->cols / be * bb), head_bytes = row_bytes * (size_t)d;
    const int64_t heads = w->rows / d;
    const unsigned char *src = w->data;
    for (int64_t h = 0; h < heads; h++)
        for (int32_t r = 0; r < rep; r++)
            memcpy(dst + ((size_t)h * (size_t)rep + (size_t)r) * head_bytes,
                   src + (size_t)h * head_bytes, head_bytes);
    *out = *w;
    out->data = dst;
    out->rows = w->rows * rep;
    return head_bytes * (size_t)heads * (size_t)rep;
}

gqa_status gqa_model_expand_kv(const gqa_model *src, gqa_model **out)
{
    if (out)
        *out = NULL;
    if (!src || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_model_expand_kv: NULL argument");
    const gqa_model_info *in = &src->info;
    const int32_t rep = in->n_heads / in->n_kv_heads, d = in->head_dim;
    size_t total = 0;
    for (int32_t il = 0; il < in->n_layers; il++) {
        const llama_weight *w[2] = {&src->layers[il].wk, &src->layers[il].wv};
        for (int i = 0; i < 2; i++) {
            int64_t be, bb;
            gqa_quant_block(w[i]->type, &be, &bb);
            total += (size_t)(w[i]->cols / be * bb) * (size_t)w[i]->rows * (size_t)rep;
        }
    }
    gqa_model *m = calloc(1, sizeof *m);
    unsigned char *buf = malloc(total + 1);
    llama_layer *layers = calloc((size_t)in->n_layers, sizeof *layers);
    float *inv = malloc((size_t)(in->n_rot / 2 + 1) * sizeof *inv);
    const size_t n_norm = (size_t)(2 * in->n_layers + 1) * (size_t)in->n_embd;
    float *norms = malloc(n_norm * sizeof *norms);
    if (!m || !buf || !layers || !inv || !norms) {
        free(m), free(buf), free(layers), free(inv), free(norms);
        return gqa_fail(GQA_ERR_NO_MEMORY, "gqa_model_expand_kv: out of memory (%zu bytes)", total);
    }
    *m = *src;
    m->owns_gguf = 0;
    m->owned = buf;
    m->layers = layers;
    m->rope_inv_freq = inv;
    memcpy(inv, src->rope_inv_freq, (size_t)(in->n_rot / 2) * sizeof *inv);
    m->norms = norms;
    memcpy(norms, src->norms, n_norm * sizeof *norms);
    const size_t E = (size_t)in->n_embd;
    size_t used = 0;
    for (int32_t il = 0; il < in->n_layers; il++) {
        layers[il] = src->layers[il];
        used += expand_rows(&src->layers[il].wk, d, rep, buf + used, &layers[il].wk);
        used += expand_rows(&src->layers[il].wv, d, rep, buf + used, &layers[il].wv);
        layers[il].attn_norm = norms + (size_t)(2 * il) * E;
        layers[il].ffn_norm = norms + (size_t)(2 * il + 1) * E;
    }
    m->out_norm = norms + (size_t)(2 * in->n_layers) * E;
    /* the expanded K/V projections need packed copies of their own; the
     * other packed weights are borrowed from src */
    m->packed_mem = NULL;
    if (src->packed_mem) {
        size_t pb = 0;
        for (int32_t il = 0; il < in->n_layers; il++)
            pb += gqa_pack_bytes(layers[il].wk.type, layers[il].wk.rows, layers[il].wk.cols) +
                  gqa_pack_bytes(layers[il].wv.type, layers[il].wv.rows, layers[il].wv.cols);
        m->packed_mem = gqa_large_alloc(pb);
        if (!m->packed_mem) {
            gqa_model_free(m);
            return gqa_fail(GQA_ERR_NO_MEMORY, "gqa_model_expand_kv: out of memory");
        }
        size_t off = 0;
        for (int32_t il = 0; il < in->n_layers; il++) {
            llama_weight *w2[2] = {&layers[il].wk, &layers[il].wv};
            for (int i = 0; i < 2; i++) {
                w2[i]->packed.data = NULL;
                const size_t b = gqa_pack_bytes(w2[i]->type, w2[i]->rows, w2[i]->cols);
                if (b == 0)
                    continue;
                gqa_pack_weight(w2[i]->type, w2[i]->data, w2[i]->rows, w2[i]->cols,
                                m->packed_mem + off, &w2[i]->packed);
                off += b;
            }
        }
    }
    m->info.n_kv_heads = in->n_heads;
    *out = m;
    return GQA_OK;
}
