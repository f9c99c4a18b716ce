/* glu_simd.h - the SwiGLU kernels of the trainer per ISA (internal).
 *
 * SwiGLU is the one element-wise op of training that costs real time (an
 * exp per element of the N x n_ff gate, forward and backward). The scalar
 * kernel in ops.c calls expf; these compute e^x with a polynomial in SIMD
 * registers (x = k ln2 + r, |r| <= ln2/2, degree-6 Taylor for e^r, times 2^k;
 * x clamped to [-87, 88], which changes no SiLU result; relative error of
 * e^x below 3e-7). Each element is computed alone, so results do not depend
 * on the thread count or the split into chunks. test_train_ops compares them
 * with the scalar kernel and checks their gradients against finite
 * differences. */
#ifndef GQA_TRAIN_GLU_SIMD_H
#define GQA_TRAIN_GLU_SIMD_H

#include <stdint.h>

/* h = SiLU(g) * u over n elements. */
typedef void (*gqa_glu_fwd_fn)(const float *g, const float *u, int64_t n, float *h);
/* dg = dh * u * s * (1 + g (1 - s)), du = dh * g * s, s = sigmoid(g). */
typedef void (*gqa_glu_bwd_fn)(const float *g, const float *u, const float *dh, int64_t n,
                               float *dg, float *du);

#if defined(__x86_64__) || defined(_M_X64)
void gqa_glu_fwd_avx512(const float *g, const float *u, int64_t n, float *h);
void gqa_glu_bwd_avx512(const float *g, const float *u, const float *dh, int64_t n, float *dg,
                        float *du);
void gqa_glu_fwd_avx2(const float *g, const float *u, int64_t n, float *h);
void gqa_glu_bwd_avx2(const float *g, const float *u, const float *dh, int64_t n, float *dg,
                      float *du);
#endif

#endif
