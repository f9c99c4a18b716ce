/* test_plan.c - `gqa plan` reports what gqa_kv_cache actually allocates.
 *
 * Usage: test_plan PATH_TO_GQA
 *
 * Runs `gqa plan --json` on presets and explicit shapes with budgets small
 * enough to allocate, then for every row creates the cache it describes and
 * checks: bytes per token, block bytes, blocks and token capacity against the
 * cache's stats; bytes per sequence against what one full-context sequence
 * really takes; and "sequences that fit" by reserving that many full-context
 * sequences (all succeed) and one more (GQA_ERR_CAPACITY). A row whose budget
 * holds no block must be one the cache refuses. Also: the text table runs,
 * and bad command lines fail with exit status 2 and a message.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "gqa.h"
#include "test_util.h"

/* Run `gqa plan ARGS` and return its stdout (and stderr when merge is set),
 * malloc'ed; *status gets the exit status. */
static char *run_plan(const char *gqa, const char *args, int merge, int *status)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' plan %s%s", gqa, args, merge ? " 2>&1" : "");
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("cannot run %s\n", cmd);
        exit(2);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    const int rc = pclose(p);
    if (!buf) {
        printf("out of memory\n");
        exit(2);
    }
    buf[n] = '\0';
    *status = rc == -1 ? -1 : (rc >> 8) & 0xff; /* WEXITSTATUS on POSIX systems */
    return buf;
}

static uint64_t num(const cJSON *o, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(it)) {
        tu_failed++;
        printf("FAIL: JSON field '%s' missing or not a number\n", name);
        return 0;
    }
    return (uint64_t)it->valuedouble; /* the test's values stay below 2^53: exact */
}

static gqa_dtype dtype_of(const char *name)
{
    static const gqa_dtype all[] = {GQA_F32, GQA_F16, GQA_BF16, GQA_Q8_0};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, gqa_dtype_name(all[i])))
            return all[i];
    return (gqa_dtype)-1;
}

/* Check one row of the plan against a real cache. */
static void check_row(const char *args, const cJSON *root, const cJSON *row)
{
    const int32_t L = (int32_t)num(root, "n_layers"), d = (int32_t)num(root, "head_dim");
    const int32_t bt = (int32_t)num(root, "block_tokens");
    const int64_t ctx = (int64_t)num(root, "ctx");
    const uint64_t budget = num(root, "budget_bytes");
    const int32_t G = (int32_t)num(row, "n_kv_heads");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(row, "dtype");
    const gqa_dtype t = dtype_of(cJSON_IsString(dt) ? dt->valuestring : "");
    const uint64_t bpt = num(row, "bytes_per_token"), block_bytes = num(row, "block_bytes");
    const int64_t blocks_total = (int64_t)num(row, "blocks_total");
    const int64_t blocks_per_seq = (int64_t)num(row, "blocks_per_seq");
    const uint64_t bytes_per_seq = num(row, "bytes_per_seq");
    const int64_t token_capacity = (int64_t)num(row, "token_capacity");
    const int64_t fit = (int64_t)num(row, "seqs_fit");
    char what[256];
    snprintf(what, sizeof what, "[%s] G=%d %s", args, (int)G, gqa_dtype_name(t));

    CHECK(bpt == gqa_kv_bytes_per_token(L, G, d, t), "%s: bytes per token %llu, library %llu", what,
          (unsigned long long)bpt, (unsigned long long)gqa_kv_bytes_per_token(L, G, d, t));
    gqa_kv_config cfg = {L, G, d, bt, t, budget};
    gqa_kv_cache *c = NULL;
    gqa_status st = gqa_kv_cache_create(&cfg, &c);
    if (blocks_total == 0) {
        CHECK(st == GQA_ERR_INVALID_ARG && fit == 0, "%s: plan says no block fits, create says %s",
              what, gqa_status_string(st));
        gqa_kv_cache_free(c);
        return;
    }
    CHECK(st == GQA_OK, "%s: create: %s", what, gqa_last_error());
    if (st != GQA_OK)
        return;
    gqa_kv_stats s;
    gqa_kv_cache_stats(c, &s);
    CHECK(s.bytes_per_token == bpt && s.block_bytes == block_bytes &&
              s.blocks_total == blocks_total && s.token_capacity == token_capacity,
          "%s: plan %llu B/token, %llu B/block, %lld blocks, %lld tokens; cache %llu, %llu, "
          "%lld, %lld",
          what, (unsigned long long)bpt, (unsigned long long)block_bytes, (long long)blocks_total,
          (long long)token_capacity, (unsigned long long)s.bytes_per_token,
          (unsigned long long)s.block_bytes, (long long)s.blocks_total,
          (long long)s.token_capacity);

    /* `fit` full-context sequences fit, one more does not. */
    int ok = 1;
    for (int64_t i = 0; i <= fit && ok; i++) {
        int32_t seq;
        ok = gqa_kv_seq_create(c, &seq) == GQA_OK;
        const gqa_status r = gqa_kv_seq_reserve(c, seq, ctx);
        if (i < fit) {
            ok = ok && r == GQA_OK;
            CHECK(ok, "%s: full-context sequence %lld of %lld: %s", what, (long long)i + 1,
                  (long long)fit, gqa_last_error());
            if (i == 0) {
                gqa_kv_cache_stats(c, &s);
                CHECK(s.bytes_used == bytes_per_seq && s.blocks_used == blocks_per_seq,
                      "%s: one sequence takes %llu bytes in %lld blocks, plan says %llu in %lld",
                      what, (unsigned long long)s.bytes_used, (long long)s.blocks_used,
                      (unsigned long long)bytes_per_seq, (long long)blocks_per_seq);
            }
        } else {
            CHECK(r == GQA_ERR_CAPACITY, "%s: sequence %lld should not fit: %s", what,
                  (long long)fit + 1, gqa_status_string(r));
        }
    }
    gqa_kv_cache_free(c);
}

