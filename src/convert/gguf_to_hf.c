/* gguf_to_hf.c - gqa_convert_gguf_to_hf: a "llama" GGUF file to a Hugging
 * Face model directory (gqa_convert.h, docs/conversion.md).
 *
 * The hyper-parameters come from the llama.* keys and become config.json;
 * the tensors are planned by cross_format.c (names, RoPE un-permutation of
 * Q/K, KV heads, types) and written as one model.safetensors by
 * gqa_hf_write_new. Quantised tensors are dequantised with the reference
 * dequantiser and re-encoded in a float type; float tensors whose bytes do
 * not change are copied straight from the mapping.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "convert/cross_format.h"
#include "convert/hf_dir_internal.h"
#include "convert/tokenizer_convert.h"

/* What config.json needs beyond the attention shape. */
typedef struct llama_hp {
    gqa_conv_gguf_shape m;
    int32_t e, ff, ctx; /* ctx 0: the file does not say */
    float eps, base;
} llama_hp;

typedef struct gguf_src {
    const gqa_gguf *g;
    char *used; /* per tensor of g */
} gguf_src;

/* RoPE variants a Llama config.json would need more keys for. */
static gqa_status check_rope(const gqa_gguf *g, const llama_hp *hp)
{
    int32_t n_rot = 0;
    gqa_status s = gqa_conv_gguf_int(g, "llama.rope.dimension_count", hp->m.dk, &n_rot);
    if (s != GQA_OK)
        return s;
    if (n_rot != hp->m.dk || hp->m.dk != hp->m.dv)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "rope.dimension_count %d, key_length %d, value_length %d: a Hugging "
                        "Face Llama needs all three equal",
                        (int)n_rot, (int)hp->m.dk, (int)hp->m.dv);
    if (gqa_gguf_find_key(g, "llama.rope.scaling.type") >= 0) {
        const char *t;
        size_t n;
        if ((s = gqa_gguf_get_str(g, "llama.rope.scaling.type", &t, &n)) != GQA_OK)
            return s;
        if (!(n == 4 && !memcmp(t, "none", 4)))
            return gqa_fail(GQA_ERR_UNSUPPORTED, "RoPE scaling \"%.*s\" is not supported",
                            (int)(n > 32 ? 32 : n), t);
    }
    if (gqa_gguf_find_tensor(g, "rope_freqs.weight") >= 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "rope_freqs.weight (Llama 3 RoPE scaling) is not supported");
    return GQA_OK;
}

static gqa_status read_hparams(const gqa_gguf *g, llama_hp *hp)
{
    gqa_status s = gqa_conv_gguf_read_shape(g, &hp->m);
    if (s == GQA_OK)
        s = gqa_conv_gguf_int(g, "llama.embedding_length", 0, &hp->e);
    if (s == GQA_OK)
        s = gqa_conv_gguf_int(g, "llama.feed_forward_length", 0, &hp->ff);
    hp->ctx = 0;
    if (s == GQA_OK && gqa_gguf_find_key(g, "llama.context_length") >= 0)
        s = gqa_conv_gguf_int(g, "llama.context_length", 0, &hp->ctx);
    if (s == GQA_OK)
        s = gqa_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &hp->eps);
    hp->base = 10000.0f;
    if (s == GQA_OK && gqa_gguf_find_key(g, "llama.rope.freq_base") >= 0)
        s = gqa_gguf_get_f32(g, "llama.rope.freq_base", &hp->base);
    if (s == GQA_OK)
        s = check_rope(g, hp);
    return s;
}

static gqa_status find_gguf(void *user, const char *name, gqa_xf_src *src, int *found)
{
    gguf_src *c = user;
    const int64_t i = gqa_gguf_find_tensor(c->g, name);
    *found = i >= 0;
    if (i < 0)
        return GQA_OK;
    c->used[i] = 1;
    gqa_gguf_tensor_info ti;
    gqa_status s = gqa_gguf_tensor_at(c->g, i, &ti);
    if (s == GQA_ERR_UNSUPPORTED)
        return gqa_fail(s, "tensor %s has ggml type %u, unknown to this build", name,
                        (unsigned)ti.ggml_type);
    if (s != GQA_OK)
        return s;
    if (ti.n_dims > 2)
        return gqa_fail(GQA_ERR_FORMAT, "tensor %s has %d dimensions", name, (int)ti.n_dims);
    src->name = ti.name;
    src->type = ti.ggml_type;
    src->n_dims = ti.n_dims;
    src->rows = ti.n_dims == 2 ? ti.dims[1] : ti.dims[0];
    src->cols = ti.n_dims == 2 ? ti.dims[0] : 1;
    src->data = ti.data;
    return GQA_OK;
}

static gqa_status check_unused(const gguf_src *c)
{
    for (int64_t i = 0; i < gqa_gguf_n_tensors(c->g); i++) {
        gqa_gguf_tensor_info ti;
        if (!c->used[i] && gqa_gguf_tensor_at(c->g, i, &ti) != GQA_ERR_INVALID_ARG)
            return gqa_fail(GQA_ERR_UNSUPPORTED,
                            "tensor %s has no counterpart in a Hugging Face Llama checkpoint",
                            ti.name);
    }
    return GQA_OK;
}

static const char *torch_dtype(uint32_t t)
{
    return t == GQA_GGML_TYPE_F32 ? "float32" : t == GQA_GGML_TYPE_BF16 ? "bfloat16" : "float16";
}

static int add_num(cJSON *o, const char *k, double v)
{
    return cJSON_AddNumberToObject(o, k, v) != NULL;
}

