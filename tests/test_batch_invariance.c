/* test_batch_invariance.c - gqa_model_forward gives a sequence bitwise the
 * same logits whatever else is in the batch, and whatever 64-token-aligned
 * chunks its prompt is fed in (what continuous batching in `gqa serve` needs
 * for greedy results that do not depend on the load). On SmolLM2, at 2
 * threads, for a sequence short enough that attention runs unsplit and one
 * long enough (over 512 keys) that a decode step splits its keys over the
 * threads: the split count must come from the sequence alone, not from the
 * batch. Each prompt is computed once per way of feeding it; every batching
 * scenario then decodes from a fork of it (forks share the prompt's blocks).
 * Skips without the model unless GQA_REQUIRE_MODEL=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "gqa_model.h"
#include "test_util.h"

static gqa_model *model;
static gqa_kv_cache *cache;
static size_t n_vocab;

static int32_t token(int64_t i, unsigned salt)
{
    return (int32_t)(((uint64_t)i * 104729u + 17u * salt) % 30000u + 50u);
}

/* n tokens of the sequence `salt` (one more for its next decode step). */
static int32_t *tokens_of(int64_t n, unsigned salt)
{
    int32_t *t = tu_xmalloc((size_t)(n + 1) * sizeof *t);
    for (int64_t i = 0; i <= n; i++)
        t[i] = token(i, salt);
    return t;
}

static gqa_status feed(int32_t seq, const int32_t *t, int64_t n)
{
    gqa_forward_item it = {.seq = seq, .tokens = t, .n_tokens = n};
    return gqa_model_forward(model, cache, &it, 1);
}

/* A new sequence holding t[0..n): its first `shared` tokens forked from a
 * sequence that computed them (0: none), the rest fed in calls of `chunk`. */
static int32_t prompt_seq(const int32_t *t, int64_t n, int64_t chunk, int64_t shared)
{
    int32_t seq = -1, base;
    gqa_status st = GQA_OK;
    int64_t p = 0;
    if (shared > 0) {
        st = gqa_kv_seq_create(cache, &base);
        if (st == GQA_OK)
            st = feed(base, t, shared + 7);
        if (st == GQA_OK)
            st = gqa_kv_seq_fork(cache, base, &seq);
        if (st == GQA_OK)
            st = gqa_kv_seq_truncate(cache, seq, shared);
        gqa_kv_seq_free(cache, base);
        p = shared;
    } else {
        st = gqa_kv_seq_create(cache, &seq);
    }
    for (; st == GQA_OK && p < n; p += chunk)
        st = feed(seq, t + p, n - p < chunk ? n - p : chunk);
    if (st != GQA_OK)
        printf("FAIL: prompt: %s\n", gqa_last_error());
    return st == GQA_OK ? seq : -1;
}

/* Other sequences that can join a step: decoding (prompt computed) or a
 * prompt chunk (nothing computed yet). */
typedef struct other {
    int64_t len;
    int prefill;
    int32_t *t;
    int32_t seq; /* decoding: holds the computed prompt */
} other;

/* One decode step of `seq` (next token t_next) together with others[0..n):
 * each decoding other steps from a fork of its sequence, a prefilling other
 * feeds its prompt into a new sequence. Forks are freed afterwards. */
static int step(int32_t seq, const int32_t *t_next, other *o, int n, float *out)
{
    gqa_forward_item items[12];
    int32_t forks[12];
    int n_items = 0;
    gqa_status st = gqa_kv_seq_fork(cache, seq, &forks[0]);
    items[n_items++] =
        (gqa_forward_item){.seq = forks[0], .tokens = t_next, .n_tokens = 1, .logits = out};
    for (int i = 0; st == GQA_OK && i < n; i++) {
        if (o[i].prefill)
            st = gqa_kv_seq_create(cache, &forks[n_items]);
        else
            st = gqa_kv_seq_fork(cache, o[i].seq, &forks[n_items]);
        items[n_items] = (gqa_forward_item){.seq = forks[n_items],
                                            .tokens = o[i].prefill ? o[i].t : o[i].t + o[i].len,
                                            .n_tokens = o[i].prefill ? o[i].len : 1};
        n_items += st == GQA_OK;
    }
    if (st == GQA_OK)
        st = gqa_model_forward(model, cache, items, n_items);
    for (int i = 0; i < n_items; i++)
        gqa_kv_seq_free(cache, forks[i]);
    return st == GQA_OK ? 0 : -1;
}

