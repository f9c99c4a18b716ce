/* cmd_bench_train.c - `gqa bench train`: training throughput (tokens/s of
 * forward + backward + AdamW) of a model config, median of several steps
 * after warm-up, per thread count, with the time of each phase. Uses only
 * the public headers. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cmd.h"
#include "gqa_train.h"
#include "train_config.h"

#define MAX_STEPS 64

typedef struct bench_args {
    const char *config;
    long batch, seq_len, steps, warmup, kv_heads;
    long threads[8];
    int n_threads;
} bench_args;

static void usage(FILE *f)
{
    fprintf(f, "usage: gqa bench train [options]\n"
               "\n"
               "Training tokens/s of a model config: forward, backward and AdamW step timed\n"
               "separately over random byte sequences, median of --steps steps after --warmup.\n"
               "\n"
               "  --config C       a preset or JSON file (default exp); presets:\n");
    train_list_presets(f);
    fprintf(f, "  --kv-heads G     override the config's KV heads\n"
               "  --batch B        sequences per step (config's)\n"
               "  --seq-len T      tokens per sequence (config's)\n"
               "  --threads LIST   thread counts, e.g. 1,2 (default: the library default)\n"
               "  --steps N        timed steps, 1..64 (5)\n"
               "  --warmup N       untimed steps first (1)\n");
}

static int parse_threads(const char *v, bench_args *a)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", v);
    a->n_threads = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (a->n_threads == 8 ||
            cli_parse_long("bench train --threads", t, 1, 1024, &a->threads[a->n_threads++]) < 0)
            return -1;
    }
    return a->n_threads > 0 ? 0 : -1;
}

static int parse(int argc, char **argv, bench_args *a)
{
    memset(a, 0, sizeof *a);
    a->config = "exp";
    a->steps = 5;
    a->warmup = 1;
    a->batch = a->seq_len = a->kv_heads = -1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 1;
        } else if ((r = cli_option_value(argc, argv, &i, "--config", &v))) {
            if (r < 0)
                return -1;
            a->config = v;
        } else if ((r = cli_option_value(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || parse_threads(v, a) < 0)
                return -1;
        } else {
            const struct {
                const char *name;
                long *dst, lo, hi;
            } l[] = {{"--batch", &a->batch, 1, 4096},
                     {"--seq-len", &a->seq_len, 1, 1 << 16},
                     {"--steps", &a->steps, 1, MAX_STEPS},
                     {"--warmup", &a->warmup, 0, 100},
                     {"--kv-heads", &a->kv_heads, 1, 1024}};
            size_t k = 0;
            for (; k < sizeof l / sizeof l[0]; k++)
                if ((r = cli_option_value(argc, argv, &i, l[k].name, &v))) {
                    char opt[48];
                    snprintf(opt, sizeof opt, "bench train %s", l[k].name);
                    if (r < 0 || cli_parse_long(opt, v, l[k].lo, l[k].hi, l[k].dst) < 0)
                        return -1;
                    break;
                }
            if (k == sizeof l / sizeof l[0]) {
                cli_error("bench train: unknown option '%s' (try 'gqa bench train --help')",
                          argv[i]);
                return -1;
            }
        }
    }
    return 0;
}

typedef struct phase_times {
    double fwd[MAX_STEPS], bwd[MAX_STEPS], opt[MAX_STEPS], step[MAX_STEPS];
} phase_times;

/* warmup + steps steps; the timed ones into t. */
static int run(const bench_args *a, gqa_train_model *m, gqa_train_optim *o, const int32_t *tok,
               const int32_t *tgt, int32_t B, int32_t T, phase_times *t, float *loss)
{
    for (long s = 0; s < a->warmup + a->steps; s++) {
        const double t0 = bench_now_seconds();
        gqa_train_model_zero_grad(m);
        gqa_status st = gqa_train_model_forward(m, tok, tgt, B, T, loss, NULL);
        const double t1 = bench_now_seconds();
        if (st == GQA_OK)
            st = gqa_train_model_backward(m, 1.0f);
        const double t2 = bench_now_seconds();
        if (st == GQA_OK)
            st = gqa_train_optim_step(o, m, NULL, NULL);
        const double t3 = bench_now_seconds();
        if (st != GQA_OK)
            return cli_fail(st, "bench train");
        if (s >= a->warmup) {
            const long i = s - a->warmup;
            t->fwd[i] = t1 - t0;
            t->bwd[i] = t2 - t1;
            t->opt[i] = t3 - t2;
            t->step[i] = t3 - t0;
        }
    }
    return CLI_EXIT_OK;
}

