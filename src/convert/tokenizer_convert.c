/* tokenizer_convert.c - byte-level BPE tokenizers between a Hugging Face
 * directory (tokenizer.json, tokenizer_config.json) and GGUF tokenizer.ggml.*
 * keys (tokenizer_convert.h, docs/conversion.md).
 *
 * HF -> GGUF: the vocabulary and added tokens become tokenizer.ggml.tokens
 * (dense ids 0..n-1), token_type (special added tokens CONTROL, other added
 * tokens USER_DEFINED, the rest NORMAL), merges ("a b"), the special ids,
 * add_bos_token, and tokenizer.ggml.pre: the llama.cpp name whose regex list
 * (src/model/tokenizer_encode.c) is exactly the pre_tokenizer's splits.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "convert/hf_dir_internal.h"
#include "convert/tokenizer_convert.h"
#include "model/tokenizer_pre.h"

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER = 4 };

/* GPT-2's split, as ByteLevel{use_regex: true} applies it (and as
 * tokenizer_encode.c spells it). */
#define RE_BYTELEVEL                                                                               \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define MAX_SPLITS 8

typedef struct hf_tok {
    const char *dir;
    cJSON *tj, *tc, *cfg; /* tokenizer.json; tokenizer_config.json, config.json or NULL */
    int32_t n;
    const char **tokens; /* n, borrowed from tj */
    int32_t *types;      /* n */
    char **merges;       /* n_merges, malloc'd */
    int64_t n_merges;
    const char *pre;
} hf_tok;

static const cJSON *item(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* The optional JSON file dir/name: *out NULL when absent. */
static gqa_status read_opt(const char *dir, const char *name, cJSON **out)
{
    char p[4400];
    *out = NULL;
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
        return gqa_fail(GQA_ERR_INVALID_ARG, "path '%s/%s' is too long", dir, name);
    if (access(p, F_OK) != 0)
        return GQA_OK;
    return gqa_hf_read_json(p, out);
}

/* ------------------------------------------------- pre-tokenizer name -- */

static gqa_status add_split(const char **re, int *n, const char *r, const char *dir)
{
    if (*n >= MAX_SPLITS)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "'%s': tokenizer.json: too many pre-tokenizer splits",
                        dir);
    re[(*n)++] = r;
    return GQA_OK;
}

/* Gather the regexes of a pre_tokenizer node, in application order. */
static gqa_status collect_splits(const cJSON *p, const char **re, int *n, const char *dir)
{
    const cJSON *ty = item(p, "type");
    const char *t = cJSON_IsString(ty) ? ty->valuestring : "";
    if (!strcmp(t, "Sequence")) {
        const cJSON *a = item(p, "pretokenizers");
        gqa_status s = GQA_OK;
        for (const cJSON *e = cJSON_IsArray(a) ? a->child : NULL; e && s == GQA_OK; e = e->next)
            s = collect_splits(e, re, n, dir);
        return s;
    }
    if (!strcmp(t, "ByteLevel")) {
        const cJSON *u = item(p, "use_regex");
        return cJSON_IsFalse(u) ? GQA_OK : add_split(re, n, RE_BYTELEVEL, dir);
    }
    if (!strcmp(t, "Digits"))
        return add_split(re, n, cJSON_IsTrue(item(p, "individual_digits")) ? "\\p{N}" : "\\p{N}+",
                         dir);
    if (!strcmp(t, "Split")) {
        const cJSON *r = item(item(p, "pattern"), "Regex");
        if (cJSON_IsString(r))
            return add_split(re, n, r->valuestring, dir);
    }
    return gqa_fail(GQA_ERR_UNSUPPORTED,
                    "'%s': tokenizer.json: pre-tokenizer \"%.40s\" is not supported (Sequence, "
                    "Split with a Regex, Digits and ByteLevel are)",
                    dir, t);
}

