/* plan.c - the attention framework: partition a call into tasks, run the
 * micro-kernel on each, merge split-KV partial results, normalise.
 *
 * The query rows that read one KV head g are the pairs (token t, head
 * g*R + j) for j < R = H/G; we number them r = t*R + j and cut them into
 * blocks of at most GQA_TILE_MAX_ROWS. When a head has fewer rows than that
 * (decode), several consecutive KV heads share one task and are visited in
 * turn on short runs of keys: the K/V rows of one key are G*d elements long,
 * and walking them head by head keeps each page and cache set in use for all
 * heads at once instead of striding through memory once per head.
 * One task = (row block, head slice, key split): the kernel streams the
 * split's K/V rows once for all rows of each head. When there are too few
 * (block, slice) units to keep every thread busy
 * (decode), each unit's key range is split and the partial softmax states are
 * merged afterwards with the log-sum-exp rule, in a fixed order, so results
 * are bitwise reproducible at a fixed thread count. */
#include <math.h>
#include <string.h>

#include <omp.h>

#include "attn/attn.h"
#include "core/internal.h"

#define MIN_KEYS_PER_SPLIT 256
#define MAX_SPLITS 64

typedef struct plan {
    const gqa_attn_problem *p;
    const gqa_kernel_set *ks;
    int R, dpad;
    int64_t rows;      /* rows per KV head: n_q * R */
    int64_t n_blocks;  /* row blocks per KV head */
    int heads_per_task; /* HS: consecutive KV heads in one task */
    int n_slices;       /* ceil(G / HS) */
    int64_t n_units;   /* n_blocks * n_slices */
    int n_splits;
    int64_t chunk;     /* keys per visit of one head when HS > 1 */
    size_t thread_bytes; /* per-thread scratch stride in the workspace */
    unsigned char *ws;
    float *split_state; /* n_units * n_splits * GQA_TILE_MAX_ROWS * (dpad + 2), or NULL */
} plan;

/* The rows of one unit: rows_h rows of each of n_heads heads from g0, task
 * row i = (head g0 + i / rows_h, row r0 + i % rows_h of that head). */
typedef struct unit_rows {
    int g0, n_heads, rows_h;
    int64_t r0;
} unit_rows;

/* Visible keys of the query at position pos: lo..hi (hi < lo: none). */
static void key_bounds(const gqa_attn_problem *p, int64_t pos, int64_t *lo, int64_t *hi)
{
    *lo = 0;
    *hi = p->n_kv - 1;
    if (p->window > 0) {
        int64_t first = pos - p->window + 1;
        *lo = first > 0 ? first : 0;
    }
    if ((p->causal || p->window > 0) && pos < *hi)
        *hi = pos;
    if (*lo > p->n_kv) /* keeps both bounds within int32 (n_kv <= INT32_MAX) */
        *lo = p->n_kv;
}

static int choose_splits(int64_t n_units, int64_t keys, int threads)
{
    if (threads <= 1)
        return 1;
    int s = 1;
    /* Stop once the tasks divide evenly over the threads or are plentiful
     * enough for dynamic scheduling to even them out. */
    while ((n_units * s) % threads != 0 && n_units * s < 8 * threads && s < MAX_SPLITS &&
           keys / (s + 1) >= MIN_KEYS_PER_SPLIT)
        s++;
    return s;
}

/* Per-thread layout: kernel scratch | q block | acc | m | l | lo | hi. */
static size_t thread_bytes_for(int dpad)
{
    size_t rows = GQA_TILE_MAX_ROWS;
    size_t b = GQA_TILE_SCRATCH_BYTES + 2 * rows * (size_t)dpad * 4 + 4 * rows * 4;
    return (b + 63) & ~(size_t)63;
}

static unit_rows unit_of(const plan *pl, int64_t unit)
{
    /* Heaviest blocks first: with a causal mask later rows see more keys. */
    const int64_t block = pl->n_blocks - 1 - unit / pl->n_slices;
    const int slice = (int)(unit % pl->n_slices);
    unit_rows u;
    u.g0 = slice * pl->heads_per_task;
    u.n_heads = pl->p->G - u.g0 < pl->heads_per_task ? pl->p->G - u.g0 : pl->heads_per_task;
    u.r0 = block * GQA_TILE_MAX_ROWS;
    u.rows_h = (int)(pl->rows - u.r0 < GQA_TILE_MAX_ROWS ? pl->rows - u.r0 : GQA_TILE_MAX_ROWS);
    return u;
}

