/* hf_to_gguf.c - gqa_convert_hf_to_gguf: a Hugging Face Llama directory to a
 * "llama" GGUF file (gqa_convert.h, docs/conversion.md).
 *
 * config.json becomes the llama.* keys gqa_model_load reads; the tensors are
 * planned by cross_format.c (names, RoPE permutation of Q/K, KV heads,
 * types) and written by the GGUF writer, one at a time. tokenizer.json
 * (when present) becomes the tokenizer.ggml.* keys (tokenizer_convert.c).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "convert/cross_format.h"
#include "convert/tokenizer_convert.h"

typedef struct hf_src {
    const gqa_hf_dir *d;
    char *used; /* per tensor of d */
    int tied;   /* config.json: tie_word_embeddings */
} hf_src;

static gqa_status find_hf(void *user, const char *name, gqa_xf_src *src, int *found)
{
    hf_src *c = user;
    const int64_t i = gqa_hf_find(c->d, name);
    *found = i >= 0;
    if (i < 0)
        return GQA_OK;
    c->used[i] = 1;
    if (c->tied && !strcmp(name, "lm_head.weight")) { /* a stored copy of the embeddings */
        *found = 0;
        return GQA_OK;
    }
    const gqa_st_tensor *t = gqa_hf_tensor_at(c->d, i);
    if (!gqa_st_dtype_to_ggml(t->dtype, &src->type))
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "tensor %s has dtype %s; only F32, F16 and BF16 can be converted", name,
                        gqa_st_dtype_name(t->dtype));
    if (t->n_dims < 1 || t->n_dims > 2)
        return gqa_fail(GQA_ERR_FORMAT, "tensor %s has %d dimensions", name, (int)t->n_dims);
    src->name = t->name;
    src->n_dims = t->n_dims;
    src->rows = t->shape[0];
    src->cols = t->n_dims == 2 ? t->shape[1] : 1;
    src->data = t->data;
    return GQA_OK;
}

/* Every tensor must have gone somewhere; the rotary inverse frequencies
 * some old checkpoints store are recomputed by every runtime. */
static gqa_status check_unused(const hf_src *c)
{
    static const char inv_freq[] = ".rotary_emb.inv_freq";
    for (int64_t i = 0; i < gqa_hf_n_tensors(c->d); i++) {
        const char *nm = gqa_hf_tensor_at(c->d, i)->name;
        const size_t n = strlen(nm), k = sizeof inv_freq - 1;
        if (!c->used[i] && !(n >= k && !strcmp(nm + n - k, inv_freq)))
            return gqa_fail(GQA_ERR_UNSUPPORTED,
                            "tensor %s has no counterpart in a llama GGUF file", nm);
    }
    return GQA_OK;
}

/* A positive integer config value of at most 2^24; dflt when absent (0:
 * required). */
static gqa_status cfg_u32(const gqa_hf_dir *d, const char *key, uint32_t dflt, uint32_t *out)
{
    double v;
    if (!gqa_hf_config_number(d, key, &v)) {
        *out = dflt;
        return dflt ? GQA_OK
                    : gqa_fail(GQA_ERR_FORMAT, "'%s': config.json lacks \"%s\"", gqa_hf_path(d),
                               key);
    }
    if (!(v >= 1.0 && v <= 16777216.0) || v != (double)(uint32_t)v)
        return gqa_fail(GQA_ERR_FORMAT, "'%s': config.json \"%s\" = %g is out of range",
                        gqa_hf_path(d), key, v);
    *out = (uint32_t)v;
    return GQA_OK;
}

/* Config keys whose meaning a llama GGUF file cannot carry. */
static gqa_status check_config(const gqa_hf_dir *d)
{
    const cJSON *j = gqa_hf_config_json(d);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (rs && !cJSON_IsNull(rs))
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "'%s': config.json has rope_scaling, which is not "
                        "supported",
                        gqa_hf_path(d));
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu")))
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "'%s': hidden_act \"%.40s\" is not supported (silu is)", gqa_hf_path(d),
                        cJSON_IsString(act) ? act->valuestring : "?");
    return GQA_OK;
}

/* general.file_type: the LLAMA_FTYPE of the bulk of the weights. */
static uint32_t file_type(uint32_t t)
{
    switch (t) {
    case GQA_GGML_TYPE_F32: return 0;
    case GQA_GGML_TYPE_Q4_0: return 2;
    case GQA_GGML_TYPE_Q4_1: return 3;
    case GQA_GGML_TYPE_Q8_0: return 7;
    case GQA_GGML_TYPE_BF16: return 32;
    default: return 1; /* f16 */
    }
}

/* The type of the bulk of the weights: layer 0's attn_q. */
static uint32_t bulk_type(const gqa_xf_plan *p)
{
    for (int64_t k = 0; k < p->n; k++)
        if (!strcmp(p->t[k].name, "blk.0.attn_q.weight"))
            return p->t[k].out_type;
    return GQA_GGML_TYPE_F16;
}