static void check_plan(const char *gqa, const char *args, int expect_q8)
{
    int status;
    char full[512];
    snprintf(full, sizeof full, "%s --json", args);
    char *out = run_plan(gqa, full, 0, &status);
    CHECK(status == 0, "[%s]: exit status %d", args, status);
    cJSON *root = cJSON_Parse(out);
    CHECK(root != NULL, "[%s]: output is not JSON:\n%s", args, out);
    free(out);
    if (!root)
        return;
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    const int n = cJSON_GetArraySize(rows);
    CHECK(n == (expect_q8 ? 12 : 9), "[%s]: %d rows", args, n);
    int variants[3] = {0, 0, 0};
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, "variant");
        const char *name = cJSON_IsString(v) ? v->valuestring : "";
        const int G = (int)num(row, "n_kv_heads");
        if (!strcmp(name, "model"))
            variants[0] += G == (int)num(root, "n_kv_heads");
        else if (!strcmp(name, "mha"))
            variants[1] += G == (int)num(root, "n_q_heads");
        else if (!strcmp(name, "mqa"))
            variants[2] += G == 1;
        check_row(args, root, row);
    }
    CHECK(variants[0] == n / 3 && variants[1] == n / 3 && variants[2] == n / 3,
          "[%s]: variants model %d, mha %d, mqa %d", args, variants[0], variants[1], variants[2]);
    cJSON_Delete(root);
}

static void check_fails(const char *gqa, const char *args, const char *needle)
{
    int status;
    char *out = run_plan(gqa, args, 1, &status);
    CHECK(status == 2 && strstr(out, needle) != NULL,
          "[%s]: exit status %d (want 2), output '%s' (want '%s')", args, status, out, needle);
    free(out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_plan PATH_TO_GQA\n");
        return 2;
    }
    const char *gqa = argv[1];
    check_plan(gqa, "--model smollm2-135m --budget 64MiB --ctx 1000", 1);
    check_plan(gqa, "--model qwen2.5-0.5b --budget 20MB --ctx 333 --block-tokens 17", 1);
    check_plan(gqa, "--model llama3-8b --budget 48MiB --ctx 64", 1);
    check_plan(gqa, "--model mistral-7b --budget 3e6 --ctx 7 --block-tokens 1", 1);
    check_plan(gqa,
               "--layers 2 --heads 12 --kv-heads 4 --head-dim 80 --budget 1e6 --ctx 50 "
               "--block-tokens 1",
               0);
    check_plan(gqa, "--layers 3 --heads 7 --kv-heads 7 --head-dim 32 --budget=100000 --ctx=1", 1);

    int status;
    char *text = run_plan(gqa, "--model llama3-70b --budget 80GiB --ctx 8192", 0, &status);
    CHECK(status == 0 && strstr(text, "q8_0") && strstr(text, "MQA"), "text table: status %d\n%s",
          status, text);
    free(text);
    /* A GGUF file that cannot be read is a run-time failure (exit 1), named. */
    text = run_plan(gqa, "--model /nonexistent/llama3-8b.gguf --budget 1GiB --ctx 8", 1, &status);
    CHECK(status == 1 && strstr(text, "/nonexistent/llama3-8b.gguf"), "missing GGUF: %d %s",
          status, text);
    free(text);
    /* A real GGUF file gives the same plan as its preset (model name aside). */
    const char *model = getenv("GQA_MODEL_PATH");
    char path[300];
    if (!model && getenv("GQA_SOURCE_DIR")) {
        snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                 getenv("GQA_SOURCE_DIR"));
        model = path;
    }
    FILE *mf = model ? fopen(model, "rb") : NULL;
    if (mf) {
        fclose(mf);
        char args[400], json_args[420];
        snprintf(args, sizeof args, "--model %s --budget 64MiB --ctx 1000", model);
        snprintf(json_args, sizeof json_args, "%s --json", args);
        char *a = run_plan(gqa, json_args, 0, &status);
        char *b = run_plan(gqa, "--model smollm2-135m --budget 64MiB --ctx 1000 --json", 0, &status);
        cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
        cJSON_DeleteItemFromObject(ja, "model");
        cJSON_DeleteItemFromObject(jb, "model");
        CHECK(ja && jb && cJSON_Compare(ja, jb, 1), "plan of %s differs from smollm2-135m:\n%s\n%s",
              model, a, b);
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        free(a);
        free(b);
        check_plan(gqa, args, 1);
    } else {
        printf("SKIP: no SmolLM2 GGUF (GQA_MODEL_PATH or models/): plan from a GGUF file untested\n");
        CHECK(!getenv("GQA_REQUIRE_MODEL") || strcmp(getenv("GQA_REQUIRE_MODEL"), "1") != 0,
              "GQA_REQUIRE_MODEL=1 but the model is absent");
    }
    check_fails(gqa, "--model nope --budget 1GiB --ctx 8", "nope");
    check_fails(gqa, "--model llama3-8b --budget 8G --ctx 8", "8G");
    check_fails(gqa, "--model llama3-8b --ctx 8", "--budget");
    check_fails(gqa, "--layers 2 --heads 12 --kv-heads 5 --head-dim 64 --budget 1 --ctx 1",
                "must divide");
    check_fails(gqa, "--layers 2 --heads 12 --kv-heads 4 --head-dim 257 --budget 1 --ctx 1", "257");
    return tu_summary();
}
