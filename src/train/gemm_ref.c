/* gemm_ref.c - the reference matrix multiply and the portable (scalar)
 * micro-kernel of gemm.h. Plain C, built for the baseline ISA. */
#include "train/gemm.h"

void gqa_train_gemm_ref(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int64_t p = 0; p < k; p++) {
                const float x = trans_a ? a[p * lda + i] : a[i * lda + p];
                const float y = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                sum += x * y;
            }
            float *cij = &c[i * ldc + j];
            *cij = beta == 0.0f ? alpha * sum : alpha * sum + beta * *cij;
        }
    }
}

/* 4 x 16: 64 accumulators the compiler keeps in vector registers of
 * whatever width the baseline has (SSE2 on x86-64, NEON on arm64). */
#define SCALAR_MR 4
#define SCALAR_NR 16

/* A's element (i, p) at a[i * rs + p * cs] (see gemm_tile.inc). */
static inline void tile_body(int64_t kc, const float *a, int64_t rs, int64_t cs, const float *bp,
                             float *c, int64_t ldc, float alpha, float beta)
{
    float acc[SCALAR_MR][SCALAR_NR] = {{0}};
    for (int64_t p = 0; p < kc; p++) {
        const float *br = bp + p * SCALAR_NR;
        for (int i = 0; i < SCALAR_MR; i++) {
            const float x = a[i * rs + p * cs];
            for (int j = 0; j < SCALAR_NR; j++)
                acc[i][j] += x * br[j];
        }
    }
    for (int i = 0; i < SCALAR_MR; i++) {
        float *cr = c + i * ldc;
        for (int j = 0; j < SCALAR_NR; j++) {
            const float t = alpha * acc[i][j];
            cr[j] = beta == 0.0f ? t : beta * cr[j] + t;
        }
    }
}

static void tile_packed(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                        float alpha, float beta)
{
    tile_body(kc, ap, 1, SCALAR_MR, bp, c, ldc, alpha, beta);
}

static void tile_rows(int64_t kc, const float *a, int64_t lda, const float *bp, float *c,
                      int64_t ldc, float alpha, float beta)
{
    tile_body(kc, a, lda, 1, bp, c, ldc, alpha, beta);
}

const gqa_gemm_kernel gqa_gemm_kernel_scalar = {"scalar", SCALAR_MR, SCALAR_NR, tile_packed,
                                                tile_rows};
