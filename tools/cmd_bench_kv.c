/* cmd_bench_kv.c - `gqa bench kv`: the paged KV cache under batched decode.
 *
 * Two questions a host asks of GQA, on a llama3-8b-like attention layer
 * (H = 32 query heads, d = 128) with G = 1, 8 and 32 KV heads:
 *  1. Throughput: one gqa_kv_attention call decodes one token for each of B
 *     sequences of mixed lengths. Decode reads every cached K/V byte once, so
 *     the unit is GB/s and the limit is the read bandwidth of a buffer of the
 *     same size, probed in this process (issue target: >= 0.70 of it).
 *  2. Concurrency: how many full-context sequences one memory budget holds
 *     (counted by reserving them in a real cache until GQA_ERR_CAPACITY), and
 *     the tokens/s of one decode step over all of them.
 * One layer throughout: a model's n_layers scale every byte count and leave
 * every ratio unchanged. Benchmarks are tools, not tests: nothing here fails
 * on a slow number.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "bench_util.h"
#include "cmd.h"
#include "gqa.h"

#define N_Q_HEADS      32
#define HEAD_DIM       128
#define BLOCK_TOKENS   16
#define MIN_LEN        128
#define MAX_LEN        8192
#define QUICK_MAX_LEN  2048
#define MAX_BATCH      64
#define LENGTH_SEED    1
#define CACHE_CAP      1.5e9 /* bytes of K/V per throughput config, for small machines */
#define MAX_FIT_SEQS   8192  /* stop counting there: the decode step needs an output each */
#define BW_TARGET      0.70
#define DEFAULT_TARGET 0.4 /* seconds of timed calls per config */
#define QUICK_TARGET   0.1
#define DEFAULT_BUDGET ((uint64_t)256 << 20)
#define QUICK_BUDGET   ((uint64_t)64 << 20)
#define DEFAULT_CTX    4096
#define QUICK_CTX      2048
#define POOL_TOKENS    512 /* random K/V rows that every fill copies from */
#define FILL_CHUNK     256

static const int32_t group_counts[] = {1, 8, 32};
static const gqa_dtype kv_dtypes[] = {GQA_F16, GQA_Q8_0};
static const int batch_sizes[] = {1, 8, 64};
#define N_GROUPS  (sizeof(group_counts) / sizeof(group_counts[0]))
#define N_KV_DT   (sizeof(kv_dtypes) / sizeof(kv_dtypes[0]))
#define N_BATCHES (sizeof(batch_sizes) / sizeof(batch_sizes[0]))
#define MHA_G     32

typedef struct kv_options {
    const char *json_path; /* --json, or NULL */
    const char *kernel;    /* --kernel, or NULL for the default */
    long threads;          /* --threads; -1 leaves the library default */
    uint64_t budget;       /* --budget, bytes */
    long ctx;              /* --ctx, tokens */
    int quick;
    int max_len;        /* longest sequence of the throughput part */
    int n_batches;      /* how many of batch_sizes run */
    double target;      /* seconds of timed calls per config */
} kv_options;

/* ------------------------------------------------------------ K/V fill -- */

/* POOL_TOKENS x G x d random K and V rows; sequences are filled by copying
 * windows of them, which costs far less than fresh random numbers per token. */
typedef struct kv_pool {
    float *k, *v;
} kv_pool;

static int pool_init(kv_pool *p, int32_t G)
{
    size_t n = (size_t)POOL_TOKENS * (size_t)G * HEAD_DIM;
    p->k = malloc(n * sizeof(float));
    p->v = malloc(n * sizeof(float));
    if (!p->k || !p->v) {
        free(p->k);
        free(p->v);
        cli_error("out of memory for the random K/V pool");
        return CLI_EXIT_FAIL;
    }
    uint64_t seed = 7u + (uint64_t)G;
    for (size_t i = 0; i < n; i++) {
        p->k[i] = bench_random_unit(&seed);
        p->v[i] = bench_random_unit(&seed);
    }
    return CLI_EXIT_OK;
}

static void pool_free(kv_pool *p)
{
    free(p->k);
    free(p->v);
}

/* Give `seq` len tokens of pool data: appended (a fresh sequence), or written
 * into layer 0 of slots already reserved. Window offsets rotate so that
 * neighbouring blocks differ. */
