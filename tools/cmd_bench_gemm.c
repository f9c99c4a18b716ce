/* cmd_bench_gemm.c - `gqa bench gemm`: the trainer's matrix multiply
 * (gqa_gemm_f32) on the shapes one training step of a small Llama-style model
 * runs, next to the f32 FMA peak probed in the same process.
 *
 * With width E, feed-forward width F and T tokens per step, each linear layer
 * y = x W^T (W: out x in) costs three products:
 *   forward      X W^T    m = T,   n = out, k = in   (B transposed)
 *   input grad   dY W     m = T,   n = in,  k = out
 *   weight grad  dY^T X   m = out, n = in,  k = T    (A transposed)
 * for the E x E projections (attention Q/K/V/output), ffn_up/gate (F x E),
 * ffn_down (E x F) and the classifier (V x E). The defaults are the `exp`
 * preset of `gqa train` (E 256, F 704, V 257: bytes and <|endoftext|>) at
 * 16 sequences of 256 tokens.
 * Each figure is the median of repeated calls; 2 m n k FLOPs per call. A few
 * elements of every result are checked against a double dot product so a
 * fast wrong kernel cannot pass unnoticed. Benchmarks are tools, not tests:
 * nothing here fails on a slow number.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "bench_util.h"
#include "cmd.h"
#include "gqa.h"
#include "gqa_gemm.h"

#define DEFAULT_TOKENS 4096
#define QUICK_TOKENS   1024
#define DEFAULT_TARGET 0.3 /* seconds of timed calls per shape */
#define QUICK_TARGET   0.05
#define CHECK_SAMPLES  16

typedef struct gemm_options {
    const char *json_path, *kernel;
    long threads, tokens, embd, ff, vocab;
    double target;
    int quick;
} gemm_options;

typedef struct gemm_shape {
    const char *name, *what;
    int ta, tb;
    int64_t m, n, k;
} gemm_shape;

typedef struct gemm_call {
    const gemm_shape *s;
    const float *a, *b;
    float *c;
} gemm_call;

static gqa_status call_gemm(void *ctx)
{
    const gemm_call *g = ctx;
    const gemm_shape *s = g->s;
    return gqa_gemm_f32(s->ta, s->tb, s->m, s->n, s->k, 1.0f, g->a, s->ta ? s->m : s->k, g->b,
                        s->tb ? s->k : s->n, 0.0f, g->c, s->n);
}

#define N_SHAPES 12

/* The products of one step (see the top of the file). */
static void build_shapes(const gemm_options *o, gemm_shape *sh)
{
    const int64_t T = o->tokens, E = o->embd, F = o->ff, V = o->vocab;
    const gemm_shape all[] = {
        {"proj-fwd", "X W^T, W: E x E", 0, 1, T, E, E},
        {"up-fwd", "X W^T, W: F x E", 0, 1, T, F, E},
        {"down-fwd", "X W^T, W: E x F", 0, 1, T, E, F},
        {"proj-dx", "dY W, W: E x E", 0, 0, T, E, E},
        {"up-dx", "dY W, W: F x E", 0, 0, T, E, F},
        {"down-dx", "dY W, W: E x F", 0, 0, T, F, E},
        {"proj-dw", "dY^T X, E x E", 1, 0, E, E, T},
        {"up-dw", "dY^T X, F x E", 1, 0, F, E, T},
        {"down-dw", "dY^T X, E x F", 1, 0, E, F, T},
        {"cls-fwd", "X W^T, W: V x E", 0, 1, T, V, E},
        {"cls-dx", "dY W, W: V x E", 0, 0, T, E, V},
        {"cls-dw", "dY^T X, V x E", 1, 0, V, E, T},
    };
    _Static_assert(sizeof all / sizeof all[0] == N_SHAPES, "N_SHAPES");
    memcpy(sh, all, sizeof all);
}

/* CHECK_SAMPLES elements of C against a double dot product, within the f32
 * bound of a k-term sum: (k + 2) 2^-24 sum |a b|. 1 if all pass. */
static int spot_check(const gemm_shape *s, const float *a, const float *b, const float *c,
                      uint64_t *rng)
{
    const int64_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    for (int t = 0; t < CHECK_SAMPLES; t++) {
        const int64_t i = (int64_t)(bench_next_random(rng) % (uint64_t)s->m);
        const int64_t j = (int64_t)(bench_next_random(rng) % (uint64_t)s->n);
        double sum = 0.0, mag = 0.0;
        for (int64_t p = 0; p < s->k; p++) {
            const double x = s->ta ? a[p * lda + i] : a[i * lda + p];
            const double y = s->tb ? b[j * ldb + p] : b[p * ldb + j];
            sum += x * y;
            mag += fabs(x * y);
        }
        const double got = c[i * s->n + j];
        if (!(fabs(got - sum) <= (double)(s->k + 2) * ldexp(1.0, -24) * mag)) {
            cli_error("bench gemm: %s: C[%lld][%lld] = %.9g but the product is %.9g", s->name,
                      (long long)i, (long long)j, got, sum);
            return 0;
        }
    }
    return 1;
}

