/* convert_hf.c - gqa_convert_hf: change the number of KV heads of a
 * Llama-family Hugging Face model directory (gqa_convert.h,
 * docs/conversion.md).
 *
 * The shape of convert.c, on the other format: plan (hyper-parameters from
 * config.json, every K/V tensor found and checked, output dtypes decided)
 * before anything is created, then one gqa_hf_write that borrows every other
 * tensor from the mapped shards and produces each K/V tensor through
 * gqa_conv_kv_fill - the same producer, and so the same head arithmetic, as
 * the GGUF converter. HF checkpoints keep Q and K rows in their natural order
 * (no RoPE permutation), which does not matter here: heads move whole.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert_internal.h"
#include "convert/cross_format.h"
#include "convert/hf_internal.h"

static const char *const kv_suffix[GQA_CONV_N_KIND] = {
    "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.k_proj.bias",
    "self_attn.v_proj.bias"};

/* One converted tensor. */
typedef struct hf_job {
    int64_t index;  /* in the directory's tensor list */
    gqa_conv_kv kv; /* the fill callback's user */
    int32_t dtype;  /* output gqa_st_dtype */
    int32_t n_dims;
    int64_t shape[2]; /* output shape, row-major */
} hf_job;

/* Families whose checkpoints name and lay out attention as Llama does:
 * separate q/k/v/o_proj Linear layers, heads as contiguous row blocks. */
static const struct family {
    const char *model_type, *architecture;
} families[] = {{"llama", "LlamaForCausalLM"},
                {"mistral", "MistralForCausalLM"},
                {"qwen2", "Qwen2ForCausalLM"}};

gqa_status gqa_conv_hf_family(const gqa_hf_dir *d, int llama_only)
{
    const gqa_hf_config *c = gqa_hf_config_get(d);
    const size_t n = llama_only ? 1 : sizeof families / sizeof families[0];
    for (size_t i = 0; i < n; i++)
        if (!strcmp(c->model_type, families[i].model_type) ||
            !strcmp(c->architecture, families[i].architecture))
            return GQA_OK;
    return gqa_fail(GQA_ERR_UNSUPPORTED,
                    "'%s': architecture \"%s\" (model_type \"%s\") is not supported: %s",
                    gqa_hf_path(d), c->architecture, c->model_type,
                    llama_only ? "conversion between formats reads Llama models (model_type "
                                 "llama, LlamaForCausalLM)"
                               : "gqa convert reads Llama-family models (model_type llama, "
                                 "mistral or qwen2)");
}

gqa_status gqa_conv_hf_out_type(gqa_convert_out_type t)
{
    if (t == GQA_CONVERT_KEEP || t == GQA_CONVERT_F32 || t == GQA_CONVERT_F16 ||
        t == GQA_CONVERT_BF16)
        return GQA_OK;
    return gqa_fail(GQA_ERR_INVALID_ARG,
                    "output type %s cannot be written to a Hugging Face checkpoint: safetensors "
                    "holds f32, f16 or bf16 (or keep the input's)",
                    gqa_convert_out_type_name(t));
}

/* model.layers.<layer>.<kind> as a job; *found = 0 when it is absent. */
static gqa_status plan_tensor(const gqa_hf_dir *d, const gqa_convert_options *o, int32_t layer,
                              int kind, hf_job *jb, int *found)
{
    char name[128];
    snprintf(name, sizeof name, "model.layers.%d.%s", (int)layer, kv_suffix[kind]);
    jb->index = gqa_hf_find(d, name);
    *found = jb->index >= 0;
    const int bias = kind >= GQA_CONV_K_B;
    if (!*found)
        return bias ? GQA_OK
                    : gqa_fail(GQA_ERR_FORMAT, "'%s': the model lacks the tensor %s",
                               gqa_hf_path(d), name);
    const gqa_st_tensor *t = gqa_hf_tensor_at(d, jb->index);
    const gqa_hf_config *c = gqa_hf_config_get(d);
    uint32_t in_type;
    if (!gqa_st_dtype_to_ggml(t->dtype, &in_type))
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "tensor %s has dtype %s; only F32, F16 and BF16 K/V tensors can be "
                        "converted",
                        name, gqa_st_dtype_name(t->dtype));
    const int64_t rows = (int64_t)c->n_kv_heads * c->head_dim;
    if (t->n_dims != (bias ? 1 : 2) || t->shape[0] != rows || (!bias && t->shape[1] < 1))
        return gqa_fail(GQA_ERR_FORMAT,
                        "tensor %s has shape [%lld, %lld] (rank %d), expected [%lld%s] "
                        "(%d KV heads of %d)",
                        name, (long long)t->shape[0], (long long)t->shape[1], (int)t->n_dims,
                        (long long)rows, bias ? "" : ", hidden", (int)c->n_kv_heads,
                        (int)c->head_dim);
    gqa_conv_kv *kv = &jb->kv;
    kv->name = t->name;
    kv->data = t->data;
    kv->in_type = in_type;
    kv->heads.method = o->method;
    kv->heads.g0 = c->n_kv_heads;
    kv->heads.g = o->kv_heads;
    kv->heads.head_elems = bias ? c->head_dim : c->head_dim * t->shape[1];
    kv->heads.seed = gqa_conv_stream(o->seed, (uint64_t)layer, (uint64_t)kind);
    kv->out_type = gqa_conv_out_type(o->out_type, in_type, t->n_dims);
    gqa_st_dtype_from_ggml(kv->out_type, &jb->dtype);
    jb->n_dims = t->n_dims;
    jb->shape[0] = (int64_t)o->kv_heads * c->head_dim;
    jb->shape[1] = bias ? 1 : t->shape[1];
    return GQA_OK;
}