static gqa_status fill_sequence(gqa_kv_cache *cache, int32_t seq, int64_t len, int32_t G,
                                const kv_pool *p, int reserved)
{
    size_t row = (size_t)G * HEAD_DIM;
    for (int64_t pos = 0, chunk = 0; pos < len; pos += FILL_CHUNK, chunk++) {
        int64_t n = len - pos < FILL_CHUNK ? len - pos : FILL_CHUNK;
        size_t off = (size_t)((chunk * 97 + seq * 31) % (POOL_TOKENS - FILL_CHUNK)) * row;
        gqa_status st = reserved
                            ? gqa_kv_write_layer(cache, seq, 0, pos, n, p->k + off, p->v + off)
                            : gqa_kv_seq_append(cache, seq, n, p->k + off, p->v + off);
        if (st != GQA_OK)
            return st;
    }
    return GQA_OK;
}

/* ------------------------------------------------------- decode batch -- */

/* One decode token per sequence: item i reads query i % MAX_BATCH of a small
 * random pool and writes its own output rows. */
typedef struct decode_batch {
    const gqa_kv_cache *cache;
    gqa_attn_desc desc;
    gqa_kv_batch_item *items;
    float *q, *out;
    int32_t n;
} decode_batch;

/* Safe to call twice, and on a zeroed batch. */
static void batch_free(decode_batch *b)
{
    free(b->items);
    free(b->q);
    free(b->out);
    b->items = NULL;
    b->q = b->out = NULL;
}

static int batch_init(decode_batch *b, const gqa_kv_cache *cache, int32_t G, gqa_dtype t,
                      const int32_t *seqs, int32_t n)
{
    size_t q_row = (size_t)N_Q_HEADS * HEAD_DIM;
    *b = (decode_batch){cache, {N_Q_HEADS, G, HEAD_DIM, 0.0f, 1, 0, t}, NULL, NULL, NULL, n};
    b->items = calloc((size_t)n, sizeof *b->items);
    b->q = bench_alloc_aligned(MAX_BATCH * q_row * sizeof(float));
    b->out = bench_alloc_aligned((size_t)n * q_row * sizeof(float));
    if (!b->items || !b->q || !b->out) {
        batch_free(b);
        cli_error("out of memory for a batch of %d queries", (int)n);
        return CLI_EXIT_FAIL;
    }
    uint64_t seed = 11;
    for (size_t i = 0; i < MAX_BATCH * q_row; i++)
        b->q[i] = bench_random_unit(&seed);
    for (int32_t i = 0; i < n; i++)
        b->items[i] = (gqa_kv_batch_item){seqs[i], 1, b->q + (size_t)(i % MAX_BATCH) * q_row,
                                          b->out + (size_t)i * q_row, NULL};
    return CLI_EXIT_OK;
}

static gqa_status decode_step(void *ctx)
{
    const decode_batch *b = ctx;
    return gqa_kv_attention(b->cache, 0, &b->desc, b->items, b->n);
}

/* One checked step (it also sizes the workspaces), then the median of many. */
static int time_decode(decode_batch *b, const char *what, double target, bench_timing *t)
{
    gqa_status st = decode_step(b);
    if (st != GQA_OK)
        return cli_fail(st, what);
    size_t n_out = (size_t)b->n * N_Q_HEADS * HEAD_DIM;
    for (size_t i = 0; i < n_out; i++)
        if (!isfinite(b->out[i])) {
            cli_error("%s: gqa_kv_attention wrote a non-finite output at element %zu", what, i);
            return CLI_EXIT_FAIL;
        }
    return bench_time_calls(decode_step, b, what, target, t);
}

/* A cache for one layer, `n` sequences and their ids; free accepts partial. */
typedef struct kv_setup {
    gqa_kv_cache *cache;
    int32_t *seqs;
    int32_t n;
} kv_setup;

static void setup_free(kv_setup *s)
{
    gqa_kv_cache_free(s->cache);
    free(s->seqs);
}

static int setup_create(kv_setup *s, int32_t G, gqa_dtype t, uint64_t budget, int32_t max_seqs,
                        const char *what)
{
    gqa_kv_config cfg = {1, G, HEAD_DIM, BLOCK_TOKENS, t, budget};
    *s = (kv_setup){NULL, malloc((size_t)max_seqs * sizeof(int32_t)), 0};
    if (!s->seqs) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    gqa_status st = gqa_kv_cache_create(&cfg, &s->cache);
    return st == GQA_OK ? CLI_EXIT_OK : cli_fail(st, what);
}

/* ------------------------------------------------- part 1: throughput -- */

typedef struct decode_result {
    int32_t G;
    gqa_dtype dtype;
    int batch_asked, batch; /* batch < batch_asked when CACHE_CAP cut it */
    double tokens;          /* sum of the batch's lengths */
    double bytes;           /* K/V bytes one step reads */
    double asked_bytes;     /* what batch_asked sequences would have needed */
    double flops;           /* 4 * H * d per (query head, key): QK^T and PV */
    double probe_bw;        /* bytes/s over a buffer of `bytes` */
    bench_timing t;
} decode_result;

