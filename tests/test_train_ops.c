/* test_train_ops.c - every training op's backward against float64 central
 * finite differences of a float64 forward written here (naive loops), and
 * the fast linear (gqa_train_gemm) against its naive reference.
 *
 * For each op the scalar L = sum(R * out) with a fixed random R is
 * differentiated: the f32 analytic gradient (the library) against
 * (L(p + h) - L(p - h)) / 2h of the float64 forward, h = 1e-5 (the FD error
 * is then ~1e-10, far below f32 rounding). Tolerance for every gradient:
 * |analytic - fd| <= 2e-5 * max|fd| + 1e-3 * |fd| - f32 rounding of sums of
 * a few hundred terms, with room for nothing else. The max error is printed.
 * Sizes are awkward (N 7, E 13, V 19, d 6 ...), 1 and 2 threads. SwiGLU runs on
 * every kernel set this CPU has (its SIMD kernels compute e^x themselves) and is
 * also compared with the expf reference over [-100, 12]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "train/ops.h"

#define FD_H     1e-5
#define RTOL     1e-3
#define ATOL_REL 2e-5

static tu_rng rng;

static double *dalloc(size_t n)
{
    return tu_xmalloc(n * sizeof(double));
}

static float *falloc(size_t n)
{
    return tu_xmalloc(n * sizeof(float) + 4);
}

/* n uniform values in [lo, hi), as floats and as the same doubles. */
static void fill2(float *f, double *d, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        f[i] = tu_rng_uniform(&rng, lo, hi);
        d[i] = f[i];
    }
}

/* A float64 forward L(ctx) of one op; the parameter being checked is
 * perturbed in place by the checker. */
typedef double (*loss_fn)(void *ctx);

/* Compare analytic[0..n) with central differences of f over p[0..n). */
static void fd_check(const char *what, loss_fn f, void *ctx, double *p, int64_t n,
                     const float *analytic)
{
    double *fd = dalloc((size_t)n);
    double fmax = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double keep = p[i];
        p[i] = keep + FD_H;
        const double lp = f(ctx);
        p[i] = keep - FD_H;
        const double lm = f(ctx);
        p[i] = keep;
        fd[i] = (lp - lm) / (2.0 * FD_H);
        fmax = fabs(fd[i]) > fmax ? fabs(fd[i]) : fmax;
    }
    double max_err = 0.0;
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)analytic[i] - fd[i]);
        max_err = e > max_err ? e : max_err;
        if (!(e <= ATOL_REL * fmax + RTOL * fabs(fd[i]))) {
            if (first < 0)
                first = i;
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %lld of %lld gradients off (first [%lld]: %.8g vs fd %.8g)", what,
          (long long)bad, (long long)n, (long long)first,
          first >= 0 ? (double)analytic[first] : 0.0, first >= 0 ? fd[first] : 0.0);
    printf("  %-28s n %5lld  max|fd| %.3e  max err %.3e\n", what, (long long)n, fmax, max_err);
    free(fd);
}

/* ------------------------------------------------------------ rmsnorm -- */
typedef struct norm_ctx {
    int64_t N, E;
    double eps, *x, *w, *R;
} norm_ctx;

static double norm_loss(void *vc)
{
    norm_ctx *c = vc;
    double L = 0.0;
    for (int64_t t = 0; t < c->N; t++) {
        double ss = 0.0;
        for (int64_t i = 0; i < c->E; i++)
            ss += c->x[t * c->E + i] * c->x[t * c->E + i];
        const double r = 1.0 / sqrt(ss / (double)c->E + c->eps);
        for (int64_t i = 0; i < c->E; i++)
            L += c->R[t * c->E + i] * c->x[t * c->E + i] * r * c->w[i];
    }
    return L;
}

