/* cmd_bench.c - `gqa bench`: the benchmark table, and `gqa bench attn`:
 * attention timings next to machine limits (`gqa bench kv` is cmd_bench_kv.c).
 *
 * For each named shape: the median time of one gqa_attention call, the K/V
 * bytes it must read and the FLOPs of its unmasked work, each as a rate and as
 * a ratio to a probe measured in this process (read bandwidth over a buffer
 * the size of the K/V, f32 FMA peak), and the roofline ratio
 *     time / max(bytes / bandwidth, flops / peak)
 * which is 1.0 for a kernel that runs exactly at the machine's limit.
 * Benchmarks are tools, not tests: nothing here fails on a slow number.
 */
#define _POSIX_C_SOURCE 200809L
#include <fnmatch.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "bench_util.h"
#include "cmd.h"
#include "gqa.h"

#define DEFAULT_TARGET_SECONDS 0.5 /* timed calls per shape */
#define QUICK_TARGET_SECONDS   0.3
#define ROOFLINE_TARGET        1.25 /* issue target for decode shapes with >= 4096 keys */
#define DIVIDEND_GQA_TARGET    3.6
#define DIVIDEND_MQA_TARGET    5.0

/* ---------------------------------------------------------------- shapes -- */

/* A shape without its dtype. Decode is one causal query at the last position
 * (what a model's decode step asks for); prefill is n_q = n_kv from q_pos 0. */
typedef struct base_shape {
    const char *stem; /* name without the "-f32"/"-f16" suffix */
    int32_t H, G, d;
    int64_t n_q, n_kv, q_pos;
    int quick; /* in the --quick list */
} base_shape;

static const base_shape base_shapes[] = {
    {"llama3-8b-decode-4k", 32, 8, 128, 1, 4096, 4095, 1},
    {"llama3-8b-decode-32k", 32, 8, 128, 1, 32768, 32767, 0},
    {"llama3-8b-mha-decode-4k", 32, 32, 128, 1, 4096, 4095, 1},
    {"llama3-8b-mha-decode-32k", 32, 32, 128, 1, 32768, 32767, 0},
    {"llama3-8b-mqa-decode-4k", 32, 1, 128, 1, 4096, 4095, 1},
    {"llama3-8b-mqa-decode-32k", 32, 1, 128, 1, 32768, 32767, 0},
    {"smollm2-135m-decode-2k", 9, 3, 64, 1, 2048, 2047, 0},
    {"smollm2-135m-decode-8k", 9, 3, 64, 1, 8192, 8191, 0},
    {"llama3-8b-prefill-512", 32, 8, 128, 512, 512, 0, 1},
    {"llama3-8b-prefill-2k", 32, 8, 128, 2048, 2048, 0, 0},
};
#define N_BASE (sizeof(base_shapes) / sizeof(base_shapes[0]))

static const gqa_dtype bench_dtypes[] = {GQA_F32, GQA_F16};
#define N_DTYPES (sizeof(bench_dtypes) / sizeof(bench_dtypes[0]))
#define N_SHAPES (N_BASE * N_DTYPES)

typedef struct bench_shape {
    char name[64];
    const base_shape *base;
    gqa_dtype dtype;
} bench_shape;

static void build_shapes(bench_shape *shapes)
{
    for (size_t i = 0; i < N_BASE; i++)
        for (size_t j = 0; j < N_DTYPES; j++) {
            bench_shape *s = &shapes[i * N_DTYPES + j];
            s->base = &base_shapes[i];
            s->dtype = bench_dtypes[j];
            snprintf(s->name, sizeof s->name, "%s-%s", s->base->stem, gqa_dtype_name(s->dtype));
        }
}

static size_t dtype_size(gqa_dtype t)
{
    return t == GQA_F32 ? 4 : 2;
}

/* K plus V: n_kv x G x d elements each. */
static double kv_bytes(const bench_shape *s)
{
    const base_shape *b = s->base;
    return 2.0 * (double)b->n_kv * b->G * b->d * (double)dtype_size(s->dtype);
}

/* 2 FLOPs per element for QK^T and 2 for PV, over the (query, key) pairs the
 * causal mask leaves visible: query i at position q_pos + i sees
 * min(q_pos + i + 1, n_kv) keys. */