/* Deterministic lengths in MIN_LEN..max_len, the same for every G and dtype.
 * A batch of B > 1 uses the first B; a batch of 1 is one max_len sequence. */
static void make_lengths(int max_len, int64_t *lens)
{
    uint64_t seed = LENGTH_SEED;
    for (int i = 0; i < MAX_BATCH; i++)
        lens[i] = MIN_LEN + (int64_t)(bench_next_random(&seed) % (uint64_t)(max_len - MIN_LEN + 1));
}

static const int64_t *batch_lengths(const int64_t *lens, int B, const int64_t *single)
{
    return B == 1 ? single : lens;
}

static double sum_lengths(const int64_t *lens, int B)
{
    double s = 0.0;
    for (int i = 0; i < B; i++)
        s += (double)lens[i];
    return s;
}

static int fill_batch(kv_setup *s, const int64_t *lens, int B, int32_t G, const kv_pool *p,
                      const char *what)
{
    for (int i = 0; i < B; i++) {
        gqa_status st = gqa_kv_seq_create(s->cache, &s->seqs[i]);
        if (st != GQA_OK)
            return cli_fail(st, what);
        s->n++;
        if ((st = fill_sequence(s->cache, s->seqs[i], lens[i], G, p, 0)) != GQA_OK)
            return cli_fail(st, what);
    }
    return CLI_EXIT_OK;
}

static int run_decode(const kv_options *o, const bench_machine *m, int32_t G, gqa_dtype t,
                      int B, const int64_t *lens, const kv_pool *p, decode_result *r)
{
    double bpt = (double)gqa_kv_bytes_per_token(1, G, HEAD_DIM, t);
    *r = (decode_result){G, t, B, B, 0.0, 0.0, 0.0, 0.0, 0.0, {0, 0.0, 0.0}};
    r->asked_bytes = sum_lengths(lens, B) * bpt;
    while (r->batch > 1 && sum_lengths(lens, r->batch) * bpt > CACHE_CAP)
        r->batch--;
    r->tokens = sum_lengths(lens, r->batch);
    r->bytes = r->tokens * bpt;
    r->flops = 4.0 * N_Q_HEADS * HEAD_DIM * r->tokens;

    char what[64];
    snprintf(what, sizeof what, "decode %s G=%d B=%d", gqa_dtype_name(t), (int)G, r->batch);
    /* Probe first, so the probe's buffer and the cache are never both alive. */
    int rc = bench_probe_read(m, r->bytes, &r->probe_bw);
    if (rc != CLI_EXIT_OK)
        return rc;

    uint64_t blocks = 0;
    for (int i = 0; i < r->batch; i++)
        blocks += (uint64_t)((lens[i] + BLOCK_TOKENS - 1) / BLOCK_TOKENS);
    uint64_t budget = blocks * BLOCK_TOKENS * (uint64_t)bpt; /* just large enough */
    kv_setup s;
    decode_batch b = {0};
    if ((rc = setup_create(&s, G, t, budget, r->batch, what)) == CLI_EXIT_OK &&
        (rc = fill_batch(&s, lens, r->batch, G, p, what)) == CLI_EXIT_OK &&
        (rc = batch_init(&b, s.cache, G, t, s.seqs, s.n)) == CLI_EXIT_OK)
        rc = time_decode(&b, what, o->target, &r->t);
    batch_free(&b);
    setup_free(&s);
    return rc;
}

static void print_decode_header(const kv_options *o, const int64_t *lens)
{
    printf("\nbatched decode: H = %d, d = %d, one layer, blocks of %d tokens, one query token "
           "per sequence\n",
           N_Q_HEADS, HEAD_DIM, BLOCK_TOKENS);
    printf("lengths: B=1: one of %d; B>1: the first B of %d..%d (seed %d):", o->max_len, MIN_LEN,
           o->max_len, LENGTH_SEED);
    for (int i = 0; i < 8; i++)
        printf(" %lld", (long long)lens[i]);
    printf(" ...; sum B=8: %.0f", sum_lengths(lens, 8));
    if (o->n_batches == (int)N_BATCHES)
        printf(", B=64: %.0f", sum_lengths(lens, MAX_BATCH));
    printf(" tokens\n(bw: GB/s over a read probe of the same byte count, target >= %.2f; bound: "
           "the larger of bytes/probe and flops/FMA peak)\n\n",
           BW_TARGET);
    printf("%-5s %3s %4s %7s %8s %11s %6s %10s %7s %7s %6s %5s %8s %5s\n", "dtype", "G", "B",
           "tokens", "KV MB", "step time", "reps", "tokens/s", "GB/s", "probe", "bw", "", "GFLOP/s",
           "bound");
    fflush(stdout);
}

