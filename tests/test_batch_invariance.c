/* test_batch_invariance.c - gqa_model_forward gives a sequence bitwise the
 * same logits whatever else is in the batch, and whatever 64-token-aligned
 * chunks its prompt is fed in (what continuous batching in `gqa serve` needs
 * for greedy results that do not depend on the load). On SmolLM2, at 2
 * threads, for sequences short enough that attention runs unsplit and long
 * enough (over 512 keys) that a decode step splits its keys over threads: the
 * split count must come from the sequence alone, not from the batch.
 * Skips without the model unless GQA_REQUIRE_MODEL=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "gqa_model.h"
#include "test_util.h"

static gqa_model *model;
static gqa_model_info info;

static int32_t token(int64_t i, unsigned salt)
{
    return (int32_t)(((uint64_t)i * 104729u + 17u * salt) % 30000u + 50u);
}

typedef struct scenario {
    const char *what;
    int64_t chunk;         /* prompt tokens per forward call */
    int64_t fork_at;       /* 0, or share the first fork_at tokens through a fork */
    int n_others;          /* sequences decoding in the same step */
    int64_t others[8];     /* their lengths */
    int64_t other_prefill; /* a prompt chunk of another sequence in the step */
} scenario;

static gqa_status feed(gqa_kv_cache *c, int32_t seq, const int32_t *t, int64_t n, float *logits)
{
    gqa_forward_item it = {.seq = seq, .tokens = t, .n_tokens = n, .logits = logits};
    return gqa_model_forward(model, c, &it, 1);
}

/* The logits of one decode step after an n-token prompt, under scenario sc. */
static int decode_logits(int64_t n, const scenario *sc, float *out)
{
    gqa_kv_config cfg;
    gqa_kv_cache *c = NULL;
    gqa_model_kv_config(model, GQA_F16, 16, 256u << 20, &cfg);
    if (gqa_kv_cache_create(&cfg, &c) != GQA_OK)
        return -1;
    int32_t *t = tu_xmalloc((size_t)(n + 1) * sizeof *t);
    for (int64_t i = 0; i <= n; i++)
        t[i] = token(i, 1);
    int32_t seq = -1, base = -1;
    gqa_status st = GQA_OK;
    int64_t p = 0;
    if (sc->fork_at > 0) {
        st = gqa_kv_seq_create(c, &base);
        if (st == GQA_OK)
            st = feed(c, base, t, sc->fork_at + 7, NULL);
        if (st == GQA_OK)
            st = gqa_kv_seq_fork(c, base, &seq);
        if (st == GQA_OK)
            st = gqa_kv_seq_truncate(c, seq, sc->fork_at);
        p = sc->fork_at;
    } else {
        st = gqa_kv_seq_create(c, &seq);
    }
    for (; st == GQA_OK && p < n; p += sc->chunk)
        st = feed(c, seq, t + p, n - p < sc->chunk ? n - p : sc->chunk, NULL);
    /* the step under test: our decode token, the others' decode tokens and
     * maybe another prompt chunk */
    gqa_forward_item items[10];
    int32_t *ot[9] = {0};
    int n_items = 1;
    items[0] = (gqa_forward_item){.seq = seq, .tokens = t + n, .n_tokens = 1, .logits = out};
    for (int i = 0; st == GQA_OK && i < sc->n_others + (sc->other_prefill > 0); i++) {
        const int prefill = i == sc->n_others;
        const int64_t len = prefill ? sc->other_prefill : sc->others[i];
        ot[i] = tu_xmalloc((size_t)(len + 1) * sizeof(int32_t));
        for (int64_t j = 0; j <= len; j++)
            ot[i][j] = token(j, (unsigned)i + 2);
        int32_t os;
        st = gqa_kv_seq_create(c, &os);
        if (st == GQA_OK && !prefill)
            st = feed(c, os, ot[i], len, NULL);
        items[n_items++] = (gqa_forward_item){
            .seq = os, .tokens = prefill ? ot[i] : ot[i] + len, .n_tokens = prefill ? len : 1};
    }
    if (st == GQA_OK)
        st = gqa_model_forward(model, c, items, n_items);
    for (int i = 0; i < 9; i++)
        free(ot[i]);
    free(t);
    gqa_kv_cache_free(c);
    return st == GQA_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *path;
    const int have =
        tu_model_path(argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf", &path);
    if (have <= 0)
        return have < 0 ? 1 : 0;
    if (gqa_model_load(path, &model) != GQA_OK) {
        printf("FAIL: load %s: %s\n", path, gqa_last_error());
        return 1;
    }
    gqa_model_info_get(model, &info);
    gqa_set_num_threads(2); /* splits need more than one thread */
    const size_t V = (size_t)info.n_vocab;
    float *ref = tu_xmalloc(V * sizeof *ref), *got = tu_xmalloc(V * sizeof *got);
    const int64_t lens[] = {45, 520};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        const scenario alone = {"alone, whole prompt", n, 0, 0, {0}, 0};
        const scenario cases[] = {
            {"prompt in 64-token chunks", 64, 0, 0, {0}, 0},
            {"prefix of 64 shared by a fork", 128, 64, 0, {0}, 0},
            {"with 7 short decoding sequences", n, 0, 7, {5, 9, 3, 30, 2, 7, 11}, 0},
            {"with 3 decoding sequences, one long", n, 0, 3, {100, 530, 40}, 0},
            {"with a decoding sequence and a prompt chunk", 64, 0, 1, {300}, 37},
        };
        CHECK(decode_logits(n, &alone, ref) == 0, "n = %lld alone: %s", (long long)n,
              gqa_last_error());
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            if (cases[k].fork_at >= n)
                continue;
            const int rc = decode_logits(n, &cases[k], got);
            size_t diff = 0;
            for (size_t v = 0; v < V; v++)
                diff += memcmp(&ref[v], &got[v], sizeof(float)) != 0;
            CHECK(rc == 0 && diff == 0, "n = %lld, %s: %zu of %zu logits differ from alone",
                  (long long)n, cases[k].what, diff, V);
        }
    }
    free(ref);
    free(got);
    gqa_model_free(model);
    gqa_workspace_release();
    return tu_summary();
}
