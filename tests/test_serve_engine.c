/* test_serve_engine.c - the scheduler of `gqa serve` without HTTP, on
 * SmolLM2: greedy tokens of requests batched together (and with prompts cut
 * into chunks, and with shared prefixes) equal those of `gqa run`'s plain
 * loop (the whole prompt in one forward call, then one token at a time);
 * admission against the KV budget (queue, 429-style refusal, too large);
 * prefix sharing through forks; cancellation, timeout, stop strings and
 * shutdown; and the cache back at zero blocks afterwards.
 * Skips without the model unless GQA_REQUIRE_MODEL=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "gqa.h"
#include "gqa_model.h"
#include "test_util.h"

static gqa_model *model;
static gqa_tokenizer *tok;
static gqa_model_info info;
static int32_t stop_ids[3];
static int n_stop_ids;

/* A deterministic prompt of n tokens (ids avoid the special tokens). */
static int32_t *make_prompt(int64_t n, unsigned salt)
{
    int32_t *p = tu_xmalloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (int32_t)(((unsigned)i * 2654435761u + salt * 40503u) % 20000u + 1000u);
    return p;
}

static int is_stop_id(int32_t id)
{
    for (int i = 0; i < n_stop_ids; i++)
        if (stop_ids[i] == id)
            return 1;
    return 0;
}

/* `gqa run`'s loop: the prompt in one forward call, then greedy decoding one
 * token at a time; returns the count of generated tokens (stop id excluded). */
static int64_t reference(const int32_t *prompt, int64_t n, int64_t max_tokens, int32_t *out)
{
    gqa_kv_config cfg;
    gqa_kv_cache *cache = NULL;
    int32_t seq;
    gqa_model_kv_config(model, GQA_F16, 16, (uint64_t)(n + max_tokens + 16) * 23040u, &cfg);
    if (gqa_kv_cache_create(&cfg, &cache) != GQA_OK || gqa_kv_seq_create(cache, &seq) != GQA_OK)
        return -1;
    float *logits = tu_xmalloc((size_t)info.n_vocab * sizeof *logits);
    gqa_forward_item it = {.seq = seq, .tokens = prompt, .n_tokens = n, .logits = logits};
    int64_t k = 0;
    gqa_status st = gqa_model_forward(model, cache, &it, 1);
    while (st == GQA_OK && k < max_tokens) {
        int32_t best = 0;
        for (int32_t v = 1; v < info.n_vocab; v++)
            if (logits[v] > logits[best])
                best = v;
        if (is_stop_id(best))
            break;
        out[k++] = best;
        it = (gqa_forward_item){.seq = seq, .tokens = &out[k - 1], .n_tokens = 1, .logits = logits};
        st = gqa_model_forward(model, cache, &it, 1);
    }
    free(logits);
    gqa_kv_cache_free(cache);
    return st == GQA_OK ? k : -1;
}

static srv_engine *make_engine(uint64_t budget, int32_t max_queue, int32_t prefill_chunk,
                               int32_t prefix_cache, int with_stop_ids)
{
    srv_engine_config c = {.model = model,
                           .tok = tok,
                           .kv_type = GQA_F16,
                           .kv_budget = budget,
                           .block_tokens = 16,
                           .n_ctx = 2048,
                           .max_queue = max_queue,
                           .prefill_chunk = prefill_chunk,
                           .prefix_cache = prefix_cache};
    memcpy(c.stop_ids, stop_ids, sizeof stop_ids);
    c.n_stop_ids = with_stop_ids ? n_stop_ids : 0;
    srv_engine *e = NULL;
    if (srv_engine_create(&c, &e) != GQA_OK || srv_engine_start(e) != GQA_OK) {
        printf("FAIL: engine: %s\n", gqa_last_error());
        exit(1);
    }
    return e;
}

