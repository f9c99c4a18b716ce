/* ops.c - forward and backward of embedding, RMSNorm, linear (through
 * gqa_train_gemm), RoPE, SwiGLU and cross-entropy for training (ops.h).
 * Loops are split over rows (or, for sums over rows, over columns), so each
 * output element is computed by one thread in a fixed order: bitwise the same
 * at any thread count. */
#include "train/ops.h"

#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "model/llama_internal.h"
#include "train/gemm.h"
#include "train/glu_simd.h"

/* Elements per SwiGLU work item. */
#define GLU_CHUNK 4096

/* Columns of the RMSNorm weight gradient per work item. */
#define DW_BLOCK 32

/* Threads for a loop of `work` elements: one below ~32k (not worth a fork). */
static int nthreads(int64_t work)
{
    return work < 32768 ? 1 : gqa_threads_resolved();
}

void gqa_op_embed_fwd(const float *emb, const int32_t *tok, int64_t N, int64_t E, float *x)
{
    for (int64_t t = 0; t < N; t++)
        memcpy(x + t * E, emb + (int64_t)tok[t] * E, (size_t)E * sizeof(float));
}

void gqa_op_embed_bwd(const float *dx, const int32_t *tok, int64_t N, int64_t E, float *demb)
{
    /* serial: two rows may name the same token, and the order of their
     * additions must not depend on the thread count */
    for (int64_t t = 0; t < N; t++) {
        float *d = demb + (int64_t)tok[t] * E;
        const float *s = dx + t * E;
        for (int64_t i = 0; i < E; i++)
            d[i] += s[i];
    }
}

void gqa_op_rmsnorm_fwd(const float *x, const float *w, int64_t N, int64_t E, float eps, float *y,
                        float *rstd)
{
    const int nt = nthreads(N * E);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t t = 0; t < N; t++) /* the runtime's own row, so both compute the same */
        rstd[t] = gqa_llama_rms_norm_row(x + t * E, w, E, eps, y + t * E);
}

void gqa_op_rmsnorm_bwd(const float *x, const float *w, const float *rstd, const float *dy,
                        int64_t N, int64_t E, float *dx, float *dw)
{
    const int nt = nthreads(N * E);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < N; t++) {
            const float *xr = x + t * E, *g = dy + t * E;
            float *d = dx + t * E;
            const float r = rstd[t];
            double dot = 0.0;
            for (int64_t i = 0; i < E; i++)
                dot += (double)g[i] * (double)w[i] * (double)xr[i];
            const float c = (float)(dot * (double)r * (double)r * (double)r / (double)E);
            for (int64_t i = 0; i < E; i++)
                d[i] += r * g[i] * w[i] - xr[i] * c;
        }
        /* dw: blocks of columns, each summed over the rows in order by one
         * thread, reading the rows' segments contiguously */
#pragma omp for schedule(static)
        for (int64_t i0 = 0; i0 < E; i0 += DW_BLOCK) {
            const int64_t n = E - i0 < DW_BLOCK ? E - i0 : DW_BLOCK;
            double acc[DW_BLOCK] = {0};
            for (int64_t t = 0; t < N; t++) {
                const float *g = dy + t * E + i0, *xr = x + t * E + i0;
                const double r = (double)rstd[t];
                for (int64_t i = 0; i < n; i++)
                    acc[i] += (double)g[i] * (double)xr[i] * r;
            }
            for (int64_t i = 0; i < n; i++)
                dw[i0 + i] += (float)acc[i];
        }
    }
}

void gqa_op_linear_fwd(const float *x, const float *W, int64_t N, int64_t in, int64_t out, float *y)
{
    gqa_train_gemm(0, 1, N, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
}

void gqa_op_linear_bwd(const float *x, const float *W, const float *dy, int64_t N, int64_t in,
                       int64_t out, float beta_dx, float *dx, float *dW)
{
    if (dx)
        gqa_train_gemm(0, 0, N, in, out, 1.0f, dy, out, W, in, beta_dx, dx, in);
    gqa_train_gemm(1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
}

void gqa_op_linear_fwd_ref(const float *x, const float *W, int64_t N, int64_t in, int64_t out,
                           float *y)
{
    for (int64_t t = 0; t < N; t++)
        for (int64_t o = 0; o < out; o++) {
            double acc = 0.0;
            for (int64_t i = 0; i < in; i++)
                acc += (double)x[t * in + i] * (double)W[o * in + i];
            y[t * out + o] = (float)acc;
        }
}

void gqa_op_linear_bwd_ref(const float *x, const float *W, const float *dy, int64_t N, int64_t in,
                           int64_t out, float beta_dx, float *dx, float *dW)
{
    for (int64_t t = 0; dx && t < N; t++)
        for (int64_t i = 0; i < in; i++) {
            double acc = beta_dx != 0.0f ? (double)beta_dx * (double)dx[t * in + i] : 0.0;
            for (int64_t o = 0; o < out; o++)
                acc += (double)dy[t * out + o] * (double)W[o * in + i];
            dx[t * in + i] = (float)acc;
        }
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            double acc = (double)dW[o * in + i];
            for (int64_t t = 0; t < N; t++)
                acc += (double)dy[t * out + o] * (double)x[t * in + i];
            dW[o * in + i] = (float)acc;
        }
}

void gqa_op_rope_table(int64_t T, int32_t d, float base, float *cs)
{
    const int32_t half = d / 2;
    for (int64_t p = 0; p < T; p++)
        for (int32_t i = 0; i < half; i++) {
            /* the runtime's inverse frequency is rounded to float first */
            const float inv = (float)pow((double)base, -2.0 * i / (double)d);
            const double th = (double)p * (double)inv;
            cs[p * d + 2 * i] = (float)cos(th);
            cs[p * d + 2 * i + 1] = (float)sin(th);
        }
}

/* Rotate every pair by +theta (sign 1) or -theta (sign -1). */
static void rope_rotate(float *x, int64_t N, int64_t T, int32_t n_heads, int32_t d, const float *cs,
                        float sign)
{
    const int nt = nthreads(N * n_heads * d);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t r = 0; r < N; r++) {
        const float *c = cs + (r % T) * d;
        for (int32_t h = 0; h < n_heads; h++) {
            float *v = x + (r * n_heads + h) * d;
            for (int32_t i = 0; i < d / 2; i++) {
                const float x0 = v[2 * i], x1 = v[2 * i + 1];
                const float co = c[2 * i], si = sign * c[2 * i + 1];
                v[2 * i] = x0 * co - x1 * si;
                v[2 * i + 1] = x0 * si + x1 * co;
            }
        }
    }
}

