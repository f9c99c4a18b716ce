/* amx.c - attention jobs on the AMX tile unit (x86 AMX-BF16), exact to f32
 * rounding, for the avx512 kernel set (see docs/kernel-contract.md, "AMX").
 *
 * Why: a job with many query rows per KV head (MQA decode, prefill) does a
 * multiply-add per row for every K and V element it reads; on AVX-512 that
 * work (plus widening f16 to f32, two uops on the FMA ports per 16 values)
 * bounds it, not memory. A TDPBF16PS does 16 x 16 x 32 multiply-adds in
 * about 16 cycles, alongside the vector units.
 *
 * Exactness: the tile unit multiplies bf16 (8 significant bits) into f32
 * sums. Every f32 value x (q, and the softmax weights p) is split by
 * truncation into x = hi + mid + lo, each exactly a bf16 (hi keeps x's top 8
 * significant bits, mid the next 8 of the remainder, lo the rest: at most 8
 * left); an f16 value (11 bits) is hi + lo, a bf16 value itself. A product
 * q.k is the sum of the partial products q_i.k_j, of which those with
 * i + j <= 2 are kept (the rest are below 2^-21 of the product, the size of
 * f32 rounding of the sums). Each partial product of two bf16 is exact in
 * f32 and the tile unit adds them in f32 with round-to-nearest-even, so the
 * results differ from the FMA path only in the order of f32 additions.
 * Inputs below 2^-126 count as zero and tiny sums flush to zero (the tile
 * unit's DAZ/FTZ), far below any tolerance that f32 attention meets.
 *
 * What runs here (gqa_amx_job_fits): f16/bf16 K/V, a multiple of 16 rows
 * per KV head, head_dim 32, 64, 96 or 128, keys that every row of the head
 * sees in full, in sub-tiles of AMX_KEYS and chunks of up to AMX_NT of them.
 * Keys at a mask boundary and the last < AMX_KEYS of a run go to the vector
 * kernel (gqa_attn_tile_avx512_vec), which shares the job's state (m, l and
 * acc in the job's arrays), so the two interleave freely.
 *
 * Per chunk and head (R rows in R/16 row blocks rb):
 *  scores  S^T (16 keys x 16 rows) = sum of Kpart (16 keys x 32 dims) .
 *          Qpart^T, q's parts prepared once per head in the tile layout;
 *  softmax vectors along rows over the chunk's keys (the online-softmax
 *          update once per chunk), then P transposed to rows of keys and
 *          split into A tiles;
 *  P * V   acc (16 rows x 16 dims, loaded from and stored to the job's acc
 *          once per chunk) += Ppart . Vpart over the chunk's sub-tiles.
 * Chunks go through a pipeline (run_chunks) in which the vector work (the
 * next chunk's K/V conversion, this chunk's softmax) is interleaved with the
 * tile unit's multiplies, so that both units work at once. */
#define GQA_SIMD_AVX512 1

#include <immintrin.h>

#include "core/internal.h"
#include "kernels/kernel.h"
#include "kernels/simd.h"

#define AMX_KEYS     32                  /* keys per sub-tile: one row of a P tile */
#define AMX_NT       4                   /* sub-tiles per chunk */
#define AMX_CHUNK    (AMX_NT * AMX_KEYS) /* keys per chunk */
#define AMX_MAX_D    128                 /* largest head_dim taken */
#define AMX_MAX_RB   (GQA_TILE_MAX_ROWS / 16)
#define CV_UNITS_SUB (AMX_KEYS + AMX_KEYS / 2) /* conversion units per sub-tile */

typedef struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) amx_config;

/* The AMX part of the scratch (after the vector kernels' part). A tile load
 * right after vector stores to the same lines stalls (there is no store
 * forwarding into tiles), so K, V and P are written at least a pipeline step
 * before the tile unit reads them: K and P in two buffers, V in three (chunk
 * c+1's V is written while chunk c-1's P * V still reads its V). Parts: two
 * per K/V element (f16), one for bf16; three per q and p value. */