static srv_request_params greedy(const int32_t *prompt, int64_t n, int64_t max_tokens)
{
    srv_request_params p = {.prompt = prompt, .n_prompt = n, .max_tokens = max_tokens};
    gqa_sampler_config_default(&p.sampler);
    p.sampler.temperature = 0.0f;
    return p;
}

/* Read a request to its end (at most 120 s); returns the finish reason and
 * the text in *text (malloc'd, may be NULL). */
static srv_finish wait_end(srv_request *r, char **text, srv_progress *pr)
{
    size_t len = 0;
    *text = NULL;
    const double t0 = tu_seconds();
    do {
        srv_request_read(r, 0.2, text, &len, pr);
    } while (pr->finish == SRV_FINISH_NONE && tu_seconds() - t0 < 120.0);
    return pr->finish;
}

static int64_t blocks_used(srv_engine *e)
{
    srv_stats st;
    srv_engine_stats(e, &st);
    return st.blocks_used;
}

/* Several requests at once, prompts of awkward lengths cut into 64-token
 * chunks: each gets exactly its tokens from the reference loop. */
static void test_batched_equals_alone(void)
{
    enum { N = 5, MAX = 8 };
    const int64_t lens[N] = {9, 70, 150, 513, 3};
    int32_t *prompts[N], want[N][MAX];
    int64_t n_want[N];
    srv_request *req[N];
    /* the references first: two OpenMP teams at once would only compete */
    const double t_ref = tu_seconds();
    for (int i = 0; i < N; i++) {
        prompts[i] = make_prompt(lens[i], (unsigned)i + 1);
        n_want[i] = reference(prompts[i], lens[i], MAX, want[i]);
    }
    printf("references: %.2f s\n", tu_seconds() - t_ref);
    srv_engine *e = make_engine(64u << 20, 8, 64, 0, 1);
    for (int i = 0; i < N; i++) {
        srv_request_params p = greedy(prompts[i], lens[i], MAX);
        CHECK(srv_engine_submit(e, &p, &req[i]) == SRV_SUBMIT_OK, "submit %d", i);
    }
    for (int i = 0; i < N; i++) {
        char *text;
        srv_progress pr;
        const srv_finish f = wait_end(req[i], &text, &pr);
        int32_t got[MAX];
        const int64_t ng = srv_request_tokens(req[i], got, MAX), nw = n_want[i];
        CHECK(f == SRV_FINISH_LENGTH || f == SRV_FINISH_STOP, "request %d finish %s", i,
              srv_finish_name(f));
        CHECK(ng == nw && !memcmp(got, want[i], (size_t)ng * sizeof *got),
              "request %d (prompt %lld): batched tokens differ from the reference (%lld vs %lld)",
              i, (long long)lens[i], (long long)ng, (long long)nw);
        CHECK(pr.completion_tokens == ng && pr.prompt_tokens == lens[i], "usage of request %d", i);
        free(text);
        srv_request_release(req[i]);
        free(prompts[i]);
    }
    srv_stats st;
    srv_engine_stats(e, &st);
    CHECK(st.max_active_seen >= 2, "requests ran together (at most %lld active)",
          (long long)st.max_active_seen);
    CHECK(st.blocks_used == 0, "%lld blocks used after the requests", (long long)st.blocks_used);
    srv_engine_shutdown(e, 0);
    srv_engine_free(e);
}

/* The same prompt twice: the second forks the first one's cached prompt
 * (a multiple of 64 tokens) and still gets the same tokens. */