static double unmasked_flops(const base_shape *b)
{
    double pairs = 0.0;
    for (int64_t i = 0; i < b->n_q; i++) {
        int64_t seen = b->q_pos + i + 1;
        pairs += (double)(seen < b->n_kv ? seen : b->n_kv);
    }
    return 4.0 * b->H * b->d * pairs;
}

static int is_decode_target(const base_shape *b)
{
    return b->n_q == 1 && b->n_kv >= 4096;
}

/* One --shapes item: a pattern with * or ? is a glob, anything else matches
 * the exact name or a prefix of it. */
static int item_matches(const char *item, const char *name)
{
    if (strpbrk(item, "*?["))
        return fnmatch(item, name, 0) == 0;
    return strncmp(name, item, strlen(item)) == 0;
}

/* Mark selected[i] for every shape that passes --quick and the --shapes list.
 * Returns the number selected, or -1 (after an error) if an item of the list
 * matches no shape at all. */
static int select_shapes(const bench_shape *shapes, const char *filter, int quick, int *selected)
{
    for (size_t i = 0; i < N_SHAPES; i++)
        selected[i] = !quick || shapes[i].base->quick;
    if (filter) {
        char *list = malloc(strlen(filter) + 1);
        int *hit = calloc(N_SHAPES, sizeof(int));
        if (!list || !hit) {
            free(list);
            free(hit);
            cli_error("out of memory");
            return -1;
        }
        strcpy(list, filter);
        for (char *item = list, *next; item; item = next) {
            next = strchr(item, ',');
            if (next)
                *next++ = '\0';
            if (!*item)
                continue;
            int any = 0;
            for (size_t i = 0; i < N_SHAPES; i++)
                if (item_matches(item, shapes[i].name))
                    hit[i] = any = 1;
            if (!any) {
                cli_error("--shapes: '%s' matches no shape (see 'gqa bench attn --list')", item);
                free(list);
                free(hit);
                return -1;
            }
        }
        for (size_t i = 0; i < N_SHAPES; i++)
            selected[i] = selected[i] && hit[i];
        free(list);
        free(hit);
    }
    int n = 0;
    for (size_t i = 0; i < N_SHAPES; i++)
        n += selected[i];
    return n;
}

/* ------------------------------------------------------------- utilities -- */

static void fill_random(void *buf, size_t n, gqa_dtype t, uint64_t seed)
{
    if (t == GQA_F32) {
        float *f = buf;
        for (size_t i = 0; i < n; i++)
            f[i] = bench_random_unit(&seed);
    } else {
        uint16_t *h = buf;
        for (size_t i = 0; i < n; i++)
            h[i] = gqa_f32_to_f16(bench_random_unit(&seed));
    }
}

/* ------------------------------------------------------------ measuring -- */

typedef struct shape_result {
    const bench_shape *shape;
    int reps;
    double t_median, t_min; /* seconds per call */
    double bytes, flops;    /* K/V bytes read, unmasked FLOPs */
    double probe_bw;        /* bytes/s over a buffer of `bytes` */
} shape_result;

typedef bench_machine machine;

static double bw_ratio(const shape_result *r)
{
    return r->bytes / r->t_median / r->probe_bw;
}

static double peak_ratio(const shape_result *r, const machine *m)
{
    return r->flops / r->t_median / m->fma_peak;
}

static double roofline_time(const shape_result *r, const machine *m)
{
    double t_bw = r->bytes / r->probe_bw, t_fma = r->flops / m->fma_peak;
    return t_bw > t_fma ? t_bw : t_fma;
}

typedef struct shape_buffers {
    float *q, *out;
    void *k, *v;
} shape_buffers;

static void free_buffers(shape_buffers *b)
{
    free(b->q);
    free(b->out);
    free(b->k);
    free(b->v);
}

