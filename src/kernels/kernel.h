/* kernel.h - the micro-kernel contract (see docs/kernel-contract.md).
 *
 * The framework (src/attn) owns shapes, head mapping, masking bounds, tiling
 * over query rows, threading, split-KV and the final normalisation. A
 * micro-kernel owns one thing: folding a contiguous run of keys of ONE KV head
 * into the online-softmax state of a block of query rows that all read that
 * KV head (in decode, one job may carry several KV heads, each with its own
 * rows: see n_heads). Each K and V row in the run is loaded once and used for
 * every row of the block - this is where GQA's bandwidth saving is earned.
 */
#ifndef GQA_KERNELS_KERNEL_H
#define GQA_KERNELS_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"

#define GQA_MAX_HEAD_DIM 256
#define GQA_TILE_MAX_ROWS 64   /* query rows in one job */
#define GQA_TILE_KEYS 64       /* keys per inner tile (kernel-internal) */
#define GQA_SCORE_BLOCK_KEYS 8 /* most keys whose K the gemm path widens at once */

/* Bytes of scratch the vector kernels use, for any d <= GQA_MAX_HEAD_DIM. */
#define GQA_VEC_SCRATCH_BYTES                                                                      \
    ((size_t)4 * (GQA_TILE_MAX_ROWS * GQA_MAX_HEAD_DIM          /* q transposed      */            \
                  + (GQA_TILE_KEYS + GQA_SCORE_BLOCK_KEYS) * GQA_MAX_HEAD_DIM /* v tile, k block */ \
                  + 2 * GQA_TILE_KEYS * GQA_TILE_MAX_ROWS       /* scores, probs     */            \
                  + 4 * GQA_TILE_MAX_ROWS + 64))
/* The AMX path (amx.c, x86 only): its scratch (q tiles, two K and three V
 * chunk buffers of two bf16 parts, two P buffers of three, S^T). */
#if defined(__x86_64__) || defined(_M_X64)
#define GQA_AMX_SCRATCH_BYTES                                                                      \
    ((size_t)16 * 3 * 1024 + (size_t)5 * 2 * 128 * 128 * 2 +                                      \
     (size_t)2 * 3 * GQA_TILE_MAX_ROWS * 128 * 2 + (size_t)129 * GQA_TILE_MAX_ROWS * 4)
#else
#define GQA_AMX_SCRATCH_BYTES 0
#endif
/* Bytes of scratch a job gets: the vector kernels' part, then the AMX part. */
#define GQA_TILE_SCRATCH_BYTES (GQA_VEC_SCRATCH_BYTES + GQA_AMX_SCRATCH_BYTES)

/* One job: rows 0..n_rows-1 against keys j0..j1-1 of one KV head.
 *
 * q:       n_rows rows of dpad = (d + 15) & ~15 floats, already multiplied by
 *          the softmax scale; lanes d..dpad-1 are zero.
 * key_lo/key_hi: per row, the visible keys are key_lo[r] <= j <= key_hi[r]
 *          (absolute indices; hi < lo: none). A row may see none of the keys
 *          of a job or of a tile: its state must then stay exactly as it was.
 *          A masked key must not influence a row in any way - not even a NaN
 *          or Inf in its K or V row.
 * k, v:    the row of key `key_base` for this KV head; key j's row starts at
 *          byte (j - key_base) * row_stride from it. Elements are `dtype`.
 *          (Or n_seg runs of keys, each with its own k, v and key_base.)
 * m, l:    per-row running max and sum of exp(s - m); -INFINITY and 0 before
 *          the first job.
 * acc:     n_rows rows of dpad floats, the unnormalised sum of exp(s - m) * v;
 *          lanes d..dpad-1 stay zero.
 * scratch: GQA_TILE_SCRATCH_BYTES, 64-byte aligned, contents undefined.
 * After the call the state is what it would be after seeing the keys in
 * order j0..j1-1 (up to float rounding); tails of any length are handled. */
/* A run of keys key_base .. j_end-1 stored at one place (a cache block). */
typedef struct gqa_tile_seg {
    const void *k, *v;
    int64_t key_base, j_end;
} gqa_tile_seg;

typedef struct gqa_tile_job {
    int32_t n_rows;
    int32_t d;
    const float *q;
    const int32_t *key_lo;
    const int32_t *key_hi;
    const void *k;
    const void *v;
    int64_t key_base;
    int64_t row_stride; /* bytes */
    gqa_dtype dtype;
    int64_t j0, j1;
    float *m, *l, *acc;
    void *scratch;
    /* Paged keys: n_seg > 0 runs in key order that cover j0..j1-1 replace
     * k, v and key_base (row_stride is shared); the job's state (and the
     * gemm path's transposed q) carries across them. 0: k, v, key_base. */
    int32_t n_seg;
    const gqa_tile_seg *seg;
    /* Several KV heads in one job (decode: a head has few rows): n_heads
     * (0 counts as 1) heads of n_rows rows each. Head h's rows are rows
     * h*n_rows .. h*n_rows+n_rows-1 of q, key_lo, key_hi, m, l and acc, and
     * its K and V rows lie head_stride bytes after head h-1's (in every run).
     * The kernel walks the keys once for all heads, in memory order where it
     * can, so each K/V row is streamed while its neighbours are in cache. */
    int32_t n_heads;
    int64_t head_stride;
    /* Nonzero when the whole call's K/V exceed half the last-level cache, so the
     * job's rows come from memory, not from a cache: a hint (results do not
     * depend on it) for how far ahead the kernel prefetches. */
    int32_t from_memory;
} gqa_tile_job;