static int fma_bound(const decode_result *r, const bench_machine *m)
{
    return r->flops / m->fma_peak > r->bytes / r->probe_bw;
}

static void print_decode_row(const decode_result *r, const bench_machine *m)
{
    char t[32];
    bench_format_time(r->t.t_median, t, sizeof t);
    double gbs = r->bytes / r->t.t_median, ratio = gbs / r->probe_bw;
    printf("%-5s %3d %3d%s %7.0f %8.1f %11s %6d %10.1f %7.2f %7.2f %6.2f %5s %8.1f %5s\n",
           gqa_dtype_name(r->dtype), (int)r->G, r->batch, r->batch < r->batch_asked ? "*" : " ",
           r->tokens, r->bytes / 1e6, t, r->t.reps, r->batch / r->t.t_median, gbs / 1e9,
           r->probe_bw / 1e9, ratio, ratio >= BW_TARGET ? "ok" : "MISS",
           r->flops / r->t.t_median / 1e9, fma_bound(r, m) ? "fma" : "bw");
    fflush(stdout);
}

static void print_caps(const decode_result *res, int n)
{
    for (int i = 0; i < n; i++) {
        const decode_result *r = &res[i];
        if (r->batch < r->batch_asked)
            printf("* %s G=%d: B=%d asked, %d run: %d sequences would hold %.2f GB of K/V, over "
                   "the %.1f GB cap per config; the first %d fit\n",
                   gqa_dtype_name(r->dtype), (int)r->G, r->batch_asked, r->batch, r->batch_asked,
                   r->asked_bytes / 1e9, CACHE_CAP / 1e9, r->batch);
    }
}

/* ------------------------------------------------ part 2: concurrency -- */

typedef struct fit_result {
    int32_t G;
    gqa_dtype dtype;
    uint64_t bytes_per_token;
    double seq_bytes;   /* one full-context sequence */
    int32_t n_seqs;     /* full-context sequences that fit */
    int count_capped;   /* stopped counting at MAX_FIT_SEQS */
    double bytes;       /* K/V bytes the step over all of them reads */
    double probe_bw;
    bench_timing t;     /* reps == 0: not timed (nothing fit) */
} fit_result;

/* Reserve full-context sequences until the cache says GQA_ERR_CAPACITY. */
static int count_fit(kv_setup *s, int64_t ctx, fit_result *r, const char *what)
{
    while (s->n < MAX_FIT_SEQS) {
        int32_t seq;
        gqa_status st = gqa_kv_seq_create(s->cache, &seq);
        if (st == GQA_OK) {
            st = gqa_kv_seq_reserve(s->cache, seq, ctx);
            if (st == GQA_OK) {
                s->seqs[s->n++] = seq;
                continue;
            }
            gqa_kv_seq_free(s->cache, seq);
        }
        if (st == GQA_ERR_CAPACITY)
            return CLI_EXIT_OK;
        return cli_fail(st, what);
    }
    r->count_capped = 1;
    return CLI_EXIT_OK;
}

static int run_fit(const kv_options *o, const bench_machine *m, int32_t G, gqa_dtype t,
                   const kv_pool *p, fit_result *r)
{
    *r = (fit_result){G, t, gqa_kv_bytes_per_token(1, G, HEAD_DIM, t), 0.0, 0, 0, 0.0, 0.0,
                      {0, 0.0, 0.0}};
    r->seq_bytes = (double)o->ctx * (double)r->bytes_per_token;
    if (o->budget < r->bytes_per_token * BLOCK_TOKENS)
        return CLI_EXIT_OK; /* not even one block: nothing fits */

    char what[64];
    snprintf(what, sizeof what, "budget %s G=%d", gqa_dtype_name(t), (int)G);
    kv_setup s;
    decode_batch b = {0};
    int rc = setup_create(&s, G, t, o->budget, MAX_FIT_SEQS, what);
    if (rc == CLI_EXIT_OK)
        rc = count_fit(&s, o->ctx, r, what);
    r->n_seqs = s.n;
    for (int32_t i = 0; rc == CLI_EXIT_OK && i < s.n; i++) {
        gqa_status st = fill_sequence(s.cache, s.seqs[i], o->ctx, G, p, 1);
        if (st != GQA_OK)
            rc = cli_fail(st, what);
    }
    r->bytes = (double)s.n * r->seq_bytes;
    if (rc == CLI_EXIT_OK && s.n > 0 &&
        (rc = bench_probe_read(m, r->bytes, &r->probe_bw)) == CLI_EXIT_OK &&
        (rc = batch_init(&b, s.cache, G, t, s.seqs, s.n)) == CLI_EXIT_OK)
        rc = time_decode(&b, what, o->target, &r->t);
    batch_free(&b);
    setup_free(&s);
    return rc;
}

