/* matvec.c - gqa_matvec and gqa_dequantize_row: argument checks, the choice
 * of kernel by the active kernel set, and threading over rows. */
#include <string.h>

#include <omp.h>

#include "core/internal.h"
#include "gqa_model.h"
#include "model/quant.h"

/* Below this many weights a matvec runs on the calling thread: waking the
 * team costs more than the work (a 64K-weight q4_1 matvec is a few us). */
#define MATVEC_PAR_MIN_WEIGHTS (64 * 1024)
/* Rows per scheduling chunk: enough to amortise the loop, small enough that
 * two threads split a 113-row matrix. */
#define MATVEC_ROW_CHUNK 16

/* The kernel for the active kernel set (gqa_kernel_name() is "ref",
 * "scalar", or an ISA that dispatch.c only selects when the CPU has it). */
static gqa_matvec_fn pick_kernel(void)
{
    const char *name = gqa_kernel_name();
    if (strcmp(name, "ref") == 0)
        return gqa_matvec_rows_ref;
#if defined(__x86_64__) || defined(_M_X64)
    if (strcmp(name, "avx512") == 0)
        return gqa_matvec_rows_avx512;
    if (strcmp(name, "avx2") == 0)
        return gqa_matvec_rows_avx2;
#elif defined(__aarch64__)
    if (strcmp(name, "neon") == 0)
        return gqa_matvec_rows_neon;
#endif
    return gqa_matvec_rows_scalar;
}

/* Checks shared by both entry points: a supported type, n a multiple of its
 * block, the element alignment a scalar load needs. Fills the row's bytes. */
static gqa_status check_row(const char *fn, uint32_t t, const void *w, int64_t n,
                            int64_t *row_bytes)
{
    if (!gqa_quant_supported(t))
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "%s: ggml type %u (%s) is not supported (supported: f32, f16, bf16, "
                        "q8_0, q4_0, q4_1)",
                        fn, (unsigned)t, gqa_gguf_type_name(t));
    int64_t be, bb;
    gqa_quant_block(t, &be, &bb);
    if (n % be != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "%s: %lld elements of %s is not a multiple of its block of %lld", fn,
                        (long long)n, gqa_gguf_type_name(t), (long long)be);
    if (be == 1 && ((uintptr_t)w % (uintptr_t)bb) != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: %s weights must be %lld-byte aligned", fn,
                        gqa_gguf_type_name(t), (long long)bb);
    if (gqa_mul_overflow_i64(n / be, bb, row_bytes))
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: row of %lld elements overflows", fn,
                        (long long)n);
    return GQA_OK;
}

gqa_status gqa_dequantize_row(uint32_t ggml_type, const void *src, int64_t n, float *dst)
{
    if (n < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_dequantize_row: n = %lld < 0", (long long)n);
    if (n > 0 && (!src || !dst))
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_dequantize_row: %s is NULL",
                        src ? "dst" : "src");
    int64_t row_bytes;
    gqa_status s = check_row("gqa_dequantize_row", ggml_type, src, n, &row_bytes);
    if (s != GQA_OK)
        return s;
    gqa_dequant_row_ref(ggml_type, src, n, dst);
    return GQA_OK;
}

gqa_status gqa_matvec(uint32_t ggml_type, const void *w, int64_t rows, int64_t cols,
                      const float *x, float *y)
{
    if (rows < 0 || cols < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_matvec: rows = %lld, cols = %lld (must be >= 0)",
                        (long long)rows, (long long)cols);
    if (rows > 0 && (!w || !y || (cols > 0 && !x)))
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_matvec: %s is NULL",
                        !w ? "w" : !y ? "y" : "x");
    int64_t row_bytes, total;
    gqa_status s = check_row("gqa_matvec", ggml_type, w, cols, &row_bytes);
    if (s != GQA_OK)
        return s;
    if (gqa_mul_overflow_i64(rows, row_bytes, &total) || (uint64_t)total > SIZE_MAX)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_matvec: %lld rows of %lld bytes overflow",
                        (long long)rows, (long long)row_bytes);
    if (rows == 0)
        return GQA_OK;

    const gqa_matvec_fn fn = pick_kernel();
    int64_t weights;
    int nt = gqa_threads_resolved();
    if (gqa_mul_overflow_i64(rows, cols, &weights) || weights < MATVEC_PAR_MIN_WEIGHTS ||
        rows < 2 * MATVEC_ROW_CHUNK)
        nt = 1;
    if (nt == 1) {
        fn(ggml_type, w, row_bytes, cols, x, y, 0, rows);
        return GQA_OK;
    }
    /* Each row is computed whole by one thread, so the result does not
     * depend on the thread count. */
    const int64_t n_chunks = (rows + MATVEC_ROW_CHUNK - 1) / MATVEC_ROW_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t r0 = c * MATVEC_ROW_CHUNK;
        const int64_t r1 = r0 + MATVEC_ROW_CHUNK < rows ? r0 + MATVEC_ROW_CHUNK : rows;
        fn(ggml_type, w, row_bytes, cols, x, y, r0, r1);
    }
    return GQA_OK;
}

gqa_status gqa_matmul(uint32_t ggml_type, const void *w, int64_t rows, int64_t cols, int64_t n,
                      const float *x, float *y)
{
    if (rows < 0 || cols < 0 || n < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_matmul: rows = %lld, cols = %lld, n = %lld (must be >= 0)",
                        (long long)rows, (long long)cols, (long long)n);
    if (rows > 0 && n > 0 && (!w || !y || (cols > 0 && !x)))
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_matmul: %s is NULL", !w ? "w" : !y ? "y" : "x");
    int64_t row_bytes, total, xn, yn;
    gqa_status s = check_row("gqa_matmul", ggml_type, w, cols, &row_bytes);
    if (s != GQA_OK)
        return s;
    if (gqa_mul_overflow_i64(rows, row_bytes, &total) || (uint64_t)total > SIZE_MAX ||
        gqa_mul_overflow_i64(n, cols, &xn) || gqa_mul_overflow_i64(n, rows, &yn))
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_matmul: sizes overflow (%lld x %lld, n %lld)",
                        (long long)rows, (long long)cols, (long long)n);
    if (rows == 0 || n == 0)
        return GQA_OK;
    if (n == 1)
        return gqa_matvec(ggml_type, w, rows, cols, x, y);

    /* Row chunk outer, token inner: a chunk's weights (a few KiB) stay in L1
     * while every token's vector streams past them. The result for each
     * (token, row) is the matvec kernel's, so it equals gqa_matvec. */
    const gqa_matvec_fn fn = pick_kernel();
    int nt = gqa_threads_resolved();
    int64_t work;
    if ((!gqa_mul_overflow_i64(xn, rows, &work) && work < MATVEC_PAR_MIN_WEIGHTS) ||
        rows < 2 * MATVEC_ROW_CHUNK)
        nt = 1;
    const int64_t n_chunks = (rows + MATVEC_ROW_CHUNK - 1) / MATVEC_ROW_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t r0 = c * MATVEC_ROW_CHUNK;
        const int64_t r1 = r0 + MATVEC_ROW_CHUNK < rows ? r0 + MATVEC_ROW_CHUNK : rows;
        for (int64_t t = 0; t < n; t++)
            fn(ggml_type, w, row_bytes, cols, x + t * cols, y + t * rows, r0, r1);
    }
    return GQA_OK;
}
