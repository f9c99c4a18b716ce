/* test_tokenizer.c - the byte-level BPE tokenizer (gqa_tokenizer.h).
 *
 * Part 1, a tiny vocabulary built here: the 256 byte characters plus a few
 * merges, with every expected id worked out by hand from the merge ranks
 * (rank order beats position, leftmost on ties, digits split by "smollm" but
 * not by "gpt2", special tokens, invalid UTF-8, capacity and error paths).
 *
 * Part 2, the real SmolLM2-135M vocabulary: tests/tokenizer/make_cases.py
 * reads the GGUF file with the PyPI `gguf` package, writes the vocabulary
 * (vocab.bin) and the ids that Hugging Face `tokenizers` gives for tricky and
 * seeded random strings (cases.bin); the library must give the same ids and
 * decode them back to the text. Then round trips of random UTF-8 and random
 * bytes. The model is GQA_MODEL_PATH or MODEL_DEFAULT; without it the part is
 * skipped with a message, or fails when GQA_REQUIRE_MODEL=1.
 *
 * Usage: test_tokenizer OUTDIR PYTHON SCRIPT MODEL_DEFAULT
 *        test_tokenizer        (part 1 only)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "gqa_tokenizer.h"
#include "test_util.h"

static int passed, failed;

static void check(int ok, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s (last error: %s)\n", what, gqa_last_error());
    }
}

/* --------------------------------------------------- the tiny vocabulary -- */

/* GPT-2's byte -> code point table, written out from its definition. */
static unsigned byte_cp(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (unsigned)b;
    int n = 0;
    for (int k = 0; k < b; k++)
        if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255)))
            n++;
    return 256u + (unsigned)n;
}

/* Ids of the tiny vocabulary. */
enum {
    T_EOT = 0,
    T_IM_START = 1,
    T_IM_END = 2,
    T_SEP = 3,   /* "<sep>", user-defined */
    T_BYTE0 = 4, /* byte b is 4 + b */
    T_HE = 260,
    T_LL,
    T_HELL,
    T_HELLO,
    T_GW,
    T_OR,
    T_GWOR,
    T_LD,
    T_GWORLD,
    T_12,
    T_GG,
    T_AA,
    T_LO,
    T_SE, /* "<se", user-defined: loses to the longer "<sep>" */
    T_34,
    N_TINY
};
#define B(c) (T_BYTE0 + (unsigned char)(c))

static char tiny_text[N_TINY][16];
static gqa_tokenizer_string tiny_tokens[N_TINY];
static int32_t tiny_types[N_TINY];

/* Rank = position. */
static const char *const tiny_merges[] = {
    "h e",          "l l", "he ll",          "hell o", "\xc4\xa0 w",        "o r",
    "\xc4\xa0w or", "l d", "\xc4\xa0wor ld", "1 2",    "\xc4\xa0 \xc4\xa0", "a a",
    "l o",          "3 4",
};
#define N_TINY_MERGES ((int)(sizeof tiny_merges / sizeof tiny_merges[0]))
static gqa_tokenizer_string tiny_merge_strs[N_TINY_MERGES];

static void set_tiny(int id, const char *s, int32_t type)
{
    snprintf(tiny_text[id], sizeof tiny_text[id], "%s", s);
    tiny_types[id] = type;
}