static gqa_status find_pre(hf_tok *h)
{
    const char *re[MAX_SPLITS];
    int n = 0;
    const cJSON *p = item(h->tj, "pre_tokenizer");
    if (!cJSON_IsObject(p))
        return gqa_fail(GQA_ERR_UNSUPPORTED, "'%s': tokenizer.json has no pre_tokenizer", h->dir);
    gqa_status s = collect_splits(p, re, &n, h->dir);
    if (s != GQA_OK)
        return s;
    h->pre = gqa_tokenizer_pre_name(n, re);
    if (!h->pre)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "'%s': tokenizer.json: the pre-tokenizer's %d split(s) (first: %.120s) "
                        "match no pre-tokenizer gqa knows (gpt2, smollm, starcoder, ...)",
                        h->dir, n, n ? re[0] : "none");
    return GQA_OK;
}

/* ---------------------------------------------------------- vocabulary -- */

static gqa_status put_token(hf_tok *h, double id, const char *text, int32_t type)
{
    if (!(id >= 0 && id < h->n) || id != (double)(int32_t)id)
        return gqa_fail(GQA_ERR_FORMAT, "'%s': tokenizer.json: token \"%.40s\" has id %g", h->dir,
                        text, id);
    const int32_t i = (int32_t)id;
    if (h->tokens[i] && strcmp(h->tokens[i], text) != 0)
        return gqa_fail(GQA_ERR_FORMAT,
                        "'%s': tokenizer.json: id %d is both \"%.40s\" and \"%.40s\"", h->dir,
                        (int)i, h->tokens[i], text);
    h->tokens[i] = text;
    if (type != TT_NORMAL || !h->types[i])
        h->types[i] = type;
    return GQA_OK;
}

/* The largest id + 1 over the vocabulary and the added tokens. */
static gqa_status count_ids(hf_tok *h, const cJSON *vocab, const cJSON *added)
{
    double top = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e))
            return gqa_fail(GQA_ERR_FORMAT, "'%s': tokenizer.json: vocab \"%.40s\" is no id",
                            h->dir, e->string);
        top = e->valuedouble > top ? e->valuedouble : top;
    }
    for (const cJSON *e = cJSON_IsArray(added) ? added->child : NULL; e; e = e->next) {
        const cJSON *id = item(e, "id");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(item(e, "content")))
            return gqa_fail(GQA_ERR_FORMAT, "'%s': tokenizer.json: an added token lacks id/content",
                            h->dir);
        top = id->valuedouble > top ? id->valuedouble : top;
    }
    if (!(top >= 0 && top < 16777216.0))
        return gqa_fail(GQA_ERR_FORMAT, "'%s': tokenizer.json: vocabulary of %g tokens", h->dir,
                        top + 1);
    h->n = (int32_t)top + 1;
    h->tokens = calloc((size_t)h->n, sizeof *h->tokens);
    h->types = calloc((size_t)h->n, sizeof *h->types);
    return h->tokens && h->types ? GQA_OK : gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory");
}

static gqa_status read_vocab(hf_tok *h)
{
    const cJSON *m = item(h->tj, "model"), *ty = item(m, "type");
    if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "BPE") != 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "'%s': tokenizer.json: model type \"%.40s\" is not supported (only "
                        "byte-level BPE)",
                        h->dir, cJSON_IsString(ty) ? ty->valuestring : "?");
    const cJSON *vocab = item(m, "vocab"), *added = item(h->tj, "added_tokens");
    if (!cJSON_IsObject(vocab))
        return gqa_fail(GQA_ERR_FORMAT, "'%s': tokenizer.json: model.vocab is not an object",
                        h->dir);
    gqa_status s = count_ids(h, vocab, added);
    for (const cJSON *e = vocab->child; e && s == GQA_OK; e = e->next)
        s = put_token(h, e->valuedouble, e->string, TT_NORMAL);
    for (const cJSON *e = cJSON_IsArray(added) ? added->child : NULL; e && s == GQA_OK; e = e->next)
        s = put_token(h, item(e, "id")->valuedouble, item(e, "content")->valuestring,
                      cJSON_IsTrue(item(e, "special")) ? TT_CONTROL : TT_USER);
    for (int32_t i = 0; s == GQA_OK && i < h->n; i++)
        if (!h->tokens[i])
            s = gqa_fail(
                GQA_ERR_FORMAT,
                "'%s': tokenizer.json: no token has id %d (ids must be 0..%d without gaps)", h->dir,
                (int)i, (int)h->n - 1);
    return s;
}

