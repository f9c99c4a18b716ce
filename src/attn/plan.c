/* plan.c - the attention framework: partition a call into tasks, run the
 * micro-kernel on each, merge split-KV partial results, normalise.
 *
 * The query rows that read one KV head g are the pairs (token t, head
 * g*R + j) for j < R = H/G; we number them r = t*R + j and cut them into
 * blocks of at most GQA_TILE_MAX_ROWS. When a head has fewer rows than that
 * (decode), several consecutive KV heads share one task and one kernel job:
 * the kernel walks the keys once for all of them (the K/V rows of one key are
 * G*d elements side by side), instead of striding through memory once per
 * head.
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

/* Per-item plan: its units and tasks are numbered after the previous items'. */
typedef struct item_plan {
    int64_t rows;     /* rows per KV head: n_q * R */
    int64_t n_blocks; /* row blocks per KV head */
    int heads_per_task, n_slices;
    int n_splits;
    int64_t unit0, task0, n_units;
} item_plan;

typedef struct plan {
    const gqa_attn_batch *b;
    const gqa_kernel_set *ks;
    const item_plan *ip;
    int R, dpad;
    int64_t n_units, n_tasks;
    size_t thread_bytes; /* per-thread scratch stride in the workspace */
    int from_memory;     /* the call's K/V exceed half the last-level cache (gqa_tile_job) */
    unsigned char *ws;
    float *split_state; /* one GQA_TILE_MAX_ROWS * (dpad + 2) slot per task, or NULL */
} plan;

/* The rows of one unit: rows_h rows of each of n_heads heads from g0; task
 * row i = (head g0 + i / rows_h, row r0 + i % rows_h of that head). */
typedef struct unit_rows {
    int item;
    int g0, n_heads, rows_h;
    int64_t r0;
} unit_rows;

/* Visible keys of the query at position pos: lo..hi (hi < lo: none). */
static void key_bounds(const gqa_attn_batch *b, const gqa_attn_item *it, int64_t pos, int64_t *lo,
                       int64_t *hi)
{
    *lo = 0;
    *hi = it->n_kv - 1;
    if (b->window > 0) {
        int64_t first = pos - b->window + 1;
        *lo = first > 0 ? first : 0;
    }
    if ((b->causal || b->window > 0) && pos < *hi)
        *hi = pos;
    if (*lo > it->n_kv) /* keeps both bounds within int32 (n_kv <= INT32_MAX) */
        *lo = it->n_kv;
}

/* Per-thread layout: kernel scratch | q block | acc | m | l | lo | hi. */
static size_t thread_bytes_for(int dpad)
{
    size_t rows = GQA_TILE_MAX_ROWS;
    size_t b = GQA_TILE_SCRATCH_BYTES + 2 * rows * (size_t)dpad * 4 + 4 * rows * 4;
    return (b + 63) & ~(size_t)63;
}

/* Item of a unit or task: the items are few, a linear scan is fine. */
static int item_of_unit(const plan *pl, int64_t unit)
{
    int i = 0;
    while (i + 1 < pl->b->n_items && pl->ip[i + 1].unit0 <= unit)
        i++;
    return i;
}

static unit_rows unit_of(const plan *pl, int64_t unit)
{
    unit_rows u;
    u.item = item_of_unit(pl, unit);
    const item_plan *ip = &pl->ip[u.item];
    const int64_t local = unit - ip->unit0;
    /* Heaviest blocks first: with a causal mask later rows see more keys. */
    const int64_t block = ip->n_blocks - 1 - local / ip->n_slices;
    const int slice = (int)(local % ip->n_slices);
    u.g0 = slice * ip->heads_per_task;
    u.n_heads = pl->b->G - u.g0 < ip->heads_per_task ? pl->b->G - u.g0 : ip->heads_per_task;
    u.r0 = block * GQA_TILE_MAX_ROWS;
    u.rows_h = (int)(ip->rows - u.r0 < GQA_TILE_MAX_ROWS ? ip->rows - u.r0 : GQA_TILE_MAX_ROWS);
    return u;
}

/* Token and [token][head] row index of task row i. */
static size_t out_row(const plan *pl, const unit_rows *u, int i, int64_t *token)
{
    const int g = u->g0 + i / u->rows_h;
    const int64_t r = u->r0 + i % u->rows_h;
    *token = r / pl->R;
    return (size_t)*token * pl->b->H + (size_t)g * pl->R + (size_t)(r % pl->R);
}