static void build_tiny_arrays(void)
{
    set_tiny(T_EOT, "<|endoftext|>", GQA_TOKEN_TYPE_CONTROL);
    set_tiny(T_IM_START, "<|im_start|>", GQA_TOKEN_TYPE_CONTROL);
    set_tiny(T_IM_END, "<|im_end|>", GQA_TOKEN_TYPE_CONTROL);
    set_tiny(T_SEP, "<sep>", GQA_TOKEN_TYPE_USER_DEFINED);
    for (int b = 0; b < 256; b++) {
        unsigned cp = byte_cp(b);
        char u[3] = {0};
        if (cp < 0x80) {
            u[0] = (char)cp;
        } else {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
        }
        set_tiny(T_BYTE0 + b, u, GQA_TOKEN_TYPE_NORMAL);
    }
    set_tiny(T_HE, "he", 1);
    set_tiny(T_LL, "ll", 1);
    set_tiny(T_HELL, "hell", 1);
    set_tiny(T_HELLO, "hello", 1);
    set_tiny(T_GW, "\xc4\xa0w", 1); /* "Ġw": Ġ is U+0120, the space byte */
    set_tiny(T_OR, "or", 1);
    set_tiny(T_GWOR, "\xc4\xa0wor", 1);
    set_tiny(T_LD, "ld", 1);
    set_tiny(T_GWORLD, "\xc4\xa0world", 1);
    set_tiny(T_12, "12", 1);
    set_tiny(T_GG, "\xc4\xa0\xc4\xa0", 1);
    set_tiny(T_AA, "aa", 1);
    set_tiny(T_LO, "lo", 1);
    set_tiny(T_SE, "<se", GQA_TOKEN_TYPE_USER_DEFINED);
    set_tiny(T_34, "34", 1);
    for (int i = 0; i < N_TINY; i++) {
        tiny_tokens[i].data = tiny_text[i];
        /* byte 0 maps to U+0100, so no token is empty or holds a NUL */
        tiny_tokens[i].len = strlen(tiny_text[i]);
    }
    for (int i = 0; i < N_TINY_MERGES; i++) {
        tiny_merge_strs[i].data = tiny_merges[i];
        tiny_merge_strs[i].len = strlen(tiny_merges[i]);
    }
}

static gqa_tokenizer_config tiny_config(const char *pre)
{
    gqa_tokenizer_config c;
    memset(&c, 0, sizeof c);
    c.n_tokens = N_TINY;
    c.tokens = tiny_tokens;
    c.token_types = tiny_types;
    c.n_merges = N_TINY_MERGES;
    c.merges = tiny_merge_strs;
    c.bos_id = T_IM_START;
    c.eos_id = T_IM_END;
    c.unk_id = -1;
    c.pad_id = -1;
    c.pre.data = pre;
    c.pre.len = pre ? strlen(pre) : 0;
    return c;
}

static gqa_tokenizer *tiny_create(const char *pre, int add_bos)
{
    gqa_tokenizer_config c = tiny_config(pre);
    c.add_bos = add_bos;
    gqa_tokenizer *tok = NULL;
    gqa_status st = gqa_tokenizer_create(&c, &tok);
    check(st == GQA_OK && tok, "create the tiny tokenizer");
    return tok;
}

static void print_ids(const char *label, const int32_t *ids, int64_t n)
{
    printf("      %s:", label);
    for (int64_t i = 0; i < n && i < 40; i++)
        printf(" %d", ids[i]);
    printf(n > 40 ? " ...\n" : "\n");
}

/* Tokenize, compare with want[0..n_want), decode back and compare with the text. */
static void expect_ids(const gqa_tokenizer *tok, const char *text, size_t len, int flags,
                       const int32_t *want, int64_t n_want, const char *what)
{
    int32_t got[256];
    int64_t n = -1;
    gqa_status st = gqa_tokenize(tok, text, len, flags, got, 256, &n);
    int ok = st == GQA_OK && n == n_want && memcmp(got, want, (size_t)n_want * sizeof *got) == 0;
    check(ok, what);
    if (!ok) {
        printf("      status %s, n %lld\n", gqa_status_string(st), (long long)n);
        print_ids("want", want, n_want);
        print_ids("got ", got, n > 0 ? n : 0);
        return;
    }
    char back[1024];
    int64_t blen = -1;
    st = gqa_detokenize(tok, got, n, back, sizeof back, &blen);
    /* a BOS added by the flag is not part of the text */
    int skip_bos = (flags & GQA_TOKENIZE_ADD_BOS) && gqa_tokenizer_add_bos(tok);
    if (skip_bos)
        st = gqa_detokenize(tok, got + 1, n - 1, back, sizeof back, &blen);
    check(st == GQA_OK && blen == (int64_t)len && memcmp(back, text, len) == 0, what);
}

