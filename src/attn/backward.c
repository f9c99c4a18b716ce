/* backward.c - gqa_attention_backward: argument checks, then the reference
 * (kernels/ref.c) or the framework below running the per-ISA backward jobs
 * (kernels/attn_bwd.inc, contract in kernels/kernel.h).
 *
 * FlashAttention-2's backward in two passes over the keys instead of one with
 * atomic dQ updates: a pass per (KV head, block of keys) writes dK and dV -
 * each K/V row is loaded once for all H/G query heads of its group, as in the
 * forward - and a pass per (query row, KV head) writes dQ. Every output row
 * belongs to exactly one job and is summed in an order fixed by the shape,
 * so the result is the same for any number of threads; the price is
 * recomputing the scores once more (7 instead of 5 d-long products per
 * visible (query, key) pair). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "attn/attn.h"
#include "core/internal.h"
#include "kernels/kernel.h"

typedef struct bwd_plan {
    int64_t n_q, n_kv, nkv_pad, n_kblocks;
    int H, G, d, R;
    const float *k, *v, *out, *d_out;
    float *d_q, *d_k, *d_v;
    float *kt, *vt;   /* G x d x nkv_pad: K, V transposed per KV head, zero padded */
    float *dsum;      /* n_q x H: dout . out */
    int32_t *lo, *hi; /* n_q: the keys each query row sees */
    float *scratch;   /* GQA_BWD_SCRATCH_FLOATS per thread */
    gqa_bwd_job proto; /* the fields every job shares */
} bwd_plan;

/* The keys a query at position p sees, as the forward masks them
 * (kernels/ref.c): a window bounds both sides, causal the upper one. */
static void visible_keys(const gqa_attn_desc *desc, int64_t n_kv, int64_t p, int32_t *lo,
                         int32_t *hi)
{
    int64_t l = 0, h = n_kv - 1;
    if (desc->window > 0 && p - desc->window + 1 > 0)
        l = p - desc->window + 1;
    if ((desc->causal || desc->window > 0) && p < h)
        h = p;
    if (l > h) { /* none; keep both inside int32 */
        l = 1;
        h = 0;
    }
    *lo = (int32_t)l;
    *hi = (int32_t)h;
}

/* Keys j0 .. j1-1 of KV head g into kt/vt (zeros past n_kv). */
static void transpose_block(const bwd_plan *pl, int g, int64_t j0, int64_t j1)
{
    const int64_t stride = (int64_t)pl->G * pl->d;
    for (int c = 0; c < pl->d; c++) {
        float *kt = pl->kt + ((int64_t)g * pl->d + c) * pl->nkv_pad;
        float *vt = pl->vt + ((int64_t)g * pl->d + c) * pl->nkv_pad;
        for (int64_t j = j0; j < j1; j++) {
            const int64_t src = j * stride + (int64_t)g * pl->d + c;
            kt[j] = j < pl->n_kv ? pl->k[src] : 0.0f;
            vt[j] = j < pl->n_kv ? pl->v[src] : 0.0f;
        }
    }
}

static void row_dsum(const bwd_plan *pl, int64_t i)
{
    for (int h = 0; h < pl->H; h++) {
        const int64_t row = i * pl->H + h;
        const float *o = pl->out + row * pl->d, *dout = pl->d_out + row * pl->d;
        float s = 0.0f;
        for (int c = 0; c < pl->d; c++)
            s += o[c] * dout[c];
        pl->dsum[row] = s;
    }
}

static void kv_job(const bwd_plan *pl, const gqa_kernel_set *ks, int64_t jobi, float *scratch)
{
    const int g = (int)(jobi / pl->n_kblocks);
    const int64_t j0 = (jobi % pl->n_kblocks) * GQA_BWD_KEYS;
    const int64_t j1 = j0 + GQA_BWD_KEYS < pl->n_kv ? j0 + GQA_BWD_KEYS : pl->n_kv;
    const int64_t stride = (int64_t)pl->G * pl->d;
    gqa_bwd_job jb = pl->proto;
    jb.h0 = g * pl->R;
    jb.i0 = 0;
    jb.i1 = pl->n_q;
    jb.kt = pl->kt + (int64_t)g * pl->d * pl->nkv_pad;
    jb.vt = pl->vt + (int64_t)g * pl->d * pl->nkv_pad;
    jb.j0 = j0;
    jb.j1 = j1;
    jb.dk = pl->d_k + j0 * stride + (int64_t)g * pl->d;
    jb.dv = pl->d_v + j0 * stride + (int64_t)g * pl->d;
    jb.scratch = scratch;
    ks->attn_bwd_kv(&jb);
}

static void q_job(const bwd_plan *pl, const gqa_kernel_set *ks, int64_t jobi, float *scratch)
{
    const int64_t i = jobi / pl->G;
    const int g = (int)(jobi % pl->G);
    gqa_bwd_job jb = pl->proto;
    jb.h0 = g * pl->R;
    jb.i0 = i;
    jb.i1 = i + 1;
    jb.kt = pl->kt + (int64_t)g * pl->d * pl->nkv_pad;
    jb.vt = pl->vt + (int64_t)g * pl->d * pl->nkv_pad;
    jb.k = pl->k + (int64_t)g * pl->d;
    jb.j0 = 0;
    jb.j1 = pl->n_kv;
    jb.dq = pl->d_q + (i * pl->H + jb.h0) * pl->d;
    jb.scratch = scratch;
    ks->attn_bwd_q(&jb);
}

/* Workspace layout: kt, vt, dsum, per-thread scratch (floats, each part
 * rounded to 16 floats = 64 bytes), then lo, hi. */
