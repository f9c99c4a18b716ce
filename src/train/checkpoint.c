/* checkpoint.c - training checkpoints as GGUF files.
 *
 * The model file is a plain Llama GGUF (f32) with a byte-level tokenizer, so
 * gqa run / perplexity / convert read it like any other model. The
 * optimiser's moments live in a sidecar file (X.opt.gguf) with tensors
 * "m.<name>" and "v.<name>" and the step and schedule as gqa.opt.* keys:
 * keeping them out of the model file means gqa convert never carries moments
 * whose shapes no longer fit the heads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "gqa_convert.h"
#include "gqa_model.h"
#include "model/tokenizer_internal.h"
#include "train/train_internal.h"

gqa_status gqa_train_opt_path(const char *path, char *buf, size_t cap)
{
    if (!path || !buf)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_opt_path: NULL argument");
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".gguf"))
        n -= 5;
    if (n + 10 > cap)
        return gqa_fail(GQA_ERR_INVALID_ARG, "checkpoint path too long: %s", path);
    memcpy(buf, path, n);
    memcpy(buf + n, ".opt.gguf", 10);
    return GQA_OK;
}

/* tokenizer.ggml.*: ids 0..255 are the bytes, 256.. control tokens. */
static gqa_status put_tokenizer(gqa_gguf_writer *w, int32_t V)
{
    char(*names)[24] = malloc((size_t)V * sizeof *names);
    const char **strs = malloc((size_t)V * sizeof *strs);
    size_t *lens = malloc((size_t)V * sizeof *lens);
    int32_t *types = malloc((size_t)V * sizeof *types);
    gqa_status s = GQA_OK;
    if (!names || !strs || !lens || !types)
        s = gqa_fail(GQA_ERR_NO_MEMORY, "checkpoint tokenizer: out of memory");
    for (int32_t i = 0; s == GQA_OK && i < V; i++) {
        if (i < 256) {
            lens[i] = (size_t)gqa_tokenizer_byte_spelling(i, names[i]);
            types[i] = GQA_TOKEN_TYPE_NORMAL;
        } else {
            lens[i] = (size_t)(i == 256 ? snprintf(names[i], 24, "<|endoftext|>")
                                        : snprintf(names[i], 24, "<|special_%d|>", (int)i - 256));
            types[i] = GQA_TOKEN_TYPE_CONTROL;
        }
        strs[i] = names[i];
    }
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt2", 4);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)V);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GQA_GGUF_TYPE_INT32, types,
                                    (uint64_t)V);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", strs, lens, 0);
    if (s == GQA_OK && V > 256) {
        s = gqa_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 256);
        if (s == GQA_OK)
            s = gqa_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 256);
    }
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 0);
    free(names);
    free(strs);
    free(lens);
    free(types);
    return s;
}

static gqa_status put_u64(gqa_gguf_writer *w, const char *key, uint64_t v)
{
    return gqa_gguf_writer_set_scalar(w, key, GQA_GGUF_TYPE_UINT64, &v);
}

static gqa_status put_hparams(gqa_gguf_writer *w, const gqa_train_config *c, const char *name)
{
    const char *nm = name ? name : "gqa-train";
    gqa_status s = gqa_gguf_writer_set_str(w, "general.architecture", "llama", 5);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_str(w, "general.name", nm, strlen(nm));
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "general.file_type", 0); /* all f32 */
    const struct {
        const char *k;
        int32_t v;
    } u[] = {{"llama.context_length", c->n_ctx},
             {"llama.embedding_length", c->n_embd},
             {"llama.block_count", c->n_layers},
             {"llama.feed_forward_length", c->n_ff},
             {"llama.attention.head_count", c->n_heads},
             {"llama.attention.head_count_kv", c->n_kv_heads},
             {"llama.attention.key_length", c->head_dim},
             {"llama.attention.value_length", c->head_dim},
             {"llama.rope.dimension_count", c->head_dim},
             {"llama.vocab_size", c->n_vocab}};
    for (size_t i = 0; s == GQA_OK && i < sizeof u / sizeof u[0]; i++)
        s = gqa_gguf_writer_set_u32(w, u[i].k, (uint32_t)u[i].v);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_base);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->rms_eps);
    return s;
}