/* Token and [token][head] row index of task row i. */
static size_t out_row(const plan *pl, const unit_rows *u, int i, int64_t *token)
{
    const int g = u->g0 + i / u->rows_h;
    const int64_t r = u->r0 + i % u->rows_h;
    *token = r / pl->R;
    return (size_t)*token * pl->p->H + (size_t)g * pl->R + (size_t)(r % pl->R);
}

/* Normalise one row's state into out (and lse). */
static void finish_row(const gqa_attn_problem *p, size_t row, float m, float l, const float *acc)
{
    float *o = p->out + row * p->d;
    if (l > 0.0f || isnan(l)) {
        const float inv = 1.0f / l;
        for (int c = 0; c < p->d; c++)
            o[c] = acc[c] * inv;
        if (p->lse)
            p->lse[row] = m + logf(l);
    } else { /* the row saw no key */
        memset(o, 0, (size_t)p->d * sizeof(float));
        if (p->lse)
            p->lse[row] = -INFINITY;
    }
}

static void run_task(const plan *pl, int64_t task, unsigned char *tws)
{
    const gqa_attn_problem *p = pl->p;
    const int d = p->d, dpad = pl->dpad;
    const int64_t split = task % pl->n_splits;
    const int64_t unit = task / pl->n_splits;
    const unit_rows u = unit_of(pl, unit);
    const int nr = u.n_heads * u.rows_h;

    void *scratch = tws;
    float *qb = (float *)(tws + GQA_TILE_SCRATCH_BYTES);
    float *acc = qb + (size_t)GQA_TILE_MAX_ROWS * dpad;
    float *m = acc + (size_t)GQA_TILE_MAX_ROWS * dpad;
    float *l = m + GQA_TILE_MAX_ROWS;
    int32_t *lo = (int32_t *)(l + GQA_TILE_MAX_ROWS);
    int32_t *hi = lo + GQA_TILE_MAX_ROWS;

    int64_t jlo = INT64_MAX, jhi = -1;
    for (int i = 0; i < nr; i++) {
        int64_t t;
        const float *src = p->q + out_row(pl, &u, i, &t) * d;
        float *dst = qb + (size_t)i * dpad;
        for (int c = 0; c < d; c++)
            dst[c] = src[c] * p->scale;
        for (int c = d; c < dpad; c++)
            dst[c] = 0.0f;
        int64_t a, b;
        key_bounds(p, p->q_pos + t, &a, &b);
        lo[i] = (int32_t)a;
        hi[i] = (int32_t)b;
        if (b >= a) {
            jlo = a < jlo ? a : jlo;
            jhi = b > jhi ? b : jhi;
        }
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    memset(acc, 0, (size_t)nr * dpad * sizeof(float));

    if (jhi >= jlo) {
        const int64_t span = jhi - jlo + 1;
        const int64_t j0 = jlo + span * split / pl->n_splits;
        const int64_t j1 = jlo + span * (split + 1) / pl->n_splits;
        const size_t esize = p->dtype == GQA_F32 ? 4 : 2;
        const int64_t step = u.n_heads > 1 ? pl->chunk : (j1 - j0);
        for (int64_t c0 = j0; c0 < j1; c0 += step) {
            for (int h = 0; h < u.n_heads; h++) {
                const int g = u.g0 + h, i0 = h * u.rows_h;
                gqa_tile_job job = {
                    .n_rows = u.rows_h,
                    .d = d,
                    .q = qb + (size_t)i0 * dpad,
                    .key_lo = lo + i0,
                    .key_hi = hi + i0,
                    .k = (const unsigned char *)p->k + (size_t)g * d * esize,
                    .v = (const unsigned char *)p->v + (size_t)g * d * esize,
                    .key_base = 0,
                    .row_stride = p->row_stride,
                    .dtype = p->dtype,
                    .j0 = c0,
                    .j1 = c0 + step < j1 ? c0 + step : j1,
                    .m = m + i0,
                    .l = l + i0,
                    .acc = acc + (size_t)i0 * dpad,
                    .scratch = scratch,
                };
                pl->ks->attn_tile(&job);
            }
        }
    }

    if (pl->n_splits > 1) {
        /* Park the partial state; merge_unit combines the splits. */
        float *st = pl->split_state + (size_t)task * GQA_TILE_MAX_ROWS * (size_t)(dpad + 2);
        memcpy(st, m, (size_t)nr * sizeof(float));
        memcpy(st + GQA_TILE_MAX_ROWS, l, (size_t)nr * sizeof(float));
        memcpy(st + 2 * GQA_TILE_MAX_ROWS, acc, (size_t)nr * dpad * sizeof(float));
        return;
    }
    for (int i = 0; i < nr; i++) {
        int64_t t;
        finish_row(p, out_row(pl, &u, i, &t), m[i], l[i], acc + (size_t)i * dpad);
    }
}

/* Combine the n_splits partial states of one unit: with M = max_s m_s,
 * l = sum_s l_s e^(m_s - M) and acc = sum_s acc_s e^(m_s - M), in split order. */
static void merge_unit(const plan *pl, int64_t unit, float *acc)
{
    const gqa_attn_problem *p = pl->p;
    const int d = p->d, dpad = pl->dpad, S = pl->n_splits;
    const unit_rows u = unit_of(pl, unit);
    const int nr = u.n_heads * u.rows_h;
    const size_t stride = (size_t)GQA_TILE_MAX_ROWS * (size_t)(dpad + 2);
    const float *base = pl->split_state + (size_t)unit * S * stride;

    for (int i = 0; i < nr; i++) {
        float M = -INFINITY;
        for (int s = 0; s < S; s++) {
            const float ms = base[s * stride + i];
            M = ms > M ? ms : M;
        }
        float L = 0.0f;
        for (int c = 0; c < d; c++)
            acc[c] = 0.0f;
        for (int s = 0; s < S; s++) {
            const float *st = base + s * stride;
            const float ms = st[i], ls = st[GQA_TILE_MAX_ROWS + i];
            if (ms == -INFINITY && !isnan(ls))
                continue; /* this split saw no key of this row */
            const float w = expf(ms - M);
            L += ls * w;
            const float *a = st + 2 * GQA_TILE_MAX_ROWS + (size_t)i * dpad;
            for (int c = 0; c < d; c++)
                acc[c] += a[c] * w;
        }
        int64_t t;
        finish_row(p, out_row(pl, &u, i, &t), M, L, acc);
    }
}

gqa_status gqa_attn_run(const gqa_attn_problem *p, const gqa_kernel_set *ks)
{
    plan pl = {.p = p, .ks = ks, .R = p->H / p->G, .dpad = gqa_dpad(p->d)};
    pl.rows = p->n_q * pl.R;
    pl.n_blocks = (pl.rows + GQA_TILE_MAX_ROWS - 1) / GQA_TILE_MAX_ROWS;
    pl.heads_per_task = 1;
    if (pl.rows < GQA_TILE_MAX_ROWS) {
        const int fit = (int)(GQA_TILE_MAX_ROWS / pl.rows);
        pl.heads_per_task = fit < p->G ? fit : p->G;
    }
    pl.n_slices = (p->G + pl.heads_per_task - 1) / pl.heads_per_task;
    pl.n_units = pl.n_blocks * pl.n_slices;
    /* Short visits keep one key's K/V rows hot for all heads; heads with many
     * rows do more work per byte and get longer visits. */
    pl.chunk = pl.rows < 16 ? 64 : 256;
    const int threads = gqa_threads_resolved();

    /* Keys seen by the last row bound the split size from above. */
    int64_t lo, hi;
    key_bounds(p, p->q_pos + p->n_q - 1, &lo, &hi);
    pl.n_splits = choose_splits(pl.n_units, hi - lo + 1, threads);

    const int64_t n_tasks = pl.n_units * pl.n_splits;
    const int team = (int)(n_tasks < threads ? n_tasks : threads);
    pl.thread_bytes = thread_bytes_for(pl.dpad);
    size_t split_bytes = 0;
    if (pl.n_splits > 1)
        split_bytes = (size_t)n_tasks * GQA_TILE_MAX_ROWS * (size_t)(pl.dpad + 2) * sizeof(float);
    pl.ws = gqa_workspace_get(pl.thread_bytes * (size_t)team + split_bytes);
    if (!pl.ws)
        return GQA_ERR_NO_MEMORY;
    pl.split_state = pl.n_splits > 1 ? (float *)(pl.ws + pl.thread_bytes * (size_t)team) : NULL;

    if (team <= 1) {
        for (int64_t t = 0; t < n_tasks; t++)
            run_task(&pl, t, pl.ws);
        if (pl.n_splits > 1)
            for (int64_t un = 0; un < pl.n_units; un++)
                merge_unit(&pl, un, (float *)(pl.ws + GQA_TILE_SCRATCH_BYTES));
        return GQA_OK;
    }
#pragma omp parallel num_threads(team)
    {
        unsigned char *tws = pl.ws + pl.thread_bytes * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < n_tasks; t++)
            run_task(&pl, t, tws);
        if (pl.n_splits > 1) {
#pragma omp for schedule(static)
            for (int64_t un = 0; un < pl.n_units; un++)
                merge_unit(&pl, un, (float *)(tws + GQA_TILE_SCRATCH_BYTES));
        }
    }
    return GQA_OK;
}