/* Fresh buffers for every shape, so no shape reads another's warm cache. */
static int alloc_buffers(const bench_shape *s, shape_buffers *b)
{
    const base_shape *sb = s->base;
    size_t q_elems = (size_t)sb->n_q * (size_t)sb->H * (size_t)sb->d;
    size_t kv_elems = (size_t)sb->n_kv * (size_t)sb->G * (size_t)sb->d;
    size_t kv_size = kv_elems * dtype_size(s->dtype);
    b->q = bench_alloc_aligned(q_elems * sizeof(float));
    b->out = bench_alloc_aligned(q_elems * sizeof(float));
    b->k = bench_alloc_aligned(kv_size);
    b->v = bench_alloc_aligned(kv_size);
    if (!b->q || !b->out || !b->k || !b->v) {
        free_buffers(b);
        cli_error("%s: cannot allocate %.1f MB of inputs", s->name,
                  (2.0 * (double)q_elems * 4.0 + 2.0 * (double)kv_size) / 1e6);
        return -1;
    }
    fill_random(b->q, q_elems, GQA_F32, 1);
    fill_random(b->k, kv_elems, s->dtype, 2);
    fill_random(b->v, kv_elems, s->dtype, 3);
    return 0;
}

static gqa_status call_attention(const bench_shape *s, const shape_buffers *b)
{
    const base_shape *sb = s->base;
    gqa_attn_desc desc = {sb->H, sb->G, sb->d, 0.0f, 1, 0, s->dtype};
    return gqa_attention(&desc, sb->n_q, sb->n_kv, sb->q_pos, b->q, b->k, b->v, b->out, NULL);
}

typedef struct attn_call {
    const bench_shape *s;
    const shape_buffers *b;
} attn_call;

static gqa_status call_attention_fn(void *ctx)
{
    const attn_call *c = ctx;
    return call_attention(c->s, c->b);
}

/* One checked call (it also sizes the workspace), then the median of repeated
 * calls after a warm-up (bench_time_calls). */
static int time_shape(const bench_shape *s, const shape_buffers *b, double target, shape_result *r)
{
    gqa_status st = call_attention(s, b);
    if (st != GQA_OK)
        return cli_fail(st, s->name);
    size_t n_out = (size_t)s->base->n_q * (size_t)s->base->H * (size_t)s->base->d;
    for (size_t i = 0; i < n_out; i++)
        if (!isfinite(b->out[i])) {
            cli_error("%s: gqa_attention wrote a non-finite output at element %zu", s->name, i);
            return CLI_EXIT_FAIL;
        }

    attn_call call = {s, b};
    bench_timing t;
    int rc = bench_time_calls(call_attention_fn, &call, s->name, target, &t);
    r->reps = t.reps;
    r->t_median = t.t_median;
    r->t_min = t.t_min;
    return rc;
}

static int run_shape(const bench_shape *s, const machine *m, double target, shape_result *r)
{
    r->shape = s;
    r->bytes = kv_bytes(s);
    r->flops = unmasked_flops(s->base);

    int rc = bench_probe_read(m, r->bytes, &r->probe_bw);
    if (rc != CLI_EXIT_OK)
        return rc;

    shape_buffers b;
    if (alloc_buffers(s, &b) != 0)
        return CLI_EXIT_FAIL;
    rc = time_shape(s, &b, target, r);
    free_buffers(&b);
    return rc;
}

/* -------------------------------------------------------------- reports -- */

static void print_header(const machine *m)
{
    bench_print_machine("attn", m);
    printf("(bw ratio: GB/s over a read probe of the K/V size; roofline: time / max(bytes/bw, "
           "flops/peak), target <= %.2f for decode with >= 4096 keys)\n\n",
           ROOFLINE_TARGET);
    printf("%-30s %11s %6s %8s %8s %8s %6s %9s %6s %8s %5s\n", "shape", "time/call", "reps",
           "KV MB", "GB/s", "probe", "bw", "GFLOP/s", "peak", "roofline", "bound");
    fflush(stdout);
}

static void print_row(const shape_result *r, const machine *m)
{
    char t[32];
    bench_format_time(r->t_median, t, sizeof t);
    double roof = r->t_median / roofline_time(r, m);
    const char *bound = r->bytes / r->probe_bw >= r->flops / m->fma_peak ? "bw" : "fma";
    const char *flag = "";
    if (is_decode_target(r->shape->base))
        flag = roof <= ROOFLINE_TARGET ? " ok" : " MISS";
    printf("%-30s %11s %6d %8.1f %8.1f %8.1f %6.2f %9.1f %6.3f %8.2f %5s%s\n", r->shape->name, t,
           r->reps, r->bytes / 1e6, r->bytes / r->t_median / 1e9, r->probe_bw / 1e9, bw_ratio(r),
           r->flops / r->t_median / 1e9, peak_ratio(r, m), roof, bound, flag);
    fflush(stdout);
}