int cmd_bench_train(int argc, char **argv)
{
    bench_args a;
    const int p = parse(argc, argv, &a);
    if (p != 0)
        return p > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    train_opts o;
    if (train_opts_load(a.config, &o) < 0)
        return CLI_EXIT_USAGE;
    if (a.kv_heads > 0)
        o.model.n_kv_heads = (int32_t)a.kv_heads;
    const int32_t B = (int32_t)(a.batch > 0 ? a.batch : o.batch);
    const int32_t T = (int32_t)(a.seq_len > 0 ? a.seq_len : o.seq_len);
    if (T > o.model.n_ctx)
        o.model.n_ctx = T;
    if (a.n_threads == 0)
        a.threads[a.n_threads++] = gqa_get_num_threads();
    int32_t *tok = malloc((size_t)B * (size_t)T * sizeof(int32_t));
    int32_t *tgt = malloc((size_t)B * (size_t)T * sizeof(int32_t));
    if (!tok || !tgt) {
        free(tok);
        free(tgt);
        cli_error("bench train: out of memory");
        return CLI_EXIT_FAIL;
    }
    uint64_t r = 12345;
    for (int64_t i = 0; i < (int64_t)B * T; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((r >> 33) % 256);
        tgt[i] = (int32_t)((r >> 41) % 256);
    }
    const gqa_train_config *c = &o.model;
    printf("gqa bench train: %s - %d layers, width %d, H %d, G %d, d %d, ff %d, vocab %d; "
           "batch %d x %d tokens; kernel %s\n",
           a.config, (int)c->n_layers, (int)c->n_embd, (int)c->n_heads, (int)c->n_kv_heads,
           (int)c->head_dim, (int)c->n_ff, (int)c->n_vocab, (int)B, (int)T, gqa_kernel_name());
    printf("median of %ld steps after %ld warm-up\n\n", a.steps, a.warmup);
    printf("%-8s %10s %10s %10s %10s %12s\n", "threads", "fwd ms", "bwd ms", "adamw ms", "step ms",
           "tokens/s");
    int rc = CLI_EXIT_OK;
    for (int ti = 0; ti < a.n_threads && rc == CLI_EXIT_OK; ti++) {
        gqa_set_num_threads((int)a.threads[ti]);
        gqa_train_model *m = NULL;
        gqa_train_optim *opt = NULL;
        o.opt.min_lr = o.opt.lr / 10.0f;
        o.opt.total_steps = a.warmup + a.steps;
        gqa_status st = gqa_train_model_create(c, 1, &m);
        if (st == GQA_OK)
            st = gqa_train_optim_create(m, &o.opt, &opt);
        phase_times t;
        float loss = 0.0f;
        rc =
            st != GQA_OK ? cli_fail(st, "bench train") : run(&a, m, opt, tok, tgt, B, T, &t, &loss);
        if (rc == CLI_EXIT_OK) {
            const int n = (int)a.steps;
            const double step = bench_median(t.step, n);
            printf("%-8ld %10.1f %10.1f %10.1f %10.1f %12.0f\n", a.threads[ti],
                   1e3 * bench_median(t.fwd, n), 1e3 * bench_median(t.bwd, n), 1e3 * bench_median(t.opt, n),
                   1e3 * step, (double)B * T / step);
            if (ti == 0)
                printf("%-8s (%lld parameters, last loss %.3f)\n", "",
                       (long long)gqa_train_model_n_params(m), (double)loss);
        }
        gqa_train_optim_free(opt);
        gqa_train_model_free(m);
    }
    free(tok);
    free(tgt);
    return rc;
}
