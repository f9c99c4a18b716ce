/* gemm.h - the single-precision matrix multiply of the trainer (internal).
 *
 * Every matmul of training goes through gqa_train_gemm: the forward X W^T,
 * the input gradient dY W and the weight gradient dY^T X. It is built the
 * BLIS way: a portable framework (gemm.c: blocking, packing, threading,
 * tails, run-time choice) around one small register-blocked micro-kernel per
 * ISA (gemm_avx512.c, gemm_avx2.c, the scalar one in gemm_ref.c), with the
 * naive reference gqa_train_gemm_ref beside it.
 *
 * Determinism: the k sum of a C element is never split across threads. Its
 * order depends only on the shape and the micro-kernel (k is cut into the
 * same blocks whatever the thread count), so the result is bitwise identical
 * for any number of threads.
 */
#ifndef GQA_TRAIN_GEMM_H
#define GQA_TRAIN_GEMM_H

#include <stdint.h>

/* C = alpha * op(A) * op(B) + beta * C, row-major. op(X) = X or X^T (trans_x nonzero).
 * op(A): m x k, op(B): k x n, C: m x n; lda/ldb/ldc are row strides in elements.
 * beta == 0 means C is not read (may hold NaN).
 *
 * A is stored m x k (lda >= k) or, transposed, k x m (lda >= m); B likewise
 * k x n or n x k. m, n or k <= 0 is allowed: nothing to do for m or n <= 0, and
 * k <= 0 gives C = beta * C. Uses gqa_get_num_threads() threads and the kernel
 * set of gqa_kernel_name() (GQA_KERNEL=ref selects gqa_train_gemm_ref). The
 * packing buffers are the calling thread's reusable scratch; if they cannot
 * be allocated the reference computes the product instead (same contract,
 * slower). */
void gqa_train_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc);

/* The reference: for each C element, a plain f32 sum over k in order, then
 * alpha * sum + beta * C. Single-threaded; the definition the fast path is
 * tested against. */
void gqa_train_gemm_ref(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc);

/* ------------------------------------------------------ micro-kernels -- */

/* One MR x NR tile of C:
 *   C[i][j] = alpha * sum_{p < kc} ap[p*MR + i] * bp[p*NR + j]  (+ beta * C[i][j])
 * ap is a packed A micro-panel (kc columns of MR rows), bp a packed B
 * micro-panel (kc rows of NR columns), both 64-byte aligned. The sum runs over
 * p in order in f32, one multiply-add per step (fused in the SIMD kernels).
 * Then t = alpha * sum; with beta == 0 C = t (C is not read), otherwise
 * C = beta * C + t (fused in the SIMD kernels). */
typedef void (*gqa_gemm_ukernel_fn)(int64_t kc, const float *ap, const float *bp, float *c,
                                    int64_t ldc, float alpha, float beta);
/* The same tile with A unpacked: element (i, p) at a[i * lda + p], the MR rows
 * of a row-major A read in place (each must be readable for kc floats). Saves
 * the transposing copy that packing a row-major A would be. */
typedef void (*gqa_gemm_ukernel_rows_fn)(int64_t kc, const float *a, int64_t lda, const float *bp,
                                         float *c, int64_t ldc, float alpha, float beta);

typedef struct gqa_gemm_kernel {
    const char *name; /* the kernel set it belongs to: "scalar", "avx2", "avx512" */
    int mr, nr;       /* tile rows and columns */
    gqa_gemm_ukernel_fn tile;
    gqa_gemm_ukernel_rows_fn tile_rows;
} gqa_gemm_kernel;

extern const gqa_gemm_kernel gqa_gemm_kernel_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const gqa_gemm_kernel gqa_gemm_kernel_avx2;
extern const gqa_gemm_kernel gqa_gemm_kernel_avx512;
#endif

/* The micro-kernel of a kernel set ("scalar", "avx2", "avx512"; "neon" runs
 * the scalar one); NULL for "ref", an unknown name, or an ISA this CPU or
 * build lacks. */
const gqa_gemm_kernel *gqa_gemm_kernel_for(const char *kernel_set);

/* gqa_train_gemm with a given micro-kernel (tests and benchmarks compare
 * them); kernel NULL runs the reference. */
void gqa_train_gemm_with(const gqa_gemm_kernel *kernel, int trans_a, int trans_b, int64_t m,
                         int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                         const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