/* The llama3-8b-like decode result with G KV heads, or NULL if it did not run. */
static const shape_result *find_decode(const shape_result *res, int n, int32_t G, int64_t n_kv,
                                       gqa_dtype t)
{
    for (int i = 0; i < n; i++) {
        const base_shape *b = res[i].shape->base;
        if (b->n_q == 1 && b->H == 32 && b->d == 128 && b->G == G && b->n_kv == n_kv &&
            res[i].shape->dtype == t)
            return &res[i];
    }
    return NULL;
}

typedef struct dividend {
    gqa_dtype dtype;
    int64_t n_kv;
    double mha_over_gqa, mha_over_mqa; /* 0 when a shape is missing */
} dividend;

static const int64_t dividend_lengths[] = {4096, 32768};
#define N_DIVIDEND (N_DTYPES * (sizeof(dividend_lengths) / sizeof(dividend_lengths[0])))

/* Fill `out` with the rows for which MHA and at least one other ran. */
static int compute_dividends(const shape_result *res, int n, dividend *out)
{
    int rows = 0;
    for (size_t i = 0; i < N_DTYPES; i++)
        for (size_t j = 0; j < N_DIVIDEND / N_DTYPES; j++) {
            gqa_dtype t = bench_dtypes[i];
            int64_t len = dividend_lengths[j];
            const shape_result *mha = find_decode(res, n, 32, len, t);
            const shape_result *gqa = find_decode(res, n, 8, len, t);
            const shape_result *mqa = find_decode(res, n, 1, len, t);
            if (!mha || (!gqa && !mqa))
                continue;
            dividend d = {t, len, 0.0, 0.0};
            if (gqa)
                d.mha_over_gqa = mha->t_median / gqa->t_median;
            if (mqa)
                d.mha_over_mqa = mha->t_median / mqa->t_median;
            out[rows++] = d;
        }
    return rows;
}

static void format_ratio(double x, double target, char *out, size_t size)
{
    if (x <= 0.0)
        snprintf(out, size, "-");
    else
        snprintf(out, size, "%.2fx %s", x, x >= target ? "ok" : "MISS");
}

static void print_dividends(const dividend *d, int rows)
{
    if (rows == 0)
        return;
    printf("\nGQA dividend (llama3-8b-like decode, time ratios; targets MHA/GQA >= %.1fx, "
           "MHA/MQA >= %.1fx)\n",
           DIVIDEND_GQA_TARGET, DIVIDEND_MQA_TARGET);
    printf("%-6s %6s  %-18s %-18s\n", "dtype", "keys", "MHA(G=32)/GQA(G=8)", "MHA/MQA(G=1)");
    for (int i = 0; i < rows; i++) {
        char a[32], b[32];
        format_ratio(d[i].mha_over_gqa, DIVIDEND_GQA_TARGET, a, sizeof a);
        format_ratio(d[i].mha_over_mqa, DIVIDEND_MQA_TARGET, b, sizeof b);
        printf("%-6s %6lld  %-18s %-18s\n", gqa_dtype_name(d[i].dtype), (long long)d[i].n_kv, a, b);
    }
}

/* ----------------------------------------------------------------- JSON -- */

static cJSON *result_json(const shape_result *r, const machine *m)
{
    const base_shape *b = r->shape->base;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", r->shape->name);
    cJSON_AddStringToObject(o, "dtype", gqa_dtype_name(r->shape->dtype));
    cJSON_AddNumberToObject(o, "n_q_heads", b->H);
    cJSON_AddNumberToObject(o, "n_kv_heads", b->G);
    cJSON_AddNumberToObject(o, "head_dim", b->d);
    cJSON_AddNumberToObject(o, "n_q", (double)b->n_q);
    cJSON_AddNumberToObject(o, "n_kv", (double)b->n_kv);
    cJSON_AddNumberToObject(o, "q_pos", (double)b->q_pos);
    cJSON_AddBoolToObject(o, "causal", 1);
    cJSON_AddNumberToObject(o, "reps", r->reps);
    cJSON_AddNumberToObject(o, "time_median_s", r->t_median);
    cJSON_AddNumberToObject(o, "time_min_s", r->t_min);
    cJSON_AddNumberToObject(o, "kv_bytes", r->bytes);
    cJSON_AddNumberToObject(o, "flops", r->flops);
    cJSON_AddNumberToObject(o, "gb_per_s", r->bytes / r->t_median / 1e9);
    cJSON_AddNumberToObject(o, "probe_read_gb_per_s", r->probe_bw / 1e9);
    cJSON_AddNumberToObject(o, "bw_ratio", bw_ratio(r));
    cJSON_AddNumberToObject(o, "gflop_per_s", r->flops / r->t_median / 1e9);
    cJSON_AddNumberToObject(o, "peak_ratio", peak_ratio(r, m));
    cJSON_AddNumberToObject(o, "roofline_ratio", r->t_median / roofline_time(r, m));
    return o;
}

