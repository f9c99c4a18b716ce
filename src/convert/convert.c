/* convert.c - gqa_convert_gguf: change the number of KV heads of a Llama-family
 * GGUF file (gqa_convert.h, docs/conversion.md).
 *
 * Plan, then write. The plan reads the hyper-parameters, finds every K/V
 * tensor and checks its shape and type, and decides each converted tensor's
 * output type - so a bad request fails before any file is created. The write
 * copies every key (head_count_kv updated) and every other tensor's bytes
 * straight from the mapped input, and produces each converted tensor on
 * demand through a fill callback: at most one K/V tensor is held in memory
 * (as f32) at a time.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/convert_internal.h"
#include "model/quant.h"

static const char *const kind_suffix[GQA_CONV_N_KIND] = {"attn_k.weight", "attn_v.weight",
                                                         "attn_k.bias", "attn_v.bias"};

/* One converted tensor. */
typedef struct kv_job {
    gqa_gguf_tensor_info src; /* the input tensor (borrowed from the mapping) */
    int64_t index;            /* its index in the input */
    gqa_conv_kv kv;           /* g0 -> g heads: the fill callback's user */
    int32_t n_dims;
    int64_t dims[4]; /* output dims, ggml order */
} kv_job;

typedef gqa_conv_gguf_shape model_shape;

/* --------------------------------------------------------------- checks -- */