/* Normalise one row's state into out (and lse). */
static void finish_row(const plan *pl, const gqa_attn_item *it, size_t row, float m, float l,
                       const float *acc)
{
    const int d = pl->b->d;
    float *o = it->out + row * d;
    if (l > 0.0f || isnan(l)) {
        const float inv = 1.0f / l;
        for (int c = 0; c < d; c++)
            o[c] = acc[c] * inv;
        if (it->lse)
            it->lse[row] = m + logf(l);
    } else { /* the row saw no key */
        memset(o, 0, (size_t)d * sizeof(float));
        if (it->lse)
            it->lse[row] = -INFINITY;
    }
}

static void locate_contiguous(const plan *pl, const gqa_attn_item *it, int g, gqa_kv_segment *seg)
{
    const size_t off = (size_t)g * (size_t)gqa_row_bytes(pl->b->d, pl->b->dtype);
    seg->k = (const unsigned char *)it->k + off;
    seg->v = (const unsigned char *)it->v + off;
    seg->key_base = 0;
    seg->row_stride = pl->b->row_stride;
    seg->j_end = it->n_kv;
    seg->head_stride = (int64_t)gqa_row_bytes(pl->b->d, pl->b->dtype);
}

#define MAX_SEGS 64

/* Fold keys c0..c1-1 of heads g .. g+job->n_heads-1 into the job's rows: one
 * kernel call for a contiguous source, and one per MAX_SEGS runs (cache
 * blocks, located for head g; the others are head_stride apart) for a paged
 * one, so the kernel's per-call set-up is paid once per many blocks. */
static void fold_keys(const plan *pl, const gqa_attn_item *it, int g, int64_t c0, int64_t c1,
                      gqa_tile_job *job)
{
    gqa_kv_segment seg;
    if (!pl->b->locate) {
        locate_contiguous(pl, it, g, &seg);
        job->k = seg.k;
        job->v = seg.v;
        job->key_base = seg.key_base;
        job->row_stride = seg.row_stride;
        job->head_stride = seg.head_stride;
        job->n_seg = 0;
        job->j0 = c0;
        job->j1 = c1;
        pl->ks->attn_tile(job);
        return;
    }
    gqa_tile_seg runs[MAX_SEGS];
    for (int64_t j = c0; j < c1;) {
        int n = 0;
        const int64_t first = j;
        while (j < c1 && n < MAX_SEGS) {
            pl->b->locate(pl->b->locate_ctx, it, g, j, &seg);
            runs[n++] = (gqa_tile_seg){seg.k, seg.v, seg.key_base, seg.j_end};
            job->row_stride = seg.row_stride;
            job->head_stride = seg.head_stride;
            j = seg.j_end < c1 ? seg.j_end : c1;
        }
        job->n_seg = n;
        job->seg = runs;
        job->j0 = first;
        job->j1 = j;
        pl->ks->attn_tile(job);
    }
}

static void run_task(const plan *pl, int64_t task, unsigned char *tws, int64_t unit, int split)
{
    const gqa_attn_batch *b = pl->b;
    const int d = b->d, dpad = pl->dpad;
    const unit_rows u = unit_of(pl, unit);
    const item_plan *ip = &pl->ip[u.item];
    const gqa_attn_item *it = &b->items[u.item];
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
        const float *src = it->q + out_row(pl, &u, i, &t) * d;
        float *dst = qb + (size_t)i * dpad;
        for (int c = 0; c < d; c++)
            dst[c] = src[c] * b->scale;
        for (int c = d; c < dpad; c++)
            dst[c] = 0.0f;
        int64_t a, z;
        key_bounds(b, it, it->q_pos + t, &a, &z);
        lo[i] = (int32_t)a;
        hi[i] = (int32_t)z;
        if (z >= a) {
            jlo = a < jlo ? a : jlo;
            jhi = z > jhi ? z : jhi;
        }
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    memset(acc, 0, (size_t)nr * dpad * sizeof(float));

    if (jhi >= jlo) {
        const int64_t span = jhi - jlo + 1;
        const int64_t j0 = jlo + span * split / ip->n_splits;
        const int64_t j1 = jlo + span * (split + 1) / ip->n_splits;
        gqa_tile_job job = {.d = d,
                            .dtype = b->dtype,
                            .scratch = scratch,
                            .n_rows = u.rows_h,
                            .n_heads = u.n_heads,
                            .from_memory = pl->from_memory,
                            .q = qb,
                            .key_lo = lo,
                            .key_hi = hi,
                            .m = m,
                            .l = l,
                            .acc = acc};
        fold_keys(pl, it, u.g0, j0, j1, &job);
    }

    if (ip->n_splits > 1) {
        /* Park the partial state; merge_unit combines the splits. */
        float *st = pl->split_state + (size_t)task * GQA_TILE_MAX_ROWS * (size_t)(dpad + 2);
        memcpy(st, m, (size_t)nr * sizeof(float));
        memcpy(st + GQA_TILE_MAX_ROWS, l, (size_t)nr * sizeof(float));
        memcpy(st + 2 * GQA_TILE_MAX_ROWS, acc, (size_t)nr * dpad * sizeof(float));
        return;
    }
    for (int i = 0; i < nr; i++) {
        int64_t t;
        finish_row(pl, it, out_row(pl, &u, i, &t), m[i], l[i], acc + (size_t)i * dpad);
    }
}