static cJSON *report_json(const machine *m, const shape_result *res, int n, const dividend *d,
                          int rows)
{
    cJSON *root = bench_json_root("attn", m);
    cJSON *results = cJSON_AddArrayToObject(root, "results");
    cJSON *divs = cJSON_AddArrayToObject(root, "gqa_dividend");
    if (!root || !results || !divs) {
        cJSON_Delete(root);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        cJSON *o = result_json(&res[i], m);
        if (!o || !cJSON_AddItemToArray(results, o)) {
            cJSON_Delete(o);
            cJSON_Delete(root);
            return NULL;
        }
    }
    for (int i = 0; i < rows; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(divs, o)) {
            cJSON_Delete(o);
            cJSON_Delete(root);
            return NULL;
        }
        cJSON_AddStringToObject(o, "dtype", gqa_dtype_name(d[i].dtype));
        cJSON_AddNumberToObject(o, "n_kv", (double)d[i].n_kv);
        if (d[i].mha_over_gqa > 0.0)
            cJSON_AddNumberToObject(o, "mha_over_gqa", d[i].mha_over_gqa);
        if (d[i].mha_over_mqa > 0.0)
            cJSON_AddNumberToObject(o, "mha_over_mqa", d[i].mha_over_mqa);
    }
    return root;
}

/* ----------------------------------------------------------- gqa bench attn -- */

typedef struct attn_options {
    const char *filter;    /* --shapes, or NULL for all */
    const char *json_path; /* --json, or NULL */
    const char *kernel;    /* --kernel, or NULL for the default */
    long threads;          /* --threads; -1 leaves the library default */
    double target;         /* seconds of timed calls per shape */
    int quick, list;
} attn_options;

static void attn_usage(FILE *f)
{
    fprintf(
        f,
        "usage: gqa bench attn [options]\n"
        "\n"
        "Time gqa_attention on named shapes and compare each with a read-bandwidth\n"
        "probe of the K/V size and the FMA peak, both measured in this process.\n"
        "\n"
        "options:\n"
        "  --shapes LIST     comma-separated names, name prefixes or globs\n"
        "                    (e.g. llama3-8b-decode,*-f16)\n"
        "  --quick           the short list: llama3-8b decode at 4k keys (G = 8, 32, 1)\n"
        "                    and prefill 512, f32 and f16\n"
        "  --threads N       worker threads (0: one per core)\n"
        "  --kernel NAME     kernel set (avx512, avx2, neon, scalar, ref)\n"
        "  --time SEC        seconds of timed calls per shape (default %.1f, %.1f with --quick)\n"
        "  --json FILE       also write results, probes and machine details as JSON\n"
        "  --list            print the shape names and exit\n"
        "  -h, --help        this help\n",
        DEFAULT_TARGET_SECONDS, QUICK_TARGET_SECONDS);
}

