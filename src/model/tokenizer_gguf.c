/* tokenizer_gguf.c - gqa_tokenizer_from_gguf: gather the tokenizer.ggml.*
 * metadata of a GGUF file into a gqa_tokenizer_config. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "gqa_model.h"

/* An optional integer id key: -1 when absent. */
static gqa_status opt_id(const gqa_gguf *g, const char *key, int32_t *id)
{
    *id = -1;
    if (gqa_gguf_find_key(g, key) < 0)
        return GQA_OK;
    uint32_t v;
    gqa_status s = gqa_gguf_get_u32(g, key, &v);
    if (s != GQA_OK)
        return s;
    if (v > INT32_MAX)
        return gqa_fail(GQA_ERR_FORMAT, "%s = %u is not a token id", key, (unsigned)v);
    *id = (int32_t)v;
    return GQA_OK;
}

/* Read a string array key into n borrowed strings (malloc'd array). */
static gqa_status str_array(const gqa_gguf *g, const char *key, int32_t *n,
                            gqa_tokenizer_string **out)
{
    gqa_gguf_type et;
    uint64_t count;
    *out = NULL;
    gqa_status s = gqa_gguf_get_arr(g, key, &et, &count);
    if (s != GQA_OK)
        return s;
    if (et != GQA_GGUF_TYPE_STRING)
        return gqa_fail(GQA_ERR_FORMAT, "%s: array of %s, expected strings", key,
                        gqa_gguf_value_type_name(et));
    if (count > INT32_MAX)
        return gqa_fail(GQA_ERR_FORMAT, "%s: %llu entries is too many", key,
                        (unsigned long long)count);
    gqa_tokenizer_string *a = malloc((size_t)count * sizeof *a + 1);
    if (!a)
        return gqa_fail(GQA_ERR_NO_MEMORY, "%s: out of memory", key);
    for (uint64_t i = 0; i < count; i++) {
        const char *p;
        size_t len;
        s = gqa_gguf_arr_str(g, key, i, &p, &len);
        if (s != GQA_OK) {
            free(a);
            return s;
        }
        a[i].data = p;
        a[i].len = len;
    }
    *n = (int32_t)count;
    *out = a;
    return GQA_OK;
}

gqa_status gqa_tokenizer_from_gguf(const gqa_gguf *g, gqa_tokenizer **out)
{
    if (out)
        *out = NULL;
    if (!g || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_tokenizer_from_gguf: NULL argument");
    const char *model;
    size_t model_len;
    gqa_status s = gqa_gguf_get_str(g, "tokenizer.ggml.model", &model, &model_len);
    if (s != GQA_OK)
        return s;
    if (model_len != 4 || memcmp(model, "gpt2", 4) != 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "tokenizer.ggml.model \"%.*s\" is not supported (only \"gpt2\", "
                        "byte-level BPE)",
                        (int)(model_len > 64 ? 64 : model_len), model);

    gqa_tokenizer_config c;
    memset(&c, 0, sizeof c);
    gqa_tokenizer_string *tokens = NULL, *merges = NULL;
    int32_t *types = NULL;
    s = str_array(g, "tokenizer.ggml.tokens", &c.n_tokens, &tokens);
    if (s == GQA_OK)
        s = str_array(g, "tokenizer.ggml.merges", &c.n_merges, &merges);
    if (s == GQA_OK && gqa_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        uint64_t nt;
        s = gqa_gguf_get_arr(g, "tokenizer.ggml.token_type", NULL, &nt);
        if (s == GQA_OK && nt != (uint64_t)c.n_tokens)
            s = gqa_fail(GQA_ERR_FORMAT, "tokenizer.ggml.token_type has %llu entries for %d tokens",
                         (unsigned long long)nt, (int)c.n_tokens);
        if (s == GQA_OK && !(types = malloc((size_t)c.n_tokens * sizeof *types + 1)))
            s = gqa_fail(GQA_ERR_NO_MEMORY, "token types: out of memory");
        if (s == GQA_OK)
            s = gqa_gguf_arr_i32(g, "tokenizer.ggml.token_type", 0, nt, types);
    }
    if (s == GQA_OK)
        s = opt_id(g, "tokenizer.ggml.bos_token_id", &c.bos_id);
    if (s == GQA_OK)
        s = opt_id(g, "tokenizer.ggml.eos_token_id", &c.eos_id);
    if (s == GQA_OK)
        s = opt_id(g, "tokenizer.ggml.unknown_token_id", &c.unk_id);
    if (s == GQA_OK)
        s = opt_id(g, "tokenizer.ggml.padding_token_id", &c.pad_id);
    if (s == GQA_OK && gqa_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        const char *p;
        size_t len;
        s = gqa_gguf_get_str(g, "tokenizer.ggml.pre", &p, &len);
        c.pre.data = p;
        c.pre.len = len;
    }
    if (s == GQA_OK && gqa_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0) {
        int b;
        s = gqa_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b);
        c.add_bos = b;
    }
    if (s == GQA_OK) {
        c.tokens = tokens;
        c.merges = merges;
        c.token_types = types;
        s = gqa_tokenizer_create(&c, out);
    }
    free(tokens);
    free(merges);
    free(types);
    return s;
}
