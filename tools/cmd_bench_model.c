/* cmd_bench_model.c - `gqa bench model`: prompt and generation speed of a
 * whole model (SmolLM2 by default), the numbers llama.cpp reports for the
 * same file (bench/model.sh runs both side by side).
 *
 * Token ids are the fixed sequence ids[i] = 1000 + (i * 7919) % 40000 at
 * positions 0, 1, ... with no BOS - the same as bench/llamacpp_bench.py, so
 * both programs process identical inputs. Prompt speed: one batch of P
 * tokens into an empty cache. Generation speed after a context of C tokens:
 * the cache is filled with ids[0..C) (not timed), then N tokens are decoded
 * one at a time, each the argmax of the previous logits (no early stop);
 * only those N steps are timed. Each figure is the median of --reps runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cmd.h"
#include "session.h"

#define MAX_LIST 8

typedef struct model_options {
    const char *model, *json_path;
    long threads[MAX_LIST];
    int n_threads;
    long contexts[MAX_LIST];
    int n_contexts;
    long prompt, gen, reps;
    gqa_dtype kv_type;
    int mha;
} model_options;

typedef struct model_result {
    long threads;
    double prompt_tps;            /* median tokens/s */
    double gen_tps[MAX_LIST];     /* per context */
    double mha_gen_tps[MAX_LIST]; /* the MHA twin, with --mha (else 0) */
} model_result;

static int32_t bench_id(int64_t i)
{
    return (int32_t)(1000 + (i * 7919) % 40000);
}

static int32_t argmax(const float *x, int64_t n)
{
    int32_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = (int32_t)i;
    return b;
}

/* One forward call of n ids for the session's sequence; seconds in *dt. */
static int feed(const gqa_model *m, session *s, const int32_t *ids, int64_t n, double *dt)
{
    gqa_forward_item it = {.seq = s->seq, .tokens = ids, .n_tokens = n, .logits = s->logits};
    const double t0 = bench_now_seconds();
    gqa_status st = gqa_model_forward(m, s->cache, &it, 1);
    *dt = bench_now_seconds() - t0;
    return st == GQA_OK ? CLI_EXIT_OK : cli_fail(st, "forward pass");
}

/* Generation tokens/s after a context of ctx tokens (median of reps). */
static int gen_speed(const gqa_model *m, session *s, const int32_t *ids, long ctx,
                     const model_options *o, double *tps)
{
    double v[64];
    for (long r = 0; r < o->reps; r++) {
        double dt, total = 0.0;
        gqa_kv_seq_truncate(s->cache, s->seq, 0);
        int rc = feed(m, s, ids, ctx, &dt);
        for (long g = 0; rc == CLI_EXIT_OK && g < o->gen; g++) {
            const int32_t next = argmax(s->logits, s->info.n_vocab);
            rc = feed(m, s, &next, 1, &dt);
            total += dt;
        }
        if (rc != CLI_EXIT_OK)
            return rc;
        v[r] = (double)o->gen / total;
    }
    *tps = bench_median(v, (int)o->reps);
    return CLI_EXIT_OK;
}

