/* gemm.c - the framework of gqa_train_gemm: blocking, packing, threading,
 * tails and the run-time choice of micro-kernel (see gemm.h).
 *
 * Loop nest (BLIS order, with the A micro-panel as the L1-resident operand):
 *   for each block of NC columns of C                       (jc)
 *     for each block of KC steps of k                       (pc)
 *       pack op(B)[pc, jc] into NR-wide panels, shared      (all threads)
 *       (transposed A: pack op(A)[:, pc] into MR-tall panels, shared)
 *       for each MR-row panel of C (and, when m is short, a group of the
 *       NR-wide column panels), in parallel                 (ir [x jr group])
 *         a row-major A is read in place (MR rows; the last, partial
 *         panel is packed by this thread)
 *         for each NR-wide column panel: one micro-kernel tile
 * Packing reads the source row by row, front to back (a row of B, or of a
 * transposed A, feeds every panel of the block), so the hardware prefetcher
 * streams it; only B^T is gathered column by column.
 * The A micro-panel (MR x KC, <= 24 KB) stays in L1 while the packed B block
 * (KC x NC, <= 1 MB) streams from L2. The block sizes depend only on the
 * shape, and each tile's k sum runs whole in one micro-kernel call per k
 * block, so no thread count changes any result bit.
 */
#include <math.h>
#include <string.h>

#include <omp.h>

#include "core/internal.h"
#include "train/gemm.h"

#define GEMM_KC_MAX 512
#define GEMM_NC_MAX 512
/* Rows per scheduling chunk of the row-wise packing. */
#define GEMM_PACK_ROWS 16
/* Below this many multiply-adds one thread does the whole product: waking
 * the team costs more than the work. */
#define GEMM_PAR_MIN_FMAS (96 * 96 * 96)

/* n split into the fewest blocks of at most `max`, as equal as possible,
 * each rounded up to a multiple of `unit`: the block length. */
static int64_t block_len(int64_t n, int64_t max, int64_t unit)
{
    int64_t nb = (n + max - 1) / max;
    int64_t len = (n + nb - 1) / nb;
    return (len + unit - 1) / unit * unit;
}

/* Columns j0..j0+nv-1 of op(B) = B^T, rows p0..p0+kc-1, into bp[p*nr + j];
 * the columns nv..nr-1 are zero. op(B)[p][j] = b[j*ldb + p]: a transpose, one
 * row of b (read front to back) at a time. */
static void pack_b_trans(const float *b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int nv,
                         int nr, float *bp)
{
    for (int j = 0; j < nr; j++) {
        if (j >= nv) {
            for (int64_t p = 0; p < kc; p++)
                bp[p * nr + j] = 0.0f;
            continue;
        }
        const float *src = b + (j0 + j) * ldb + p0;
        for (int64_t p = 0; p < kc; p++)
            bp[p * nr + j] = src[p];
    }
}

/* Rows p0+p for p in [p_lo, p_hi) of a row-major X (row stride ld) into every
 * w-wide panel of the block: columns q0..q0+nq-1 of the row land in panel
 * q / w at xp[(q / w) * w * kc + p * w + q % w], zero past nq. Each row is read
 * once, front to back, so the hardware prefetcher follows; the threads split
 * the rows. Packs op(B) when B is not transposed (w = NR) and op(A) when A is
 * (w = MR). */
static void pack_rows(const float *x, int64_t ld, int64_t p0, int64_t p_lo, int64_t p_hi,
                      int64_t q0, int64_t nq, int w, int64_t kc, float *xp)
{
    const int64_t panels = (nq + w - 1) / w;
    for (int64_t p = p_lo; p < p_hi; p++) {
        const float *src = x + (p0 + p) * ld + q0;
        for (int64_t q = 0; q < panels; q++) {
            float *dst = xp + q * w * kc + p * w;
            const int64_t left = nq - q * w;
            const int nv = (int)(left < w ? left : w);
            for (int j = 0; j < w; j++)
                dst[j] = j < nv ? src[q * w + j] : 0.0f;
        }
    }
}

/* Rows i0..i0+nv-1 of a row-major A, columns p0..p0+kc-1, into ap[p*mr + i];
 * rows nv..mr-1 are zero (the last, partial row panel). */
static void pack_a(const float *a, int64_t lda, int64_t i0, int nv, int mr, int64_t p0, int64_t kc,
                   float *ap)
{
    for (int i = 0; i < mr; i++) {
        if (i >= nv) {
            for (int64_t p = 0; p < kc; p++)
                ap[p * mr + i] = 0.0f;
            continue;
        }
        const float *src = a + (i0 + i) * lda + p0;
        for (int64_t p = 0; p < kc; p++)
            ap[p * mr + i] = src[p];
    }
}