static void test_rmsnorm(void)
{
    const int64_t N = 7, E = 13;
    norm_ctx c = {N, E, 1e-5, dalloc(N * E), dalloc(E), dalloc(N * E)};
    float *x = falloc(N * E), *w = falloc(E), *R = falloc(N * E), *y = falloc(N * E),
          *rstd = falloc(N), *dx = falloc(N * E), *dw = falloc(E);
    fill2(x, c.x, N * E, -2, 2);
    fill2(w, c.w, E, 0.5f, 1.5f);
    fill2(R, c.R, N * E, -1, 1);
    gqa_op_rmsnorm_fwd(x, w, N, E, 1e-5f, y, rstd);
    /* the forward itself against the double one, value by value */
    double worst = 0.0;
    for (int64_t t = 0; t < N; t++) {
        double ss = 0.0;
        for (int64_t i = 0; i < E; i++)
            ss += c.x[t * E + i] * c.x[t * E + i];
        for (int64_t i = 0; i < E; i++) {
            const double ref = c.x[t * E + i] / sqrt(ss / (double)E + 1e-5) * c.w[i];
            worst = fmax(worst, fabs(ref - (double)y[t * E + i]) / (fabs(ref) + 1e-6));
        }
    }
    CHECK(worst < 1e-6, "rmsnorm forward: relative error %.3g", worst);
    memset(dx, 0, N * E * sizeof(float));
    memset(dw, 0, E * sizeof(float));
    gqa_op_rmsnorm_bwd(x, w, rstd, R, N, E, dx, dw);
    fd_check("rmsnorm d/dx", norm_loss, &c, c.x, N * E, dx);
    fd_check("rmsnorm d/dw", norm_loss, &c, c.w, E, dw);
    free(c.x), free(c.w), free(c.R), free(x), free(w), free(R), free(y), free(rstd), free(dx),
        free(dw);
}

/* ------------------------------------------------------------- linear -- */
typedef struct lin_ctx {
    int64_t N, in, out;
    double *x, *W, *R;
} lin_ctx;

static double lin_loss(void *vc)
{
    lin_ctx *c = vc;
    double L = 0.0;
    for (int64_t t = 0; t < c->N; t++)
        for (int64_t o = 0; o < c->out; o++) {
            double y = 0.0;
            for (int64_t i = 0; i < c->in; i++)
                y += c->x[t * c->in + i] * c->W[o * c->in + i];
            L += c->R[t * c->out + o] * y;
        }
    return L;
}

static void test_linear(int64_t N, int64_t in, int64_t out)
{
    lin_ctx c = {N, in, out, dalloc(N * in), dalloc(out * in), dalloc(N * out)};
    float *x = falloc(N * in), *W = falloc(out * in), *R = falloc(N * out), *y = falloc(N * out),
          *yr = falloc(N * out), *dx = falloc(N * in), *dW = falloc(out * in),
          *dxr = falloc(N * in), *dWr = falloc(out * in);
    fill2(x, c.x, N * in, -1, 1);
    fill2(W, c.W, out * in, -1, 1);
    fill2(R, c.R, N * out, -1, 1);
    gqa_op_linear_fwd(x, W, N, in, out, y);
    gqa_op_linear_fwd_ref(x, W, N, in, out, yr);
    tu_check ck;
    tu_check_begin(&ck, "linear fwd fast vs ref", 1e-5 * (double)in, 1e-5, 1, out);
    tu_check_range(&ck, y, yr, 0, N * out);
    CHECK(tu_check_ok(&ck), "linear %lldx%lldx%lld forward", (long long)N, (long long)in,
          (long long)out);
    /* dx with beta 1 adds to what is there: start both at the same values */
    for (int64_t i = 0; i < N * in; i++)
        dx[i] = dxr[i] = 0.25f;
    memset(dW, 0, out * in * sizeof(float));
    memset(dWr, 0, out * in * sizeof(float));
    gqa_op_linear_bwd(x, W, R, N, in, out, 1.0f, dx, dW);
    gqa_op_linear_bwd_ref(x, W, R, N, in, out, 1.0f, dxr, dWr);
    tu_check_begin(&ck, "linear dx fast vs ref", 1e-5 * (double)out, 1e-5, 1, in);
    tu_check_range(&ck, dx, dxr, 0, N * in);
    CHECK(tu_check_ok(&ck), "linear dx fast vs ref");
    tu_check_begin(&ck, "linear dW fast vs ref", 1e-5 * (double)N, 1e-5, 1, in);
    tu_check_range(&ck, dW, dWr, 0, out * in);
    CHECK(tu_check_ok(&ck), "linear dW fast vs ref");
    for (int64_t i = 0; i < N * in; i++)
        dx[i] -= 0.25f;
    fd_check("linear d/dx", lin_loss, &c, c.x, N * in, dx);
    fd_check("linear d/dW", lin_loss, &c, c.W, out * in, dW);
    free(c.x), free(c.W), free(c.R), free(x), free(W), free(R), free(y), free(yr), free(dx),
        free(dW), free(dxr), free(dWr);
}