static gqa_status read_merges(hf_tok *h)
{
    const cJSON *a = item(item(h->tj, "model"), "merges");
    if (!cJSON_IsArray(a))
        return gqa_fail(GQA_ERR_FORMAT, "'%s': tokenizer.json: model.merges is not an array",
                        h->dir);
    h->merges = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof *h->merges);
    if (!h->merges)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory");
    for (const cJSON *e = a->child; e; e = e->next) {
        const char *l = NULL, *r = NULL;
        if (cJSON_IsString(e) && strchr(e->valuestring, ' '))
            l = e->valuestring;
        else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                 cJSON_IsString(e->child->next))
            l = e->child->valuestring, r = e->child->next->valuestring;
        else
            return gqa_fail(GQA_ERR_FORMAT,
                            "'%s': tokenizer.json: merge %lld is not \"a b\" "
                            "or [a, b]",
                            h->dir, (long long)h->n_merges);
        char *m = r ? malloc(strlen(l) + strlen(r) + 2) : strdup(l);
        if (!m)
            return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory");
        if (r)
            sprintf(m, "%s %s", l, r);
        h->merges[h->n_merges++] = m;
    }
    return GQA_OK;
}

/* ------------------------------------------------------- special ids -- */

/* The id of a token named by tokenizer_config.json (a string or {content}),
 * else config.json's id_key; -1 when neither says. */
static int32_t special_id(const hf_tok *h, const char *key, const char *id_key)
{
    const cJSON *v = item(h->tc, key);
    if (cJSON_IsObject(v))
        v = item(v, "content");
    if (cJSON_IsString(v)) {
        for (int32_t i = 0; i < h->n; i++)
            if (!strcmp(h->tokens[i], v->valuestring))
                return i;
    }
    const cJSON *n = id_key ? item(h->cfg, id_key) : NULL;
    if (cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble < h->n)
        return (int32_t)n->valuedouble;
    return -1;
}

static gqa_status set_id(gqa_gguf_writer *w, const char *key, int32_t id)
{
    return id < 0 ? GQA_OK : gqa_gguf_writer_set_u32(w, key, (uint32_t)id);
}

static int32_t unk_id(const hf_tok *h)
{
    int32_t id = special_id(h, "unk_token", NULL);
    const cJSON *u = item(item(h->tj, "model"), "unk_token");
    for (int32_t i = 0; id < 0 && cJSON_IsString(u) && i < h->n; i++)
        if (!strcmp(h->tokens[i], u->valuestring))
            id = i;
    return id;
}

static gqa_status write_hf_keys(gqa_gguf_writer *w, const hf_tok *h)
{
    gqa_status s = gqa_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_str(w, "tokenizer.ggml.pre", h->pre, strlen(h->pre));
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", h->tokens, NULL,
                                        (uint64_t)h->n);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GQA_GGUF_TYPE_INT32, h->types,
                                    (uint64_t)h->n);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)h->merges,
                                        NULL, (uint64_t)h->n_merges);
    if (s == GQA_OK)
        s = set_id(w, "tokenizer.ggml.bos_token_id", special_id(h, "bos_token", "bos_token_id"));
    if (s == GQA_OK)
        s = set_id(w, "tokenizer.ggml.eos_token_id", special_id(h, "eos_token", "eos_token_id"));
    if (s == GQA_OK)
        s = set_id(w, "tokenizer.ggml.unknown_token_id", unk_id(h));
    if (s == GQA_OK)
        s = set_id(w, "tokenizer.ggml.padding_token_id",
                   special_id(h, "pad_token", "pad_token_id"));
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token",
                                     cJSON_IsTrue(item(h->tc, "add_bos_token")));
    const cJSON *ct = item(h->tc, "chat_template");
    if (s == GQA_OK && cJSON_IsString(ct))
        s = gqa_gguf_writer_set_str(w, "tokenizer.chat_template", ct->valuestring,
                                    strlen(ct->valuestring));
    return s;
}

