/* tokenizer.c - GPT-2 style byte-level BPE (llama.cpp's "gpt2" model).
 *
 * Creation copies the vocabulary into two arenas (the stored strings, and the
 * bytes each token decodes to), hashes the strings for lookup, resolves every
 * merge "left right" to a (left id, right id) -> (rank, joined id) entry, and
 * compiles the pre-tokenizer's regexes with PCRE2 (UTF, Unicode properties,
 * JIT when available). Encoding never builds strings: BPE works on token ids.
 */
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/internal.h"
#include "gqa_tokenizer.h"

#define TOK_MAX_REGEX  4
#define TOK_MAX_STRING 0x7fffffffu

/* ------------------------------------------------- pre-tokenizer table -- */

/* GPT-2's split: contractions, letter runs, number runs, other runs (each with
 * one optional leading space), whitespace not followed by a non-space (so
 * the last space of a run goes with the next word), any other whitespace. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct pre_spec {
    const char *name;
    int n_regex;
    const char *regex[TOK_MAX_REGEX];
} pre_spec;

/* Regex lists as llama.cpp applies them for each tokenizer.ggml.pre name:
 * every regex splits each piece left by the previous one into its matches
 * and the unmatched text between them. */
static const pre_spec pre_specs[] = {
    /* llama.cpp's fallback for BPE vocabularies without a known name. */
    {"default", 4, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"gpt2", 1, {RE_GPT2, NULL, NULL, NULL}},
    {"mpt", 1, {RE_GPT2, NULL, NULL, NULL}},
    {"olmo", 1, {RE_GPT2, NULL, NULL, NULL}},
    /* Digits first, one at a time, so "2024" is never one piece. */
    {"smollm", 2, {"\\p{N}", RE_GPT2, NULL, NULL}},
    {"starcoder", 2, {"\\p{N}", RE_GPT2, NULL, NULL}},
    {"refact", 2, {"\\p{N}", RE_GPT2, NULL, NULL}},
};
#define N_PRE_SPECS ((int)(sizeof pre_specs / sizeof pre_specs[0]))

/* ------------------------------------------------------------ the type -- */

typedef struct merge_slot {
    uint64_t key; /* (left << 32) | right; MERGE_EMPTY when free */
    int32_t rank;
    int32_t result; /* id of left + right */
} merge_slot;
#define MERGE_EMPTY UINT64_MAX

typedef struct special_ref {
    int32_t id;
    int32_t len;
    int32_t first; /* first byte */
} special_ref;

struct gqa_tokenizer {
    int32_t n_tokens;
    int32_t bos, eos, unk, pad;
    int add_bos;
    int32_t *types;     /* n_tokens */
    char *text;         /* stored strings, concatenated */
    int64_t *text_off;  /* n_tokens + 1 offsets into text */
    char *piece;        /* decoded bytes of each token, concatenated */
    int64_t *piece_off; /* n_tokens + 1 offsets into piece */

    int32_t *vocab; /* open-addressing table of ids (-1 free), vocab_mask + 1 slots */
    uint64_t vocab_mask;
    merge_slot *merges; /* merge_mask + 1 slots */
    uint64_t merge_mask;

    int32_t byte_token[256]; /* id of the character byte b maps to, -1 if none */
    int32_t unk_fallback;    /* unk if its type is UNKNOWN, else -1 */

    special_ref *specials; /* sorted by first byte, then longest first */
    int32_t n_specials;
    int32_t special_start[257]; /* specials with first byte b: [start[b], start[b+1]) */

    int n_regex;
    pcre2_code *regex[TOK_MAX_REGEX];
};

/* ---------------------------------------------------- byte <-> unicode -- */

/* GPT-2 maps every byte to a printable character so that BPE never sees
 * whitespace or control bytes: the 188 printable Latin-1 bytes stand for
 * themselves, the other 68 take U+0100.. in byte order. */