void gqa_op_rope_fwd(float *x, int64_t N, int64_t T, int32_t n_heads, int32_t d, const float *cs)
{
    rope_rotate(x, N, T, n_heads, d, cs, 1.0f);
}

void gqa_op_rope_bwd(float *dx, int64_t N, int64_t T, int32_t n_heads, int32_t d, const float *cs)
{
    rope_rotate(dx, N, T, n_heads, d, cs, -1.0f);
}

/* The scalar SwiGLU kernels: the runtime's formula with libm's expf. */
static void glu_fwd_scalar(const float *g, const float *u, int64_t n, float *h)
{
    for (int64_t i = 0; i < n; i++)
        h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void glu_bwd_scalar(const float *g, const float *u, const float *dh, int64_t n, float *dg,
                           float *du)
{
    for (int64_t i = 0; i < n; i++) {
        const float s = 1.0f / (1.0f + expf(-g[i]));
        const float silu = g[i] * s;
        const float d = dh[i];
        dg[i] = d * u[i] * s * (1.0f + g[i] * (1.0f - s));
        du[i] = d * silu;
    }
}

/* The SwiGLU kernels of the active kernel set (glu_simd.h). */
static void glu_kernels(gqa_glu_fwd_fn *f, gqa_glu_bwd_fn *b)
{
    *f = glu_fwd_scalar;
    *b = glu_bwd_scalar;
#if defined(__x86_64__) || defined(_M_X64)
    const char *k = gqa_kernel_name();
    if (!strcmp(k, "avx512")) {
        *f = gqa_glu_fwd_avx512;
        *b = gqa_glu_bwd_avx512;
    } else if (!strcmp(k, "avx2")) {
        *f = gqa_glu_fwd_avx2;
        *b = gqa_glu_bwd_avx2;
    }
#endif
}

void gqa_op_swiglu_fwd(const float *g, const float *u, int64_t n, float *h)
{
    gqa_glu_fwd_fn f;
    gqa_glu_bwd_fn b;
    glu_kernels(&f, &b);
    const int64_t nc = (n + GLU_CHUNK - 1) / GLU_CHUNK;
    const int nt = nthreads(n);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < nc; c++) {
        const int64_t o = c * GLU_CHUNK, len = n - o < GLU_CHUNK ? n - o : GLU_CHUNK;
        f(g + o, u + o, len, h + o);
    }
}

void gqa_op_swiglu_bwd(const float *g, const float *u, const float *dh, int64_t n, float *dg,
                       float *du)
{
    gqa_glu_fwd_fn f;
    gqa_glu_bwd_fn b;
    glu_kernels(&f, &b);
    const int64_t nc = (n + GLU_CHUNK - 1) / GLU_CHUNK;
    const int nt = nthreads(n);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < nc; c++) {
        const int64_t o = c * GLU_CHUNK, len = n - o < GLU_CHUNK ? n - o : GLU_CHUNK;
        b(g + o, u + o, dh + o, len, dg + o, du + o);
    }
}

void gqa_op_swiglu_fwd_ref(const float *g, const float *u, int64_t n, float *h)
{
    glu_fwd_scalar(g, u, n, h);
}

void gqa_op_swiglu_bwd_ref(const float *g, const float *u, const float *dh, int64_t n, float *dg,
                           float *du)
{
    glu_bwd_scalar(g, u, dh, n, dg, du);
}

void gqa_op_ce_fwd(const float *logits, const int32_t *targets, int64_t N, int64_t V, float *lse,
                   float *loss)
{
    const int nt = nthreads(N * V);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t t = 0; t < N; t++) {
        const float *l = logits + t * V;
        float mx = l[0];
        for (int64_t j = 1; j < V; j++)
            mx = l[j] > mx ? l[j] : mx;
        double s = 0.0;
        for (int64_t j = 0; j < V; j++)
            s += (double)expf(l[j] - mx);
        const double ls = (double)mx + log(s);
        lse[t] = (float)ls;
        loss[t] = (float)(ls - (double)l[targets[t]]);
    }
}

void gqa_op_ce_bwd(const float *logits, const float *lse, const int32_t *targets, int64_t N,
                   int64_t V, float scale, float *dlogits)
{
    const int nt = nthreads(N * V);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t t = 0; t < N; t++) {
        const float *l = logits + t * V;
        float *d = dlogits + t * V;
        for (int64_t j = 0; j < V; j++)
            d[j] = scale * expf(l[j] - lse[t]);
        d[targets[t]] -= scale;
    }
}