/* One tile. A is a packed panel (lda 0) or, with lda > 0, MR rows of a
 * row-major A read in place. A partial tile (rows < mr or cols < nr) goes
 * through a full-size buffer so the micro-kernel never touches C outside the
 * matrix. */
static void run_tile(const gqa_gemm_kernel *kn, int64_t kc, const float *a, int64_t lda,
                     const float *bp, float *c, int64_t ldc, int rows, int cols, float alpha,
                     float beta)
{
    const int full = rows == kn->mr && cols == kn->nr;
    float *dst = c;
    _Alignas(64) float t[32 * 64];
    if (!full)
        dst = t;
    if (lda > 0)
        kn->tile_rows(kc, a, lda, bp, dst, full ? ldc : kn->nr, alpha, full ? beta : 0.0f);
    else
        kn->tile(kc, a, bp, dst, full ? ldc : kn->nr, alpha, full ? beta : 0.0f);
    if (full)
        return;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float *cij = c + i * ldc + j;
            const float v = t[i * kn->nr + j];
            *cij = beta == 0.0f ? v : fmaf(beta, *cij, v);
        }
}

/* Everything one call needs, shared by the team. */
typedef struct gemm_job {
    const gqa_gemm_kernel *kn;
    int trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    int64_t lda, ldb, ldc;
    float *c;
    int64_t kcb, ncb; /* block lengths */
    int64_t groups;   /* column-panel groups per row panel */
    float *bpack;     /* KC x NC */
    float *apack;     /* one MR x KC panel per thread */
    float *apack_all; /* transposed A: the whole m x KC block in MR-tall panels */
} gemm_job;

/* The tiles of row panel `ir` and column-panel group `g` in block (j0, p0). */
static void run_item(const gemm_job *jb, float *ap, int64_t ir, int64_t g, int64_t j0, int64_t nc,
                     int64_t p0, int64_t kc, float beta)
{
    const gqa_gemm_kernel *kn = jb->kn;
    const int64_t i0 = ir * kn->mr;
    const int rows = (int)(jb->m - i0 < kn->mr ? jb->m - i0 : kn->mr);
    const int64_t np = (nc + kn->nr - 1) / kn->nr;
    const int64_t jp0 = np * g / jb->groups, jp1 = np * (g + 1) / jb->groups;
    if (jp0 == jp1)
        return;
    /* A transposed A was packed for the whole block; a row-major A with all MR
     * rows present is read in place; its last partial row panel is packed. */
    const float *a = ap;
    int64_t lda = 0;
    if (jb->trans_a) {
        a = jb->apack_all + ir * kn->mr * kc;
    } else if (rows == kn->mr) {
        a = jb->a + i0 * jb->lda + p0;
        lda = jb->lda;
    } else {
        pack_a(jb->a, jb->lda, i0, rows, kn->mr, p0, kc, ap);
    }
    for (int64_t jp = jp0; jp < jp1; jp++) {
        const int64_t j = jp * kn->nr;
        const int cols = (int)(nc - j < kn->nr ? nc - j : kn->nr);
        run_tile(kn, kc, a, lda, jb->bpack + jp * kn->nr * kc, jb->c + i0 * jb->ldc + j0 + j,
                 jb->ldc, rows, cols, jb->alpha, beta);
    }
}