static void gemm_usage(FILE *f)
{
    fprintf(f,
            "usage: gqa bench gemm [options]\n"
            "\n"
            "Time gqa_gemm_f32 on the matrix products of one training step of a\n"
            "Llama-style model (forward, input and weight gradients of the E x E, F x E,\n"
            "E x F and V x E layers) against the f32 FMA peak measured in this process.\n"
            "\n"
            "options:\n"
            "  --tokens T        tokens per step (default %d, %d with --quick)\n"
            "  --embd E          model width (default 256)\n"
            "  --ff F            feed-forward width (default 704)\n"
            "  --vocab V         classifier rows (default 257)\n"
            "  --threads N       worker threads (0: one per core)\n"
            "  --kernel NAME     kernel set (avx512, avx2, neon, scalar, ref)\n"
            "  --time SEC        seconds of timed calls per shape (default %.2f)\n"
            "  --quick           fewer tokens and a shorter time per shape\n"
            "  --json FILE       also write the results as JSON\n"
            "  -h, --help        this help\n",
            DEFAULT_TOKENS, QUICK_TOKENS, DEFAULT_TARGET);
}

/* Returns -1 to continue, otherwise the exit status to return now. */
static int parse_options(int argc, char **argv, gemm_options *o)
{
    *o = (gemm_options){NULL, NULL, -1, 0, 256, 704, 257, 0.0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int got;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            gemm_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
        } else if ((got = cli_option_value(argc, argv, &i, "--json", &v)) != 0) {
            if (got < 0)
                return CLI_EXIT_USAGE;
            o->json_path = v;
        } else if ((got = cli_option_value(argc, argv, &i, "--kernel", &v)) != 0) {
            if (got < 0)
                return CLI_EXIT_USAGE;
            o->kernel = v;
        } else if ((got = cli_option_value(argc, argv, &i, "--threads", &v)) != 0) {
            if (got < 0 || cli_parse_long("--threads", v, 0, 4096, &o->threads) != 0)
                return CLI_EXIT_USAGE;
        } else if ((got = cli_option_value(argc, argv, &i, "--tokens", &v)) != 0) {
            if (got < 0 || cli_parse_long("--tokens", v, 1, 1 << 20, &o->tokens) != 0)
                return CLI_EXIT_USAGE;
        } else if ((got = cli_option_value(argc, argv, &i, "--embd", &v)) != 0) {
            if (got < 0 || cli_parse_long("--embd", v, 1, 65536, &o->embd) != 0)
                return CLI_EXIT_USAGE;
        } else if ((got = cli_option_value(argc, argv, &i, "--ff", &v)) != 0) {
            if (got < 0 || cli_parse_long("--ff", v, 1, 262144, &o->ff) != 0)
                return CLI_EXIT_USAGE;
        } else if ((got = cli_option_value(argc, argv, &i, "--vocab", &v)) != 0) {
            if (got < 0 || cli_parse_long("--vocab", v, 1, 1 << 20, &o->vocab) != 0)
                return CLI_EXIT_USAGE;
        } else if ((got = cli_option_value(argc, argv, &i, "--time", &v)) != 0) {
            if (got < 0 || cli_parse_double("--time", v, 0.001, 3600.0, &o->target) != 0)
                return CLI_EXIT_USAGE;
        } else {
            cli_error("bench gemm: unknown %s '%s' (try 'gqa bench gemm --help')",
                      a[0] == '-' ? "option" : "argument", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (o->tokens == 0)
        o->tokens = o->quick ? QUICK_TOKENS : DEFAULT_TOKENS;
    if (o->target == 0.0)
        o->target = o->quick ? QUICK_TARGET : DEFAULT_TARGET;
    return -1;
}

static void json_row(cJSON *rows, const gemm_shape *s, const bench_timing *t, double peak)
{
    cJSON *r = cJSON_CreateObject();
    if (!cJSON_AddItemToArray(rows, r)) {
        cJSON_Delete(r);
        return;
    }
    const double gf = 2.0 * (double)s->m * (double)s->n * (double)s->k / t->t_median / 1e9;
    cJSON_AddStringToObject(r, "shape", s->name);
    cJSON_AddStringToObject(r, "product", s->what);
    cJSON_AddNumberToObject(r, "trans_a", s->ta);
    cJSON_AddNumberToObject(r, "trans_b", s->tb);
    cJSON_AddNumberToObject(r, "m", (double)s->m);
    cJSON_AddNumberToObject(r, "n", (double)s->n);
    cJSON_AddNumberToObject(r, "k", (double)s->k);
    cJSON_AddNumberToObject(r, "reps", t->reps);
    cJSON_AddNumberToObject(r, "median_s", t->t_median);
    cJSON_AddNumberToObject(r, "gflop_per_s", gf);
    cJSON_AddNumberToObject(r, "fraction_of_fma_peak", gf * 1e9 / peak);
}

/* Time every shape; prints the table and fills rows (may be NULL). */
static int run_shapes(const gemm_options *o, const bench_machine *mc, cJSON *rows)
{
    gemm_shape sh[N_SHAPES];
    const int ns = N_SHAPES;
    build_shapes(o, sh);
    size_t most = 0;
    for (int i = 0; i < ns; i++) {
        const size_t a = (size_t)(sh[i].m * sh[i].k), b = (size_t)(sh[i].k * sh[i].n);
        const size_t c = (size_t)(sh[i].m * sh[i].n);
        most = a > most ? a : b > most ? b : c > most ? c : most;
    }
    float *a = bench_alloc_aligned(most * sizeof(float));
    float *b = bench_alloc_aligned(most * sizeof(float));
    float *c = bench_alloc_aligned(most * sizeof(float));
    int rc = CLI_EXIT_OK;
    if (!a || !b || !c) {
        cli_error("out of memory for %zu-float operands", most);
        rc = CLI_EXIT_FAIL;
    }
    uint64_t rng = 42;
    for (size_t i = 0; rc == CLI_EXIT_OK && i < most; i++) {
        a[i] = bench_random_unit(&rng);
        b[i] = bench_random_unit(&rng);
    }
    printf("%-9s %-16s %6s %6s %6s %10s %9s %7s\n", "shape", "product", "m", "n", "k", "median",
           "GFLOP/s", "of peak");
    double flops = 0.0, seconds = 0.0;
    for (int i = 0; rc == CLI_EXIT_OK && i < ns; i++) {
        gemm_call g = {&sh[i], a, b, c};
        bench_timing t;
        rc = bench_time_calls(call_gemm, &g, sh[i].name, o->target, &t);
        if (rc != CLI_EXIT_OK)
            break;
        if (!spot_check(&sh[i], a, b, c, &rng)) {
            rc = CLI_EXIT_FAIL;
            break;
        }
        const double f = 2.0 * (double)sh[i].m * (double)sh[i].n * (double)sh[i].k;
        char tm[32];
        bench_format_time(t.t_median, tm, sizeof tm);
        printf("%-9s %-16s %6lld %6lld %6lld %10s %9.1f %6.0f%%\n", sh[i].name, sh[i].what,
               (long long)sh[i].m, (long long)sh[i].n, (long long)sh[i].k, tm, f / t.t_median / 1e9,
               100.0 * f / t.t_median / mc->fma_peak);
        flops += f;
        seconds += t.t_median;
        if (rows)
            json_row(rows, &sh[i], &t, mc->fma_peak);
    }
    if (rc == CLI_EXIT_OK)
        printf("all: %.1f GFLOP/s (%.0f%% of the FMA peak), %.3f ms per step of %ld tokens; "
               "every result spot-checked\n",
               flops / seconds / 1e9, 100.0 * flops / seconds / mc->fma_peak, seconds * 1e3,
               o->tokens);
    free(a);
    free(b);
    free(c);
    return rc;
}

int cmd_bench_gemm(int argc, char **argv)
{
    gemm_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    FILE *json = NULL;
    if ((rc = bench_json_open(o.json_path, &json)) != CLI_EXIT_OK)
        return rc;
    bench_machine mc;
    if ((rc = bench_setup_machine(o.threads, o.kernel, &mc)) != CLI_EXIT_OK) {
        bench_json_discard(json, o.json_path);
        return rc;
    }
    bench_print_machine("gemm", &mc);
    printf("micro-kernel %s | E %ld, F %ld, V %ld, %ld tokens\n", gqa_gemm_kernel_info(), o.embd,
           o.ff, o.vocab, o.tokens);
    cJSON *root = json ? bench_json_root("gemm", &mc) : NULL;
    cJSON *rows = NULL;
    if (root) {
        cJSON_AddStringToObject(root, "micro_kernel", gqa_gemm_kernel_info());
        cJSON_AddNumberToObject(root, "tokens", (double)o.tokens);
        cJSON_AddNumberToObject(root, "embd", (double)o.embd);
        cJSON_AddNumberToObject(root, "ff", (double)o.ff);
        cJSON_AddNumberToObject(root, "vocab", (double)o.vocab);
        rows = cJSON_AddArrayToObject(root, "results");
    }
    rc = run_shapes(&o, &mc, rows);
    if (rc != CLI_EXIT_OK || !json) {
        cJSON_Delete(root);
        bench_json_discard(json, o.json_path);
        return rc;
    }
    return bench_json_write(json, o.json_path, root);
}