gqa_status gqa_conv_check_options(const char *fn, const char *in, const char *out,
                                  const gqa_convert_options *o)
{
    if (!in || !out || !o || !in[0] || !out[0])
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: NULL or empty argument", fn);
    if ((unsigned)o->method > GQA_CONVERT_REPEAT)
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: unknown method %d", fn, (int)o->method);
    if ((unsigned)o->out_type > GQA_CONVERT_Q4_1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: unknown output type %d", fn, (int)o->out_type);
    return GQA_OK;
}

gqa_status gqa_conv_check_out_file(const char *in, const char *out)
{
    /* Writing over the input would destroy the mapping we read from (and the
     * user's model); a second name for the same file counts as the same. */
    if (strcmp(in, out) == 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "the output '%s' is the input file; write the "
                        "converted model to a new path",
                        out);
    struct stat si, so;
    if (stat(out, &so) == 0) {
        if (S_ISDIR(so.st_mode))
            return gqa_fail(GQA_ERR_INVALID_ARG, "the output '%s' is a directory", out);
        if (stat(in, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "the output '%s' is the input file '%s' under another name", out, in);
    }
    return GQA_OK;
}

gqa_status gqa_conv_gguf_int(const gqa_gguf *g, const char *key, int32_t dflt, int32_t *out)
{
    const int64_t i = gqa_gguf_find_key(g, key);
    if (i < 0 && dflt > 0) {
        *out = dflt;
        return GQA_OK;
    }
    if (i >= 0 && gqa_gguf_key_type(g, i) == GQA_GGUF_TYPE_ARRAY)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "%s is a per-layer array; only one value for all "
                        "layers is supported",
                        key);
    uint32_t v;
    gqa_status s = gqa_gguf_get_u32(g, key, &v);
    if (s != GQA_OK)
        return s;
    if (v == 0 || v > (1u << 24))
        return gqa_fail(GQA_ERR_FORMAT, "%s = %u is out of range", key, (unsigned)v);
    *out = (int32_t)v;
    return GQA_OK;
}

gqa_status gqa_conv_gguf_read_shape(const gqa_gguf *g, gqa_conv_gguf_shape *m)
{
    const char *arch;
    size_t alen;
    gqa_status s = gqa_gguf_get_str(g, "general.architecture", &arch, &alen);
    if (s != GQA_OK)
        return s;
    if (alen != 5 || memcmp(arch, "llama", 5) != 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "architecture \"%.*s\" is not supported (gqa convert reads \"llama\" "
                        "GGUF files)",
                        (int)(alen > 64 ? 64 : alen), arch);
    int32_t e = 0;
    if ((s = gqa_conv_gguf_int(g, "llama.block_count", 0, &m->n_layers)) != GQA_OK ||
        (s = gqa_conv_gguf_int(g, "llama.embedding_length", 0, &e)) != GQA_OK ||
        (s = gqa_conv_gguf_int(g, "llama.attention.head_count", 0, &m->h)) != GQA_OK ||
        (s = gqa_conv_gguf_int(g, "llama.attention.head_count_kv", m->h, &m->g0)) != GQA_OK)
        return s;
    if (e % m->h != 0 && gqa_gguf_find_key(g, "llama.attention.key_length") < 0)
        return gqa_fail(GQA_ERR_FORMAT, "embedding_length %d is not a multiple of head_count %d",
                        (int)e, (int)m->h);
    if ((s = gqa_conv_gguf_int(g, "llama.attention.key_length", e / m->h, &m->dk)) != GQA_OK ||
        (s = gqa_conv_gguf_int(g, "llama.attention.value_length", m->dk, &m->dv)) != GQA_OK)
        return s;
    return GQA_OK;
}

/* ----------------------------------------------------------------- plan -- */

/* Tensor blk.<layer>.<kind> as a job; *found = 0 when it is absent. */
static gqa_status plan_tensor(const gqa_gguf *g, const model_shape *m, const gqa_convert_options *o,
                              int32_t layer, int kind, kv_job *jb, int *found)
{
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", (int)layer, kind_suffix[kind]);
    jb->index = gqa_gguf_find_tensor(g, name);
    *found = jb->index >= 0;
    if (!*found)
        return kind >= GQA_CONV_K_B
                   ? GQA_OK /* biases are optional */
                   : gqa_fail(GQA_ERR_FORMAT, "the model lacks the tensor %s", name);
    gqa_status s = gqa_gguf_tensor_at(g, jb->index, &jb->src);
    if (s != GQA_OK)
        return s;
    const int64_t dh = (kind == GQA_CONV_K_W || kind == GQA_CONV_K_B) ? m->dk : m->dv;
    const int bias = kind >= GQA_CONV_K_B;
    const int64_t rows = (int64_t)m->g0 * dh;
    if (jb->src.n_dims != (bias ? 1 : 2) || jb->src.dims[bias ? 0 : 1] != rows)
        return gqa_fail(GQA_ERR_FORMAT,
                        "tensor %s has shape [%lld, %lld], expected %s%lld%s "
                        "(%d KV heads of %lld)",
                        name, (long long)jb->src.dims[0], (long long)jb->src.dims[1],
                        bias ? "[" : "[n_embd, ", (long long)rows, "]", (int)m->g0, (long long)dh);
    gqa_conv_kv *kv = &jb->kv;
    kv->name = jb->src.name;
    kv->data = jb->src.data;
    kv->in_type = jb->src.ggml_type;
    kv->heads.method = o->method;
    kv->heads.g0 = m->g0;
    kv->heads.g = o->kv_heads;
    kv->heads.head_elems = bias ? dh : dh * jb->src.dims[0];
    kv->heads.seed = gqa_conv_stream(o->seed, (uint64_t)layer, (uint64_t)kind);
    kv->out_type = gqa_conv_out_type(o->out_type, kv->in_type, jb->src.n_dims);
    if (o->out_type == GQA_CONVERT_KEEP && kv->out_type != kv->in_type && !bias) {
        /* a type we cannot write is still kept when every head is a copy */
        const uint32_t fallback = kv->out_type;
        kv->out_type = kv->in_type;
        for (int32_t j = 0; j < o->kv_heads; j++)
            if (gqa_conv_kv_copy_source(kv, j) < 0) {
                kv->out_type = fallback;
                break;
            }
    }
    jb->n_dims = jb->src.n_dims;
    jb->dims[0] = bias ? (int64_t)o->kv_heads * dh : jb->src.dims[0];
    jb->dims[1] = bias ? 1 : (int64_t)o->kv_heads * dh;
    int64_t be, bb;
    gqa_gguf_type_block(kv->out_type, &be, &bb);
    if (jb->dims[0] % be != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "tensor %s: rows of %lld values cannot be stored as "
                        "%s (blocks of %lld)",
                        name, (long long)jb->dims[0], gqa_gguf_type_name(kv->out_type),
                        (long long)be);
    return gqa_conv_kv_check(kv);
}

/* Every K/V tensor of every layer, in layer order; *n_jobs receives the count. */
static gqa_status plan(const gqa_gguf *g, const model_shape *m, const gqa_convert_options *o,
                       kv_job **jobs, int64_t *n_jobs)
{
    gqa_status s = gqa_conv_check_heads(m->h, m->g0, o->kv_heads, o->method);
    if (s != GQA_OK)
        return s;
    /* every layer needs its own K and V tensors: a block_count beyond that is
     * a lie, refused before sizing anything by it */
    if (m->n_layers > gqa_gguf_n_tensors(g) / 2)
        return gqa_fail(GQA_ERR_FORMAT,
                        "llama.block_count is %d but the file has only %lld "
                        "tensors",
                        (int)m->n_layers, (long long)gqa_gguf_n_tensors(g));
    *jobs = calloc((size_t)m->n_layers * GQA_CONV_N_KIND, sizeof **jobs);
    if (!*jobs)
        return gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory");
    *n_jobs = 0;
    for (int32_t l = 0; l < m->n_layers; l++) {
        char fused[64];
        snprintf(fused, sizeof fused, "blk.%d.attn_qkv.weight", (int)l);
        if (gqa_gguf_find_tensor(g, fused) >= 0)
            return gqa_fail(GQA_ERR_UNSUPPORTED,
                            "the model has a fused %s; only separate "
                            "attn_k/attn_v tensors are supported",
                            fused);
        for (int kind = 0; kind < GQA_CONV_N_KIND; kind++) {
            int found;
            s = plan_tensor(g, m, o, l, kind, &(*jobs)[*n_jobs], &found);
            if (s != GQA_OK)
                return s;
            *n_jobs += found;
        }
    }
    return GQA_OK;
}

/* ---------------------------------------------------------------- write -- */

/* head_count_kv = kv, in the integer type the file used (u32 when absent, not
 * an integer, or too small a type for kv). */
static gqa_status set_head_count_kv(gqa_gguf_writer *w, const gqa_gguf *g, int32_t kv)
{
    static const char key[] = "llama.attention.head_count_kv";
    const int64_t i = gqa_gguf_find_key(g, key);
    const int t = i >= 0 ? gqa_gguf_key_type(g, i) : GQA_GGUF_TYPE_UINT32;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
    } v;
    int fits = 1;
    switch (t) {
    case GQA_GGUF_TYPE_UINT8: v.u8 = (uint8_t)kv, fits = kv <= UINT8_MAX; break;
    case GQA_GGUF_TYPE_INT8: v.i8 = (int8_t)kv, fits = kv <= INT8_MAX; break;
    case GQA_GGUF_TYPE_UINT16: v.u16 = (uint16_t)kv, fits = kv <= UINT16_MAX; break;
    case GQA_GGUF_TYPE_INT16: v.i16 = (int16_t)kv, fits = kv <= INT16_MAX; break;
    case GQA_GGUF_TYPE_INT32: v.i32 = kv; break;
    case GQA_GGUF_TYPE_UINT64: v.u64 = (uint64_t)kv; break;
    case GQA_GGUF_TYPE_INT64: v.i64 = kv; break;
    default: fits = 0; break; /* u32, or not an integer (read_shape refused that) */
    }
    if (!fits)
        return gqa_gguf_writer_set_u32(w, key, (uint32_t)kv);
    return gqa_gguf_writer_set_scalar(w, key, (gqa_gguf_type)t, &v);
}