/* A K/V-like tensor the plan did not take (a layer beyond num_hidden_layers,
 * a fused projection) would be copied with the old head count: refused. */
static gqa_status check_leftovers(const gqa_hf_dir *d, const char *planned)
{
    for (int64_t i = 0; i < gqa_hf_n_tensors(d); i++) {
        const char *nm = gqa_hf_tensor_at(d, i)->name;
        if (planned[i])
            continue;
        if (strstr(nm, "qkv_proj") || strstr(nm, "kv_proj"))
            return gqa_fail(GQA_ERR_UNSUPPORTED,
                            "the model has a fused %s; only separate k_proj/v_proj tensors are "
                            "supported",
                            nm);
        if (strstr(nm, "self_attn.k_proj.") || strstr(nm, "self_attn.v_proj."))
            return gqa_fail(GQA_ERR_FORMAT,
                            "'%s': tensor %s is not in one of the %d layers config.json "
                            "declares (num_hidden_layers)",
                            gqa_hf_path(d), nm, (int)gqa_hf_config_get(d)->n_layers);
    }
    return GQA_OK;
}

/* Every K/V tensor of every layer, in layer order. */
static gqa_status plan(const gqa_hf_dir *d, const gqa_convert_options *o, hf_job **jobs,
                       int64_t *n_jobs)
{
    const gqa_hf_config *c = gqa_hf_config_get(d);
    gqa_status s = gqa_conv_check_heads(c->n_heads, c->n_kv_heads, o->kv_heads, o->method);
    if (s != GQA_OK)
        return s;
    const int64_t n = gqa_hf_n_tensors(d);
    if (c->n_layers > n / 2)
        return gqa_fail(GQA_ERR_FORMAT,
                        "'%s': num_hidden_layers is %d but the model has only "
                        "%lld tensors",
                        gqa_hf_path(d), (int)c->n_layers, (long long)n);
    char *planned = calloc((size_t)(n > 0 ? n : 1), 1);
    *jobs = calloc((size_t)c->n_layers * GQA_CONV_N_KIND, sizeof **jobs);
    *n_jobs = 0;
    if (!planned || !*jobs) {
        free(planned);
        return gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory");
    }
    for (int32_t l = 0; s == GQA_OK && l < c->n_layers; l++)
        for (int kind = 0; s == GQA_OK && kind < GQA_CONV_N_KIND; kind++) {
            int found;
            hf_job *jb = &(*jobs)[*n_jobs];
            s = plan_tensor(d, o, l, kind, jb, &found);
            if (s == GQA_OK && found) {
                planned[jb->index] = 1;
                *n_jobs += 1;
            }
        }
    if (s == GQA_OK)
        s = check_leftovers(d, planned);
    free(planned);
    return s;
}

/* The output: every tensor of the input in its order, K/V ones replaced. */
static gqa_status build(const gqa_hf_dir *d, hf_job *jobs, int64_t n_jobs, gqa_st_out_tensor **out)
{
    const int64_t n = gqa_hf_n_tensors(d);
    gqa_st_out_tensor *t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);
    if (!t)
        return gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory");
    for (int64_t i = 0; i < n; i++) {
        const gqa_st_tensor *src = gqa_hf_tensor_at(d, i);
        t[i].name = src->name;
        t[i].dtype = src->dtype;
        t[i].n_dims = src->n_dims;
        memcpy(t[i].shape, src->shape, sizeof t[i].shape);
        t[i].data = src->data;
    }
    for (int64_t k = 0; k < n_jobs; k++) {
        gqa_st_out_tensor *x = &t[jobs[k].index];
        x->dtype = jobs[k].dtype;
        x->shape[0] = jobs[k].shape[0];
        x->data = NULL;
        x->fill = gqa_conv_kv_fill;
        x->fill_user = &jobs[k].kv;
    }
    *out = t;
    return GQA_OK;
}

gqa_status gqa_convert_hf(const char *in_dir, const char *out_dir, const gqa_convert_options *opts)
{
    gqa_status s = gqa_conv_check_options("gqa_convert_hf", in_dir, out_dir, opts);
    if (s == GQA_OK)
        s = gqa_conv_hf_out_type(opts->out_type);
    if (s != GQA_OK)
        return s;
    gqa_hf_dir *d = NULL;
    hf_job *jobs = NULL;
    int64_t n_jobs = 0;
    gqa_st_out_tensor *t = NULL;
    if ((s = gqa_hf_open(in_dir, &d)) == GQA_OK && (s = gqa_conv_hf_family(d, 0)) == GQA_OK &&
        (s = plan(d, opts, &jobs, &n_jobs)) == GQA_OK && (s = build(d, jobs, n_jobs, &t)) == GQA_OK)
        s = gqa_hf_write(d, out_dir, t, gqa_hf_n_tensors(d), opts->kv_heads, opts->progress,
                         opts->progress_user);
    free(t);
    free(jobs);
    gqa_hf_close(d);
    return s;
}