#define EXPECT(tok, text, flags, ...)                                                              \
    do {                                                                                           \
        static const int32_t want_[] = {__VA_ARGS__};                                              \
        expect_ids((tok), (text), sizeof(text) - 1, (flags), want_,                                \
                   (int64_t)(sizeof want_ / sizeof want_[0]), "ids of \"" text "\" (" #flags ")"); \
    } while (0)

static void test_tiny_encoding(void)
{
    gqa_tokenizer *s = tiny_create("smollm", 0);
    gqa_tokenizer *g = tiny_create("gpt2", 0);
    gqa_tokenizer *d = tiny_create(NULL, 0); /* "default" */
    if (!s || !g || !d)
        goto out;

    /* he, ll, he+ll, hell+o; then Ġ w, o r, Ġw or, l d, Ġwor ld */
    EXPECT(s, "hello world", 0, T_HELLO, T_GWORLD);
    EXPECT(g, "hello world", 0, T_HELLO, T_GWORLD);
    /* the lower rank wins over the leftmost pair: "o r" (5) before "l o" (12) */
    EXPECT(s, "lor", 0, B('l'), T_OR);
    /* "l l" (1) before "l o" (12), and "ll o" is no merge */
    EXPECT(s, "llo", 0, T_LL, B('o'));
    EXPECT(s, "lo", 0, T_LO);
    /* equal ranks: leftmost first */
    EXPECT(s, "aaa", 0, T_AA, B('a'));
    EXPECT(s, "aaaa", 0, T_AA, T_AA);
    /* without the Ġ prefix "Ġw or" cannot apply */
    EXPECT(s, "world", 0, B('w'), T_OR, T_LD);

    /* digits: smollm splits them one by one (and off the space) first */
    EXPECT(s, "a 1234", 0, B('a'), B(' '), B('1'), B('2'), B('3'), B('4'));
    EXPECT(g, "a 1234", 0, B('a'), B(' '), T_12, T_34);
    EXPECT(g, "1234", 0, T_12, T_34);
    /* default: punctuation runs, GPT-2, \p{N}+, then groups of three digits */
    EXPECT(d, "1234", 0, T_12, B('3'), B('4'));
    EXPECT(d, "hello, world!!", 0, T_HELLO, B(','), T_GWORLD, B('!'), B('!'));

    /* whitespace: the last space of a run goes with the next word */
    EXPECT(s, "  world", 0, B(' '), T_GWORLD);
    EXPECT(s, "   world", 0, T_GG, T_GWORLD);
    EXPECT(s, "hello  ", 0, T_HELLO, T_GG);
    EXPECT(s, "\thello\n", 0, B('\t'), T_HELLO, B('\n'));
    EXPECT(s, " \n world", 0, B(' '), B('\n'), T_GWORLD);

    /* special tokens */
    EXPECT(s, "<|im_start|>hello<|im_end|>", GQA_TOKENIZE_SPECIAL, T_IM_START, T_HELLO, T_IM_END);
    EXPECT(s, "<|im_start|>hello<|im_end|>", 0, B('<'), B('|'), B('i'), B('m'), B('_'), B('s'),
           B('t'), B('a'), B('r'), B('t'), B('|'), B('>'), T_HELLO, B('<'), B('|'), B('i'), B('m'),
           B('_'), B('e'), B('n'), B('d'), B('|'), B('>'));
    EXPECT(s, "<|endoftext|><|endoftext|>", GQA_TOKENIZE_SPECIAL, T_EOT, T_EOT);
    EXPECT(s, "<<|im_end|>>", GQA_TOKENIZE_SPECIAL, B('<'), T_IM_END, B('>'));
    /* user-defined tokens match without the flag; longest first */
    EXPECT(s, "hello<sep>world", 0, T_HELLO, T_SEP, B('w'), T_OR, T_LD);
    EXPECT(s, "<sea", 0, T_SE, B('a'));
    EXPECT(s, "<sep", 0, T_SE, B('p'));

    /* invalid UTF-8 still goes through the byte map, and back */
    EXPECT(s, "\xff\xfe\xc3", 0, B(0xff), B(0xfe), B(0xc3));
    EXPECT(s,
           "a\x80"
           "b",
           0, B('a'), B(0x80), B('b'));
    EXPECT(s, "h\xc3\xa9llo", 0, B('h'), B(0xc3), B(0xa9), T_LL, B('o'));
    EXPECT(s,
           "\x00"
           "a",
           0, B(0), B('a'));
out:
    gqa_tokenizer_free(s);
    gqa_tokenizer_free(g);
    gqa_tokenizer_free(d);
}

static void test_tiny_api(void)
{
    gqa_tokenizer *t = tiny_create("smollm", 1);
    if (!t)
        return;
    check(gqa_tokenizer_n_tokens(t) == N_TINY, "n_tokens");
    check(gqa_tokenizer_bos(t) == T_IM_START && gqa_tokenizer_eos(t) == T_IM_END, "bos and eos");
    check(gqa_tokenizer_token_type(t, T_SEP) == GQA_TOKEN_TYPE_USER_DEFINED &&
              gqa_tokenizer_token_type(t, N_TINY) == -1,
          "token types");
    check(gqa_tokenizer_find(t, "\xc4\xa0world", 7) == T_GWORLD, "find \"Ġworld\"");
    check(gqa_tokenizer_find(t, "nope", 4) == -1, "find a missing string");

    /* BOS only when asked and wanted */
    EXPECT(t, "hello", GQA_TOKENIZE_ADD_BOS, T_IM_START, T_HELLO);
    EXPECT(t, "hello", 0, T_HELLO);

    /* capacity: the count of the whole text, the first cap ids, nothing past them */
    int32_t ids[4] = {-7, -7, -7, -7};
    int64_t n = -1;
    gqa_status st = gqa_tokenize(t, "hello world", 11, 0, ids, 1, &n);
    check(st == GQA_ERR_CAPACITY && n == 2 && ids[0] == T_HELLO && ids[1] == -7,
          "tokenize with too little room");
    st = gqa_tokenize(t, "hello world", 11, 0, NULL, 0, &n);
    check(st == GQA_ERR_CAPACITY && n == 2, "tokenize to size the buffer");
    st = gqa_tokenize(t, NULL, 0, 0, NULL, 0, &n);
    check(st == GQA_OK && n == 0, "tokenize empty text");
    st = gqa_tokenize(t, "x", 1, 8, ids, 4, &n);
    check(st == GQA_ERR_INVALID_ARG, "unknown flags");
    st = gqa_tokenize(t, "x", 1, 0, NULL, 4, &n);
    check(st == GQA_ERR_INVALID_ARG, "NULL ids with cap > 0");

    /* pieces */
    char buf[32];
    int64_t len = -1;
    st = gqa_token_to_piece(t, T_GWORLD, buf, sizeof buf, &len);
    check(st == GQA_OK && len == 6 && memcmp(buf, " world", 6) == 0, "piece of \"Ġworld\"");
    st = gqa_token_to_piece(t, B('\n'), buf, sizeof buf, &len);
    check(st == GQA_OK && len == 1 && buf[0] == '\n', "piece of the newline byte");
    st = gqa_token_to_piece(t, B(0xe9), buf, sizeof buf, &len);
    check(st == GQA_OK && len == 1 && (unsigned char)buf[0] == 0xe9, "piece of byte 0xe9");
    st = gqa_token_to_piece(t, T_IM_END, buf, sizeof buf, &len);
    check(st == GQA_OK && len == 10 && memcmp(buf, "<|im_end|>", 10) == 0, "piece of <|im_end|>");
    st = gqa_token_to_piece(t, T_GWORLD, buf, 3, &len);
    check(st == GQA_ERR_CAPACITY && len == 6, "piece with too little room");
    st = gqa_token_to_piece(t, N_TINY, buf, sizeof buf, &len);
    check(st == GQA_ERR_INVALID_ARG, "piece of an id out of range");

    const int32_t seq[] = {T_HELLO, T_GWORLD, T_IM_END};
    st = gqa_detokenize(t, seq, 3, buf, sizeof buf, &len);
    check(st == GQA_OK && len == 21 && memcmp(buf, "hello world<|im_end|>", 21) == 0, "detokenize");
    memset(buf, '#', sizeof buf);
    st = gqa_detokenize(t, seq, 3, buf, 8, &len);
    check(st == GQA_ERR_CAPACITY && len == 21 && memcmp(buf, "hello wo", 8) == 0 && buf[8] == '#',
          "detokenize with too little room");
    const int32_t bad[] = {T_HELLO, -1};
    st = gqa_detokenize(t, bad, 2, buf, sizeof buf, &len);
    check(st == GQA_ERR_INVALID_ARG && strstr(gqa_last_error(), "ids[1]"), "detokenize a bad id");
    gqa_tokenizer_free(t);
}

static void test_tiny_errors(void)
{
    gqa_tokenizer *t = (gqa_tokenizer *)&t; /* must be reset to NULL on failure */
    gqa_tokenizer_config c = tiny_config("llama3-unknown");
    gqa_status st = gqa_tokenizer_create(&c, &t);
    check(st == GQA_ERR_UNSUPPORTED && t == NULL && strstr(gqa_last_error(), "llama3-unknown"),
          "an unknown pre-tokenizer is named");

    gqa_tokenizer_string merges[2] = {{"h e", 3}, {"q z", 3}};
    c = tiny_config("gpt2");
    c.merges = merges;
    c.n_merges = 2;
    st = gqa_tokenizer_create(&c, &t);
    check(st == GQA_ERR_FORMAT && strstr(gqa_last_error(), "merge 1"),
          "a merge of tokens that do not exist");
    merges[1].data = "hello";
    merges[1].len = 5;
    st = gqa_tokenizer_create(&c, &t);
    check(st == GQA_ERR_FORMAT && strstr(gqa_last_error(), "merge 1"), "a merge without a space");

    c = tiny_config("gpt2");
    c.eos_id = N_TINY;
    check(gqa_tokenizer_create(&c, &t) == GQA_ERR_INVALID_ARG, "eos_id out of range");
    c = tiny_config("gpt2");
    c.n_tokens = 0;
    check(gqa_tokenizer_create(&c, &t) == GQA_ERR_INVALID_ARG, "no tokens");
    int32_t types[N_TINY];
    memcpy(types, tiny_types, sizeof types);
    types[5] = 9;
    c = tiny_config("gpt2");
    c.token_types = types;
    check(gqa_tokenizer_create(&c, &t) == GQA_ERR_INVALID_ARG, "token type 9");
    check(gqa_tokenizer_create(NULL, &t) == GQA_ERR_INVALID_ARG, "NULL config");

    /* a byte whose character is missing is dropped, or becomes a real
     * unknown token (type UNKNOWN); a control-type unk_id is not used */
    c = tiny_config("gpt2");
    c.n_tokens = T_BYTE0 + 'a'; /* bytes 0..0x60 only; no merges */
    c.n_merges = 0;
    c.bos_id = c.eos_id = -1;
    c.unk_id = T_EOT;
    st = gqa_tokenizer_create(&c, &t);
    check(st == GQA_OK, "create a vocabulary without all bytes");
    if (st == GQA_OK) {
        int32_t ids[4];
        int64_t n;
        st = gqa_tokenize(t, "AbC", 3, 0, ids, 4, &n);
        check(st == GQA_OK && n == 2 && ids[0] == B('A') && ids[1] == B('C'),
              "a byte with no token is dropped");
        st = gqa_tokenize(t, "bcd", 3, 0, ids, 4, &n);
        check(st == GQA_OK && n == 0, "a piece of bytes with no tokens gives no ids");
        gqa_tokenizer_free(t);
        memcpy(types, tiny_types, sizeof types);
        types[T_EOT] = GQA_TOKEN_TYPE_UNKNOWN;
        c.token_types = types;
        st = gqa_tokenizer_create(&c, &t);
        check(st == GQA_OK, "create with an unknown token");
        if (st == GQA_OK) {
            st = gqa_tokenize(t, "a!", 2, 0, ids, 4, &n);
            check(st == GQA_OK && n == 2 && ids[0] == T_EOT && ids[1] == B('!'),
                  "a byte with no token becomes the unknown token");
            gqa_tokenizer_free(t);
        }
    }
    gqa_tokenizer_free(NULL);
    check(1, "free(NULL)");
}

/* ---------------------------------------------------- the real vocabulary -- */

typedef struct reader {
    unsigned char *p;
    size_t n, at;
    int bad;
} reader;

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = tu_xmalloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            cap *= 2;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

static uint32_t rd_u32(reader *r)
{
    if (r->bad || r->n - r->at < 4) {
        r->bad = 1;
        return 0;
    }
    const unsigned char *p = r->p + r->at;
    r->at += 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t rd_i32(reader *r)
{
    uint32_t u = rd_u32(r);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static const char *rd_bytes(reader *r, uint32_t len)
{
    if (r->bad || r->n - r->at < len) {
        r->bad = 1;
        return "";
    }
    const char *p = (const char *)r->p + r->at;
    r->at += len;
    return p;
}

static int rd_magic(reader *r, const char *magic)
{
    const char *m = rd_bytes(r, 8);
    return !r->bad && memcmp(m, magic, 8) == 0;
}

/* Build the tokenizer from vocab.bin (strings point into the file buffer). */
static gqa_tokenizer *load_real(const char *dir, unsigned char **file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.bin", dir);
    reader r = {0};
    r.p = slurp(path, &r.n);
    *file = r.p;
    if (!r.p || !rd_magic(&r, "GQATOKV1")) {
        check(0, "read vocab.bin");
        return NULL;
    }
    gqa_tokenizer_config c;
    memset(&c, 0, sizeof c);
    c.n_tokens = (int32_t)rd_u32(&r);
    gqa_tokenizer_string *toks = tu_xmalloc((size_t)c.n_tokens * sizeof *toks + 1);
    int32_t *types = tu_xmalloc((size_t)c.n_tokens * sizeof *types + 1);
    for (int32_t i = 0; i < c.n_tokens && !r.bad; i++) {
        toks[i].len = rd_u32(&r);
        toks[i].data = rd_bytes(&r, (uint32_t)toks[i].len);
        types[i] = rd_i32(&r);
    }
    c.n_merges = (int32_t)rd_u32(&r);
    gqa_tokenizer_string *merges = tu_xmalloc((size_t)c.n_merges * sizeof *merges + 1);
    for (int32_t i = 0; i < c.n_merges && !r.bad; i++) {
        merges[i].len = rd_u32(&r);
        merges[i].data = rd_bytes(&r, (uint32_t)merges[i].len);
    }
    c.tokens = toks;
    c.token_types = types;
    c.merges = merges;
    c.bos_id = rd_i32(&r);
    c.eos_id = rd_i32(&r);
    c.unk_id = rd_i32(&r);
    c.pad_id = rd_i32(&r);
    c.add_bos = (int32_t)rd_u32(&r);
    c.pre.len = rd_u32(&r);
    c.pre.data = rd_bytes(&r, (uint32_t)c.pre.len);
    gqa_tokenizer *t = NULL;
    if (r.bad) {
        check(0, "vocab.bin is truncated");
    } else {
        gqa_status st = gqa_tokenizer_create(&c, &t);
        check(st == GQA_OK, "create the SmolLM2 tokenizer from the GGUF vocabulary");
    }
    free(toks);
    free(types);
    free(merges);
    return t;
}

/* Bytes the vocabulary has a token for (SmolLM2 lacks 21 of them). */
static int has_byte[256];

static void find_bytes(const gqa_tokenizer *t)
{
    int missing = 0;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int32_t id;
        int64_t n = 0;
        has_byte[b] = gqa_tokenize(t, &c, 1, 0, &id, 1, &n) == GQA_OK && n == 1;
        missing += !has_byte[b];
    }
    printf("real vocabulary: %d of 256 bytes have no token (dropped when encoding)\n", missing);
}

/* text without the bytes that have no token: what decoding must give back */
static size_t drop_missing(const char *text, size_t len, char *out)
{
    size_t m = 0;
    for (size_t i = 0; i < len; i++)
        if (has_byte[(unsigned char)text[i]])
            out[m++] = text[i];
    return m;
}

static int utf8_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!has_byte[(unsigned char)s[i]])
            return 0;
    return 1;
}