/* The output: the input's keys, then its tensors in its order, K/V tensors
 * replaced by their jobs. */
static gqa_status build(gqa_gguf_writer *w, const gqa_gguf *g, kv_job *jobs, int64_t n_jobs,
                        int32_t kv)
{
    gqa_status s = gqa_gguf_writer_copy_keys(w, g);
    if (s == GQA_OK)
        s = set_head_count_kv(w, g, kv);
    const int64_t n = gqa_gguf_n_tensors(g);
    kv_job **job_of = calloc((size_t)(n > 0 ? n : 1), sizeof *job_of);
    if (!job_of)
        return gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory");
    for (int64_t k = 0; k < n_jobs; k++)
        job_of[jobs[k].index] = &jobs[k];
    for (int64_t i = 0; s == GQA_OK && i < n; i++) {
        const kv_job *jb = job_of[i];
        if (jb) {
            s = gqa_gguf_writer_add_tensor_fill(w, jb->src.name, jb->kv.out_type, jb->n_dims,
                                                jb->dims, gqa_conv_kv_fill, (void *)&jb->kv);
            continue;
        }
        gqa_gguf_tensor_info t;
        s = gqa_gguf_tensor_at(g, i, &t);
        if (s == GQA_ERR_UNSUPPORTED)
            s = gqa_fail(s,
                         "tensor %s has ggml type %u, unknown to this build: it cannot be "
                         "copied",
                         t.name, (unsigned)t.ggml_type);
        if (s == GQA_OK)
            s = gqa_gguf_writer_add_tensor(w, t.name, t.ggml_type, t.n_dims, t.dims, t.data);
    }
    free(job_of);
    return s;
}

gqa_status gqa_convert_gguf(const char *in, const char *out, const gqa_convert_options *opts)
{
    gqa_status s = gqa_conv_check_options("gqa_convert_gguf", in, out, opts);
    if (s == GQA_OK)
        s = gqa_conv_check_out_file(in, out);
    if (s != GQA_OK)
        return s;
    gqa_gguf *g = NULL;
    gqa_gguf_writer *w = NULL;
    kv_job *jobs = NULL;
    int64_t n_jobs = 0;
    model_shape m;
    if ((s = gqa_gguf_open(in, &g)) == GQA_OK && (s = gqa_conv_gguf_read_shape(g, &m)) == GQA_OK &&
        (s = plan(g, &m, opts, &jobs, &n_jobs)) == GQA_OK &&
        (s = gqa_gguf_writer_create(&w)) == GQA_OK &&
        (s = build(w, g, jobs, n_jobs, opts->kv_heads)) == GQA_OK)
        s = gqa_gguf_writer_write(w, out, opts->progress, opts->progress_user);
    gqa_gguf_writer_free(w);
    free(jobs);
    gqa_gguf_close(g);
    return s;
}