static gqa_status put_meta(gqa_gguf_writer *w, const gqa_train_meta *m)
{
    gqa_status s = put_u64(w, "gqa.train.steps", (uint64_t)m->steps);
    if (s == GQA_OK)
        s = put_u64(w, "gqa.train.tokens", (uint64_t)m->tokens);
    if (s == GQA_OK)
        s = put_u64(w, "gqa.train.seed", m->seed);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "gqa.train.batch", (uint32_t)m->batch);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "gqa.train.seq_len", (uint32_t)m->seq_len);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_u32(w, "gqa.train.accum", (uint32_t)m->accum);
    if (s == GQA_OK)
        s = put_u64(w, "gqa.train.source_steps", (uint64_t)m->source_steps);
    if (s == GQA_OK && !isnan(m->val_loss))
        s = gqa_gguf_writer_set_f32(w, "gqa.train.val_loss", m->val_loss);
    return s;
}

/* The model's tensors (prefix "" ) or one moment array's (prefix "m."/"v."). */
static gqa_status put_tensors(gqa_gguf_writer *w, const gqa_train_model *m, const char *prefix,
                              const float *base)
{
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const train_tensor *t = &m->tensors[i];
        char nm[80];
        snprintf(nm, sizeof nm, "%s%s", prefix, t->name);
        gqa_status s =
            gqa_gguf_writer_add_tensor(w, nm, GQA_GGML_TYPE_F32, t->n_dims, t->dims, base + t->off);
        if (s != GQA_OK)
            return s;
    }
    return GQA_OK;
}

static gqa_status save_optim(const gqa_train_model *m, gqa_train_optim *o, const char *path)
{
    char opath[4096];
    gqa_status s = gqa_train_opt_path(path, opath, sizeof opath);
    gqa_gguf_writer *w = NULL;
    if (s == GQA_OK)
        s = gqa_gguf_writer_create(&w);
    const gqa_train_optim_config *c = gqa_train_optim_get_config(o);
    const struct {
        const char *k;
        float v;
    } f[] = {{"gqa.opt.lr", c->lr},       {"gqa.opt.min_lr", c->min_lr},
             {"gqa.opt.beta1", c->beta1}, {"gqa.opt.beta2", c->beta2},
             {"gqa.opt.eps", c->eps},     {"gqa.opt.weight_decay", c->weight_decay},
             {"gqa.opt.clip", c->clip}};
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_str(w, "general.architecture", "gqa-optimizer", 13);
    if (s == GQA_OK)
        s = put_u64(w, "gqa.opt.step", (uint64_t)gqa_train_optim_steps(o));
    if (s == GQA_OK)
        s = put_u64(w, "gqa.opt.warmup_steps", (uint64_t)c->warmup_steps);
    if (s == GQA_OK)
        s = put_u64(w, "gqa.opt.total_steps", (uint64_t)c->total_steps);
    for (size_t i = 0; s == GQA_OK && i < sizeof f / sizeof f[0]; i++)
        s = gqa_gguf_writer_set_f32(w, f[i].k, f[i].v);
    if (s == GQA_OK)
        s = put_tensors(w, m, "m.", gqa_train_optim_moment(o, 0));
    if (s == GQA_OK)
        s = put_tensors(w, m, "v.", gqa_train_optim_moment(o, 1));
    if (s == GQA_OK)
        s = gqa_gguf_writer_write(w, opath, NULL, NULL);
    gqa_gguf_writer_free(w);
    return s;
}

gqa_status gqa_train_save(const gqa_train_model *m, const gqa_train_optim *o,
                          const gqa_train_meta *meta, const char *name, const char *path)
{
    if (!m || !meta || !path)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_save: NULL argument");
    gqa_gguf_writer *w;
    gqa_status s = gqa_gguf_writer_create(&w);
    if (s != GQA_OK)
        return s;
    s = put_hparams(w, &m->cfg, name);
    if (s == GQA_OK && m->cfg.n_vocab >= 256)
        s = put_tokenizer(w, m->cfg.n_vocab);
    if (s == GQA_OK)
        s = put_meta(w, meta);
    if (s == GQA_OK)
        s = put_tensors(w, m, "", m->params);
    /* the sidecar first: a model file never names moments that are not there */
    if (s == GQA_OK && o)
        s = save_optim(m, (gqa_train_optim *)o, path);
    if (s == GQA_OK)
        s = gqa_gguf_writer_write(w, path, NULL, NULL);
    gqa_gguf_writer_free(w);
    return s;
}

static uint64_t opt_u64(const gqa_gguf *g, const char *key)
{
    uint64_t v = 0;
    if (gqa_gguf_find_key(g, key) >= 0 && gqa_gguf_get_u64(g, key, &v) != GQA_OK)
        v = 0;
    return v;
}

