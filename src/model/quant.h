/* quant.h - weight types: block layouts, reference dequantisers and the
 * per-ISA matvec kernels behind gqa_matvec (internal; see docs/weights.md).
 *
 * Supported ggml types and their GGML block layouts (little-endian):
 *   f32   1 element,  4 bytes
 *   f16   1 element,  2 bytes (IEEE half)
 *   bf16  1 element,  2 bytes (upper half of an f32)
 *   q8_0  32 elements, 34 bytes: f16 d; int8 qs[32];  x[i] = qs[i] * d
 *   q4_0  32 elements, 18 bytes: f16 d; u8 qs[16];    x[i] = (nib(i) - 8) * d
 *   q4_1  32 elements, 20 bytes: f16 d; f16 m; u8 qs[16]; x[i] = nib(i) * d + m
 * where nib(i) = qs[i] & 15 for i < 16 and qs[i - 16] >> 4 for i >= 16.
 */
#ifndef GQA_MODEL_QUANT_H
#define GQA_MODEL_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"

#define GQA_QK 32 /* elements per block of the q* types */

/* 1 if gqa_matvec / gqa_dequantize_row handle this ggml type id. */
int gqa_quant_supported(uint32_t ggml_type);

/* Elements and bytes per block of a supported type (f32/f16/bf16: 1 element). */
void gqa_quant_block(uint32_t ggml_type, int64_t *block_elems, int64_t *block_bytes);

/* Reference dequantiser: n elements (a multiple of the block size) of a
 * supported type at src into dst. Plain C, one element at a time; this is
 * the definition the fast kernels are tested against. */
void gqa_dequant_row_ref(uint32_t ggml_type, const void *src, int64_t n, float *dst);

/* A matvec micro-kernel: for r in r0..r1-1,
 *   y[r] = sum_i W[r][i] * x[i],  i in 0..cols-1,
 * where row r of W starts at byte r * row_bytes of w and holds cols elements
 * of a supported type (cols a multiple of its block size; already checked).
 * Rows are dequantised in registers; accumulation is in f32. A row's result
 * depends only on that row and x, never on r0/r1, so any split over threads
 * gives bitwise identical output. */
typedef void (*gqa_matvec_fn)(uint32_t ggml_type, const void *w, int64_t row_bytes, int64_t cols,
                              const float *x, float *y, int64_t r0, int64_t r1);

void gqa_matvec_rows_ref(uint32_t ggml_type, const void *w, int64_t row_bytes, int64_t cols,
                         const float *x, float *y, int64_t r0, int64_t r1);
void gqa_matvec_rows_scalar(uint32_t ggml_type, const void *w, int64_t row_bytes, int64_t cols,
                            const float *x, float *y, int64_t r0, int64_t r1);
void gqa_matvec_rows_avx2(uint32_t ggml_type, const void *w, int64_t row_bytes, int64_t cols,
                          const float *x, float *y, int64_t r0, int64_t r1);
void gqa_matvec_rows_avx512(uint32_t ggml_type, const void *w, int64_t row_bytes, int64_t cols,
                            const float *x, float *y, int64_t r0, int64_t r1);
void gqa_matvec_rows_neon(uint32_t ggml_type, const void *w, int64_t row_bytes, int64_t cols,
                          const float *x, float *y, int64_t r0, int64_t r1);

#endif