static const fit_result *find_fit(const fit_result *res, int n, gqa_dtype t, int32_t G)
{
    for (int i = 0; i < n; i++)
        if (res[i].dtype == t && res[i].G == G)
            return &res[i];
    return NULL;
}

/* Sequences relative to MHA (G = 32) in the same budget; 0 if MHA fits none. */
static double vs_mha(const fit_result *r, const fit_result *res, int n)
{
    const fit_result *mha = find_fit(res, n, r->dtype, MHA_G);
    return mha && mha->n_seqs > 0 ? (double)r->n_seqs / mha->n_seqs : 0.0;
}

static void format_bytes(double bytes, char *out, size_t size)
{
    if (bytes >= 0x1p30)
        snprintf(out, size, "%.2f GiB", bytes / 0x1p30);
    else if (bytes >= 0x1p20)
        snprintf(out, size, "%.1f MiB", bytes / 0x1p20);
    else if (bytes >= 0x1p10)
        snprintf(out, size, "%.1f KiB", bytes / 0x1p10);
    else
        snprintf(out, size, "%.0f B", bytes);
}

static void print_fit_header(const kv_options *o)
{
    char budget[32];
    format_bytes((double)o->budget, budget, sizeof budget);
    printf("\nsame budget, as many sequences as fit: %s, context %ld tokens, one layer, H = %d, "
           "d = %d\n(seqs: full-context sequences reserved until GQA_ERR_CAPACITY; then one "
           "decode step over all of them)\n\n",
           budget, o->ctx, N_Q_HEADS, HEAD_DIM);
    printf("%-5s %3s %9s %10s %6s %7s %11s %6s %10s %7s %6s\n", "dtype", "G", "KV/token",
           "KV/seq", "seqs", "vs MHA", "step time", "reps", "tokens/s", "GB/s", "bw");
    fflush(stdout);
}

static void print_fit_row(const fit_result *r, const fit_result *res, int n)
{
    char tok[32], seq[32], t[32] = "-", ratio[32] = "-";
    format_bytes((double)r->bytes_per_token, tok, sizeof tok);
    format_bytes(r->seq_bytes, seq, sizeof seq);
    double x = vs_mha(r, res, n);
    if (x > 0.0)
        snprintf(ratio, sizeof ratio, "%.2fx", x);
    printf("%-5s %3d %9s %10s %5d%s %7s", gqa_dtype_name(r->dtype), (int)r->G, tok, seq,
           (int)r->n_seqs, r->count_capped ? "+" : " ", ratio);
    if (r->t.reps > 0) {
        bench_format_time(r->t.t_median, t, sizeof t);
        double gbs = r->bytes / r->t.t_median;
        printf(" %11s %6d %10.1f %7.2f %6.2f\n", t, r->t.reps, r->n_seqs / r->t.t_median,
               gbs / 1e9, gbs / r->probe_bw);
    } else {
        printf(" %11s\n", "(none fit)");
    }
    fflush(stdout);
}

static void print_fit_summary(const fit_result *res, int n)
{
    int capped = 0;
    printf("\nGQA (G=8) vs MHA (G=32) in the same budget:");
    for (size_t j = 0; j < N_KV_DT; j++) {
        const fit_result *g = find_fit(res, n, kv_dtypes[j], 8);
        double x = g ? vs_mha(g, res, n) : 0.0;
        if (x > 0.0)
            printf(" %s %.2fx sequences;", gqa_dtype_name(kv_dtypes[j]), x);
        else
            printf(" %s -;", gqa_dtype_name(kv_dtypes[j]));
    }
    printf(" (H/G = 4 is the ideal)\n");
    for (int i = 0; i < n; i++)
        capped |= res[i].count_capped;
    if (capped)
        printf("+ counting stopped at %d sequences (one decode output each)\n", MAX_FIT_SEQS);
}

/* ---------------------------------------------------------------- JSON -- */