/* The body of the parallel region: every thread walks the same blocks. */
static void gemm_team(const gemm_job *jb)
{
    const gqa_gemm_kernel *kn = jb->kn;
    float *ap = jb->apack + (size_t)omp_get_thread_num() * (size_t)(kn->mr * jb->kcb);
    const int64_t mp = (jb->m + kn->mr - 1) / kn->mr;
    for (int64_t j0 = 0; j0 < jb->n; j0 += jb->ncb) {
        const int64_t nc = jb->n - j0 < jb->ncb ? jb->n - j0 : jb->ncb;
        const int64_t np = (nc + kn->nr - 1) / kn->nr;
        for (int64_t p0 = 0; p0 < jb->k; p0 += jb->kcb) {
            const int64_t kc = jb->k - p0 < jb->kcb ? jb->k - p0 : jb->kcb;
            if (jb->trans_b) {
#pragma omp for schedule(static)
                for (int64_t jp = 0; jp < np; jp++) {
                    const int64_t j = jp * kn->nr;
                    const int nv = (int)(nc - j < kn->nr ? nc - j : kn->nr);
                    pack_b_trans(jb->b, jb->ldb, p0, kc, j0 + j, nv, kn->nr,
                                 jb->bpack + jp * kn->nr * kc);
                }
            } else {
#pragma omp for schedule(static)
                for (int64_t p = 0; p < kc; p += GEMM_PACK_ROWS)
                    pack_rows(jb->b, jb->ldb, p0, p,
                              p + GEMM_PACK_ROWS < kc ? p + GEMM_PACK_ROWS : kc, j0, nc, kn->nr, kc,
                              jb->bpack);
            }
            if (jb->trans_a) {
#pragma omp for schedule(static)
                for (int64_t p = 0; p < kc; p += GEMM_PACK_ROWS)
                    pack_rows(jb->a, jb->lda, p0, p,
                              p + GEMM_PACK_ROWS < kc ? p + GEMM_PACK_ROWS : kc, 0, jb->m, kn->mr,
                              kc, jb->apack_all);
            }
            /* later k blocks add onto what the first one wrote */
            const float beta = p0 == 0 ? jb->beta : 1.0f;
            const int64_t items = mp * jb->groups;
#pragma omp for schedule(dynamic, 1)
            for (int64_t it = 0; it < items; it++)
                run_item(jb, ap, it / jb->groups, it % jb->groups, j0, nc, p0, kc, beta);
        }
    }
}

void gqa_train_gemm_with(const gqa_gemm_kernel *kn, int trans_a, int trans_b, int64_t m, int64_t n,
                         int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                         int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (!kn || k <= 0) {
        gqa_train_gemm_ref(trans_a, trans_b, m, n, k < 0 ? 0 : k, alpha, a, lda, b, ldb, beta, c,
                           ldc);
        return;
    }
    gemm_job jb = {kn,  trans_a, trans_b, m, n, k, alpha, beta, a,    b,
                   lda, ldb,     ldc,     c, 0, 0, 1,     NULL, NULL, NULL};
    jb.kcb = block_len(k, GEMM_KC_MAX, 1);
    jb.ncb = block_len(n, GEMM_NC_MAX, kn->nr);
    int nt = gqa_threads_resolved();
    if ((double)m * (double)n * (double)k < (double)GEMM_PAR_MIN_FMAS)
        nt = 1;
    /* Enough work items for every thread to get several; only when the row
     * panels alone are too few is each one split by columns. */
    const int64_t mp = (m + kn->mr - 1) / kn->mr, np = jb.ncb / kn->nr;
    if (nt > 1 && mp < 4 * (int64_t)nt)
        jb.groups = (4 * (int64_t)nt + mp - 1) / mp < np ? (4 * (int64_t)nt + mp - 1) / mp : np;
    const size_t bfl = (size_t)jb.kcb * (size_t)jb.ncb;
    const size_t afl = (size_t)kn->mr * (size_t)jb.kcb;
    const size_t aall = trans_a ? (size_t)mp * afl : 0;
    float *ws = gqa_workspace_slot(GQA_WS_GEMM, (bfl + afl * (size_t)nt + aall) * sizeof(float));
    if (!ws) {
        gqa_train_gemm_ref(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    jb.bpack = ws;
    jb.apack = ws + bfl;
    jb.apack_all = ws + bfl + afl * (size_t)nt;
#pragma omp parallel num_threads(nt) if (nt > 1)
    gemm_team(&jb);
}

const gqa_gemm_kernel *gqa_gemm_kernel_for(const char *kernel_set)
{
    if (!kernel_set)
        return NULL;
#if defined(__x86_64__) || defined(_M_X64)
    if (strcmp(kernel_set, "avx512") == 0)
        return gqa_cpu()->avx512 ? &gqa_gemm_kernel_avx512 : NULL;
    if (strcmp(kernel_set, "avx2") == 0)
        return gqa_cpu()->avx2_fma_f16c ? &gqa_gemm_kernel_avx2 : NULL;
#endif
    if (strcmp(kernel_set, "scalar") == 0 || strcmp(kernel_set, "neon") == 0)
        return &gqa_gemm_kernel_scalar;
    return NULL;
}

void gqa_train_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc)
{
    gqa_train_gemm_with(gqa_gemm_kernel_for(gqa_kernel_name()), trans_a, trans_b, m, n, k, alpha, a,
                        lda, b, ldb, beta, c, ldc);
}