typedef struct amx_scratch {
    uint16_t qb[AMX_MAX_RB * (AMX_MAX_D / 32)][3][16 * 32]; /* q: B tiles (rb, d chunk) */
    uint16_t kc[2][2][AMX_CHUNK * AMX_MAX_D];         /* K: [key][d], dims (e+i, e+16+i) paired */
    uint16_t vc[3][2][AMX_CHUNK * AMX_MAX_D];         /* V: [sub-tile][key pair][d][2] */
    uint16_t pa[2][3][GQA_TILE_MAX_ROWS * AMX_CHUNK]; /* P: [row][key] */
    float st[AMX_CHUNK * GQA_TILE_MAX_ROWS];          /* S^T, then p: [key][row] */
    float corr[GQA_TILE_MAX_ROWS];                    /* acc rescale owed before the next P * V */
} amx_scratch;
_Static_assert(sizeof(amx_scratch) <= GQA_AMX_SCRATCH_BYTES, "the AMX scratch fits");

/* ------------------------------------------------------- splitting ----- */
#define HI_MASK 0xffff0000u

GQA_INLINE __m512 trunc_bf16(__m512 x)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)HI_MASK)));
}

/* x = part[0] + ... + part[n-1], each exactly a bf16 (n = 1: x must be one). */
GQA_INLINE void split_parts(__m512 x, int n, __m512 *part)
{
    if (n == 1) {
        part[0] = x;
        return;
    }
    part[0] = trunc_bf16(x);
    __m512 r = _mm512_sub_ps(x, part[0]);
    if (n == 2) {
        part[1] = r;
        return;
    }
    part[1] = trunc_bf16(r);
    part[2] = _mm512_sub_ps(r, part[1]);
}

/* Lane i of a and of b (bf16-exact f32) as the bf16 pair (a_i, b_i). */
GQA_INLINE __m512i interleave_pair(__m512 a, __m512 b)
{
    return _mm512_ternarylogic_epi32(_mm512_castps_si512(b),
                                     _mm512_srli_epi32(_mm512_castps_si512(a), 16),
                                     _mm512_set1_epi32((int)HI_MASK), 0xE4);
}

