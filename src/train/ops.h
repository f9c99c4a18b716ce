/* ops.h - forward and backward of the Llama block's operations for training
 * (internal; tests/test_train_ops.c checks each against float64 finite
 * differences). All arrays are row-major f32; "rows" are tokens. Backward
 * functions say whether they overwrite or add to their outputs. Every op
 * splits its work over independent outputs, so results are bitwise the same
 * for any thread count. */
#ifndef GQA_TRAIN_OPS_H
#define GQA_TRAIN_OPS_H

#include <stdint.h>

/* x[t] = emb[tok[t]]: emb n_vocab x E, x N x E. */
void gqa_op_embed_fwd(const float *emb, const int32_t *tok, int64_t N, int64_t E, float *x);
/* demb[tok[t]] += dx[t] (adds). */
void gqa_op_embed_bwd(const float *dx, const int32_t *tok, int64_t N, int64_t E, float *demb);

/* y[t] = x[t] * r_t * w, r_t = 1 / sqrt(mean(x[t]^2) + eps) (sum in double,
 * as the runtime); rstd: N floats (r_t), written. */
void gqa_op_rmsnorm_fwd(const float *x, const float *w, int64_t N, int64_t E, float eps, float *y,
                        float *rstd);
/* dx[t] += r dy*w - x r^3 / E * sum(dy*w*x);  dw += sum_t dy[t] * x[t] * r_t
 * (both add). */
void gqa_op_rmsnorm_bwd(const float *x, const float *w, const float *rstd, const float *dy,
                        int64_t N, int64_t E, float *dx, float *dw);

/* y = x W^T: x N x in, W out x in (a GGUF weight: rows of `in`), y N x out. */
void gqa_op_linear_fwd(const float *x, const float *W, int64_t N, int64_t in, int64_t out,
                       float *y);
/* dx = beta_dx * dx + dy W (beta_dx 0: overwrite, 1: add); dW += dy^T x
 * (adds). dx may be NULL (not wanted). */
void gqa_op_linear_bwd(const float *x, const float *W, const float *dy, int64_t N, int64_t in,
                       int64_t out, float beta_dx, float *dx, float *dW);
/* The naive loops of the same two functions, summing in double (reference). */
void gqa_op_linear_fwd_ref(const float *x, const float *W, int64_t N, int64_t in, int64_t out,
                           float *y);
void gqa_op_linear_bwd_ref(const float *x, const float *W, const float *dy, int64_t N, int64_t in,
                           int64_t out, float beta_dx, float *dx, float *dW);

/* cos/sin of every rotated pair for positions 0..T-1: cs is T x d floats
 * (cos, sin per pair), theta_i = base^(-2i/d) computed as the runtime does. */
void gqa_op_rope_table(int64_t T, int32_t d, float base, float *cs);
/* Rotate pairs (2i, 2i+1) of each of n_heads heads of N = B*T rows in place;
 * row r sits at position r % T. */
void gqa_op_rope_fwd(float *x, int64_t N, int64_t T, int32_t n_heads, int32_t d, const float *cs);
/* The transpose (rotation by -theta), in place on the gradient. */
void gqa_op_rope_bwd(float *dx, int64_t N, int64_t T, int32_t n_heads, int32_t d, const float *cs);

/* h = SiLU(g) * u over n elements, with the active kernel set's SIMD kernel
 * (glu_simd.h; scalar and ref use expf). */
void gqa_op_swiglu_fwd(const float *g, const float *u, int64_t n, float *h);
/* dg, du from dh (overwrite). */
void gqa_op_swiglu_bwd(const float *g, const float *u, const float *dh, int64_t n, float *dg,
                       float *du);
/* The same with libm's expf, one thread (the reference of the SIMD kernels). */
void gqa_op_swiglu_fwd_ref(const float *g, const float *u, int64_t n, float *h);
void gqa_op_swiglu_bwd_ref(const float *g, const float *u, const float *dh, int64_t n, float *dg,
                           float *du);

/* Cross-entropy of N rows of V logits against targets: lse[t] = log sum
 * exp(logits[t]) and loss[t] = lse[t] - logits[t][target[t]] (written). */
void gqa_op_ce_fwd(const float *logits, const int32_t *targets, int64_t N, int64_t V, float *lse,
                   float *loss);
/* dlogits = scale * (softmax(logits) - onehot(target)) (overwrite; may be
 * the logits array itself). */
void gqa_op_ce_bwd(const float *logits, const float *lse, const int32_t *targets, int64_t N,
                   int64_t V, float scale, float *dlogits);

#endif