static int byte_is_printable(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static void byte_map(uint32_t cp_of_byte[256], int16_t byte_of_cp[324])
{
    int extra = 0;
    for (int i = 0; i < 324; i++)
        byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = byte_is_printable(b) ? (uint32_t)b : 256u + (uint32_t)extra++;
        cp_of_byte[b] = cp;
        byte_of_cp[cp] = (int16_t)b;
    }
}

/* UTF-8 of a code point below 0x800 (all the byte map produces). */
static int utf8_put_small(uint32_t cp, char out[2])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Decode one UTF-8 character of s[0..n); returns its length (1..4) and sets
 * *cp, or returns 0 for an invalid or truncated sequence. */
static int utf8_get(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* ------------------------------------------------------------ hashing -- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* murmur3 finaliser */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Smallest power of two >= 2 * n, at least 16. */
static uint64_t table_size(uint64_t n)
{
    uint64_t size = 16;
    while (size < 2 * n)
        size <<= 1;
    return size;
}

static int64_t token_len(const gqa_tokenizer *t, int32_t id)
{
    return t->text_off[id + 1] - t->text_off[id];
}

int32_t gqa_tokenizer_find(const gqa_tokenizer *t, const char *s, size_t n)
{
    if (!t || (!s && n > 0))
        return -1;
    for (uint64_t i = hash_bytes(s, n) & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
        int32_t id = t->vocab[i];
        if (id < 0)
            return -1;
        if ((uint64_t)token_len(t, id) == n &&
            (n == 0 || memcmp(t->text + t->text_off[id], s, n) == 0))
            return id;
    }
}

static void vocab_insert(gqa_tokenizer *t, int32_t id)
{
    const char *s = t->text + t->text_off[id];
    size_t n = (size_t)token_len(t, id);
    if (gqa_tokenizer_find(t, s, n) >= 0)
        return; /* duplicate string: the lowest id keeps it */
    uint64_t i = hash_bytes(s, n) & t->vocab_mask;
    while (t->vocab[i] >= 0)
        i = (i + 1) & t->vocab_mask;
    t->vocab[i] = id;
}

static const merge_slot *merge_find(const gqa_tokenizer *t, int32_t left, int32_t right)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint64_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key)
            return &t->merges[i];
        if (t->merges[i].key == MERGE_EMPTY)
            return NULL;
    }
}

static void merge_insert(gqa_tokenizer *t, int32_t left, int32_t right, int32_t rank,
                         int32_t result)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t i = hash_u64(key) & t->merge_mask;
    for (; t->merges[i].key != MERGE_EMPTY; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key)
            return; /* duplicate pair: the lowest rank keeps it */
    }
    t->merges[i].key = key;
    t->merges[i].rank = rank;
    t->merges[i].result = result;
}

/* ------------------------------------------------------------ creation -- */