/* --------------------------------------------------------------- rope -- */
typedef struct rope_ctx {
    int64_t N, T;
    int32_t H, d;
    double base, *x, *R;
} rope_ctx;

static double rope_loss(void *vc)
{
    rope_ctx *c = vc;
    double L = 0.0;
    for (int64_t r = 0; r < c->N; r++)
        for (int32_t h = 0; h < c->H; h++)
            for (int32_t i = 0; i < c->d / 2; i++) {
                const double th = (double)(r % c->T) * pow(c->base, -2.0 * i / c->d);
                const int64_t o = (r * c->H + h) * c->d + 2 * i;
                const double x0 = c->x[o], x1 = c->x[o + 1];
                L += c->R[o] * (x0 * cos(th) - x1 * sin(th)) +
                     c->R[o + 1] * (x0 * sin(th) + x1 * cos(th));
            }
    return L;
}

static void test_rope(void)
{
    const int64_t B = 2, T = 5, N = B * T;
    const int32_t H = 3, d = 6;
    const int64_t n = N * H * d;
    rope_ctx c = {N, T, H, d, 10000.0, dalloc(n), dalloc(n)};
    float *x = falloc(n), *R = falloc(n), *cs = falloc(T * d), *y = falloc(n);
    fill2(x, c.x, n, -1, 1);
    fill2(R, c.R, n, -1, 1);
    gqa_op_rope_table(T, d, 10000.0f, cs);
    memcpy(y, x, n * sizeof(float));
    gqa_op_rope_fwd(y, N, T, H, d, cs);
    /* forward: L(x) computed from the rotated floats matches the double one */
    double L = 0.0;
    for (int64_t i = 0; i < n; i++)
        L += c.R[i] * (double)y[i];
    CHECK(fabs(L - rope_loss(&c)) < 1e-5, "rope forward: %.9g vs %.9g", L, rope_loss(&c));
    memcpy(y, R, n * sizeof(float));
    gqa_op_rope_bwd(y, N, T, H, d, cs);
    fd_check("rope d/dx", rope_loss, &c, c.x, n, y);
    free(c.x), free(c.R), free(x), free(R), free(cs), free(y);
}

/* ------------------------------------------------------------- swiglu -- */
typedef struct glu_ctx {
    int64_t n;
    double *g, *u, *R;
} glu_ctx;

static double glu_loss(void *vc)
{
    glu_ctx *c = vc;
    double L = 0.0;
    for (int64_t i = 0; i < c->n; i++)
        L += c->R[i] * c->g[i] / (1.0 + exp(-c->g[i])) * c->u[i];
    return L;
}

/* The SIMD SwiGLU of the active kernel set against the expf reference over a
 * wide range (clamps included) and an odd length: |a - b| <= 1e-6 S + 1e-30,
 * S the size of the output's terms (|g u| for h, |dh u| (1 + |g|) for dg,
 * |dh g| for du). */