static cJSON *decode_json(const decode_result *r, const bench_machine *m, const int64_t *lens)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dtype", gqa_dtype_name(r->dtype));
    cJSON_AddNumberToObject(o, "n_q_heads", N_Q_HEADS);
    cJSON_AddNumberToObject(o, "n_kv_heads", r->G);
    cJSON_AddNumberToObject(o, "head_dim", HEAD_DIM);
    cJSON_AddNumberToObject(o, "batch_requested", r->batch_asked);
    cJSON_AddNumberToObject(o, "batch", r->batch);
    cJSON_AddBoolToObject(o, "capped", r->batch < r->batch_asked);
    cJSON *l = cJSON_AddArrayToObject(o, "lengths");
    for (int i = 0; l && i < r->batch; i++)
        cJSON_AddItemToArray(l, cJSON_CreateNumber((double)lens[i]));
    cJSON_AddNumberToObject(o, "tokens", r->tokens);
    cJSON_AddNumberToObject(o, "kv_bytes", r->bytes);
    cJSON_AddNumberToObject(o, "reps", r->t.reps);
    cJSON_AddNumberToObject(o, "time_median_s", r->t.t_median);
    cJSON_AddNumberToObject(o, "time_min_s", r->t.t_min);
    cJSON_AddNumberToObject(o, "tokens_per_s", r->batch / r->t.t_median);
    cJSON_AddNumberToObject(o, "gb_per_s", r->bytes / r->t.t_median / 1e9);
    cJSON_AddNumberToObject(o, "probe_read_gb_per_s", r->probe_bw / 1e9);
    cJSON_AddNumberToObject(o, "bw_ratio", r->bytes / r->t.t_median / r->probe_bw);
    cJSON_AddNumberToObject(o, "flops", r->flops);
    cJSON_AddNumberToObject(o, "gflop_per_s", r->flops / r->t.t_median / 1e9);
    cJSON_AddStringToObject(o, "bound", fma_bound(r, m) ? "fma" : "bw");
    return o;
}

static cJSON *fit_json(const fit_result *r, const fit_result *res, int n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dtype", gqa_dtype_name(r->dtype));
    cJSON_AddNumberToObject(o, "n_kv_heads", r->G);
    cJSON_AddNumberToObject(o, "bytes_per_token", (double)r->bytes_per_token);
    cJSON_AddNumberToObject(o, "bytes_per_sequence", r->seq_bytes);
    cJSON_AddNumberToObject(o, "sequences", r->n_seqs);
    cJSON_AddBoolToObject(o, "count_capped", r->count_capped);
    if (vs_mha(r, res, n) > 0.0)
        cJSON_AddNumberToObject(o, "sequences_vs_mha", vs_mha(r, res, n));
    if (r->t.reps > 0) {
        cJSON_AddNumberToObject(o, "kv_bytes", r->bytes);
        cJSON_AddNumberToObject(o, "reps", r->t.reps);
        cJSON_AddNumberToObject(o, "time_median_s", r->t.t_median);
        cJSON_AddNumberToObject(o, "tokens_per_s", r->n_seqs / r->t.t_median);
        cJSON_AddNumberToObject(o, "gb_per_s", r->bytes / r->t.t_median / 1e9);
        cJSON_AddNumberToObject(o, "probe_read_gb_per_s", r->probe_bw / 1e9);
        cJSON_AddNumberToObject(o, "bw_ratio", r->bytes / r->t.t_median / r->probe_bw);
    }
    return o;
}

