/* gqa_gemm.h - public API: the single-precision matrix multiply libgqa trains
 * with (every matmul of gqa_train_* goes through it), for benchmarks and for
 * callers who want it. See src/train/gemm.h for how it is built.
 *
 * Conventions are those of gqa.h: it returns a gqa_status and leaves a message
 * in gqa_last_error(); the library never aborts, exits or prints.
 */
#ifndef GQA_GEMM_H
#define GQA_GEMM_H

#include <stdint.h>

#include "gqa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* C = alpha * op(A) * op(B) + beta * C, all row-major f32, op(X) = X or X^T
 * (trans_x nonzero). op(A) is m x k, op(B) k x n, C m x n; lda, ldb, ldc are
 * row strides in elements: A is stored m x k (lda >= k) or, transposed, k x m
 * (lda >= m); B k x n (ldb >= n) or n x k (ldb >= k); ldc >= n. beta == 0
 * means C is not read (it may hold NaN). C must not overlap A or B.
 *
 * Uses gqa_get_num_threads() threads and the kernel set of gqa_kernel_name()
 * (GQA_KERNEL=ref: the naive reference). The result is bitwise identical for
 * any thread count (no k sum is split between threads).
 *
 * m, n or k == 0 is valid (k == 0: C = beta * C). Errors: GQA_ERR_INVALID_ARG
 * for a negative size, a stride shorter than its row, or a NULL array that the
 * sizes need. */
gqa_status gqa_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc);

/* The micro-kernel gqa_gemm_f32 runs now, e.g. "avx512 12x32", "ref". Static. */
const char *gqa_gemm_kernel_info(void);

#ifdef __cplusplus
}
#endif

#endif /* GQA_GEMM_H */