static gqa_status check_config(const gqa_tokenizer_config *cfg)
{
    if (cfg->n_tokens < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: n_tokens is %d, need >= 1", cfg->n_tokens);
    if (!cfg->tokens)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: tokens is NULL");
    if (cfg->n_merges < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: n_merges is %d", cfg->n_merges);
    if (cfg->n_merges > 0 && !cfg->merges)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: merges is NULL with n_merges %d",
                        cfg->n_merges);
    const int32_t ids[4] = {cfg->bos_id, cfg->eos_id, cfg->unk_id, cfg->pad_id};
    static const char *const id_names[4] = {"bos_id", "eos_id", "unk_id", "pad_id"};
    for (int i = 0; i < 4; i++) {
        if (ids[i] < -1 || ids[i] >= cfg->n_tokens)
            return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: %s %d outside -1..%d", id_names[i],
                            ids[i], cfg->n_tokens - 1);
    }
    for (int32_t i = 0; i < cfg->n_tokens; i++) {
        const gqa_tokenizer_string *s = &cfg->tokens[i];
        if (s->len > TOK_MAX_STRING || (!s->data && s->len > 0))
            return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: token %d has %s", i,
                            s->data ? "a length over 2^31-1" : "NULL data");
        if (cfg->token_types && (cfg->token_types[i] < 0 || cfg->token_types[i] > 6))
            return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: token %d has type %d, expected 0..6",
                            i, cfg->token_types[i]);
    }
    for (int32_t i = 0; i < cfg->n_merges; i++) {
        const gqa_tokenizer_string *s = &cfg->merges[i];
        if (s->len > TOK_MAX_STRING || (!s->data && s->len > 0))
            return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: merge %d has %s", i,
                            s->data ? "a length over 2^31-1" : "NULL data");
    }
    if (cfg->pre.len > 0 && !cfg->pre.data)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: pre-tokenizer name has NULL data");
    return GQA_OK;
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copy the strings and work out the bytes each token stands for. */
static gqa_status build_strings(gqa_tokenizer *t, const gqa_tokenizer_config *cfg)
{
    uint32_t cp_of_byte[256];
    int16_t byte_of_cp[324];
    byte_map(cp_of_byte, byte_of_cp);

    uint64_t total = 0;
    for (int32_t i = 0; i < cfg->n_tokens; i++)
        total += cfg->tokens[i].len; /* each <= 2^31-1, at most 2^31 of them: no overflow */
    if (total >= SIZE_MAX / 2)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: %llu bytes of token strings",
                        (unsigned long long)total);
    size_t n1 = (size_t)cfg->n_tokens + 1;
    t->types = malloc((size_t)cfg->n_tokens * sizeof *t->types);
    t->text_off = malloc(n1 * sizeof *t->text_off);
    t->piece_off = malloc(n1 * sizeof *t->piece_off);
    t->text = malloc((size_t)total + 1);
    t->piece = malloc((size_t)total + 1); /* a piece is never longer than its string */
    if (!t->types || !t->text_off || !t->piece_off || !t->text || !t->piece)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory for %d tokens", cfg->n_tokens);

    int64_t off = 0, poff = 0;
    for (int32_t i = 0; i < cfg->n_tokens; i++) {
        const unsigned char *s = (const unsigned char *)cfg->tokens[i].data;
        size_t n = (size_t)cfg->tokens[i].len;
        int32_t type = cfg->token_types ? cfg->token_types[i] : GQA_TOKEN_TYPE_NORMAL;
        t->types[i] = type;
        t->text_off[i] = off;
        t->piece_off[i] = poff;
        if (n)
            memcpy(t->text + off, s, n);
        off += (int64_t)n;
        char *p = t->piece + poff;
        size_t np = 0;
        if (type == GQA_TOKEN_TYPE_CONTROL || type == GQA_TOKEN_TYPE_USER_DEFINED ||
            type == GQA_TOKEN_TYPE_UNKNOWN) {
            if (n)
                memcpy(p, s, n);
            np = n;
        } else if (type == GQA_TOKEN_TYPE_BYTE && n == 6 && memcmp(s, "<0x", 3) == 0 &&
                   s[5] == '>' && hex_digit(s[3]) >= 0 && hex_digit(s[4]) >= 0) {
            p[0] = (char)(hex_digit(s[3]) * 16 + hex_digit(s[4]));
            np = 1;
        } else {
            /* Undo the byte map character by character; anything that is not
             * a mapped byte (or not valid UTF-8) is kept as it is. */
            for (size_t k = 0; k < n;) {
                uint32_t cp = 0;
                int l = utf8_get(s + k, n - k, &cp);
                if (l > 0 && cp < 324 && byte_of_cp[cp] >= 0) {
                    p[np++] = (char)byte_of_cp[cp];
                } else {
                    if (l == 0)
                        l = 1;
                    memcpy(p + np, s + k, (size_t)l);
                    np += (size_t)l;
                }
                k += (size_t)l;
            }
        }
        poff += (int64_t)np;
    }
    t->text_off[cfg->n_tokens] = off;
    t->piece_off[cfg->n_tokens] = poff;

    t->vocab_mask = table_size((uint64_t)cfg->n_tokens) - 1;
    t->vocab = malloc((size_t)(t->vocab_mask + 1) * sizeof *t->vocab);
    if (!t->vocab)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory for the vocabulary table");
    for (uint64_t i = 0; i <= t->vocab_mask; i++)
        t->vocab[i] = -1;
    for (int32_t i = 0; i < cfg->n_tokens; i++)
        vocab_insert(t, i);

    for (int b = 0; b < 256; b++) {
        char c[2];
        int l = utf8_put_small(cp_of_byte[b], c);
        t->byte_token[b] = gqa_tokenizer_find(t, c, (size_t)l);
    }
    return GQA_OK;
}