static int run_threads(session *s, const gqa_model *twin, const int32_t *ids,
                       const model_options *o, model_result *res)
{
    gqa_set_num_threads((int)res->threads);
    double v[64], dt;
    for (long r = 0; r < o->reps; r++) {
        gqa_kv_seq_truncate(s->cache, s->seq, 0);
        int rc = feed(s->model, s, ids, o->prompt, &dt);
        if (rc != CLI_EXIT_OK)
            return rc;
        v[r] = (double)o->prompt / dt;
    }
    res->prompt_tps = bench_median(v, (int)o->reps);
    for (int c = 0; c < o->n_contexts; c++) {
        int rc = gen_speed(s->model, s, ids, o->contexts[c], o, &res->gen_tps[c]);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    if (!twin)
        return CLI_EXIT_OK;
    /* the MHA twin needs a cache with H KV heads */
    session t = *s;
    t.model = (gqa_model *)twin;
    gqa_model_info_get(twin, &t.info);
    t.cache = NULL;
    int rc = session_set_ctx(&t, s->n_ctx);
    for (int c = 0; rc == CLI_EXIT_OK && c < o->n_contexts; c++)
        rc = gen_speed(twin, &t, ids, o->contexts[c], o, &res->mha_gen_tps[c]);
    gqa_kv_cache_free(t.cache);
    return rc;
}

static void print_results(const session *s, const model_options *o, const model_result *res, int n)
{
    printf("\nmodel %s: %d layers, H %d, G %d, d %d; KV %s; prompt %ld tokens, %ld generated "
           "per run, median of %ld runs\n",
           s->info.name, s->info.n_layers, s->info.n_heads, s->info.n_kv_heads, s->info.head_dim,
           gqa_dtype_name(o->kv_type), o->prompt, o->gen, o->reps);
    printf("%-8s %14s", "threads", "prompt tok/s");
    for (int c = 0; c < o->n_contexts; c++) {
        char h[48];
        snprintf(h, sizeof h, "gen@%ld tok/s", o->contexts[c]);
        printf(" %16s", h);
        if (o->mha) {
            snprintf(h, sizeof h, "MHA gen@%ld", o->contexts[c]);
            printf(" %16s", h);
        }
    }
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("%-8ld %14.1f", res[i].threads, res[i].prompt_tps);
        for (int c = 0; c < o->n_contexts; c++) {
            printf(" %16.1f", res[i].gen_tps[c]);
            if (o->mha)
                printf(" %16.1f", res[i].mha_gen_tps[c]);
        }
        printf("\n");
    }
    const long cmax = o->contexts[o->n_contexts - 1];
    const double g = (double)gqa_kv_bytes_per_token(s->info.n_layers, s->info.n_kv_heads,
                                                    s->info.head_dim, o->kv_type),
                 h = (double)gqa_kv_bytes_per_token(s->info.n_layers, s->info.n_heads,
                                                    s->info.head_dim, o->kv_type);
    printf("KV cache at %ld tokens: %.1f MiB with G = %d; MHA (G = H = %d) would need %.1f MiB\n",
           cmax, g * (double)cmax / 1048576.0, s->info.n_kv_heads, s->info.n_heads,
           h * (double)cmax / 1048576.0);
}

static int write_json(const model_options *o, const bench_machine *bm, const session *s,
                      const model_result *res, int n, FILE *f)
{
    cJSON *root = bench_json_root("model", bm);
    if (root) {
        cJSON_AddStringToObject(root, "model_name", s->info.name);
        cJSON_AddStringToObject(root, "kv_type", gqa_dtype_name(o->kv_type));
        cJSON_AddNumberToObject(root, "prompt_tokens", (double)o->prompt);
        cJSON_AddNumberToObject(root, "gen_tokens", (double)o->gen);
        cJSON_AddNumberToObject(root, "reps", (double)o->reps);
        cJSON_AddStringToObject(root, "token_ids", "ids[i] = 1000 + (i * 7919) % 40000, no BOS");
        cJSON *rows = cJSON_AddArrayToObject(root, "results");
        for (int i = 0; rows && i < n; i++) {
            cJSON *r = cJSON_CreateObject();
            if (!r)
                break;
            cJSON_AddNumberToObject(r, "threads", (double)res[i].threads);
            cJSON_AddNumberToObject(r, "prompt_tok_s", res[i].prompt_tps);
            cJSON *gen = cJSON_AddArrayToObject(r, "gen");
            for (int c = 0; gen && c < o->n_contexts; c++) {
                cJSON *e = cJSON_CreateObject();
                if (!e)
                    break;
                cJSON_AddNumberToObject(e, "context", (double)o->contexts[c]);
                cJSON_AddNumberToObject(e, "tok_s", res[i].gen_tps[c]);
                if (o->mha)
                    cJSON_AddNumberToObject(e, "mha_tok_s", res[i].mha_gen_tps[c]);
                cJSON_AddItemToArray(gen, e);
            }
            cJSON_AddItemToArray(rows, r);
        }
    }
    return bench_json_write(f, o->json_path, root);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: gqa bench model [options]\n"
               "\n"
               "Prompt tok/s (one batch of --prompt tokens) and generation tok/s (--gen greedy\n"
               "decode steps after a context of each --contexts length) of a whole model, per\n"
               "thread count; median of --reps runs. Token ids: 1000 + (i * 7919) %% 40000.\n"
               "\n"
               "  -m, --model FILE     GGUF model (default: SmolLM2 from the set-up cache)\n"
               "  --threads LIST       thread counts (default 1,2)\n"
               "  --prompt N           prompt tokens (default 512)\n"
               "  --contexts LIST      contexts before generation (default 512,4096)\n"
               "  --gen N              tokens generated per run (default 128)\n"
               "  --reps N             runs per figure, median reported (default 3)\n"
               "  --kv-type T          f16 (default), q8_0, bf16, f32\n"
               "  --mha                also time the MHA twin (K/V heads expanded to H)\n"
               "  --json FILE          also write the results as JSON\n");
}