/* Adds `item` to `array`; deletes it and returns 0 if either is missing. */
static int add_item(cJSON *array, cJSON *item)
{
    if (!array || !item || !cJSON_AddItemToArray(array, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

static cJSON *report_json(const kv_options *o, const bench_machine *m, const decode_result *dec,
                          int n_dec, const int64_t *lens, const int64_t *single,
                          const fit_result *fit, int n_fit)
{
    cJSON *root = bench_json_root("kv", m);
    cJSON *cfg = cJSON_AddObjectToObject(root, "config");
    cJSON_AddNumberToObject(cfg, "block_tokens", BLOCK_TOKENS);
    cJSON_AddNumberToObject(cfg, "min_len", MIN_LEN);
    cJSON_AddNumberToObject(cfg, "max_len", o->max_len);
    cJSON_AddNumberToObject(cfg, "cache_cap_bytes", CACHE_CAP);
    cJSON_AddNumberToObject(cfg, "budget_bytes", (double)o->budget);
    cJSON_AddNumberToObject(cfg, "ctx", (double)o->ctx);
    cJSON_AddNumberToObject(cfg, "bw_ratio_target", BW_TARGET);
    cJSON_AddBoolToObject(cfg, "quick", o->quick);
    cJSON *decode = cJSON_AddArrayToObject(root, "decode");
    cJSON *budget = cJSON_AddArrayToObject(root, "budget_fill");
    int ok = cfg && decode && budget;
    for (int i = 0; ok && i < n_dec; i++)
        ok = add_item(decode, decode_json(&dec[i], m, batch_lengths(lens, dec[i].batch, single)));
    for (int i = 0; ok && i < n_fit; i++)
        ok = add_item(budget, fit_json(&fit[i], fit, n_fit));
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* ------------------------------------------------------------- options -- */

static void kv_usage(FILE *f)
{
    fprintf(f,
            "usage: gqa bench kv [options]\n"
            "\n"
            "Batched decode through the paged KV cache (H = %d, d = %d, G = 1, 8, 32;\n"
            "f16 and q8_0): tokens/s and GB/s for B = 1, 8, 64 sequences of mixed\n"
            "lengths %d..%d, against a read-bandwidth probe of the same byte count;\n"
            "then how many full-context sequences one memory budget holds per G, and\n"
            "the tokens/s of one decode step over all of them.\n"
            "\n"
            "options:\n"
            "  --budget SIZE     memory budget of the second part (default 256MiB;\n"
            "                    units B, KiB, MiB, GiB, KB, MB, GB, e.g. 64MiB, 1GiB)\n"
            "  --ctx N           context length of the second part (default %d)\n"
            "  --quick           smoke run: B = 1, 8, lengths up to %d, budget 64MiB,\n"
            "                    context %d, shorter timing (a few seconds)\n"
            "  --threads N       worker threads (0: one per core)\n"
            "  --kernel NAME     kernel set (avx512, avx2, neon, scalar, ref)\n"
            "  --json FILE       also write results, probes and machine details as JSON\n"
            "  -h, --help        this help\n",
            N_Q_HEADS, HEAD_DIM, MIN_LEN, MAX_LEN, DEFAULT_CTX, QUICK_MAX_LEN, QUICK_CTX);
}

/* A whole number of bytes with an optional unit: 1 KiB = 1024, 1 KB = 1000. */
static int parse_budget(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    int ok = isdigit((unsigned char)text[0]) && errno != ERANGE && n > 0;
    uint64_t unit = 1;
    const char *u = end;
    if (ok && *u) {
        const char *prefixes = "KMGT", *hit = strchr(prefixes, toupper((unsigned char)*u));
        int binary = hit && (u[1] == 'i' || u[1] == 'I');
        if (hit) {
            for (long i = 0; i <= hit - prefixes; i++)
                unit *= binary ? 1024 : 1000;
            u += binary ? 2 : 1;
        }
        ok = (*u == 'B' || *u == 'b') ? u[1] == '\0' : (*u == '\0' && hit);
    }
    if (!ok || n > UINT64_MAX / unit) {
        cli_error("--budget wants a whole size such as 64MiB, 1GiB or 268435456, got '%s'", text);
        return -1;
    }
    *out = (uint64_t)n * unit;
    return 0;
}

/* Half the machine's memory: the budget part fills the cache, and the probe
 * of its size runs beside it. */
static int check_budget(uint64_t budget)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return 0;
    double limit = 0.5 * (double)pages * (double)page;
    if ((double)budget <= limit)
        return 0;
    cli_error("--budget %.2f GiB is more than half of this machine's %.2f GiB of memory "
              "(the cache is filled and a probe of its size runs beside it)",
              (double)budget / 0x1p30, 2.0 * limit / 0x1p30);
    return -1;
}

static int parse_one(int argc, char **argv, int *i, kv_options *o, int *budget_set, int *ctx_set)
{
    const char *a = argv[*i], *v = NULL;
    int got;
    if (!strcmp(a, "--quick")) {
        o->quick = 1;
    } else if ((got = cli_option_value(argc, argv, i, "--json", &v)) != 0) {
        if (got < 0)
            return -1;
        o->json_path = v;
    } else if ((got = cli_option_value(argc, argv, i, "--kernel", &v)) != 0) {
        if (got < 0)
            return -1;
        o->kernel = v;
    } else if ((got = cli_option_value(argc, argv, i, "--threads", &v)) != 0) {
        if (got < 0 || cli_parse_long("--threads", v, 0, 4096, &o->threads) != 0)
            return -1;
    } else if ((got = cli_option_value(argc, argv, i, "--budget", &v)) != 0) {
        if (got < 0 || parse_budget(v, &o->budget) != 0 || check_budget(o->budget) != 0)
            return -1;
        *budget_set = 1;
    } else if ((got = cli_option_value(argc, argv, i, "--ctx", &v)) != 0) {
        if (got < 0 || cli_parse_long("--ctx", v, 1, 1L << 20, &o->ctx) != 0)
            return -1;
        *ctx_set = 1;
    } else {
        cli_error("bench kv: unknown %s '%s' (try 'gqa bench kv --help')",
                  a[0] == '-' ? "option" : "argument", a);
        return -1;
    }
    return 0;
}

/* Returns -1 to continue, otherwise the exit status to return now. */
static int parse_kv_options(int argc, char **argv, kv_options *o)
{
    *o = (kv_options){NULL, NULL, -1, 0, 0, 0, 0, 0, 0.0};
    int budget_set = 0, ctx_set = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            kv_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (parse_one(argc, argv, &i, o, &budget_set, &ctx_set) != 0)
            return CLI_EXIT_USAGE;
    }
    if (!budget_set)
        o->budget = o->quick ? QUICK_BUDGET : DEFAULT_BUDGET;
    if (!ctx_set)
        o->ctx = o->quick ? QUICK_CTX : DEFAULT_CTX;
    o->max_len = o->quick ? QUICK_MAX_LEN : MAX_LEN;
    o->n_batches = o->quick ? 2 : (int)N_BATCHES;
    o->target = o->quick ? QUICK_TARGET : DEFAULT_TARGET;
    return -1;
}

/* ---------------------------------------------------------- gqa bench kv -- */

#define N_DECODE (N_KV_DT * N_GROUPS * N_BATCHES)
#define N_FIT    (N_KV_DT * N_GROUPS)

static int run_all(const kv_options *o, const bench_machine *m, const int64_t *lens,
                   const int64_t *single, decode_result *dec, int *n_dec, fit_result *fit,
                   int *n_fit)
{
    int rc = CLI_EXIT_OK;
    print_decode_header(o, lens);
    for (size_t g = 0; g < N_GROUPS && rc == CLI_EXIT_OK; g++) {
        kv_pool p;
        if ((rc = pool_init(&p, group_counts[g])) != CLI_EXIT_OK)
            break;
        for (size_t j = 0; j < N_KV_DT && rc == CLI_EXIT_OK; j++)
            for (int b = 0; b < o->n_batches && rc == CLI_EXIT_OK; b++) {
                int B = batch_sizes[b];
                rc = run_decode(o, m, group_counts[g], kv_dtypes[j], B,
                                batch_lengths(lens, B, single), &p, &dec[*n_dec]);
                if (rc == CLI_EXIT_OK)
                    print_decode_row(&dec[(*n_dec)++], m);
            }
        pool_free(&p);
    }
    if (rc != CLI_EXIT_OK)
        return rc;
    print_caps(dec, *n_dec);

    print_fit_header(o);
    for (size_t j = 0; j < N_KV_DT && rc == CLI_EXIT_OK; j++)
        for (size_t g = 0; g < N_GROUPS && rc == CLI_EXIT_OK; g++) {
            kv_pool p;
            if ((rc = pool_init(&p, group_counts[g])) != CLI_EXIT_OK)
                break;
            rc = run_fit(o, m, group_counts[g], kv_dtypes[j], &p, &fit[*n_fit]);
            pool_free(&p);
            if (rc == CLI_EXIT_OK)
                (*n_fit)++;
        }
    /* Rows print after the whole dtype ran: "vs MHA" needs the G = 32 count. */
    for (int i = 0; i < *n_fit; i++)
        print_fit_row(&fit[i], fit, *n_fit);
    if (rc == CLI_EXIT_OK)
        print_fit_summary(fit, *n_fit);
    return rc;
}

int cmd_bench_kv(int argc, char **argv)
{
    kv_options o;
    int rc = parse_kv_options(argc, argv, &o);
    if (rc >= 0)
        return rc;

    FILE *json;
    if (bench_json_open(o.json_path, &json) != CLI_EXIT_OK)
        return CLI_EXIT_FAIL;
    bench_machine m;
    if ((rc = bench_setup_machine(o.threads, o.kernel, &m)) != CLI_EXIT_OK) {
        bench_json_discard(json, o.json_path);
        return rc;
    }
    bench_print_machine("kv", &m);

    int64_t lens[MAX_BATCH], single[1] = {o.max_len};
    make_lengths(o.max_len, lens);
    decode_result dec[N_DECODE];
    fit_result fit[N_FIT];
    int n_dec = 0, n_fit = 0;
    double t0 = bench_now_seconds();
    rc = run_all(&o, &m, lens, single, dec, &n_dec, fit, &n_fit);
    if (rc != CLI_EXIT_OK) {
        bench_json_discard(json, o.json_path);
        return rc;
    }
    printf("(%.1f s)\n", bench_now_seconds() - t0);
    return json ? bench_json_write(json, o.json_path,
                                   report_json(&o, &m, dec, n_dec, lens, single, fit, n_fit))
                : CLI_EXIT_OK;
}