static void read_meta(const gqa_gguf *g, gqa_train_meta *meta)
{
    memset(meta, 0, sizeof *meta);
    meta->steps = (int64_t)opt_u64(g, "gqa.train.steps");
    meta->tokens = (int64_t)opt_u64(g, "gqa.train.tokens");
    meta->seed = opt_u64(g, "gqa.train.seed");
    meta->batch = (int32_t)opt_u64(g, "gqa.train.batch");
    meta->seq_len = (int32_t)opt_u64(g, "gqa.train.seq_len");
    meta->accum = (int32_t)opt_u64(g, "gqa.train.accum");
    meta->source_steps = (int64_t)opt_u64(g, "gqa.train.source_steps");
    meta->val_loss = NAN;
    if (gqa_gguf_find_key(g, "gqa.train.val_loss") >= 0)
        gqa_gguf_get_f32(g, "gqa.train.val_loss", &meta->val_loss);
}

static gqa_status read_moments(const gqa_gguf *g, const gqa_train_model *m, const char *prefix,
                               float *dst, const char *path)
{
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const train_tensor *t = &m->tensors[i];
        char nm[80];
        snprintf(nm, sizeof nm, "%s%s", prefix, t->name);
        gqa_gguf_tensor_info ti;
        gqa_status s = gqa_gguf_tensor(g, nm, &ti);
        if (s != GQA_OK)
            return s;
        if (ti.ggml_type != GQA_GGML_TYPE_F32 || ti.n_elements != t->n || ti.dims[0] != t->dims[0])
            return gqa_fail(GQA_ERR_FORMAT, "%s: %s does not fit the model's %s", path, nm,
                            t->name);
        memcpy(dst + t->off, ti.data, (size_t)t->n * sizeof(float));
    }
    return GQA_OK;
}

static gqa_status load_optim(const char *path, const gqa_train_model *m, gqa_train_optim **out)
{
    char opath[4096];
    gqa_status s = gqa_train_opt_path(path, opath, sizeof opath);
    gqa_gguf *g = NULL;
    if (s == GQA_OK)
        s = gqa_gguf_open(opath, &g);
    if (s != GQA_OK)
        return s;
    gqa_train_optim_config c;
    gqa_train_optim_config_default(&c);
    float *f[] = {&c.lr, &c.min_lr, &c.beta1, &c.beta2, &c.eps, &c.weight_decay, &c.clip};
    const char *fk[] = {"gqa.opt.lr",  "gqa.opt.min_lr",       "gqa.opt.beta1", "gqa.opt.beta2",
                        "gqa.opt.eps", "gqa.opt.weight_decay", "gqa.opt.clip"};
    for (size_t i = 0; s == GQA_OK && i < sizeof f / sizeof f[0]; i++)
        s = gqa_gguf_get_f32(g, fk[i], f[i]);
    uint64_t step = 0, warm = 0, total = 0;
    if (s == GQA_OK)
        s = gqa_gguf_get_u64(g, "gqa.opt.step", &step);
    if (s == GQA_OK)
        s = gqa_gguf_get_u64(g, "gqa.opt.warmup_steps", &warm);
    if (s == GQA_OK)
        s = gqa_gguf_get_u64(g, "gqa.opt.total_steps", &total);
    c.warmup_steps = (int64_t)warm;
    c.total_steps = (int64_t)total;
    gqa_train_optim *o = NULL;
    if (s == GQA_OK)
        s = gqa_train_optim_create(m, &c, &o);
    if (s == GQA_OK)
        s = read_moments(g, m, "m.", gqa_train_optim_moment(o, 0), opath);
    if (s == GQA_OK)
        s = read_moments(g, m, "v.", gqa_train_optim_moment(o, 1), opath);
    gqa_gguf_close(g);
    if (s != GQA_OK) {
        gqa_train_optim_free(o);
        return s;
    }
    gqa_train_optim_set_step(o, (int64_t)step);
    *out = o;
    return GQA_OK;
}

gqa_status gqa_train_load(const char *path, gqa_train_model **m, gqa_train_optim **o,
                          gqa_train_meta *meta)
{
    if (m)
        *m = NULL;
    if (o)
        *o = NULL;
    if (!path || !m)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_load: NULL argument");
    gqa_status s = gqa_train_model_from_gguf(path, m);
    if (s == GQA_OK && meta) {
        gqa_gguf *g;
        s = gqa_gguf_open(path, &g);
        if (s == GQA_OK) {
            read_meta(g, meta);
            gqa_gguf_close(g);
        }
    }
    if (s == GQA_OK && o)
        s = load_optim(path, *m, o);
    if (s != GQA_OK) {
        gqa_train_model_free(*m);
        *m = NULL;
    }
    return s;
}