static gqa_status build_merges(gqa_tokenizer *t, const gqa_tokenizer_config *cfg)
{
    t->merge_mask = table_size((uint64_t)cfg->n_merges) - 1;
    t->merges = malloc((size_t)(t->merge_mask + 1) * sizeof *t->merges);
    if (!t->merges)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory for %d merges", cfg->n_merges);
    for (uint64_t i = 0; i <= t->merge_mask; i++)
        t->merges[i].key = MERGE_EMPTY;

    char *joined = NULL;
    size_t joined_cap = 0;
    gqa_status st = GQA_OK;
    for (int32_t r = 0; r < cfg->n_merges && st == GQA_OK; r++) {
        const char *s = cfg->merges[r].data;
        size_t n = (size_t)cfg->merges[r].len;
        /* Split at the first space after the first byte, as llama.cpp does. */
        size_t sp = 1;
        while (sp < n && s[sp] != ' ')
            sp++;
        int shown = n > 60 ? 60 : (int)n;
        if (sp + 1 >= n) {
            st = gqa_fail(GQA_ERR_FORMAT, "tokenizer: merge %d (\"%.*s\") is not \"left right\"", r,
                          shown, n ? s : "");
            break;
        }
        int32_t left = gqa_tokenizer_find(t, s, sp);
        int32_t right = gqa_tokenizer_find(t, s + sp + 1, n - sp - 1);
        if (n > joined_cap) {
            char *p = realloc(joined, n);
            if (!p) {
                st = gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory reading merges");
                break;
            }
            joined = p;
            joined_cap = n;
        }
        memcpy(joined, s, sp);
        memcpy(joined + sp, s + sp + 1, n - sp - 1);
        int32_t result = gqa_tokenizer_find(t, joined, n - 1);
        if (left < 0 || right < 0 || result < 0) {
            st = gqa_fail(GQA_ERR_FORMAT, "tokenizer: merge %d (\"%.*s\"): %s is not a token", r,
                          shown, s,
                          left < 0    ? "the left part"
                          : right < 0 ? "the right part"
                                      : "the joined string");
            break;
        }
        merge_insert(t, left, right, r, result);
    }
    free(joined);
    return st;
}

static int special_cmp(const void *pa, const void *pb)
{
    const special_ref *a = pa, *b = pb;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

static gqa_status build_specials(gqa_tokenizer *t)
{
    int32_t n = 0;
    for (int32_t i = 0; i < t->n_tokens; i++) {
        int32_t ty = t->types[i];
        if ((ty == GQA_TOKEN_TYPE_CONTROL || ty == GQA_TOKEN_TYPE_USER_DEFINED ||
             ty == GQA_TOKEN_TYPE_UNKNOWN) &&
            token_len(t, i) > 0)
            n++;
    }
    t->specials = malloc(((size_t)n + 1) * sizeof *t->specials);
    if (!t->specials)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory for special tokens");
    t->n_specials = 0;
    for (int32_t i = 0; i < t->n_tokens; i++) {
        int32_t ty = t->types[i];
        if ((ty == GQA_TOKEN_TYPE_CONTROL || ty == GQA_TOKEN_TYPE_USER_DEFINED ||
             ty == GQA_TOKEN_TYPE_UNKNOWN) &&
            token_len(t, i) > 0) {
            special_ref *s = &t->specials[t->n_specials++];
            s->id = i;
            s->len = (int32_t)token_len(t, i);
            s->first = (unsigned char)t->text[t->text_off[i]];
        }
    }
    qsort(t->specials, (size_t)t->n_specials, sizeof *t->specials, special_cmp);
    int32_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < t->n_specials && t->specials[k].first < b)
            k++;
        t->special_start[b] = k;
    }
    return GQA_OK;
}