/* Encode, decode, compare with the text; return 1 when both agree. */
static int round_trip(const gqa_tokenizer *t, const char *text, size_t len, int flags, int32_t *ids,
                      int64_t cap, char *back)
{
    int64_t n = 0, blen = 0;
    if (gqa_tokenize(t, text, len, flags, ids, cap, &n) != GQA_OK)
        return 0;
    if (gqa_detokenize(t, ids, n, back, (int64_t)len, &blen) != GQA_OK)
        return 0;
    return blen == (int64_t)len && memcmp(back, text, len) == 0;
}

static void test_real_cases(const gqa_tokenizer *t, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cases.bin", dir);
    reader r = {0};
    r.p = slurp(path, &r.n);
    if (!r.p || !rd_magic(&r, "GQATOKC1")) {
        check(0, "read cases.bin");
        free(r.p);
        return;
    }
    uint32_t n_cases = rd_u32(&r);
    int32_t *got = tu_xmalloc(1 << 16);
    char *back = tu_xmalloc(1 << 16);
    int shown = 0, ok_cases = 0;
    for (uint32_t k = 0; k < n_cases && !r.bad; k++) {
        uint32_t flags = rd_u32(&r);
        uint32_t len = rd_u32(&r);
        const char *text = rd_bytes(&r, len);
        uint32_t n_want = rd_u32(&r);
        const char *raw = rd_bytes(&r, 4 * n_want);
        if (r.bad || len > 8000 || n_want > 8000)
            break;
        int32_t want[8000];
        for (uint32_t i = 0; i < n_want; i++) {
            uint32_t u = (uint32_t)(unsigned char)raw[4 * i] |
                         (uint32_t)(unsigned char)raw[4 * i + 1] << 8 |
                         (uint32_t)(unsigned char)raw[4 * i + 2] << 16 |
                         (uint32_t)(unsigned char)raw[4 * i + 3] << 24;
            memcpy(&want[i], &u, 4);
        }
        int64_t n = -1;
        gqa_status st =
            gqa_tokenize(t, text, len, flags ? GQA_TOKENIZE_SPECIAL : 0, got, 16384, &n);
        int same = st == GQA_OK && n == (int64_t)n_want &&
                   memcmp(got, want, (size_t)n_want * sizeof *got) == 0;
        int64_t blen = -1;
        char kept[8000];
        size_t n_kept = drop_missing(text, len, kept);
        int back_ok = same && gqa_detokenize(t, got, n, back, 1 << 16, &blen) == GQA_OK &&
                      blen == (int64_t)n_kept && memcmp(back, kept, n_kept) == 0;
        if (same && back_ok) {
            ok_cases++;
            passed++;
            continue;
        }
        failed++;
        if (shown++ < 8) {
            printf("FAIL: real vocabulary case %u (special=%u) \"%.*s\": %s\n", k, flags,
                   (int)(len > 80 ? 80 : len), text, same ? "does not decode back" : "ids differ");
            print_ids("want (tokenizers)", want, n_want);
            print_ids("got  (gqa)       ", got, n > 0 ? n : 0);
        }
    }
    check(!r.bad && r.at == r.n, "cases.bin read to its end");
    printf("real vocabulary: %d of %u cases match Hugging Face tokenizers\n", ok_cases, n_cases);
    free(got);
    free(back);
    free(r.p);
}

