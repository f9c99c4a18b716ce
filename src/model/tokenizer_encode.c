/* tokenizer_encode.c - text to token ids for the byte-level BPE tokenizer
 * (tokenizer.c): the pre-tokenizer's regexes, the merge table, and encoding.
 *
 * Special tokens are cut out first; the text between them is split by the
 * pre-tokenizer's regexes, and each piece is BPE-merged from its bytes.
 * Encoding never builds strings: BPE works on token ids.
 */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_internal.h"
#include "model/tokenizer_pre.h"

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

int gqa_tokenizer_pre_regexes(const char *name, const char *const **regex)
{
    for (int i = 0; name && i < N_PRE_SPECS; i++)
        if (!strcmp(pre_specs[i].name, name)) {
            *regex = pre_specs[i].regex;
            return pre_specs[i].n_regex;
        }
    return -1;
}

const char *gqa_tokenizer_pre_name(int n, const char *const *regex)
{
    for (int i = 0; i < N_PRE_SPECS; i++) {
        int same = pre_specs[i].n_regex == n;
        for (int k = 0; same && k < n; k++)
            same = !strcmp(pre_specs[i].regex[k], regex[k]);
        if (same && strcmp(pre_specs[i].name, "default") != 0)
            return pre_specs[i].name;
    }
    return NULL;
}

gqa_status gqa_tokenizer_build_regex(gqa_tokenizer *t, const gqa_tokenizer_config *cfg)
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

/* ---------------------------------------------------------- merge table -- */

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* murmur3 finaliser */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
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

gqa_status gqa_tokenizer_build_merges(gqa_tokenizer *t, const gqa_tokenizer_config *cfg)
{
    t->merge_mask = tok_table_size((uint64_t)cfg->n_merges) - 1;
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
