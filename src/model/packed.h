/* packed.h - decode-speed weight layout for the forward pass (internal).
 *
 * The GGUF layouts (docs/weights.md) keep each row's blocks together, which
 * makes a SIMD matvec unpack, convert and scale every 32 weights on their
 * own. At load the model re-packs q4_0, q4_1 and q8_0 matrices into groups of
 * 16 rows: for each group and each 32-column block, the 16 rows' scales as
 * f32 vectors, then their quants interleaved so that one vector lane holds
 * one row. The activation vector is quantised once per matmul to int16 per
 * block of 32 (scale = max|x| / 32767, so each x is kept to ~1.5e-5 of its
 * block's largest value - far below the weights' own quantisation), and a
 * block's dot product for 16 rows is 16 int16 pair-products into int32
 * lanes, then one scale: exact integer arithmetic inside the block.
 *
 *   y[r] = sum_b ( d[r,b] * dx[b] * sum_i q[r,b,i] * xq[b,i]  +  m[r,b] * sx[b] )
 *
 * with q the weight's integer quant (q4_1: nibble, m = its min; q4_0:
 * nibble, m = -8 d; q8_0: int8, m = 0) and sx[b] the exact f32 sum of the
 * block's x. Scales stay f16, as in the file (copied bit for bit), so the
 * packed copy is no bigger than the GGUF data. Block layout of one group
 * (16 rows):
 *   q4_0: f16 d[16], uint8 qs[8][32]                  (288 bytes)
 *   q4_1: f16 d[16], f16 m[16], uint8 qs[8][32]       (320 bytes)
 *       qs[p] = for row j = 0..15: GGUF bytes qs_j[2p], qs_j[2p+1]; the low
 *       nibbles are elements 2p, 2p+1, the high nibbles 2p+16, 2p+17
 *   q8_0: f16 d[16], int8 q[16][32]                   (544 bytes)
 *       q[p] = for row j: elements 2p, 2p+1 of row j
 * Every part is 32-byte aligned.
 * Rows past the matrix's last (padding of the last group) are zero.
 */
#ifndef GQA_MODEL_PACKED_H
#define GQA_MODEL_PACKED_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"

#define PACK_ROWS 16

typedef struct packed_weight {
    uint32_t type;       /* source ggml type: q4_0, q4_1 or q8_0 */
    int64_t rows, cols;  /* cols % 32 == 0 */
    int64_t n_groups;    /* ceil(rows / 16) */
    int64_t n_blocks;    /* cols / 32 */
    size_t block_bytes;  /* bytes of one group's block (288, 320 or 544) */
    unsigned char *data; /* n_groups x n_blocks x block_bytes, 64-byte aligned */
} packed_weight;

/* An activation matrix quantised for the packed kernels: n rows of cols. */
typedef struct packed_x {
    int64_t n, cols, n_blocks;
    int16_t *q; /* n x cols */
    float *d;   /* n x n_blocks: block scales */
    float *s;   /* n x n_blocks: exact f32 sums of each block's x */
} packed_x;

/* 1 if the type can be packed. */
int gqa_pack_supported(uint32_t ggml_type);
/* Bytes the packed copy of a rows x cols matrix needs (0 if unsupported). */
size_t gqa_pack_bytes(uint32_t ggml_type, int64_t rows, int64_t cols);
/* Re-pack rows x cols weights of ggml_type (GGUF layout at src) into dst
 * (gqa_pack_bytes bytes, 64-byte aligned) and describe them in *w. */
void gqa_pack_weight(uint32_t ggml_type, const void *src, int64_t rows, int64_t cols,
                     unsigned char *dst, packed_weight *w);

/* Bytes of a packed_x for n rows of cols (one allocation, 64-byte aligned
 * parts), and carving one out of `mem`. */
size_t gqa_packed_x_bytes(int64_t n, int64_t cols);
void gqa_packed_x_init(packed_x *px, void *mem, int64_t n, int64_t cols);
/* Quantise n rows of cols floats. */
void gqa_packed_x_quantize(packed_x *px, const float *x);

/* y[t * ldy + r] for tokens t < px->n and rows r of groups g0..g1-1. */
typedef void (*gqa_packed_fn)(const packed_weight *w, const packed_x *px, int64_t g0, int64_t g1,
                              float *y, int64_t ldy);
void gqa_packed_rows_ref(const packed_weight *w, const packed_x *px, int64_t g0, int64_t g1,
                         float *y, int64_t ldy);
void gqa_packed_rows_avx512(const packed_weight *w, const packed_x *px, int64_t g0, int64_t g1,
                            float *y, int64_t ldy);

/* The kernel for the active kernel set, or NULL when the model should keep
 * the GGUF layout and gqa_matvec (no packed kernel for this ISA). */
gqa_packed_fn gqa_packed_kernel(void);

/* y = W x for all px->n rows, over gqa_get_num_threads() threads (by row
 * groups; each row's result is independent of the split). */
void gqa_packed_matmul(gqa_packed_fn fn, const packed_weight *w, const packed_x *px, float *y);
/* The same for n matrices that read the same input (Q, K, V; gate, up), in
 * one parallel region: y[i] = W[i] x. */
void gqa_packed_matmul_n(gqa_packed_fn fn, const packed_weight *const *w, const packed_x *px,
                         float *const *y, int n);

#endif