/* bos_token_id / eos_token_id from the tokenizer keys, when present. */
static int add_token_ids(cJSON *o, const gqa_gguf *g)
{
    static const char *const keys[][2] = {{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                                          {"tokenizer.ggml.eos_token_id", "eos_token_id"}};
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        uint32_t id;
        if (gqa_gguf_find_key(g, keys[k][0]) >= 0 && gqa_gguf_get_u32(g, keys[k][0], &id) == GQA_OK)
            ok &= add_num(o, keys[k][1], id);
    }
    return ok;
}

/* config.json, keys sorted as transformers writes them (a LlamaConfig). */
static cJSON *make_config(const gqa_gguf *g, const llama_hp *hp, const gqa_xf_plan *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateStringArray((const char *const[]){"LlamaForCausalLM"}, 1);
    int ok = o && arch && cJSON_AddItemToObject(o, "architectures", arch);
    if (!ok)
        cJSON_Delete(arch);
    ok = ok && cJSON_AddBoolToObject(o, "attention_bias", p->has_bias) && add_token_ids(o, g) &&
         add_num(o, "head_dim", hp->m.dk) && cJSON_AddStringToObject(o, "hidden_act", "silu") &&
         add_num(o, "hidden_size", hp->e) && add_num(o, "intermediate_size", hp->ff);
    if (ok && hp->ctx > 0)
        ok = add_num(o, "max_position_embeddings", hp->ctx);
    ok = ok && cJSON_AddStringToObject(o, "model_type", "llama") &&
         add_num(o, "num_attention_heads", hp->m.h) &&
         add_num(o, "num_hidden_layers", hp->m.n_layers) &&
         add_num(o, "num_key_value_heads", p->g) &&
         add_num(o, "rms_norm_eps", gqa_xf_float_decimal(hp->eps)) &&
         add_num(o, "rope_theta", gqa_xf_float_decimal(hp->base)) &&
         cJSON_AddBoolToObject(o, "tie_word_embeddings", p->tied) &&
         cJSON_AddStringToObject(o, "torch_dtype", torch_dtype(p->t[0].out_type)) &&
         add_num(o, "vocab_size", (double)p->t[0].rows); /* t[0] is the embedding table */
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The plan as safetensors tensors: copies borrow the mapping, the rest fill. */
static gqa_status st_tensors(const gqa_xf_plan *p, gqa_st_out_tensor **out)
{
    gqa_st_out_tensor *t = calloc((size_t)(p->n > 0 ? p->n : 1), sizeof *t);
    if (!t)
        return gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory");
    for (int64_t k = 0; k < p->n; k++) {
        const gqa_xf_tensor *x = &p->t[k];
        t[k].name = x->name;
        gqa_st_dtype_from_ggml(x->out_type, &t[k].dtype);
        t[k].n_dims = x->n_dims;
        t[k].shape[0] = x->rows;
        t[k].shape[1] = x->cols;
        if (x->copy) {
            t[k].data = x->src.data;
        } else {
            t[k].fill = gqa_xf_fill;
            t[k].fill_user = (void *)x;
        }
    }
    *out = t;
    return GQA_OK;
}

static gqa_status plan_and_write(const gqa_gguf *g, const char *out_dir,
                                 const gqa_convert_options *o)
{
    llama_hp hp;
    gqa_status s = read_hparams(g, &hp);
    if (s != GQA_OK)
        return s;
    gguf_src src = {g, calloc((size_t)gqa_gguf_n_tensors(g) + 1, 1)};
    if (!src.used)
        return gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory");
    gqa_xf_plan p = {.to_gguf = 0,
                     .n_layers = hp.m.n_layers,
                     .h = hp.m.h,
                     .g0 = hp.m.g0,
                     .head_dim = hp.m.dk,
                     .n_src_tensors = gqa_gguf_n_tensors(g)};
    gqa_st_out_tensor *t = NULL;
    cJSON *cfg = NULL, *tok[GQA_TOKCONV_N_FILES] = {NULL};
    if ((s = gqa_xf_plan_make(&p, o, find_gguf, &src)) == GQA_OK &&
        (s = check_unused(&src)) == GQA_OK && (s = st_tensors(&p, &t)) == GQA_OK &&
        (s = gqa_tokconv_gguf_build(g, tok)) == GQA_OK) {
        cfg = make_config(g, &hp, &p);
        s = cfg ? gqa_hf_write_new(out_dir, cfg, t, p.n, o->progress, o->progress_user)
                : gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory building config.json");
    }
    for (int k = 0; k < GQA_TOKCONV_N_FILES; k++) {
        if (s == GQA_OK && tok[k])
            s = gqa_hf_write_json(tok[k], out_dir, gqa_tokconv_files[k]);
        cJSON_Delete(tok[k]);
    }
    cJSON_Delete(cfg);
    free(t);
    gqa_xf_plan_free(&p);
    free(src.used);
    return s;
}

gqa_status gqa_convert_gguf_to_hf(const char *in, const char *out_dir,
                                  const gqa_convert_options *opts)
{
    gqa_status s = gqa_conv_check_options("gqa_convert_gguf_to_hf", in, out_dir, opts);
    if (s == GQA_OK)
        s = gqa_conv_hf_out_type(opts->out_type);
    if (s != GQA_OK)
        return s;
    gqa_gguf *g = NULL;
    if ((s = gqa_gguf_open(in, &g)) == GQA_OK)
        s = plan_and_write(g, out_dir, opts);
    gqa_gguf_close(g);
    return s;
}