static void test_prefix_sharing(void)
{
    enum { MAX = 6 };
    const int64_t n = 150;
    int32_t *prompt = make_prompt(n, 7);
    srv_engine *e = make_engine(64u << 20, 8, 128, 4, 1);
    int32_t tokens[2][MAX];
    int64_t count[2], cached[2];
    for (int k = 0; k < 2; k++) {
        srv_request_params p = greedy(prompt, n, MAX);
        srv_request *r;
        CHECK(srv_engine_submit(e, &p, &r) == SRV_SUBMIT_OK, "submit");
        char *text;
        srv_progress pr;
        wait_end(r, &text, &pr);
        count[k] = srv_request_tokens(r, tokens[k], MAX);
        cached[k] = pr.cached_tokens;
        free(text);
        srv_request_release(r);
    }
    CHECK(cached[0] == 0 && cached[1] == 128, "cached prompt tokens %lld, %lld (want 0, 128)",
          (long long)cached[0], (long long)cached[1]);
    CHECK(count[0] == count[1] && !memcmp(tokens[0], tokens[1], (size_t)count[0] * 4),
          "a shared prefix changed the tokens");
    srv_stats st;
    srv_engine_stats(e, &st);
    CHECK(st.prefix_entries == 1 && st.blocks_used > 0 && st.blocks_used <= st.prefix_blocks,
          "prefix cache: %lld entries, %lld blocks used, %lld blocks spanned",
          (long long)st.prefix_entries, (long long)st.blocks_used, (long long)st.prefix_blocks);
    srv_engine_flush_prefix_cache(e);
    CHECK(blocks_used(e) == 0, "%lld blocks used after the flush", (long long)blocks_used(e));
    srv_engine_shutdown(e, 0);
    srv_engine_free(e);
    free(prompt);
}

/* A budget of 20 blocks: two requests of 10 blocks run, a third waits in
 * the queue (max_queue 1), a fourth is refused, one bigger than the whole
 * budget is too large; the queued one runs once blocks are free. */
static void test_admission(void)
{
    const uint64_t block = 16u * 23040u;
    srv_engine *e = make_engine(20 * block, 1, 128, 0, 0);
    int32_t *prompt = make_prompt(140, 3);
    srv_request *r[3];
    srv_request_params p = greedy(prompt, 140, 20); /* 160 tokens: 10 blocks */
    CHECK(srv_engine_blocks_for(e, 160) == 10, "blocks for 160 tokens");
    for (int i = 0; i < 3; i++)
        CHECK(srv_engine_submit(e, &p, &r[i]) == SRV_SUBMIT_OK, "submit %d", i);
    srv_request *x = NULL;
    CHECK(srv_engine_submit(e, &p, &x) == SRV_SUBMIT_BUSY, "a 4th request is refused");
    srv_request_params big = greedy(prompt, 140, 300);
    CHECK(srv_engine_submit(e, &big, &x) == SRV_SUBMIT_TOO_LARGE, "too large for the budget");
    srv_stats st;
    srv_engine_stats(e, &st);
    CHECK(st.rejected_busy == 1 && st.rejected_too_large == 1, "rejection counters");
    for (int i = 0; i < 3; i++) {
        char *text;
        srv_progress pr;
        CHECK(wait_end(r[i], &text, &pr) != SRV_FINISH_NONE, "request %d ends", i);
        free(text);
        srv_request_release(r[i]);
    }
    srv_engine_stats(e, &st);
    CHECK(st.max_active_seen == 2, "at most 2 active in 20 blocks (got %lld)",
          (long long)st.max_active_seen);
    CHECK(st.blocks_used == 0 && st.blocks_reserved == 0, "blocks back to 0 (%lld, %lld)",
          (long long)st.blocks_used, (long long)st.blocks_reserved);
    srv_engine_shutdown(e, 0);
    srv_engine_free(e);
    free(prompt);
}

/* Cancel, timeout, stop strings, shutdown (without stop tokens, so that
 * nothing ends by itself). */