/* Returns -1 to continue, otherwise the exit status to return now. */
static int parse_attn_options(int argc, char **argv, attn_options *o)
{
    *o = (attn_options){NULL, NULL, NULL, -1, 0.0, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int got;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            attn_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
        } else if (!strcmp(a, "--list")) {
            o->list = 1;
        } else if ((got = cli_option_value(argc, argv, &i, "--shapes", &v)) != 0) {
            if (got < 0)
                return CLI_EXIT_USAGE;
            o->filter = v;
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
        } else if ((got = cli_option_value(argc, argv, &i, "--time", &v)) != 0) {
            if (got < 0 || cli_parse_double("--time", v, 0.001, 3600.0, &o->target) != 0)
                return CLI_EXIT_USAGE;
        } else {
            cli_error("bench attn: unknown %s '%s' (try 'gqa bench attn --help')",
                      a[0] == '-' ? "option" : "argument", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (o->target == 0.0)
        o->target = o->quick ? QUICK_TARGET_SECONDS : DEFAULT_TARGET_SECONDS;
    return -1;
}

static void list_shapes(const bench_shape *shapes, const int *selected)
{
    printf("%-30s %4s %4s %4s %6s %6s %s\n", "shape", "H", "G", "d", "n_q", "n_kv", "quick");
    for (size_t i = 0; i < N_SHAPES; i++) {
        const base_shape *b = shapes[i].base;
        if (selected[i])
            printf("%-30s %4d %4d %4d %6lld %6lld %s\n", shapes[i].name, (int)b->H, (int)b->G,
                   (int)b->d, (long long)b->n_q, (long long)b->n_kv, b->quick ? "yes" : "");
    }
}

static int bench_attn(int argc, char **argv)
{
    attn_options o;
    int rc = parse_attn_options(argc, argv, &o);
    if (rc >= 0)
        return rc;

    static bench_shape shapes[N_SHAPES];
    int selected[N_SHAPES];
    build_shapes(shapes);
    int n_sel = select_shapes(shapes, o.filter, o.quick, selected);
    if (n_sel < 0)
        return CLI_EXIT_USAGE;
    if (n_sel == 0) {
        cli_error("no shape is both in --quick and matched by --shapes");
        return CLI_EXIT_USAGE;
    }
    if (o.list) {
        list_shapes(shapes, selected);
        return CLI_EXIT_OK;
    }

    FILE *json;
    if (bench_json_open(o.json_path, &json) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    machine m;
    shape_result results[N_SHAPES];
    dividend divs[N_DIVIDEND];
    int n = 0, rows;
    if ((rc = bench_setup_machine(o.threads, o.kernel, &m)) != CLI_EXIT_OK)
        goto fail;
    print_header(&m);
    for (size_t i = 0; i < N_SHAPES; i++) {
        if (!selected[i])
            continue;
        if ((rc = run_shape(&shapes[i], &m, o.target, &results[n])) != CLI_EXIT_OK)
            goto fail;
        print_row(&results[n], &m);
        n++;
    }

    rows = compute_dividends(results, n, divs);
    print_dividends(divs, rows);
    return json ? bench_json_write(json, o.json_path, report_json(&m, results, n, divs, rows))
                : CLI_EXIT_OK;

fail:
    bench_json_discard(json, o.json_path);
    return rc;
}

/* ------------------------------------------------------------- gqa bench -- */

typedef struct benchmark {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} benchmark;

static const benchmark benchmarks[] = {
    {"attn", bench_attn, "gqa_attention on decode and prefill shapes (GB/s, GFLOP/s, roofline)"},
    {"kv", cmd_bench_kv, "batched paged decode (tokens/s, GB/s) and sequences per memory budget"},
    {"model", cmd_bench_model, "whole-model prompt and generation tokens/s (SmolLM2 by default)"},
    {"train", cmd_bench_train, "training tokens/s (forward, backward, AdamW) of a model config"},
    {"gemm", cmd_bench_gemm, "the trainer's f32 matrix multiply on one training step's shapes"},
};
#define N_BENCHMARKS (sizeof(benchmarks) / sizeof(benchmarks[0]))

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: gqa bench <what> [options]\n       gqa bench <what> --help\n\nwhat:\n");
    for (size_t i = 0; i < N_BENCHMARKS; i++)
        fprintf(f, "  %-8s %s\n", benchmarks[i].name, benchmarks[i].summary);
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        cli_error("bench: say what to benchmark (try 'gqa bench --help')");
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        bench_usage(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < N_BENCHMARKS; i++)
        if (!strcmp(argv[1], benchmarks[i].name))
            return benchmarks[i].run(argc - 1, argv + 1);
    cli_error("bench: unknown %s '%s' (try 'gqa bench --help')",
              argv[1][0] == '-' ? "option" : "benchmark", argv[1]);
    return CLI_EXIT_USAGE;
}