static gqa_status plan_workspace(bwd_plan *pl, int team)
{
    const size_t kv = (size_t)pl->G * (size_t)pl->d * (size_t)pl->nkv_pad;
    const size_t ds = ((size_t)pl->n_q * (size_t)pl->H + 15) & ~(size_t)15;
    const size_t sc = (size_t)GQA_BWD_SCRATCH_FLOATS * (size_t)team;
    const size_t lohi = ((size_t)pl->n_q + 15) & ~(size_t)15;
    const size_t floats = 2 * kv + ds + sc + 2 * lohi;
    if (floats > SIZE_MAX / sizeof(float))
        return gqa_fail(GQA_ERR_NO_MEMORY, "attention backward workspace size overflows");
    float *ws = gqa_workspace_get(floats * sizeof(float));
    if (!ws)
        return GQA_ERR_NO_MEMORY;
    pl->kt = ws;
    pl->vt = ws + kv;
    pl->dsum = ws + 2 * kv;
    pl->scratch = ws + 2 * kv + ds;
    pl->lo = (int32_t *)(void *)(ws + 2 * kv + ds + sc);
    pl->hi = pl->lo + lohi;
    return GQA_OK;
}

static gqa_status run_backward(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv,
                               int64_t q_pos, const float *q, const float *k, const float *v,
                               const float *out, const float *lse, const float *d_out, float *d_q,
                               float *d_k, float *d_v, const gqa_kernel_set *ks)
{
    bwd_plan pl = {
        .n_q = n_q, .n_kv = n_kv, .H = desc->n_q_heads, .G = desc->n_kv_heads,
        .d = desc->head_dim, .k = k, .v = v, .out = out, .d_out = d_out,
        .d_q = d_q, .d_k = d_k, .d_v = d_v,
    };
    pl.R = pl.H / pl.G;
    pl.n_kblocks = (n_kv + GQA_BWD_KEYS - 1) / GQA_BWD_KEYS;
    pl.nkv_pad = pl.n_kblocks * GQA_BWD_KEYS;
    const int team = gqa_threads_resolved();
    gqa_status st = plan_workspace(&pl, team);
    if (st != GQA_OK)
        return st;
    pl.proto = (gqa_bwd_job){
        .d = pl.d, .H = pl.H, .R = pl.R, .scale = gqa_attn_scale(desc), .q = q, .dout = d_out,
        .lse = lse, .dsum = pl.dsum, .key_lo = pl.lo, .key_hi = pl.hi, .ldt = pl.nkv_pad,
        .kv_stride = (int64_t)pl.G * pl.d,
    };
    const int64_t n_tblocks = (int64_t)pl.G * pl.n_kblocks, n_qjobs = n_q * pl.G;

#pragma omp parallel num_threads(team)
    {
        float *scratch = pl.scratch + (size_t)GQA_BWD_SCRATCH_FLOATS * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t t = 0; t < n_tblocks; t++) {
            const int64_t j0 = (t % pl.n_kblocks) * GQA_BWD_KEYS;
            transpose_block(&pl, (int)(t / pl.n_kblocks), j0, j0 + GQA_BWD_KEYS);
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n_q; i++) {
            row_dsum(&pl, i);
            visible_keys(desc, n_kv, q_pos + i, &pl.lo[i], &pl.hi[i]);
        }
        /* Causal blocks differ in work (early keys are seen by more rows). */
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < n_tblocks; t++)
            kv_job(&pl, ks, t, scratch);
#pragma omp for schedule(dynamic, 4)
        for (int64_t t = 0; t < n_qjobs; t++)
            q_job(&pl, ks, t, scratch);
    }
    return GQA_OK;
}

gqa_status gqa_attention_backward(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv,
                                  int64_t q_pos, const float *q, const float *k, const float *v,
                                  const float *out, const float *lse, const float *d_out,
                                  float *d_q, float *d_k, float *d_v)
{
    gqa_status st = gqa_attn_check_desc(desc);
    if (st != GQA_OK)
        return st;
    if (desc->kv_dtype != GQA_F32)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "attention backward needs kv_dtype GQA_F32 (training keeps f32 K/V), got %d",
                        (int)desc->kv_dtype);
    st = gqa_attn_check_call(desc, n_q, n_kv, q_pos);
    if (st != GQA_OK)
        return st;
    const struct {
        const void *p;
        const char *name;
    } need[] = {{k, "k"}, {v, "v"}, {d_k, "d_k"}, {d_v, "d_v"}, {q, "q"}, {out, "out"},
                {lse, "lse"}, {d_out, "d_out"}, {d_q, "d_q"}};
    const size_t n_need = n_q > 0 ? sizeof need / sizeof need[0] : 4;
    for (size_t i = 0; i < n_need; i++)
        if (!need[i].p)
            return gqa_fail(GQA_ERR_INVALID_ARG, "%s is NULL", need[i].name);
    if (n_q == 0) { /* no query: no key gets a gradient */
        const size_t bytes = (size_t)n_kv * (size_t)desc->n_kv_heads * (size_t)desc->head_dim * 4;
        memset(d_k, 0, bytes);
        memset(d_v, 0, bytes);
        return GQA_OK;
    }
    const gqa_kernel_set *ks = gqa_kernels_active();
    if (!ks)
        return gqa_attention_backward_ref(desc, n_q, n_kv, q_pos, q, k, v, out, lse, d_out, d_q,
                                          d_k, d_v);
    return run_backward(desc, n_q, n_kv, q_pos, q, k, v, out, lse, d_out, d_q, d_k, d_v, ks);
}