/* Append the UTF-8 of cp. */
static size_t put_utf8(char *s, uint32_t cp)
{
    if (cp < 0x80) {
        s[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        s[0] = (char)(0xE0 | (cp >> 12));
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    s[0] = (char)(0xF0 | (cp >> 18));
    s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    s[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static uint32_t random_cp(tu_rng *rng)
{
    static const char ascii[] = " \t\n\r0123456789'.,!?-abcXYZ<|>_";
    switch (tu_rng_int(rng, 0, 9)) {
    case 0:
    case 1:
    case 2: return (uint32_t)ascii[tu_rng_int(rng, 0, (int)sizeof ascii - 2)];
    case 3: return (uint32_t)tu_rng_int(rng, 0x20, 0x7E);
    case 4: return (uint32_t)tu_rng_int(rng, 0x80, 0x7FF);      /* Latin, Greek, Cyrillic, ... */
    case 5: return (uint32_t)tu_rng_int(rng, 0x300, 0x36F);     /* combining marks */
    case 6: return (uint32_t)tu_rng_int(rng, 0x4E00, 0x9FFF);   /* CJK */
    case 7: return (uint32_t)tu_rng_int(rng, 0x1F300, 0x1FAFF); /* emoji */
    case 8: {
        uint32_t cp = (uint32_t)tu_rng_int(rng, 0x800, 0xFFFD);
        return cp >= 0xD800 && cp <= 0xDFFF ? 0x2009 : cp; /* no surrogates */
    }
    default: return (uint32_t)tu_rng_int(rng, 0x10000, 0x10FFFF); /* any plane */
    }
}

static void test_real_round_trips(const gqa_tokenizer *t)
{
    enum { MAXLEN = 4096 };
    char *text = tu_xmalloc(MAXLEN + 8), *back = tu_xmalloc(MAXLEN + 8);
    int32_t *ids = tu_xmalloc((MAXLEN + 8) * sizeof *ids);
    tu_rng rng;
    tu_rng_seed(&rng, 4242);
    int bad_utf8 = 0, bad_bytes = 0;
    for (int k = 0; k < 300; k++) {
        size_t len = 0, want = (size_t)tu_rng_int(&rng, 1, 400);
        while (len < want) {
            size_t l = put_utf8(text + len, random_cp(&rng));
            if (utf8_ok(text + len, l)) /* only characters the vocabulary can spell */
                len += l;
        }
        int flags = k % 2 ? GQA_TOKENIZE_SPECIAL : 0;
        if (!round_trip(t, text, len, flags, ids, MAXLEN + 8, back) && bad_utf8++ < 3)
            printf("      random UTF-8 string %d does not round-trip\n", k);
    }
    check(bad_utf8 == 0, "300 random UTF-8 strings round-trip");
    for (int k = 0; k < 200; k++) {
        size_t len = (size_t)tu_rng_int(&rng, 1, 300);
        for (size_t i = 0; i < len;) {
            text[i] = (char)tu_rng_int(&rng, 0, 255);
            i += has_byte[(unsigned char)text[i]];
        }
        if (!round_trip(t, text, len, GQA_TOKENIZE_SPECIAL, ids, MAXLEN + 8, back) &&
            bad_bytes++ < 3)
            printf("      random byte string %d does not round-trip\n", k);
    }
    check(bad_bytes == 0, "200 random byte strings (mostly invalid UTF-8) round-trip");

    /* every byte at once: decoding gives the text less the bytes with no token */
    for (int b = 0; b < 256; b++)
        text[b] = (char)b;
    char *kept = tu_xmalloc(MAXLEN);
    size_t n_kept = drop_missing(text, 256, kept);
    int64_t n = 0, blen = 0;
    int ok = gqa_tokenize(t, text, 256, 0, ids, MAXLEN, &n) == GQA_OK &&
             gqa_detokenize(t, ids, n, back, MAXLEN, &blen) == GQA_OK && blen == (int64_t)n_kept &&
             memcmp(back, kept, n_kept) == 0;
    check(ok, "all 256 bytes: only those without a token are lost");
    free(kept);

    /* one long piece: 4000 spaces then a word (regex backtracking, long BPE) */
    memset(text, ' ', 4000);
    memcpy(text + 4000, "word", 4);
    check(round_trip(t, text, 4004, 0, ids, MAXLEN + 8, back), "4000 spaces and a word round-trip");
    free(text);
    free(back);
    free(ids);

    char piece[64];
    int64_t len = 0;
    check(gqa_tokenizer_n_tokens(t) == 49152, "SmolLM2 has 49152 tokens");
    gqa_status st = gqa_token_to_piece(t, gqa_tokenizer_eos(t), piece, sizeof piece, &len);
    check(st == GQA_OK && len == 10 && memcmp(piece, "<|im_end|>", 10) == 0,
          "SmolLM2's EOS is <|im_end|>");
    check(gqa_tokenizer_find(t, "<|im_start|>", 12) == gqa_tokenizer_bos(t),
          "SmolLM2's BOS is <|im_start|>");
}

static void test_real(int argc, char **argv)
{
    if (argc < 5) {
        printf("real vocabulary: not run (usage: test_tokenizer OUTDIR PYTHON SCRIPT MODEL)\n");
        return;
    }
    const char *dir = argv[1], *python = argv[2], *script = argv[3];
    const char *model = getenv("GQA_MODEL_PATH");
    if (!model || !*model)
        model = argv[4];
    const char *require = getenv("GQA_REQUIRE_MODEL");
    int required = require && strcmp(require, "1") == 0;
    FILE *f = fopen(model, "rb");
    if (!f) {
        if (required) {
            printf(
                "FAIL: GQA_REQUIRE_MODEL=1 but the model %s is absent (run scripts/fetch_model.sh "
                "or set GQA_MODEL_PATH)\n",
                model);
            failed++;
        } else {
            printf("SKIP: real-vocabulary tests: model %s is absent (run scripts/fetch_model.sh or "
                   "set "
                   "GQA_MODEL_PATH; GQA_REQUIRE_MODEL=1 makes this a failure)\n",
                   model);
        }
        return;
    }
    fclose(f);
    if (strchr(python, '\'') || strchr(script, '\'') || strchr(model, '\'') || strchr(dir, '\'')) {
        check(0, "paths without single quotes");
        return;
    }
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' '%s' --model '%s' --out '%s'", python, script, model, dir);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) {
        printf("FAIL: %s exited with status %d (needs .venv with the PyPI packages gguf and "
               "tokenizers: .venv/bin/pip install gguf tokenizers)\n",
               cmd, rc);
        failed++;
        return;
    }
    unsigned char *file = NULL;
    gqa_tokenizer *t = load_real(dir, &file);
    if (t) {
        find_bytes(t);
        test_real_cases(t, dir);
        test_real_round_trips(t);
    }
    gqa_tokenizer_free(t);
    free(file);
}

int main(int argc, char **argv)
{
    build_tiny_arrays();
    test_tiny_encoding();
    test_tiny_api();
    test_tiny_errors();
    test_real(argc, argv);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