gqa_status gqa_tokconv_hf_to_gguf(gqa_gguf_writer *w, const char *dir, int *written)
{
    hf_tok h = {.dir = dir};
    *written = 0;
    gqa_status s = read_opt(dir, "tokenizer.json", &h.tj);
    if (s != GQA_OK || !h.tj)
        return s;
    if ((s = read_opt(dir, "tokenizer_config.json", &h.tc)) == GQA_OK &&
        (s = read_opt(dir, "config.json", &h.cfg)) == GQA_OK && (s = read_vocab(&h)) == GQA_OK &&
        (s = read_merges(&h)) == GQA_OK && (s = find_pre(&h)) == GQA_OK &&
        (s = write_hf_keys(w, &h)) == GQA_OK)
        *written = 1;
    for (int64_t i = 0; i < h.n_merges; i++)
        free(h.merges[i]);
    free(h.merges);
    free(h.tokens);
    free(h.types);
    cJSON_Delete(h.tj);
    cJSON_Delete(h.tc);
    cJSON_Delete(h.cfg);
    return s;
}

/* ------------------------------------------------------- GGUF -> HF -- *
 *
 * tokenizer.json: a BPE model with the vocabulary and merges, the CONTROL
 * and USER_DEFINED tokens as added tokens, the pre name's regexes as Split
 * (Isolated, as llama.cpp applies them) before a regex-less ByteLevel, and
 * a ByteLevel decoder. tokenizer_config.json and special_tokens_map.json
 * name bos/eos (and unk/pad), add_bos_token and the chat template. */

const char *const gqa_tokconv_files[GQA_TOKCONV_N_FILES] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};

typedef struct gguf_tok {
    const gqa_gguf *g;
    uint64_t n;
    char **tokens;  /* n NUL-terminated copies */
    int32_t *types; /* n, or NULL */
    int32_t bos, eos, unk, pad;
    int add_bos;
    char pre[64];
} gguf_tok;