static void glu_vs_ref(const char *kernel)
{
    const int64_t n = 10007;
    float *g = falloc(n), *u = falloc(n), *dh = falloc(n), *o[6];
    for (int i = 0; i < 6; i++)
        o[i] = falloc(n);
    for (int64_t i = 0; i < n; i++) {
        g[i] = i < 200 ? -100.0f + (float)i : tu_rng_uniform(&rng, -12, 12);
        u[i] = tu_rng_uniform(&rng, -2, 2);
        dh[i] = tu_rng_uniform(&rng, -1, 1);
    }
    gqa_op_swiglu_fwd(g, u, n, o[0]);
    gqa_op_swiglu_fwd_ref(g, u, n, o[1]);
    gqa_op_swiglu_bwd(g, u, dh, n, o[2], o[3]);
    gqa_op_swiglu_bwd_ref(g, u, dh, n, o[4], o[5]);
    /* errors relative to the size of the terms (dg's factor 1 + g (1 - s)
     * cancels near g = -1.28, so |b| alone would be no yardstick) */
    double worst = 0.0;
    int64_t bad = 0;
    for (int k = 0; k < 3; k++) {
        const float *a = o[k == 0 ? 0 : k + 1], *b = o[k == 0 ? 1 : k + 3];
        for (int64_t i = 0; i < n; i++) {
            const double gi = fabs((double)g[i]), ui = fabs((double)u[i]), di = fabs((double)dh[i]);
            const double S = k == 0 ? gi * ui : k == 1 ? di * ui * (1.0 + gi) : di * gi;
            const double e = fabs((double)a[i] - (double)b[i]);
            worst = fmax(worst, e / (S + 1e-30));
            bad += !(e <= 1e-6 * S + 1e-30);
        }
    }
    CHECK(bad == 0, "swiglu %s vs the expf reference: %lld values off (max rel %.3g)", kernel,
          (long long)bad, worst);
    printf("  swiglu %-8s vs expf reference: max err %.2e of the terms' size\n", kernel, worst);
    free(g), free(u), free(dh);
    for (int i = 0; i < 6; i++)
        free(o[i]);
}

static void test_swiglu(void)
{
    const int64_t n = 3 * 17;
    glu_ctx c = {n, dalloc(n), dalloc(n), dalloc(n)};
    float *g = falloc(n), *u = falloc(n), *R = falloc(n), *h = falloc(n), *dg = falloc(n),
          *du = falloc(n);
    fill2(g, c.g, n, -6, 6);
    fill2(u, c.u, n, -2, 2);
    fill2(R, c.R, n, -1, 1);
    static const char *const sets[] = {"avx512", "avx2", "scalar"};
    const char *dflt = gqa_kernel_name(); /* a static string */
    for (int k = 0; k < 3; k++) {
        if (tu_select_kernel(sets[k]) != 1)
            continue;
        gqa_op_swiglu_fwd(g, u, n, h);
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++)
            worst = fmax(worst, fabs((double)h[i] - c.g[i] / (1.0 + exp(-c.g[i])) * c.u[i]));
        CHECK(worst < 1e-5, "swiglu %s forward error %.3g", sets[k], worst);
        gqa_op_swiglu_bwd(g, u, R, n, dg, du);
        char what[48];
        snprintf(what, sizeof what, "swiglu %s d/dgate", sets[k]);
        fd_check(what, glu_loss, &c, c.g, n, dg);
        snprintf(what, sizeof what, "swiglu %s d/dup", sets[k]);
        fd_check(what, glu_loss, &c, c.u, n, du);
        glu_vs_ref(sets[k]);
    }
    gqa_set_kernel(dflt);
    free(c.g), free(c.u), free(c.R), free(g), free(u), free(R), free(h), free(dg), free(du);
}

/* ---------------------------------------------------- cross-entropy -- */
typedef struct ce_ctx {
    int64_t N, V;
    double scale, *l;
    const int32_t *tgt;
} ce_ctx;

static double ce_loss(void *vc)
{
    ce_ctx *c = vc;
    double L = 0.0;
    for (int64_t t = 0; t < c->N; t++) {
        double mx = -INFINITY, s = 0.0;
        for (int64_t j = 0; j < c->V; j++)
            mx = fmax(mx, c->l[t * c->V + j]);
        for (int64_t j = 0; j < c->V; j++)
            s += exp(c->l[t * c->V + j] - mx);
        L += c->scale * (mx + log(s) - c->l[t * c->V + c->tgt[t]]);
    }
    return L;
}

static void test_ce(void)
{
    const int64_t N = 7, V = 19;
    int32_t tgt[7];
    for (int i = 0; i < 7; i++)
        tgt[i] = tu_rng_int(&rng, 0, (int)V - 1);
    ce_ctx c = {N, V, 1.0 / 7.0, dalloc(N * V), tgt};
    float *l = falloc(N * V), *lse = falloc(N), *loss = falloc(N), *dl = falloc(N * V);
    fill2(l, c.l, N * V, -4, 4);
    gqa_op_ce_fwd(l, tgt, N, V, lse, loss);
    double sum = 0.0;
    for (int64_t t = 0; t < N; t++)
        sum += (double)loss[t] / 7.0;
    CHECK(fabs(sum - ce_loss(&c)) < 1e-5, "ce forward %.9g vs %.9g", sum, ce_loss(&c));
    gqa_op_ce_bwd(l, lse, tgt, N, V, 1.0f / 7.0f, dl);
    fd_check("cross-entropy d/dlogits", ce_loss, &c, c.l, N * V, dl);
    /* in place (dlogits == logits) gives the same bits */
    float *inplace = falloc(N * V);
    memcpy(inplace, l, N * V * sizeof(float));
    gqa_op_ce_bwd(inplace, lse, tgt, N, V, 1.0f / 7.0f, inplace);
    CHECK(!memcmp(inplace, dl, N * V * sizeof(float)), "ce backward in place differs");
    free(c.l), free(l), free(lse), free(loss), free(dl), free(inplace);
}