/* Combine the partial states of one unit's splits: with M = max_s m_s,
 * l = sum_s l_s e^(m_s - M) and acc = sum_s acc_s e^(m_s - M), in split order. */
static void merge_unit(const plan *pl, int64_t unit, float *acc)
{
    const int d = pl->b->d, dpad = pl->dpad;
    const unit_rows u = unit_of(pl, unit);
    const item_plan *ip = &pl->ip[u.item];
    const int S = ip->n_splits;
    const int nr = u.n_heads * u.rows_h;
    const size_t stride = (size_t)GQA_TILE_MAX_ROWS * (size_t)(dpad + 2);
    const int64_t task0 = ip->task0 + (unit - ip->unit0) * S;
    const float *base = pl->split_state + (size_t)task0 * stride;

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
        finish_row(pl, &pl->b->items[u.item], out_row(pl, &u, i, &t), M, L, acc);
    }
}

/* Task -> (unit, split). */
static void task_of(const plan *pl, int64_t task, int64_t *unit, int *split)
{
    int i = 0;
    while (i + 1 < pl->b->n_items && pl->ip[i + 1].task0 <= task)
        i++;
    const item_plan *ip = &pl->ip[i];
    const int64_t local = task - ip->task0;
    *unit = ip->unit0 + local / ip->n_splits;
    *split = (int)(local % ip->n_splits);
}

static void run_task_index(const plan *pl, int64_t task, unsigned char *tws)
{
    int64_t unit;
    int split;
    task_of(pl, task, &unit, &split);
    run_task(pl, task, tws, unit, split);
}

/* Split counts: a single-query item (a decode step) whose (block, slice)
 * units are too few for the threads has its key range split so that the
 * item alone makes at least 2 tasks per thread (the fewest splits that do),
 * with at least MIN_KEYS_PER_SPLIT keys per split: one long sequence keeps
 * every thread busy. Each split costs a job set-up and a cold start of its
 * K/V streams, so more splits than that cost time (bench/RESULTS.md). The
 * count depends only on the item's own shape and the thread count -
 * never on the other items of the batch - and items of several queries (a
 * prompt, or a piece of one) are never split, so a query row's result does
 * not depend on how a prompt is cut into calls either (beyond the grouping of
 * rows into blocks of GQA_TILE_MAX_ROWS from the first query of the call).
 * Continuous batching in `gqa serve` relies on both; results are
 * reproducible at a fixed thread count. */
static void choose_splits(const gqa_attn_batch *b, item_plan *ip, int threads)
{
    for (int i = 0; i < b->n_items; i++) {
        ip[i].n_splits = 1;
        const int64_t units = ip[i].n_units, n_kv = b->items[i].n_kv;
        if (threads <= 1 || b->items[i].n_q != 1 || units >= 2 * (int64_t)threads)
            continue;
        /* the fewest splits that give every thread 2 tasks (units * s >=
         * 2 * threads), within the per-split minimum of keys */
        int64_t s = (2 * (int64_t)threads + units - 1) / units;
        if (s > n_kv / MIN_KEYS_PER_SPLIT)
            s = n_kv / MIN_KEYS_PER_SPLIT;
        ip[i].n_splits = (int)(s < 1 ? 1 : s > MAX_SPLITS ? MAX_SPLITS : s);
    }
}