static char *dup_n(const char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

static gqa_status opt_id(const gqa_gguf *g, const char *key, uint64_t n, int32_t *id)
{
    uint32_t v;
    *id = -1;
    if (gqa_gguf_find_key(g, key) < 0)
        return GQA_OK;
    gqa_status s = gqa_gguf_get_u32(g, key, &v);
    if (s == GQA_OK && v >= n)
        return gqa_fail(GQA_ERR_FORMAT, "%s = %u is not a token id", key, (unsigned)v);
    *id = (int32_t)v;
    return s;
}

static gqa_status gguf_tok_strings(gguf_tok *t)
{
    gqa_gguf_type et;
    gqa_status s = gqa_gguf_get_arr(t->g, "tokenizer.ggml.tokens", &et, &t->n);
    if (s == GQA_OK && (et != GQA_GGUF_TYPE_STRING || t->n == 0 || t->n > INT32_MAX))
        s = gqa_fail(GQA_ERR_FORMAT, "tokenizer.ggml.tokens is not a non-empty string array");
    if (s == GQA_OK && !(t->tokens = calloc((size_t)t->n, sizeof *t->tokens)))
        s = gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory");
    for (uint64_t i = 0; s == GQA_OK && i < t->n; i++) {
        const char *p;
        size_t len;
        if ((s = gqa_gguf_arr_str(t->g, "tokenizer.ggml.tokens", i, &p, &len)) == GQA_OK &&
            !(t->tokens[i] = dup_n(p, len)))
            s = gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory");
    }
    uint64_t nt = 0;
    if (s == GQA_OK && gqa_gguf_find_key(t->g, "tokenizer.ggml.token_type") >= 0 &&
        (s = gqa_gguf_get_arr(t->g, "tokenizer.ggml.token_type", NULL, &nt)) == GQA_OK) {
        if (nt != t->n)
            return gqa_fail(GQA_ERR_FORMAT,
                            "tokenizer.ggml.token_type has %llu entries for %llu "
                            "tokens",
                            (unsigned long long)nt, (unsigned long long)t->n);
        if (!(t->types = malloc((size_t)nt * sizeof *t->types)))
            return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory");
        s = gqa_gguf_arr_i32(t->g, "tokenizer.ggml.token_type", 0, nt, t->types);
    }
    return s;
}

static gqa_status gguf_tok_read(gguf_tok *t)
{
    const char *p;
    size_t len;
    gqa_status s = gqa_gguf_get_str(t->g, "tokenizer.ggml.model", &p, &len);
    if (s == GQA_OK && !(len == 4 && !memcmp(p, "gpt2", 4)))
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "tokenizer.ggml.model \"%.*s\" cannot be written as "
                        "tokenizer.json (only \"gpt2\", byte-level BPE)",
                        (int)(len > 40 ? 40 : len), p);
    snprintf(t->pre, sizeof t->pre, "default");
    if (s == GQA_OK && gqa_gguf_find_key(t->g, "tokenizer.ggml.pre") >= 0 &&
        (s = gqa_gguf_get_str(t->g, "tokenizer.ggml.pre", &p, &len)) == GQA_OK)
        snprintf(t->pre, sizeof t->pre, "%.*s", (int)(len > 63 ? 63 : len), p);
    if (s == GQA_OK)
        s = gguf_tok_strings(t);
    if (s == GQA_OK)
        s = opt_id(t->g, "tokenizer.ggml.bos_token_id", t->n, &t->bos);
    if (s == GQA_OK)
        s = opt_id(t->g, "tokenizer.ggml.eos_token_id", t->n, &t->eos);
    if (s == GQA_OK)
        s = opt_id(t->g, "tokenizer.ggml.unknown_token_id", t->n, &t->unk);
    if (s == GQA_OK)
        s = opt_id(t->g, "tokenizer.ggml.padding_token_id", t->n, &t->pad);
    if (s == GQA_OK && gqa_gguf_find_key(t->g, "tokenizer.ggml.add_bos_token") >= 0)
        s = gqa_gguf_get_bool(t->g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    return s;
}

static cJSON *make_model(const gguf_tok *t)
{
    cJSON *m = cJSON_CreateObject(), *vocab = cJSON_CreateObject(), *merges = cJSON_CreateArray();
    int ok = m && vocab && merges;
    for (uint64_t i = 0; ok && i < t->n; i++)
        ok = cJSON_AddNumberToObject(vocab, t->tokens[i], (double)i) != NULL;
    uint64_t nm = 0;
    gqa_gguf_type et = GQA_GGUF_TYPE_STRING;
    if (gqa_gguf_find_key(t->g, "tokenizer.ggml.merges") >= 0)
        ok = ok && gqa_gguf_get_arr(t->g, "tokenizer.ggml.merges", &et, &nm) == GQA_OK &&
             et == GQA_GGUF_TYPE_STRING;
    for (uint64_t i = 0; ok && i < nm; i++) {
        const char *p;
        size_t len;
        char *s = NULL;
        ok = gqa_gguf_arr_str(t->g, "tokenizer.ggml.merges", i, &p, &len) == GQA_OK &&
             (s = dup_n(p, len)) != NULL && cJSON_AddItemToArray(merges, cJSON_CreateString(s));
        free(s);
    }
    ok = ok && cJSON_AddStringToObject(m, "type", "BPE") && cJSON_AddNullToObject(m, "dropout") &&
         (t->unk >= 0 ? cJSON_AddStringToObject(m, "unk_token", t->tokens[t->unk]) != NULL
                      : cJSON_AddNullToObject(m, "unk_token") != NULL) &&
         cJSON_AddNullToObject(m, "continuing_subword_prefix") &&
         cJSON_AddNullToObject(m, "end_of_word_suffix") && cJSON_AddFalseToObject(m, "fuse_unk") &&
         cJSON_AddFalseToObject(m, "byte_fallback") && cJSON_AddFalseToObject(m, "ignore_merges") &&
         cJSON_AddItemToObject(m, "vocab", vocab) && (vocab = NULL, 1) &&
         cJSON_AddItemToObject(m, "merges", merges) && (merges = NULL, 1);
    cJSON_Delete(vocab);
    cJSON_Delete(merges);
    if (!ok)
        cJSON_Delete(m);
    return ok ? m : NULL;
}

static cJSON *make_added(const gguf_tok *t)
{
    cJSON *a = cJSON_CreateArray();
    for (uint64_t i = 0; a && t->types && i < t->n; i++) {
        if (t->types[i] != TT_CONTROL && t->types[i] != TT_USER)
            continue;
        cJSON *e = cJSON_CreateObject();
        if (!cJSON_AddItemToArray(a, e) || !cJSON_AddNumberToObject(e, "id", (double)i) ||
            !cJSON_AddStringToObject(e, "content", t->tokens[i]) ||
            !cJSON_AddFalseToObject(e, "single_word") || !cJSON_AddFalseToObject(e, "lstrip") ||
            !cJSON_AddFalseToObject(e, "rstrip") ||
            !cJSON_AddBoolToObject(e, "normalized", t->types[i] != TT_CONTROL) ||
            !cJSON_AddBoolToObject(e, "special", t->types[i] == TT_CONTROL)) {
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* {type, add_prefix_space: false, trim_offsets: true, use_regex} */
static cJSON *byte_level(int use_regex)
{
    cJSON *b = cJSON_CreateObject();
    if (!cJSON_AddStringToObject(b, "type", "ByteLevel") ||
        !cJSON_AddFalseToObject(b, "add_prefix_space") ||
        !cJSON_AddTrueToObject(b, "trim_offsets") ||
        !cJSON_AddBoolToObject(b, "use_regex", use_regex)) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

static cJSON *make_pre(const gguf_tok *t)
{
    const char *const *re;
    const int n = gqa_tokenizer_pre_regexes(t->pre, &re);
    if (n < 0)
        return NULL;
    cJSON *seq = cJSON_CreateObject(), *a = cJSON_CreateArray();
    int ok = cJSON_AddStringToObject(seq, "type", "Sequence") &&
             cJSON_AddItemToObject(seq, "pretokenizers", a);
    if (!ok)
        cJSON_Delete(a);
    for (int k = 0; ok && k < n; k++) {
        cJSON *sp = cJSON_CreateObject(), *pat = cJSON_CreateObject();
        ok = cJSON_AddItemToArray(a, sp) && cJSON_AddStringToObject(sp, "type", "Split") &&
             cJSON_AddItemToObject(sp, "pattern", pat) &&
             cJSON_AddStringToObject(pat, "Regex", re[k]) &&
             cJSON_AddStringToObject(sp, "behavior", "Isolated") &&
             cJSON_AddFalseToObject(sp, "invert");
    }
    ok = ok && cJSON_AddItemToArray(a, byte_level(0));
    if (!ok)
        cJSON_Delete(seq);
    return ok ? seq : NULL;
}

/* add_bos_token: a TemplateProcessing that puts BOS before each sequence. */
static cJSON *make_post(const gguf_tok *t)
{
    if (!t->add_bos || t->bos < 0)
        return cJSON_CreateNull();
    const char *b = t->tokens[t->bos];
    char text[2048];
    snprintf(
        text, sizeof text,
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":0,\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"SpecialToken\":{\"id\":0,"
        "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":0,"
        "\"type_id\":1}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],\"special_tokens\":{}}");
    cJSON *p = cJSON_Parse(text), *st = cJSON_CreateObject(), *ids = cJSON_CreateArray(),
          *toks = cJSON_CreateArray();
    int ok = p && cJSON_AddStringToObject(st, "id", b) && cJSON_AddItemToObject(st, "ids", ids) &&
             cJSON_AddItemToArray(ids, cJSON_CreateNumber(t->bos)) &&
             cJSON_AddItemToObject(st, "tokens", toks) &&
             cJSON_AddItemToArray(toks, cJSON_CreateString(b)) &&
             cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(p, "special_tokens"), b, st);
    for (int k = 0; ok && k < 2; k++)
        for (cJSON *e = item(p, k ? "pair" : "single")->child; e; e = e->next) {
            cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            if (sp)
                cJSON_ReplaceItemInObject(sp, "id", cJSON_CreateString(b));
        }
    if (!ok)
        cJSON_Delete(p);
    return ok ? p : NULL;
}

static cJSON *make_tokenizer_json(const gguf_tok *t)
{
    cJSON *j = cJSON_CreateObject();
    int ok = cJSON_AddStringToObject(j, "version", "1.0") &&
             cJSON_AddNullToObject(j, "truncation") && cJSON_AddNullToObject(j, "padding") &&
             cJSON_AddItemToObject(j, "added_tokens", make_added(t)) &&
             cJSON_AddNullToObject(j, "normalizer") &&
             cJSON_AddItemToObject(j, "pre_tokenizer", make_pre(t)) &&
             cJSON_AddItemToObject(j, "post_processor", make_post(t)) &&
             cJSON_AddItemToObject(j, "decoder", byte_level(1)) &&
             cJSON_AddItemToObject(j, "model", make_model(t));
    if (!ok)
        cJSON_Delete(j);
    return ok ? j : NULL;
}

/* bos/eos/unk/pad as token strings (special_tokens_map.json and
 * tokenizer_config.json share them). */
static int add_specials(cJSON *o, const gguf_tok *t)
{
    const int32_t ids[4] = {t->bos, t->eos, t->unk, t->pad};
    static const char *const keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0 && !cJSON_AddStringToObject(o, keys[k], t->tokens[ids[k]]))
            return 0;
    return 1;
}

static cJSON *make_tok_config(const gguf_tok *t)
{
    cJSON *c = cJSON_CreateObject();
    const char *p;
    size_t len;
    char *tmpl = NULL;
    int ok = c && add_specials(c, t) && cJSON_AddBoolToObject(c, "add_bos_token", t->add_bos) &&
             cJSON_AddFalseToObject(c, "add_eos_token") &&
             cJSON_AddStringToObject(c, "tokenizer_class", "PreTrainedTokenizerFast") &&
             cJSON_AddFalseToObject(c, "clean_up_tokenization_spaces");
    if (ok && gqa_gguf_find_key(t->g, "tokenizer.chat_template") >= 0 &&
        gqa_gguf_get_str(t->g, "tokenizer.chat_template", &p, &len) == GQA_OK)
        ok = (tmpl = dup_n(p, len)) && cJSON_AddStringToObject(c, "chat_template", tmpl);
    free(tmpl);
    if (!ok)
        cJSON_Delete(c);
    return ok ? c : NULL;
}

static void gguf_tok_free(gguf_tok *t)
{
    for (uint64_t i = 0; t->tokens && i < t->n; i++)
        free(t->tokens[i]);
    free(t->tokens);
    free(t->types);
}

gqa_status gqa_tokconv_gguf_build(const gqa_gguf *g, cJSON *out[GQA_TOKCONV_N_FILES])
{
    for (int k = 0; k < GQA_TOKCONV_N_FILES; k++)
        out[k] = NULL;
    if (gqa_gguf_find_key(g, "tokenizer.ggml.tokens") < 0)
        return GQA_OK;
    gguf_tok t = {.g = g};
    const char *const *re;
    gqa_status s = gguf_tok_read(&t);
    if (s == GQA_OK && gqa_tokenizer_pre_regexes(t.pre, &re) < 0)
        s = gqa_fail(GQA_ERR_UNSUPPORTED,
                     "tokenizer.ggml.pre \"%s\" is not a pre-tokenizer gqa "
                     "knows; no tokenizer.json can be written",
                     t.pre);
    if (s == GQA_OK) {
        out[0] = make_tokenizer_json(&t);
        out[1] = make_tok_config(&t);
        out[2] = cJSON_CreateObject();
        if (!out[0] || !out[1] || !out[2] || !add_specials(out[2], &t)) {
            for (int k = 0; k < GQA_TOKCONV_N_FILES; k++)
                cJSON_Delete(out[k]), out[k] = NULL;
            s = gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory building tokenizer.json");
        }
    }
    gguf_tok_free(&t);
    return s;
}