static gqa_status build_regex(gqa_tokenizer *t, const gqa_tokenizer_config *cfg)
{
    const char *name = "default";
    size_t name_len = strlen(name);
    if (cfg->pre.data && cfg->pre.len > 0) {
        name = cfg->pre.data;
        name_len = (size_t)cfg->pre.len;
    }
    const pre_spec *spec = NULL;
    for (int i = 0; i < N_PRE_SPECS; i++) {
        if (strlen(pre_specs[i].name) == name_len && memcmp(pre_specs[i].name, name, name_len) == 0)
            spec = &pre_specs[i];
    }
    if (!spec)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "tokenizer: unsupported pre-tokenizer \"%.*s\"",
                        name_len > 64 ? 64 : (int)name_len, name);
    for (int i = 0; i < spec->n_regex; i++) {
        int err = 0;
        PCRE2_SIZE at = 0;
        t->regex[i] =
            pcre2_compile((PCRE2_SPTR)spec->regex[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
        if (!t->regex[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            return gqa_fail(
                GQA_ERR_UNSUPPORTED,
                "tokenizer: pre-tokenizer %s: PCRE2 cannot compile regex %d at offset %zu: %s",
                spec->name, i, (size_t)at, (const char *)msg);
        }
        t->n_regex = i + 1;
        (void)pcre2_jit_compile(t->regex[i], PCRE2_JIT_COMPLETE); /* the interpreter if no JIT */
    }
    return GQA_OK;
}

gqa_status gqa_tokenizer_create(const gqa_tokenizer_config *cfg, gqa_tokenizer **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!cfg)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenizer: cfg is NULL");
    gqa_status st = check_config(cfg);
    if (st != GQA_OK)
        return st;
    gqa_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory");
    t->n_tokens = cfg->n_tokens;
    t->bos = cfg->bos_id;
    t->eos = cfg->eos_id;
    t->unk = cfg->unk_id;
    t->pad = cfg->pad_id;
    t->add_bos = cfg->add_bos != 0;
    t->unk_fallback = -1;
    if (cfg->unk_id >= 0 && cfg->token_types &&
        cfg->token_types[cfg->unk_id] == GQA_TOKEN_TYPE_UNKNOWN)
        t->unk_fallback = cfg->unk_id;
    st = build_strings(t, cfg);
    if (st == GQA_OK)
        st = build_merges(t, cfg);
    if (st == GQA_OK)
        st = build_specials(t);
    if (st == GQA_OK)
        st = build_regex(t, cfg);
    if (st != GQA_OK) {
        gqa_tokenizer_free(t);
        return st;
    }
    *out = t;
    return GQA_OK;
}

void gqa_tokenizer_free(gqa_tokenizer *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_regex; i++)
        pcre2_code_free(t->regex[i]);
    free(t->types);
    free(t->text);
    free(t->text_off);
    free(t->piece);
    free(t->piece_off);
    free(t->vocab);
    free(t->merges);
    free(t->specials);
    free(t);
}

int32_t gqa_tokenizer_n_tokens(const gqa_tokenizer *t)
{
    return t ? t->n_tokens : 0;
}
int32_t gqa_tokenizer_bos(const gqa_tokenizer *t)
{
    return t ? t->bos : -1;
}
int32_t gqa_tokenizer_eos(const gqa_tokenizer *t)
{
    return t ? t->eos : -1;
}
int gqa_tokenizer_add_bos(const gqa_tokenizer *t)
{
    return t ? t->add_bos : 0;
}