static size_t count_diff(const float *a, const float *b)
{
    size_t d = 0;
    for (size_t v = 0; v < n_vocab; v++)
        d += memcmp(&a[v], &b[v], sizeof(float)) != 0;
    return d;
}

static void check_length(int64_t n, other *others)
{
    int32_t *t = tokens_of(n, 1);
    float *ref = tu_xmalloc(n_vocab * sizeof *ref), *got = tu_xmalloc(n_vocab * sizeof *got);
    const int32_t whole = prompt_seq(t, n, n, 0);
    CHECK(whole >= 0 && step(whole, t + n, NULL, 0, ref) == 0, "n = %lld: alone", (long long)n);
    /* the same prompt fed in other ways, decoded alone */
    const struct {
        const char *what;
        int64_t chunk, shared;
    } feeds[] = {{"prompt in 64-token chunks", 64, 0},
                 {"a 64-token prefix shared by a fork, the rest in 128-token chunks", 128, 64}};
    for (size_t k = 0; k < sizeof feeds / sizeof feeds[0]; k++) {
        if (feeds[k].shared >= n)
            continue;
        const int32_t seq = prompt_seq(t, n, feeds[k].chunk, feeds[k].shared);
        const int rc = seq >= 0 ? step(seq, t + n, NULL, 0, got) : -1;
        const size_t d = count_diff(ref, got);
        CHECK(rc == 0 && d == 0, "n = %lld, %s: %zu of %zu logits differ from alone", (long long)n,
              feeds[k].what, d, n_vocab);
        gqa_kv_seq_free(cache, seq);
    }
    /* the whole-prompt sequence decoded together with others */
    const struct {
        const char *what;
        int first, count;
    } batches[] = {{"with 7 short decoding sequences", 0, 7},
                   {"with 3 decoding sequences, one long", 7, 3},
                   {"with a long decoding sequence and a prompt chunk", 9, 2}};
    for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++) {
        const int rc = step(whole, t + n, others + batches[k].first, batches[k].count, got);
        const size_t d = count_diff(ref, got);
        CHECK(rc == 0 && d == 0, "n = %lld, %s: %zu of %zu logits differ from alone", (long long)n,
              batches[k].what, d, n_vocab);
    }
    gqa_kv_seq_free(cache, whole);
    free(ref);
    free(got);
    free(t);
}

int main(int argc, char **argv)
{
    const char *path;
    const int have =
        tu_model_path(argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf", &path);
    if (have <= 0)
        return have < 0 ? 1 : 0;
    gqa_model_info info;
    gqa_kv_config cfg;
    if (gqa_model_load(path, &model) != GQA_OK || gqa_model_info_get(model, &info) != GQA_OK ||
        gqa_model_kv_config(model, GQA_F16, 16, 128u << 20, &cfg) != GQA_OK ||
        gqa_kv_cache_create(&cfg, &cache) != GQA_OK) {
        printf("FAIL: load %s: %s\n", path, gqa_last_error());
        return 1;
    }
    n_vocab = (size_t)info.n_vocab;
    gqa_set_num_threads(2); /* splits need more than one thread */
    /* 0-6: short decoders; 7-9: decoders, one long (over 512 keys);
     * 10: a prompt chunk */
    other others[11] = {{5, 0, 0, 0},  {9, 0, 0, 0},   {3, 0, 0, 0},  {30, 0, 0, 0},
                        {2, 0, 0, 0},  {7, 0, 0, 0},   {11, 0, 0, 0}, {100, 0, 0, 0},
                        {40, 0, 0, 0}, {530, 0, 0, 0}, {37, 1, 0, 0}};
    for (int i = 0; i < 11; i++) {
        others[i].t = tokens_of(others[i].len, (unsigned)i + 2);
        if (!others[i].prefill)
            others[i].seq = prompt_seq(others[i].t, others[i].len, others[i].len, 0);
    }
    check_length(45, others);
    check_length(520, others);
    for (int i = 0; i < 11; i++)
        free(others[i].t);
    gqa_kv_cache_free(cache);
    gqa_model_free(model);
    gqa_workspace_release();
    return tu_summary();
}