/* Head h of a several-head job as a job of its own: n_heads 1 and the rows
 * h * n_rows .. of q, key_lo, key_hi, m, l and acc. Its k, v and runs still
 * point at head 0 of each key: the caller adds h * head_stride. */
static inline gqa_tile_job gqa_tile_job_head(const gqa_tile_job *job, int h)
{
    gqa_tile_job sub = *job;
    const int dpad = (job->d + 15) & ~15, i0 = h * job->n_rows;
    sub.n_heads = 1;
    sub.q = job->q + (size_t)i0 * dpad;
    sub.key_lo = job->key_lo + i0;
    sub.key_hi = job->key_hi + i0;
    sub.m = job->m + i0;
    sub.l = job->l + i0;
    sub.acc = job->acc + (size_t)i0 * dpad;
    return sub;
}

/* ------------------------------------------------------------ backward --
 * gqa_attention_backward (src/attn/backward.c) runs two kinds of jobs on f32
 * K/V, each over ONE KV head g and its R = H/G query heads h0 .. h0+R-1.
 * With s = scale * q.k_j, p = exp(s - lse), dp = dout.v_j, ds = p (dp - D)
 * and D = dout.out (per query row and head):
 *  - kv job: keys j0 .. j1-1 (at most GQA_BWD_KEYS, j0 a multiple of it):
 *    dv_j = sum over visible (i, h) of p dout, dk_j = sum of scale ds q;
 *  - q job: query row i0 (and its R heads) against every visible key:
 *    dq = sum over j of scale ds k_j.
 * Each output row is written by exactly one job, in an order fixed by the
 * shape, so results do not depend on the number of threads.
 * kt, vt: K and V of head g transposed, d rows of ldt floats (keys padded
 * with zeros to a multiple of GQA_BWD_KEYS); key j of dim c is kt[c*ldt + j].
 * Masked keys (outside a row's key_lo..key_hi) never reach an output, not
 * even as a NaN. */
#define GQA_BWD_KEYS 64
typedef struct gqa_bwd_job {
    int32_t d, H, R, h0;
    float scale;
    const float *q, *dout;       /* n_q x H x d */
    const float *lse, *dsum;     /* n_q x H; dsum = D */
    const int32_t *key_lo, *key_hi; /* per query row, absolute; hi < lo: none */
    int64_t i0, i1;              /* query rows the job reads (kv) or writes (q: i0 only) */
    const float *kt, *vt;
    int64_t ldt;
    const float *k;              /* q job: row-major K, key j of head g at k + j*kv_stride */
    int64_t kv_stride;           /* floats between keys (G*d) */
    int64_t j0, j1;              /* kv job: its keys; q job: 0 .. n_kv */
    float *dk, *dv;              /* kv job: rows of keys j0.. (stride kv_stride) */
    float *dq;                   /* q job: R rows of d floats, heads h0.. of row i0 */
    float *scratch;              /* GQA_BWD_SCRATCH_FLOATS floats, 64-byte aligned */
} gqa_bwd_job;
#define GQA_BWD_SCRATCH_FLOATS (2 * GQA_MAX_HEAD_DIM * GQA_BWD_KEYS + GQA_MAX_HEAD_DIM + 2 * GQA_BWD_KEYS)

typedef struct gqa_kernel_set {
    const char *name;
    /* Fold one job (see above). */
    void (*attn_tile)(const gqa_tile_job *job);
    /* Backward jobs (see above). */
    void (*attn_bwd_kv)(const gqa_bwd_job *job);
    void (*attn_bwd_q)(const gqa_bwd_job *job);
    /* Run `iters` iterations of independent FMA chains; return FLOPs done. */
    double (*fma_probe)(int64_t iters);
    /* Read n floats (n a multiple of 64, buf 64-byte aligned); return a sum
     * so the loads cannot be elided. */
    float (*read_probe)(const float *buf, size_t n);
} gqa_kernel_set;

extern const gqa_kernel_set gqa_kernels_scalar;
extern const gqa_kernel_set gqa_kernels_avx2;
extern const gqa_kernel_set gqa_kernels_avx512;
extern const gqa_kernel_set gqa_kernels_neon;

/* x86: the avx512 set's vector kernel alone, and the AMX path (amx.c) for
 * the jobs gqa_amx_job_fits accepts; the avx512 set sends those to it while
 * gqa_amx_active() (core/internal.h). */
void gqa_attn_tile_avx512_vec(const gqa_tile_job *job);
int  gqa_amx_job_fits(const gqa_tile_job *job);
void gqa_amx_attn_tile(const gqa_tile_job *job);

/* The active set; NULL when the reference is selected. */
const gqa_kernel_set *gqa_kernels_active(void);

/* The naive reference: double accumulation, no tiling, same contract as
 * gqa_attention (arguments already validated). */
void gqa_attention_ref(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv, int64_t q_pos,
                       const float *q, const void *k, const void *v, float *out, float *lse);

/* The reference backward: double accumulation, direct formulas, same
 * contract as gqa_attention_backward (arguments already validated).
 * GQA_ERR_NO_MEMORY if its n_kv x G x d double accumulators cannot be had. */
gqa_status gqa_attention_backward_ref(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv,
                                      int64_t q_pos, const float *q, const float *k,
                                      const float *v, const float *out, const float *lse,
                                      const float *d_out, float *d_q, float *d_k, float *d_v);

#endif