/* The directory's own name, for general.name. */
static const char *base_name(const char *path, size_t *len)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/')
        b--;
    *len = n - b;
    return path + b;
}

static gqa_status write_keys(gqa_gguf_writer *w, const gqa_hf_dir *d, const gqa_xf_plan *p)
{
    const gqa_hf_config *c = gqa_hf_config_get(d);
    uint32_t ff = 0, ctx = 0;
    double eps = 1e-6, theta = 10000.0, v; /* transformers' LlamaConfig defaults */
    gqa_status s = cfg_u32(d, "intermediate_size", 0, &ff);
    if (s == GQA_OK && gqa_hf_config_number(d, "max_position_embeddings", &v))
        s = cfg_u32(d, "max_position_embeddings", 0, &ctx);
    gqa_hf_config_number(d, "rms_norm_eps", &eps);
    gqa_hf_config_number(d, "rope_theta", &theta);
    size_t nlen;
    const char *name = base_name(gqa_hf_path(d), &nlen);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_str(w, "general.architecture", "llama", 5);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_str(w, "general.name", name, nlen);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    if (s == GQA_OK && ctx)
        s = gqa_gguf_writer_set_u32(w, "llama.context_length", ctx);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->hidden_size);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "llama.feed_forward_length", ff);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->g);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_f32(w, "llama.rope.freq_base", (float)theta);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)eps);
    if (s == GQA_OK && c->has_head_dim)
        s = gqa_gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim);
    if (s == GQA_OK && c->has_head_dim)
        s = gqa_gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "general.file_type", file_type(bulk_type(p)));
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)p->t[0].rows);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    return s;
}

static gqa_status add_tensors(gqa_gguf_writer *w, const gqa_xf_plan *p)
{
    gqa_status s = GQA_OK;
    for (int64_t k = 0; s == GQA_OK && k < p->n; k++) {
        const gqa_xf_tensor *x = &p->t[k];
        const int64_t dims[2] = {x->n_dims == 2 ? x->cols : x->rows, x->rows};
        if (x->copy)
            s = gqa_gguf_writer_add_tensor(w, x->name, x->out_type, x->n_dims, dims, x->src.data);
        else
            s = gqa_gguf_writer_add_tensor_fill(w, x->name, x->out_type, x->n_dims, dims,
                                                gqa_xf_fill, (void *)x);
    }
    return s;
}

static gqa_status plan_and_write(const gqa_hf_dir *d, const char *out, const gqa_convert_options *o)
{
    const gqa_hf_config *c = gqa_hf_config_get(d);
    const cJSON *tie =
        cJSON_GetObjectItemCaseSensitive(gqa_hf_config_json(d), "tie_word_embeddings");
    hf_src src = {d, calloc((size_t)gqa_hf_n_tensors(d) + 1, 1), cJSON_IsTrue(tie)};
    if (!src.used)
        return gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory");
    gqa_xf_plan p = {.to_gguf = 1,
                     .n_layers = c->n_layers,
                     .h = c->n_heads,
                     .g0 = c->n_kv_heads,
                     .head_dim = c->head_dim,
                     .n_src_tensors = gqa_hf_n_tensors(d)};
    gqa_gguf_writer *w = NULL;
    int tok = 0;
    gqa_status s = gqa_xf_plan_make(&p, o, find_hf, &src);
    if (s == GQA_OK && p.tied && !src.tied)
        s = gqa_fail(GQA_ERR_FORMAT,
                     "'%s': the model lacks lm_head.weight and "
                     "tie_word_embeddings is not true",
                     gqa_hf_path(d));
    if (s == GQA_OK && (s = check_unused(&src)) == GQA_OK &&
        (s = gqa_gguf_writer_create(&w)) == GQA_OK && (s = write_keys(w, d, &p)) == GQA_OK &&
        (s = gqa_tokconv_hf_to_gguf(w, gqa_hf_path(d), &tok)) == GQA_OK &&
        (s = add_tensors(w, &p)) == GQA_OK)
        s = gqa_gguf_writer_write(w, out, o->progress, o->progress_user);
    gqa_gguf_writer_free(w);
    gqa_xf_plan_free(&p);
    free(src.used);
    return s;
}

gqa_status gqa_convert_hf_to_gguf(const char *in_dir, const char *out,
                                  const gqa_convert_options *opts)
{
    gqa_status s = gqa_conv_check_options("gqa_convert_hf_to_gguf", in_dir, out, opts);
    if (s == GQA_OK)
        s = gqa_conv_check_out_file(in_dir, out);
    if (s != GQA_OK)
        return s;
    gqa_hf_dir *d = NULL;
    if ((s = gqa_hf_open(in_dir, &d)) == GQA_OK && (s = gqa_conv_hf_family(d, 1)) == GQA_OK &&
        (s = check_config(d)) == GQA_OK)
        s = plan_and_write(d, out, opts);
    gqa_hf_close(d);
    return s;
}