int32_t gqa_tokenizer_token_type(const gqa_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_tokens)
        return -1;
    return t->types[id];
}

/* ------------------------------------------------------------ encoding -- */

typedef struct bpe_sym {
    int32_t id; /* -1 once merged into its left neighbour */
    int32_t prev, next;
} bpe_sym;

typedef struct bpe_pair {
    int32_t rank, left, right, left_id, right_id;
} bpe_pair;

/* State of one gqa_tokenize call. */
typedef struct tok_run {
    const gqa_tokenizer *t;
    const unsigned char *text;
    int32_t *ids;
    int64_t cap, n;
    pcre2_match_data *md;
    bpe_sym *syms;
    bpe_pair *heap;
    size_t scratch; /* symbols the scratch arrays hold (heap: 3x) */
} tok_run;

static void emit(tok_run *r, int32_t id)
{
    if (r->n < r->cap)
        r->ids[r->n] = id;
    r->n++;
}

static int pair_less(const bpe_pair *a, const bpe_pair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(bpe_pair *h, size_t *n, bpe_pair p)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_less(&p, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = p;
}

static bpe_pair heap_pop(bpe_pair *h, size_t *n)
{
    bpe_pair top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && pair_less(&h[c + 1], &h[c]))
            c++;
        if (!pair_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void push_pair(tok_run *r, size_t *nh, int32_t left)
{
    if (left < 0)
        return;
    int32_t right = r->syms[left].next;
    if (right < 0)
        return;
    const merge_slot *m = merge_find(r->t, r->syms[left].id, r->syms[right].id);
    if (m) {
        bpe_pair p = {m->rank, left, right, r->syms[left].id, r->syms[right].id};
        heap_push(r->heap, nh, p);
    }
}

/* BPE over one pre-tokenized piece text[a..b): one symbol per byte, then the
 * lowest-ranked adjacent pair is merged (leftmost on ties) until none is left.
 * A heap of candidate pairs keeps long pieces O(n log n); entries made stale
 * by an earlier merge are recognised by their ids and skipped. */
static gqa_status bpe_piece(tok_run *r, size_t a, size_t b)
{
    const gqa_tokenizer *t = r->t;
    size_t n = b - a;
    if (n > (size_t)INT32_MAX / 4)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "tokenize: a pre-tokenized piece of %zu bytes", n);
    if (n > r->scratch) {
        size_t want = n < 64 ? 64 : n;
        bpe_sym *s = realloc(r->syms, want * sizeof *s);
        if (s)
            r->syms = s;
        bpe_pair *h = realloc(r->heap, 3 * want * sizeof *h);
        if (h)
            r->heap = h;
        if (!s || !h)
            return gqa_fail(GQA_ERR_NO_MEMORY, "tokenize: out of memory for a %zu-byte piece", n);
        r->scratch = want;
    }
    /* A byte whose character is not in the vocabulary (SmolLM2 lacks 21 of
     * the 256, e.g. 0x04 and 0xF1) becomes the unknown token if there is a
     * real one (type UNKNOWN), else it is dropped, as Hugging Face tokenizers
     * does for a BPE model without an unknown token. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_token[r->text[a + i]];
        if (id < 0)
            id = t->unk_fallback;
        if (id < 0)
            continue;
        r->syms[m].id = id;
        r->syms[m].prev = (int32_t)m - 1;
        r->syms[m].next = (int32_t)m + 1;
        m++;
    }
    if (m == 0)
        return GQA_OK;
    r->syms[m - 1].next = -1;
    size_t nh = 0;
    for (size_t i = 0; i + 1 < m; i++)
        push_pair(r, &nh, (int32_t)i);
    while (nh > 0) {
        bpe_pair p = heap_pop(r->heap, &nh);
        bpe_sym *L = &r->syms[p.left], *R = &r->syms[p.right];
        if (L->id != p.left_id || L->next != p.right || R->id != p.right_id)
            continue; /* stale */
        L->id = merge_find(t, p.left_id, p.right_id)->result;
        L->next = R->next;
        if (R->next >= 0)
            r->syms[R->next].prev = p.left;
        R->id = -1;
        push_pair(r, &nh, L->prev);
        push_pair(r, &nh, p.left);
    }
    for (int32_t i = 0; i >= 0; i = r->syms[i].next) /* symbol 0 is never merged away */
        emit(r, r->syms[i].id);
    return GQA_OK;
}

