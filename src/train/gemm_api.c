/* gemm_api.c - gqa_gemm_f32 (gqa_gemm.h): argument checks in front of
 * gqa_train_gemm. */
#include "core/internal.h"
#include "gqa_gemm.h"
#include "train/gemm.h"

/* One operand's stride against its row length (rows > 0 only). */
static gqa_status check_operand(const char *name, const void *p, int64_t rows, int64_t cols,
                                int64_t ld)
{
    if (rows == 0 || cols == 0)
        return GQA_OK;
    if (!p)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gemm_f32: %s is NULL", name);
    if (ld < cols)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_gemm_f32: ld%s = %lld is shorter than its rows of %lld", name,
                        (long long)ld, (long long)cols);
    return GQA_OK;
}

gqa_status gqa_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc)
{
    if (m < 0 || n < 0 || k < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gemm_f32: negative size m=%lld n=%lld k=%lld",
                        (long long)m, (long long)n, (long long)k);
    if (m == 0 || n == 0)
        return GQA_OK;
    gqa_status s = check_operand("c", c, m, n, ldc);
    if (s == GQA_OK)
        s = trans_a ? check_operand("a", a, k, m, lda) : check_operand("a", a, m, k, lda);
    if (s == GQA_OK)
        s = trans_b ? check_operand("b", b, n, k, ldb) : check_operand("b", b, k, n, ldb);
    if (s != GQA_OK)
        return s;
    gqa_train_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return GQA_OK;
}

const char *gqa_gemm_kernel_info(void)
{
    const gqa_gemm_kernel *kn = gqa_gemm_kernel_for(gqa_kernel_name());
    if (!kn)
        return "ref";
        /* static strings; test_gemm checks them against the kernels' mr x nr */
#if defined(__x86_64__) || defined(_M_X64)
    if (kn == &gqa_gemm_kernel_avx512)
        return "avx512 12x32";
    if (kn == &gqa_gemm_kernel_avx2)
        return "avx2 6x16";
#endif
    return "scalar 4x16";
}
