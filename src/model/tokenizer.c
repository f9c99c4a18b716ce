/* tokenizer.c - GPT-2 style byte-level BPE (llama.cpp's "gpt2" model):
 * creation, the vocabulary, decoding. Encoding is in tokenizer_encode.c.
 *
 * Creation copies the vocabulary into two arenas (the stored strings, and the
 * bytes each token decodes to), hashes the strings for lookup, resolves every
 * merge "left right" to a (left id, right id) -> (rank, joined id) entry, and
 * compiles the pre-tokenizer's regexes with PCRE2 (UTF, Unicode properties,
 * JIT when available); the last two live with the encoder, which uses them.
 */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_internal.h"

#define TOK_MAX_STRING 0x7fffffffu

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

int gqa_tokenizer_byte_spelling(int b, char out[2])
{
    uint32_t cp_of_byte[256];
    int16_t byte_of_cp[324];
    byte_map(cp_of_byte, byte_of_cp);
    return utf8_put_small(cp_of_byte[b & 0xFF], out);
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

/* The bytes that token string s[0..n) of type `type` stands for, written to
 * p (room for n bytes); returns how many. */
static size_t token_piece(const unsigned char *s, size_t n, int32_t type,
                          const int16_t byte_of_cp[324], char *p)
{
    size_t np = 0;
    if (type == GQA_TOKEN_TYPE_CONTROL || type == GQA_TOKEN_TYPE_USER_DEFINED ||
        type == GQA_TOKEN_TYPE_UNKNOWN) {
        if (n)
            memcpy(p, s, n);
        np = n;
    } else if (type == GQA_TOKEN_TYPE_BYTE && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
               hex_digit(s[3]) >= 0 && hex_digit(s[4]) >= 0) {
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
    return np;
}

/* The string -> id hash table over the copied strings, and the token of
 * each byte's character. */
static gqa_status build_vocab(gqa_tokenizer *t, const uint32_t cp_of_byte[256])
{
    t->vocab_mask = tok_table_size((uint64_t)t->n_tokens) - 1;
    t->vocab = malloc((size_t)(t->vocab_mask + 1) * sizeof *t->vocab);
    if (!t->vocab)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tokenizer: out of memory for the vocabulary table");
    for (uint64_t i = 0; i <= t->vocab_mask; i++)
        t->vocab[i] = -1;
    for (int32_t i = 0; i < t->n_tokens; i++)
        vocab_insert(t, i);

    for (int b = 0; b < 256; b++) {
        char c[2];
        int l = utf8_put_small(cp_of_byte[b], c);
        t->byte_token[b] = gqa_tokenizer_find(t, c, (size_t)l);
    }
    return GQA_OK;
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
        poff += (int64_t)token_piece(s, n, type, byte_of_cp, t->piece + poff);
    }
    t->text_off[cfg->n_tokens] = off;
    t->piece_off[cfg->n_tokens] = poff;
    return build_vocab(t, cp_of_byte);
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
        st = gqa_tokenizer_build_merges(t, cfg);
    if (st == GQA_OK)
        st = build_specials(t);
    if (st == GQA_OK)
        st = gqa_tokenizer_build_regex(t, cfg);
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