/* Split text[a..b) with regex `level` into matches and the gaps between
 * them, handing each to the next level; past the last regex, BPE. Every
 * range is matched as a subject of its own, so lookaheads stop at its end. */
static gqa_status split(tok_run *r, int level, size_t a, size_t b)
{
    if (a == b)
        return GQA_OK;
    if (level == r->t->n_regex)
        return bpe_piece(r, a, b);
    const pcre2_code *re = r->t->regex[level];
    PCRE2_SPTR subject = (PCRE2_SPTR)(r->text + a);
    size_t len = b - a, pos = 0;
    gqa_status st;
    while (pos < len) {
        /* NOTEMPTY: an empty match (none of our regexes has one) could not advance. */
        int rc = pcre2_match(re, subject, len, pos, PCRE2_NOTEMPTY, r->md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* deep backtracking: the interpreter uses the heap */
            rc = pcre2_match(re, subject, len, pos, PCRE2_NOTEMPTY | PCRE2_NO_JIT, r->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return gqa_fail(GQA_ERR_UNSUPPORTED, "tokenize: regex %d failed at byte %zu: %s", level,
                            a + pos, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > pos && (st = split(r, level + 1, a + pos, a + ms)) != GQA_OK)
            return st;
        if ((st = split(r, level + 1, a + ms, a + me)) != GQA_OK)
            return st;
        pos = me;
    }
    return split(r, level + 1, a + pos, b);
}

/* Cut special tokens out of text[0..len) (leftmost-longest), pre-tokenize and
 * BPE the text between them. */
static gqa_status encode(tok_run *r, size_t len, int parse_special)
{
    const gqa_tokenizer *t = r->t;
    size_t raw = 0, i = 0;
    gqa_status st;
    while (i < len) {
        int b = r->text[i];
        int32_t hit = -1, hit_len = 0;
        for (int32_t k = t->special_start[b]; k < t->special_start[b + 1]; k++) {
            const special_ref *s = &t->specials[k];
            int32_t ty = t->types[s->id];
            if (ty != GQA_TOKEN_TYPE_USER_DEFINED && !parse_special)
                continue;
            if ((size_t)s->len <= len - i &&
                memcmp(r->text + i, t->text + t->text_off[s->id], (size_t)s->len) == 0) {
                hit = s->id;
                hit_len = s->len;
                break; /* sorted longest first */
            }
        }
        if (hit < 0) {
            i++;
            continue;
        }
        if ((st = split(r, 0, raw, i)) != GQA_OK)
            return st;
        emit(r, hit);
        i += (size_t)hit_len;
        raw = i;
    }
    return split(r, 0, raw, len);
}

gqa_status gqa_tokenize(const gqa_tokenizer *t, const char *text, size_t len, int flags,
                        int32_t *ids, int64_t cap, int64_t *n)
{
    if (n)
        *n = 0;
    if (!t || !n)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenize: %s is NULL", t ? "n" : "tok");
    if (!text && len > 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenize: text is NULL with len %zu", len);
    if (cap < 0 || (!ids && cap > 0))
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenize: cap %lld with ids %s", (long long)cap,
                        ids ? "set" : "NULL");
    if (flags & ~(GQA_TOKENIZE_SPECIAL | GQA_TOKENIZE_ADD_BOS))
        return gqa_fail(GQA_ERR_INVALID_ARG, "tokenize: unknown flags 0x%x", (unsigned)flags);

    tok_run r = {0};
    r.t = t;
    r.text = (const unsigned char *)text;
    r.ids = ids;
    r.cap = cap;
    r.md = pcre2_match_data_create(1, NULL);
    if (!r.md)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenize: out of memory for PCRE2 match data");
    if ((flags & GQA_TOKENIZE_ADD_BOS) && t->add_bos && t->bos >= 0)
        emit(&r, t->bos);
    gqa_status st = len > 0 ? encode(&r, len, (flags & GQA_TOKENIZE_SPECIAL) != 0) : GQA_OK;
    pcre2_match_data_free(r.md);
    free(r.syms);
    free(r.heap);
    if (st != GQA_OK)
        return st;
    *n = r.n;
    if (r.n > cap)
        return gqa_fail(GQA_ERR_CAPACITY, "tokenize: %lld ids needed, room for %lld",
                        (long long)r.n, (long long)cap);
    return GQA_OK;
}

/* ------------------------------------------------------------ decoding -- */

gqa_status gqa_token_to_piece(const gqa_tokenizer *t, int32_t id, char *buf, int64_t cap,
                              int64_t *len)
{
    if (len)
        *len = 0;
    if (!t || !len)
        return gqa_fail(GQA_ERR_INVALID_ARG, "token_to_piece: %s is NULL", t ? "len" : "tok");
    if (id < 0 || id >= t->n_tokens)
        return gqa_fail(GQA_ERR_INVALID_ARG, "token_to_piece: id %d outside 0..%d", id,
                        t->n_tokens - 1);
    if (cap < 0 || (!buf && cap > 0))
        return gqa_fail(GQA_ERR_INVALID_ARG, "token_to_piece: cap %lld with buf %s", (long long)cap,
                        buf ? "set" : "NULL");
    int64_t n = t->piece_off[id + 1] - t->piece_off[id];
    *len = n;
    if (n > cap)
        return gqa_fail(GQA_ERR_CAPACITY,
                        "token_to_piece: token %d needs %lld bytes, room for %lld", id,
                        (long long)n, (long long)cap);
    if (n > 0)
        memcpy(buf, t->piece + t->piece_off[id], (size_t)n);
    return GQA_OK;
}

gqa_status gqa_detokenize(const gqa_tokenizer *t, const int32_t *ids, int64_t n_ids, char *buf,
                          int64_t cap, int64_t *len)
{
    if (len)
        *len = 0;
    if (!t || !len)
        return gqa_fail(GQA_ERR_INVALID_ARG, "detokenize: %s is NULL", t ? "len" : "tok");
    if (n_ids < 0 || (!ids && n_ids > 0))
        return gqa_fail(GQA_ERR_INVALID_ARG, "detokenize: n_ids %lld with ids %s", (long long)n_ids,
                        ids ? "set" : "NULL");
    if (cap < 0 || (!buf && cap > 0))
        return gqa_fail(GQA_ERR_INVALID_ARG, "detokenize: cap %lld with buf %s", (long long)cap,
                        buf ? "set" : "NULL");
    int64_t total = 0;
    for (int64_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_tokens)
            return gqa_fail(GQA_ERR_INVALID_ARG, "detokenize: ids[%lld] = %d outside 0..%d",
                            (long long)i, id, t->n_tokens - 1);
        int64_t n = t->piece_off[id + 1] - t->piece_off[id];
        if (total < cap) {
            int64_t k = n < cap - total ? n : cap - total;
            if (k > 0)
                memcpy(buf + total, t->piece + t->piece_off[id], (size_t)k);
        }
        total += n; /* each piece < 2^31 bytes, n_ids < 2^63 / 2^31: checked below */
        if (total < 0 || total > INT64_MAX / 2)
            return gqa_fail(GQA_ERR_INVALID_ARG, "detokenize: output length overflows");
    }
    *len = total;
    if (total > cap)
        return gqa_fail(GQA_ERR_CAPACITY, "detokenize: %lld bytes needed, room for %lld",
                        (long long)total, (long long)cap);
    return GQA_OK;
}