static void test_endings(void)
{
    srv_engine *e = make_engine(64u << 20, 8, 128, 0, 0);
    int32_t *prompt = make_prompt(20, 5);
    srv_request_params p = greedy(prompt, 20, 1000);
    srv_request *r;
    char *text = NULL;
    size_t len = 0;
    srv_progress pr;
    CHECK(srv_engine_submit(e, &p, &r) == SRV_SUBMIT_OK, "submit");
    const double t0 = tu_seconds();
    do /* some text first */
        srv_request_read(r, 0.2, &text, &len, &pr);
    while (len == 0 && pr.finish == SRV_FINISH_NONE && tu_seconds() - t0 < 60);
    srv_request_cancel(r);
    free(text);
    CHECK(wait_end(r, &text, &pr) == SRV_FINISH_CANCELLED, "cancelled: %s",
          srv_finish_name(pr.finish));
    free(text);
    srv_request_release(r);

    p.timeout_s = 0.3;
    CHECK(srv_engine_submit(e, &p, &r) == SRV_SUBMIT_OK, "submit");
    CHECK(wait_end(r, &text, &pr) == SRV_FINISH_TIMEOUT, "timeout: %s", srv_finish_name(pr.finish));
    free(text);
    srv_request_release(r);
    p.timeout_s = 0;

    /* "The capital of France is" -> " Paris.\n\nThe answer is:" (cli_run) */
    int32_t ids[16];
    int64_t n = 0;
    gqa_tokenize(tok, "The capital of France is", 24, GQA_TOKENIZE_SPECIAL, ids, 16, &n);
    const char *stops[] = {"\n\nThe", "zzz"};
    srv_request_params q = greedy(ids, n, 20);
    q.stop = stops;
    q.n_stop = 2;
    CHECK(srv_engine_submit(e, &q, &r) == SRV_SUBMIT_OK, "submit");
    const srv_finish f = wait_end(r, &text, &pr);
    CHECK(f == SRV_FINISH_STOP && text && !strcmp(text, " Paris."),
          "stop string: finish %s, text '%s'", srv_finish_name(f), text ? text : "(null)");
    free(text);
    srv_request_release(r);

    CHECK(srv_engine_submit(e, &p, &r) == SRV_SUBMIT_OK, "submit");
    srv_engine_shutdown(e, 0);
    CHECK(wait_end(r, &text, &pr) == SRV_FINISH_SHUTDOWN, "shutdown: %s",
          srv_finish_name(pr.finish));
    free(text);
    srv_request_release(r);
    srv_request *x = NULL;
    CHECK(srv_engine_submit(e, &p, &x) == SRV_SUBMIT_CLOSED, "closed after shutdown");
    CHECK(blocks_used(e) == 0, "%lld blocks used at the end", (long long)blocks_used(e));
    srv_engine_free(e);
    free(prompt);
}

int main(int argc, char **argv)
{
    const char *path;
    const int have =
        tu_model_path(argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf", &path);
    if (have <= 0)
        return have < 0 ? 1 : 0;
    if (gqa_model_load(path, &model) != GQA_OK ||
        gqa_tokenizer_from_gguf(gqa_model_gguf(model), &tok) != GQA_OK) {
        printf("FAIL: load %s: %s\n", path, gqa_last_error());
        return 1;
    }
    gqa_model_info_get(model, &info);
    n_stop_ids = 0;
    const int32_t cand[3] = {gqa_tokenizer_eos(tok), gqa_tokenizer_find(tok, "<|im_end|>", 10),
                             gqa_tokenizer_find(tok, "<|endoftext|>", 13)};
    for (int i = 0; i < 3; i++)
        if (cand[i] >= 0)
            stop_ids[n_stop_ids++] = cand[i];
    double t = tu_seconds();
    test_batched_equals_alone();
    printf("batched: %.2f s\n", tu_seconds() - t);
    t = tu_seconds();
    test_prefix_sharing();
    printf("prefix: %.2f s\n", tu_seconds() - t);
    t = tu_seconds();
    test_admission();
    printf("admission: %.2f s\n", tu_seconds() - t);
    t = tu_seconds();
    test_endings();
    printf("endings: %.2f s\n", tu_seconds() - t);
    gqa_tokenizer_free(tok);
    gqa_model_free(model);
    gqa_workspace_release();
    printf("serve engine: %d passed, %d failed\n", tu_passed, tu_failed);
    return tu_failed ? 1 : 0;
}