/* "1,2,4" into v (at most MAX_LIST values in lo..hi). */
static int parse_list(const char *opt, const char *text, long lo, long hi, long *v, int *n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == MAX_LIST) {
            cli_error("%s: at most %d values", opt, MAX_LIST);
            return -1;
        }
        if (cli_parse_long(opt, tok, lo, hi, &v[*n]) < 0)
            return -1;
        (*n)++;
    }
    if (*n == 0) {
        cli_error("%s: empty list", opt);
        return -1;
    }
    return 0;
}

static int parse(int argc, char **argv, model_options *o)
{
    memset(o, 0, sizeof *o);
    o->threads[0] = 1, o->threads[1] = 2, o->n_threads = 2;
    o->contexts[0] = 512, o->contexts[1] = 4096, o->n_contexts = 2;
    o->prompt = 512, o->gen = 128, o->reps = 3, o->kv_type = GQA_F16;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(argv[i], "--mha")) {
            o->mha = 1;
        } else if ((r = cli_option_value(argc, argv, &i, "-m", &v)) ||
                   (r = cli_option_value(argc, argv, &i, "--model", &v))) {
            if (r < 0)
                return -1;
            o->model = v;
        } else if ((r = cli_option_value(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || parse_list("--threads", v, 1, 1024, o->threads, &o->n_threads) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--contexts", &v))) {
            if (r < 0 || parse_list("--contexts", v, 1, 1L << 20, o->contexts, &o->n_contexts) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--prompt", &v))) {
            if (r < 0 || cli_parse_long("--prompt", v, 1, 1L << 20, &o->prompt) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--gen", &v))) {
            if (r < 0 || cli_parse_long("--gen", v, 1, 1L << 20, &o->gen) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--reps", &v))) {
            if (r < 0 || cli_parse_long("--reps", v, 1, 64, &o->reps) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--kv-type", &v))) {
            if (r < 0 || session_parse_kv_type(v, &o->kv_type) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--json", &v))) {
            if (r < 0)
                return -1;
            o->json_path = v;
        } else {
            cli_error("bench model: unknown option '%s' (try 'gqa bench model --help')", argv[i]);
            return -1;
        }
    }
    return 0;
}

int cmd_bench_model(int argc, char **argv)
{
    model_options o;
    int pr = parse(argc, argv, &o);
    if (pr != 0)
        return pr > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    long need = o.prompt;
    for (int c = 0; c < o.n_contexts; c++)
        if (o.contexts[c] + o.gen > need)
            need = o.contexts[c] + o.gen;
    FILE *jf = NULL;
    if (bench_json_open(o.json_path, &jf) != 0)
        return CLI_EXIT_FAIL;
    bench_machine bm;
    long tmax = 0;
    for (int i = 0; i < o.n_threads; i++)
        tmax = o.threads[i] > tmax ? o.threads[i] : tmax;
    session s;
    int rc = bench_setup_machine(tmax, NULL, &bm);
    if (rc == CLI_EXIT_OK)
        rc = session_open(&s, session_model_path(o.model), o.kv_type, need);
    if (rc != CLI_EXIT_OK) {
        bench_json_discard(jf, o.json_path);
        return rc;
    }
    bench_print_machine("model", &bm);
    gqa_model *twin = NULL;
    if (o.mha) {
        gqa_status st = gqa_model_expand_kv(s.model, &twin);
        if (st != GQA_OK)
            rc = cli_fail(st, "MHA twin");
    }
    int32_t *ids = malloc((size_t)need * sizeof *ids);
    model_result res[MAX_LIST];
    memset(res, 0, sizeof res);
    if (!ids)
        rc = CLI_EXIT_FAIL;
    for (long i = 0; ids && i < need; i++)
        ids[i] = bench_id(i) % s.info.n_vocab;
    for (int i = 0; rc == CLI_EXIT_OK && i < o.n_threads; i++) {
        res[i].threads = o.threads[i];
        fprintf(stderr, "bench model: %ld thread(s)...\n", o.threads[i]);
        rc = run_threads(&s, twin, ids, &o, &res[i]);
    }
    if (rc == CLI_EXIT_OK) {
        print_results(&s, &o, res, o.n_threads);
        if (jf)
            rc = write_json(&o, &bm, &s, res, o.n_threads, jf);
    } else {
        bench_json_discard(jf, o.json_path);
    }
    free(ids);
    gqa_model_free(twin);
    session_close(&s);
    return rc;
}