/* 16 elements of a row of dtype dt from element e, as f32. */
GQA_INLINE __m512 load16(const unsigned char *row, int e, gqa_dtype dt)
{
    if (dt == GQA_F32)
        return _mm512_loadu_ps((const float *)row + e);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + e));
    if (dt == GQA_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* ------------------------------------------------------- the job ------- */
typedef struct amx_job_ctx {
    const gqa_tile_job *job;
    amx_scratch *sc;
    int d, dpad, R, nrb, nk; /* nk: parts per K/V element */
    int row_bytes;           /* of one head's K or V row */
    int h;                   /* the head being run; its rows start at h * R */
    int seg;                 /* paged: a run at or before the current chunk (cursor) */
    int rescale;             /* sc->corr holds a rescale owed to acc */
    /* the conversion in progress: its buffers, sub-tiles, next unit (each
     * sub-tile: AMX_KEYS K rows, then AMX_KEYS/2 pairs of V rows), rows,
     * and the rows a chunk further on (to prefetch; NULL past the run) */
    int cv_k, cv_v, cv_nt, cv_next;
    const unsigned char *kr[AMX_CHUNK], *vr[AMX_CHUNK], *pk[AMX_CHUNK], *pv[AMX_CHUNK];
    /* the softmax in progress: its P buffer, sub-tiles, next piece */
    int sm_b, sm_nt, sm_next;
} amx_job_ctx;

/* The K and V rows of key j of head h; *seg: a run at or before j's. */
GQA_INLINE void key_rows(const gqa_tile_job *job, int h, int64_t j, int *seg,
                         const unsigned char **kr, const unsigned char **vr)
{
    const int64_t hoff = (int64_t)h * job->head_stride;
    if (job->n_seg == 0) {
        *kr = (const unsigned char *)job->k + hoff + (j - job->key_base) * job->row_stride;
        *vr = (const unsigned char *)job->v + hoff + (j - job->key_base) * job->row_stride;
        return;
    }
    while (*seg < job->n_seg && job->seg[*seg].j_end <= j)
        (*seg)++;
    const gqa_tile_seg *s = &job->seg[*seg];
    *kr = (const unsigned char *)s->k + hoff + (j - s->key_base) * job->row_stride;
    *vr = (const unsigned char *)s->v + hoff + (j - s->key_base) * job->row_stride;
}

/* q parts of head cx->h as B tiles: tile (row block rb, chunk c), part p,
 * row i (the dims 32c+i and 32c+16+i), column n (row rb*16+n). */
static void prepare_q(const amx_job_ctx *cx)
{
    const gqa_tile_job *job = cx->job;
    const int nc = cx->d / 32;
    for (int r = 0; r < cx->R; r++) {
        const float *q = job->q + (size_t)(cx->h * cx->R + r) * cx->dpad;
        for (int c = 0; c < nc; c++) {
            __m512 a[3], b[3];
            split_parts(_mm512_loadu_ps(q + 32 * c), 3, a);
            split_parts(_mm512_loadu_ps(q + 32 * c + 16), 3, b);
            for (int p = 0; p < 3; p++) {
                uint32_t pairs[16];
                _mm512_storeu_si512(pairs, interleave_pair(a[p], b[p]));
                uint32_t *t = (uint32_t *)cx->sc->qb[(r / 16) * nc + c][p];
                for (int i = 0; i < 16; i++)
                    t[i * 16 + r % 16] = pairs[i];
            }
        }
    }
}

/* ------------------------------------------------------- conversion ---- */
/* K and V of nt sub-tiles from key j into K buffer kb and V buffer vb in
 * their tile layouts, in units (a K row, or a pair of V rows) that the
 * multiply loops run between their multiplies (convert_some). The tile unit
 * multiplies bf16 pairs; which two elements make a pair is free as long as
 * both sides agree: K pairs dims (e + i, e + 16 + i) of a key (q's B tiles
 * pair the same), V pairs keys (t, t + 16) of a sub-tile (P's A tiles pair
 * the same), so every pair is a shift and a bit select. */
static void convert_begin(amx_job_ctx *cx, int kb, int vb, int64_t j, int nt)
{
    const gqa_tile_job *job = cx->job;
    const int n = nt * AMX_KEYS;
    int seg = cx->seg;
    for (int t = 0; t < n; t++)
        key_rows(job, cx->h, j + t, &seg, &cx->kr[t], &cx->vr[t]);
    /* the next chunk starts in the run of this chunk's last key or later */
    cx->seg = seg;
    /* this head's rows are strided: each unit prefetches its rows a chunk on */
    for (int t = 0; t < n; t++) {
        if (j + t + AMX_CHUNK < job->j1)
            key_rows(job, cx->h, j + t + AMX_CHUNK, &seg, &cx->pk[t], &cx->pv[t]);
        else
            cx->pk[t] = cx->pv[t] = NULL;
    }
    cx->cv_k = kb;
    cx->cv_v = vb;
    cx->cv_nt = nt;
    cx->cv_next = 0;
}

GQA_INLINE void prefetch_row(const amx_job_ctx *cx, const unsigned char *row)
{
    if (row)
        for (int o = 0; o < cx->row_bytes; o += 64)
            v_prefetch(row + o);
}

GQA_INLINE void convert_unit_dt(const amx_job_ctx *cx, int unit, gqa_dtype dt)
{
    amx_scratch *sc = cx->sc;
    const int d = cx->d, nk = dt == GQA_F16 ? 2 : 1;
    const int s = unit / CV_UNITS_SUB, u = unit % CV_UNITS_SUB;
    if (u < AMX_KEYS) {
        const int t = s * AMX_KEYS + u;
        prefetch_row(cx, cx->pk[t]);
        for (int e = 0; e < d; e += 32) {
            __m512 a[2], c[2];
            split_parts(load16(cx->kr[t], e, dt), nk, a);
            split_parts(load16(cx->kr[t], e + 16, dt), nk, c);
            for (int p = 0; p < nk; p++)
                _mm512_storeu_si512(sc->kc[cx->cv_k][p] + (size_t)t * d + e,
                                    interleave_pair(a[p], c[p]));
        }
        return;
    }
    const int t = s * AMX_KEYS + (u - AMX_KEYS), t2 = t + AMX_KEYS / 2;
    const size_t row = (size_t)(s * AMX_KEYS / 2 + (u - AMX_KEYS)) * d * 2;
    prefetch_row(cx, cx->pv[t]);
    prefetch_row(cx, cx->pv[t2]);
    for (int e = 0; e < d; e += 16) {
        __m512 a[2], c[2];
        split_parts(load16(cx->vr[t], e, dt), nk, a);
        split_parts(load16(cx->vr[t2], e, dt), nk, c);
        for (int p = 0; p < nk; p++)
            _mm512_storeu_si512(sc->vc[cx->cv_v][p] + row + (size_t)e * 2,
                                interleave_pair(a[p], c[p]));
    }
}

/* Up to n more units of the conversion in progress. */
static void convert_some(amx_job_ctx *cx, int n)
{
    const int end = cx->cv_nt * CV_UNITS_SUB;
    const int f16 = cx->job->dtype == GQA_F16;
    for (; n > 0 && cx->cv_next < end; n--, cx->cv_next++) {
        if (f16)
            convert_unit_dt(cx, cx->cv_next, GQA_F16);
        else
            convert_unit_dt(cx, cx->cv_next, GQA_BF16);
    }
}

/* Transpose 16 rows of 16 floats in registers: four rounds of swapping the
 * off-diagonal s x s blocks (s = 8, 4, 2, 1), two permutes per row pair. */
static const int32_t tr_idx[4][2][16] = {
    {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
     {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}},
    {{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
     {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}},
    {{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
     {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}},
    {{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
     {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}},
};

GQA_INLINE void transpose16(__m512 r[16])
{
    for (int k = 0, s = 8; k < 4; k++, s /= 2) {
        const __m512i il = _mm512_loadu_si512(tr_idx[k][0]), ih = _mm512_loadu_si512(tr_idx[k][1]);
        for (int i = 0; i < 16; i++)
            if (!(i & s)) {
                const __m512 a = r[i], b = r[i + s];
                r[i] = _mm512_permutex2var_ps(a, il, b);
                r[i + s] = _mm512_permutex2var_ps(a, ih, b);
            }
    }
}

/* ------------------------------------------------------- the multiplies */
/* S^T of the chunk in K buffer b (nt sub-tiles) into sc->st; `per` units of
 * the conversion in progress after each d chunk. Tiles: S^T of a sub-tile's
 * keys 0-15 and 16-31 in 0 and 1, K parts in 2 and 3, q parts in 4-6. */
static void chunk_scores(amx_job_ctx *cx, int b, int nt, int per)
{
    amx_scratch *sc = cx->sc;
    const int d = cx->d, nc = d / 32, ldst = cx->nrb * 16;
    for (int rb = 0; rb < cx->nrb; rb++)
        for (int s = 0; s < nt; s++) {
            const uint16_t *k0 = sc->kc[b][0] + (size_t)s * AMX_KEYS * d;
            const uint16_t *k1 = sc->kc[b][1] + (size_t)s * AMX_KEYS * d;
            const size_t kb1 = (size_t)16 * d; /* keys 16-31 */
            _tile_zero(0);
            _tile_zero(1);
            for (int c = 0; c < nc; c++) {
                const size_t ko = (size_t)c * 32;
                uint16_t(*qp)[16 * 32] = sc->qb[rb * nc + c];
                _tile_loadd(4, qp[0], 64);
                _tile_loadd(5, qp[1], 64);
                _tile_loadd(6, qp[2], 64);
                _tile_loadd(2, k0 + ko, d * 2);
                _tile_dpbf16ps(0, 2, 4);
                _tile_dpbf16ps(0, 2, 5);
                _tile_dpbf16ps(0, 2, 6);
                if (cx->nk > 1) {
                    _tile_loadd(3, k1 + ko, d * 2);
                    _tile_dpbf16ps(0, 3, 4);
                    _tile_dpbf16ps(0, 3, 5);
                }
                _tile_loadd(2, k0 + kb1 + ko, d * 2);
                _tile_dpbf16ps(1, 2, 4);
                _tile_dpbf16ps(1, 2, 5);
                _tile_dpbf16ps(1, 2, 6);
                if (cx->nk > 1) {
                    _tile_loadd(3, k1 + kb1 + ko, d * 2);
                    _tile_dpbf16ps(1, 3, 4);
                    _tile_dpbf16ps(1, 3, 5);
                }
                convert_some(cx, per);
            }
            float *out = sc->st + (size_t)s * AMX_KEYS * ldst + (size_t)rb * 16;
            _tile_stored(0, out, ldst * 4);
            _tile_stored(1, out + (size_t)16 * ldst, ldst * 4);
        }
}

/* ------------------------------------------------------- softmax ------- */
/* The online-softmax update of every row over the chunk's keys from
 * sc->st, vectors along the rows (16 per vector, as in the gemm path: no
 * horizontal work); then p is transposed to rows of keys and split into the
 * A tiles of P buffer sm_b. In pieces that the P * V loop runs between its
 * multiplies: for each row block rb, piece 0 updates the state and leaves p
 * in sc->st, piece 1 + s turns sub-tile s of it into A tiles. The acc
 * rescale it calls for is left in sc->corr for the next chunk_pv. */
static void softmax_piece(amx_job_ctx *cx, int piece)
{
    amx_scratch *sc = cx->sc;
    const gqa_tile_job *job = cx->job;
    const int ldst = cx->nrb * 16, rb = piece / (1 + cx->sm_nt), part = piece % (1 + cx->sm_nt);
    const int nkeys = cx->sm_nt * AMX_KEYS;
    float *st = sc->st + (size_t)rb * 16;
    if (part == 0) {
        const size_t row0 = (size_t)(cx->h * cx->R + rb * 16);
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int t = 0; t < nkeys; t++)
            mx = _mm512_max_ps(mx, _mm512_loadu_ps(st + (size_t)t * ldst));
        const __m512 m_old = _mm512_loadu_ps(job->m + row0);
        const __m512 m_new = _mm512_max_ps(mx, m_old);
        /* a row whose scores are all -inf keeps m = -inf: exponentiate
         * against 0 there so that p = 0 rather than NaN (as the gemm path) */
        const __m512 m_use =
            _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m_new, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ),
                                 m_new, _mm512_setzero_ps());
        __m512 sum = _mm512_setzero_ps();
        for (int t = 0; t < nkeys; t++) {
            float *sp = st + (size_t)t * ldst;
            const __m512 p = v_exp(_mm512_sub_ps(_mm512_loadu_ps(sp), m_use));
            _mm512_storeu_ps(sp, p);
            sum = _mm512_add_ps(sum, p);
        }
        const __m512 corr = v_exp(_mm512_sub_ps(m_old, m_use));
        _mm512_storeu_ps(job->l + row0, _mm512_fmadd_ps(_mm512_loadu_ps(job->l + row0), corr, sum));
        _mm512_storeu_ps(job->m + row0, m_new);
        _mm512_storeu_ps(sc->corr + rb * 16, corr);
        if (_mm512_cmp_ps_mask(corr, _mm512_set1_ps(1.0f), _CMP_NEQ_UQ))
            cx->rescale = 1;
        return;
    }
    const int s = part - 1;
    __m512 pr[2][16];
    for (int t = 0; t < AMX_KEYS; t++)
        pr[t / 16][t % 16] = _mm512_loadu_ps(st + (size_t)(s * AMX_KEYS + t) * ldst);
    transpose16(pr[0]);
    transpose16(pr[1]);
    for (int n = 0; n < 16; n++) {
        __m512 a[3], c[3];
        split_parts(pr[0][n], 3, a);
        split_parts(pr[1][n], 3, c);
        const size_t at = (size_t)(rb * 16 + n) * AMX_CHUNK + (size_t)s * AMX_KEYS;
        for (int p = 0; p < 3; p++)
            _mm512_storeu_si512(sc->pa[cx->sm_b][p] + at, interleave_pair(a[p], c[p]));
    }
}

/* Start the softmax of the chunk (nt sub-tiles) whose scores are in sc->st. */
static void softmax_begin(amx_job_ctx *cx, int b, int nt)
{
    cx->sm_b = b;
    cx->sm_nt = nt;
    cx->sm_next = 0;
}

/* Up to n more pieces of the softmax in progress. */
static void softmax_some(amx_job_ctx *cx, int n)
{
    for (; n > 0 && cx->sm_next < cx->nrb * (1 + cx->sm_nt); n--)
        softmax_piece(cx, cx->sm_next++);
}

/* acc = acc * corr + P . V for the chunk in P buffer pb and V buffer vb (nt
 * sub-tiles); after each 16 x 16 acc tile, `per` units of the conversion in
 * progress and, every sm_every tiles, a piece of the softmax in progress.
 * Tiles: acc in 0, V parts in 1 and 2, P parts in 4-6. */
static void chunk_pv(amx_job_ctx *cx, int pb, int vb, int nt, int per, int sm_every)
{
    amx_scratch *sc = cx->sc;
    const int d = cx->d, lda = cx->dpad * 4;
    float *acc0 = cx->job->acc + (size_t)(cx->h * cx->R) * cx->dpad;
    if (cx->rescale) {
        /* rare once the row maxima settle: vector stores right before tile loads */
        for (int r = 0; r < cx->R; r++) {
            const __m512 cv = _mm512_set1_ps(sc->corr[r]);
            float *acc = acc0 + (size_t)r * cx->dpad;
            for (int e = 0; e < d; e += 16)
                _mm512_storeu_ps(acc + e, _mm512_mul_ps(_mm512_loadu_ps(acc + e), cv));
        }
        cx->rescale = 0;
    }
    int slot = 0;
    for (int rb = 0; rb < cx->nrb; rb++)
        for (int e = 0; e < d; e += 16) {
            float *acc = acc0 + (size_t)(rb * 16) * cx->dpad + e;
            _tile_loadd(0, acc, lda);
            for (int s = 0; s < nt; s++) {
                const size_t po = (size_t)rb * 16 * AMX_CHUNK + (size_t)s * AMX_KEYS;
                const size_t vo = (size_t)s * (AMX_KEYS / 2) * d * 2 + (size_t)e * 2;
                _tile_loadd(4, sc->pa[pb][0] + po, AMX_CHUNK * 2);
                _tile_loadd(5, sc->pa[pb][1] + po, AMX_CHUNK * 2);
                _tile_loadd(6, sc->pa[pb][2] + po, AMX_CHUNK * 2);
                _tile_loadd(1, sc->vc[vb][0] + vo, d * 4);
                _tile_dpbf16ps(0, 4, 1);
                _tile_dpbf16ps(0, 5, 1);
                _tile_dpbf16ps(0, 6, 1);
                if (cx->nk > 1) {
                    _tile_loadd(2, sc->vc[vb][1] + vo, d * 4);
                    _tile_dpbf16ps(0, 4, 2);
                    _tile_dpbf16ps(0, 5, 2);
                }
            }
            _tile_stored(0, acc, lda);
            convert_some(cx, per);
            if (++slot % sm_every == 0)
                softmax_some(cx, 1);
        }
}

/* Sub-tiles j0, j0 + AMX_KEYS, ... < j1 of head cx->h, all fully visible, in
 * chunks through a pipeline. Step i: chunk i's scores with chunk i+1's
 * conversion between the multiplies, then chunk i-1's P * V with chunk i's
 * softmax and the rest of the conversion between them. Every tile load then
 * reads lines written a step earlier, and the vector work runs while the
 * tile unit multiplies. */
static void run_chunks(amx_job_ctx *cx, int64_t j0, int64_t j1)
{
    const int n_sub = (int)((j1 - j0) / AMX_KEYS);
    const int n = (n_sub + AMX_NT - 1) / AMX_NT;
    /* multiply-loop iterations a step, and vector work per each */
    const int s_slots = cx->nrb * AMX_NT * (cx->d / 32), p_slots = cx->nrb * (cx->d / 16);
    const int per = (AMX_NT * CV_UNITS_SUB + s_slots + p_slots - 1) / (s_slots + p_slots);
    const int sm_pieces = cx->nrb * (1 + AMX_NT);
    const int sm_every = p_slots / sm_pieces > 0 ? p_slots / sm_pieces : 1;
#define NT_OF(i) ((i) + 1 < n ? AMX_NT : n_sub - (n - 1) * AMX_NT)
    convert_begin(cx, 0, 0, j0, NT_OF(0));
    convert_some(cx, AMX_NT * CV_UNITS_SUB);
    for (int i = 0; i < n; i++) {
        if (i + 1 < n)
            convert_begin(cx, (i + 1) & 1, (i + 1) % 3, j0 + (int64_t)(i + 1) * AMX_CHUNK,
                          NT_OF(i + 1));
        chunk_scores(cx, i & 1, NT_OF(i), per);
        softmax_begin(cx, i & 1, NT_OF(i));
        if (i > 0)
            chunk_pv(cx, (i - 1) & 1, (i - 1) % 3, NT_OF(i - 1), per, sm_every);
        convert_some(cx, AMX_NT * CV_UNITS_SUB);
        softmax_some(cx, sm_pieces);
    }
    chunk_pv(cx, (n - 1) & 1, (n - 1) % 3, NT_OF(n - 1), 0, 1);
#undef NT_OF
}

/* Does every row of head h see all keys j..j+AMX_KEYS-1? */
static int tile_visible(const amx_job_ctx *cx, int h, int64_t j)
{
    const gqa_tile_job *job = cx->job;
    for (int r = h * cx->R; r < (h + 1) * cx->R; r++)
        if (job->key_lo[r] > j || job->key_hi[r] < j + AMX_KEYS - 1)
            return 0;
    return 1;
}

/* Keys j0..j1-1 of head h by the vector kernel. */
static void vector_keys(const gqa_tile_job *job, int h, int64_t j0, int64_t j1)
{
    gqa_tile_job sub = gqa_tile_job_head(job, h);
    gqa_tile_seg segs[AMX_KEYS];
    const int64_t hoff = (int64_t)h * job->head_stride;
    sub.j0 = j0;
    sub.j1 = j1;
    if (job->n_seg == 0) {
        sub.k = (const unsigned char *)job->k + hoff;
        sub.v = (const unsigned char *)job->v + hoff;
    } else {
        int n = 0;
        for (int s = 0; s < job->n_seg && n < AMX_KEYS; s++) {
            const gqa_tile_seg *g = &job->seg[s];
            if (g->j_end <= j0 || g->key_base >= j1)
                continue;
            segs[n] = *g;
            segs[n].k = (const unsigned char *)g->k + hoff;
            segs[n].v = (const unsigned char *)g->v + hoff;
            n++;
        }
        sub.n_seg = n;
        sub.seg = segs;
    }
    gqa_attn_tile_avx512_vec(&sub);
}

int gqa_amx_job_fits(const gqa_tile_job *job)
{
    const int R = job->n_rows, d = job->d;
    /* f32 K/V would take three parts each (six products): measured slower than
     * the FMA path (MQA f32 4k decode 336-348 vs 288-303 us), so it stays there */
    return (job->dtype == GQA_F16 || job->dtype == GQA_BF16) && d % 32 == 0 && d <= AMX_MAX_D &&
           R % 16 == 0 && job->j1 - job->j0 >= AMX_KEYS;
}

void gqa_amx_attn_tile(const gqa_tile_job *job)
{
    amx_job_ctx cx;
    cx.job = job;
    cx.sc = (amx_scratch *)((unsigned char *)job->scratch + GQA_VEC_SCRATCH_BYTES);
    cx.d = job->d;
    cx.dpad = (job->d + 15) & ~15;
    cx.R = job->n_rows;
    cx.nrb = cx.R / 16;
    cx.nk = job->dtype == GQA_F16 ? 2 : 1;
    cx.rescale = 0;
    cx.row_bytes = (int)gqa_row_bytes(job->d, job->dtype);
    const int n_heads = job->n_heads > 1 ? job->n_heads : 1;

    amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    for (int h = 0; h < n_heads; h++) {
        cx.h = h;
        cx.seg = 0;
        prepare_q(&cx);
        /* runs of fully visible sub-tiles through the pipeline, the rest (mask
         * edges, the last partial sub-tile) by the vector kernel, in key order */
        int64_t j = job->j0;
        while (j < job->j1) {
            int64_t e = j;
            while (e + AMX_KEYS <= job->j1 && tile_visible(&cx, h, e))
                e += AMX_KEYS;
            if (e > j) {
                run_chunks(&cx, j, e);
                j = e;
                continue;
            }
            const int64_t end = j + AMX_KEYS < job->j1 ? j + AMX_KEYS : job->j1;
            vector_keys(job, h, j, end);
            j = end;
        }
    }
    _tile_release();
}