/* Do the call's K/V (every item's keys, all KV heads) exceed half the
 * last-level cache? Then they stream from memory on every call: the rest of
 * the cache holds other data (weights, other processes), and on the
 * development VM (260 MiB of L3 reported) reads already run at memory speed
 * at 268 MB and at cache speed at 134 MB. */
static int kv_from_memory(const gqa_attn_batch *b)
{
    const int64_t llc = gqa_llc_bytes() / 2;
    const int64_t key_bytes = 2 * (int64_t)b->G * gqa_row_bytes(b->d, b->dtype);
    int64_t keys = 0;
    for (int i = 0; i < b->n_items; i++) {
        keys += b->items[i].n_kv;
        if (keys > llc / key_bytes)
            return 1;
    }
    return 0;
}

gqa_status gqa_attn_run(const gqa_attn_batch *b, const gqa_kernel_set *ks)
{
    plan pl = {.b = b, .ks = ks, .R = b->H / b->G, .dpad = gqa_dpad(b->d)};
    const int threads = gqa_threads_resolved();

    item_plan *ip = gqa_workspace_slot(GQA_WS_PLAN, (size_t)b->n_items * sizeof(item_plan));
    if (!ip)
        return GQA_ERR_NO_MEMORY;
    for (int i = 0; i < b->n_items; i++) {
        item_plan *p = &ip[i];
        p->rows = b->items[i].n_q * pl.R;
        p->n_blocks = (p->rows + GQA_TILE_MAX_ROWS - 1) / GQA_TILE_MAX_ROWS;
        p->heads_per_task = 1;
        if (p->rows > 0 && p->rows < GQA_TILE_MAX_ROWS) {
            const int fit = (int)(GQA_TILE_MAX_ROWS / p->rows);
            p->heads_per_task = fit < b->G ? fit : b->G;
        }
        p->n_slices = (b->G + p->heads_per_task - 1) / p->heads_per_task;
        p->n_units = p->n_blocks * p->n_slices;
    }
    choose_splits(b, ip, threads);
    pl.from_memory = kv_from_memory(b);
    int any_split = 0;
    for (int i = 0; i < b->n_items; i++) {
        ip[i].unit0 = pl.n_units;
        ip[i].task0 = pl.n_tasks;
        pl.n_units += ip[i].n_units;
        pl.n_tasks += ip[i].n_units * ip[i].n_splits;
        any_split |= ip[i].n_splits > 1;
    }
    if (pl.n_tasks == 0)
        return GQA_OK;

    const int team = (int)(pl.n_tasks < threads ? pl.n_tasks : threads);
    pl.thread_bytes = thread_bytes_for(pl.dpad);
    const size_t split_bytes =
        any_split ? (size_t)pl.n_tasks * GQA_TILE_MAX_ROWS * (size_t)(pl.dpad + 2) * sizeof(float)
                  : 0;
    pl.ip = ip;
    pl.ws = gqa_workspace_get(pl.thread_bytes * (size_t)team + split_bytes);
    if (!pl.ws)
        return GQA_ERR_NO_MEMORY;
    pl.split_state = any_split ? (float *)(pl.ws + pl.thread_bytes * (size_t)team) : NULL;

    if (team <= 1) {
        for (int64_t t = 0; t < pl.n_tasks; t++)
            run_task_index(&pl, t, pl.ws);
        if (any_split)
            for (int64_t un = 0; un < pl.n_units; un++)
                if (pl.ip[item_of_unit(&pl, un)].n_splits > 1)
                    merge_unit(&pl, un, (float *)(pl.ws + GQA_TILE_SCRATCH_BYTES));
        return GQA_OK;
    }
#pragma omp parallel num_threads(team)
    {
        unsigned char *tws = pl.ws + pl.thread_bytes * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < pl.n_tasks; t++)
            run_task_index(&pl, t, tws);
        if (any_split) {
#pragma omp for schedule(static)
            for (int64_t un = 0; un < pl.n_units; un++)
                if (pl.ip[item_of_unit(&pl, un)].n_splits > 1)
                    merge_unit(&pl, un, (float *)(tws + GQA_TILE_SCRATCH_BYTES));
        }
    }
    return GQA_OK;
}