/* ---------------------------------------------------------- embedding -- */
typedef struct emb_ctx {
    int64_t N, E;
    const int32_t *tok;
    double *emb, *R;
} emb_ctx;

static double emb_loss(void *vc)
{
    emb_ctx *c = vc;
    double L = 0.0;
    for (int64_t t = 0; t < c->N; t++)
        for (int64_t i = 0; i < c->E; i++)
            L += c->R[t * c->E + i] * c->emb[c->tok[t] * c->E + i];
    return L;
}

static void test_embed(void)
{
    const int64_t N = 9, E = 5, V = 6;
    const int32_t tok[9] = {3, 0, 3, 5, 1, 3, 0, 2, 5}; /* repeats on purpose */
    emb_ctx c = {N, E, tok, dalloc(V * E), dalloc(N * E)};
    float *emb = falloc(V * E), *R = falloc(N * E), *x = falloc(N * E), *de = falloc(V * E);
    fill2(emb, c.emb, V * E, -1, 1);
    fill2(R, c.R, N * E, -1, 1);
    gqa_op_embed_fwd(emb, tok, N, E, x);
    CHECK(!memcmp(x + 2 * E, emb + 3 * E, E * sizeof(float)), "embedding row 2 is not token 3");
    memset(de, 0, V * E * sizeof(float));
    gqa_op_embed_bwd(R, tok, N, E, de);
    fd_check("embedding d/demb", emb_loss, &c, c.emb, V * E, de);
    free(c.emb), free(c.R), free(emb), free(R), free(x), free(de);
}

int main(void)
{
    for (int threads = 1; threads <= 2; threads++) {
        gqa_set_num_threads(threads);
        printf("threads %d\n", threads);
        tu_rng_seed(&rng, 1234);
        test_embed();
        test_rmsnorm();
        test_linear(7, 13, 11);
        test_linear(33, 70, 45); /* past the gemm's tiles in every dimension */
        test_rope();
        test_swiglu();
        test_ce();
    }
    /* bigger rows than the single-thread cut-off: 1 and 2 threads agree bitwise */
    const int64_t N = 300, E = 200, n = N * E;
    float *x = falloc(n), *w = falloc(E), *y1 = falloc(n), *y2 = falloc(n), *r1 = falloc(N),
          *r2 = falloc(N), *d1 = falloc(n), *d2 = falloc(n), *w1 = falloc(E), *w2 = falloc(E);
    tu_fill_uniform(&rng, x, n, -1, 1);
    tu_fill_uniform(&rng, w, E, 0, 2);
    memset(d1, 0, n * 4), memset(d2, 0, n * 4), memset(w1, 0, E * 4), memset(w2, 0, E * 4);
    gqa_set_num_threads(1);
    gqa_op_rmsnorm_fwd(x, w, N, E, 1e-5f, y1, r1);
    gqa_op_rmsnorm_bwd(x, w, r1, x, N, E, d1, w1);
    gqa_set_num_threads(2);
    gqa_op_rmsnorm_fwd(x, w, N, E, 1e-5f, y2, r2);
    gqa_op_rmsnorm_bwd(x, w, r2, x, N, E, d2, w2);
    CHECK(!memcmp(y1, y2, n * 4) && !memcmp(d1, d2, n * 4) && !memcmp(w1, w2, E * 4),
          "rmsnorm: 1 and 2 threads differ");
    free(x), free(w), free(y1), free(y2), free(r1), free(r2), free(d1), free(d2), free(w1),
        free(w2);
    return tu_summary();
}
