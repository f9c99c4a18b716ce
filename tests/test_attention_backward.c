/* test_attention_backward.c - gqa_attention_backward.
 *
 *  1. Finite differences: on small shapes, the reference backward against
 *     float64 central differences of a float64 attention forward (written
 *     here, independently of the library), for q, k and v.
 *  2. The shape sweep of the core tests (MHA, GQA, MQA; H/G = 3 and 7; d = 1,
 *     8, 13, 80, 256; lengths 1, 17, 113, 130; prefill, decode, chunks; causal,
 *     non-causal, windows): every fast kernel set against the reference, and
 *     1 thread bitwise equal to 2 threads.
 *  3. Masked keys: NaN in every key no query can see changes nothing, and
 *     those keys get exactly zero gradients.
 *  4. Errors: NULL pointers, non-f32 K/V, n_q = 0.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "test_util.h"

typedef struct bcase {
    int H, G, d;
    int64_t n_q, n_kv, q_pos;
    int causal, window;
} bcase;

/* The inputs, forward outputs and gradient buffers of one case. */
typedef struct bdata {
    bcase c;
    gqa_attn_desc desc;
    size_t nq, nkv; /* element counts */
    float *q, *k, *v, *out, *lse, *dout;
    float *dq, *dk, *dv;
} bdata;

static void bdata_make(bdata *b, const bcase *c, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    b->c = *c;
    b->desc = (gqa_attn_desc){.n_q_heads = c->H, .n_kv_heads = c->G, .head_dim = c->d,
                              .causal = c->causal, .window = c->window, .kv_dtype = GQA_F32};
    b->nq = (size_t)c->n_q * (size_t)c->H * (size_t)c->d;
    b->nkv = (size_t)c->n_kv * (size_t)c->G * (size_t)c->d;
    tu_rng r;
    tu_rng_seed(&r, seed);
    b->q = tu_xmalloc(sizeof(float) * (b->nq ? b->nq : 1));
    b->out = tu_xmalloc(sizeof(float) * (b->nq ? b->nq : 1));
    b->dout = tu_xmalloc(sizeof(float) * (b->nq ? b->nq : 1));
    b->dq = tu_xmalloc(sizeof(float) * (b->nq ? b->nq : 1));
    b->lse = tu_xmalloc(sizeof(float) * (size_t)(c->n_q * c->H + 1));
    b->k = tu_xmalloc(sizeof(float) * b->nkv);
    b->v = tu_xmalloc(sizeof(float) * b->nkv);
    b->dk = tu_xmalloc(sizeof(float) * b->nkv);
    b->dv = tu_xmalloc(sizeof(float) * b->nkv);
    /* Scores of a few units: softmax neither flat nor one-hot. */
    tu_fill_uniform(&r, b->q, b->nq, -1.5f, 1.5f);
    tu_fill_uniform(&r, b->k, b->nkv, -1.5f, 1.5f);
    tu_fill_uniform(&r, b->v, b->nkv, -1.0f, 1.0f);
    tu_fill_uniform(&r, b->dout, b->nq, -1.0f, 1.0f);
}

static void bdata_free(bdata *b)
{
    float *p[] = {b->q, b->k, b->v, b->out, b->lse, b->dout, b->dq, b->dk, b->dv};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
}

static gqa_status forward(bdata *b)
{
    return gqa_attention(&b->desc, b->c.n_q, b->c.n_kv, b->c.q_pos, b->q, b->k, b->v, b->out,
                         b->lse);
}

static gqa_status backward(bdata *b)
{
    return gqa_attention_backward(&b->desc, b->c.n_q, b->c.n_kv, b->c.q_pos, b->q, b->k, b->v,
                                  b->out, b->lse, b->dout, b->dq, b->dk, b->dv);
}

/* ------------------------------------------------ 1. finite differences -- */

/* L = sum over rows of dout . attention(q, k, v), all in float64. */
static double loss64(const bdata *b, const double *q, const double *k, const double *v)
{
    const bcase *c = &b->c;
    const int R = c->H / c->G;
    const double scale = 1.0 / sqrt((double)c->d);
    double L = 0.0;
    for (int64_t i = 0; i < c->n_q; i++) {
        int64_t lo, hi;
        tu_visible_keys(&b->desc, c->n_kv, c->q_pos + i, &lo, &hi);
        for (int h = 0; h < c->H; h++) {
            const int g = h / R;
            const double *qr = q + (i * c->H + h) * c->d;
            double m = -HUGE_VAL, l = 0.0;
            for (int64_t j = lo; j <= hi; j++) {
                double s = 0.0;
                for (int e = 0; e < c->d; e++)
                    s += qr[e] * k[(j * c->G + g) * c->d + e];
                m = fmax(m, s * scale);
            }
            for (int e = 0; e < c->d; e++) {
                double acc = 0.0;
                l = 0.0;
                for (int64_t j = lo; j <= hi; j++) {
                    double s = 0.0;
                    for (int f = 0; f < c->d; f++)
                        s += qr[f] * k[(j * c->G + g) * c->d + f];
                    const double w = exp(s * scale - m);
                    l += w;
                    acc += w * v[(j * c->G + g) * c->d + e];
                }
                if (l > 0.0)
                    L += (double)b->dout[(i * c->H + h) * c->d + e] * acc / l;
            }
        }
    }
    return L;
}

static double *to64(const float *x, size_t n)
{
    double *y = tu_xmalloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        y[i] = x[i];
    return y;
}

/* Central differences of loss64 in every element of one input. */
static void fd_check(const bdata *b, const char *what, int which, const float *grad, size_t n)
{
    double *q = to64(b->q, b->nq), *k = to64(b->k, b->nkv), *v = to64(b->v, b->nkv);
    double *x = which == 0 ? q : which == 1 ? k : v;
    const double eps = 1e-5;
    double max_err = 0.0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double x0 = x[i];
        x[i] = x0 + eps;
        const double lp = loss64(b, q, k, v);
        x[i] = x0 - eps;
        const double lm = loss64(b, q, k, v);
        x[i] = x0;
        const double fd = (lp - lm) / (2 * eps), err = fabs(fd - (double)grad[i]);
        max_err = fmax(max_err, err);
        /* f32 inputs and outputs: ~1e-6 relative; FD error ~eps^2. */
        if (err > 2e-5 + 1e-4 * fabs(fd)) {
            if (bad++ < 3)
                printf("  %s[%zu]: analytic %.8g, finite difference %.8g\n", what, i,
                       (double)grad[i], fd);
        }
    }
    CHECK(bad == 0, "finite differences: %s H=%d G=%d d=%d n_q=%lld n_kv=%lld causal=%d window=%d: "
                    "%d bad, max |err| %.3g",
          what, b->c.H, b->c.G, b->c.d, (long long)b->c.n_q, (long long)b->c.n_kv, b->c.causal,
          b->c.window, bad, max_err);
    free(q);
    free(k);
    free(v);
}

static void test_finite_differences(void)
{
    static const bcase cases[] = {
        {4, 2, 5, 7, 7, 0, 1, 0},  {3, 1, 4, 6, 6, 0, 1, 3}, {2, 2, 3, 3, 8, 5, 1, 0},
        {6, 3, 4, 4, 9, 0, 0, 0},  {4, 4, 6, 5, 5, 0, 0, 2},
    };
    for (int kset = -1; kset < tu_n_fast_kernels; kset++) {
        const char *name = kset < 0 ? "ref" : tu_fast_kernels[kset];
        if (tu_select_kernel(name) != 1)
            continue;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            bdata b;
            bdata_make(&b, &cases[i], 100 + i);
            CHECK(forward(&b) == GQA_OK, "forward: %s", gqa_last_error());
            CHECK(backward(&b) == GQA_OK, "backward (%s): %s", name, gqa_last_error());
            fd_check(&b, "d_q", 0, b.dq, b.nq);
            fd_check(&b, "d_k", 1, b.dk, b.nkv);
            fd_check(&b, "d_v", 2, b.dv, b.nkv);
            bdata_free(&b);
        }
    }
}

/* ------------------------------------------------------ 2. shape sweep -- */

static const bcase sweep[] = {
    /* prefill, causal: MHA, GQA, MQA, H/G = 3 and 7 */
    {4, 4, 8, 17, 17, 0, 1, 0},      {8, 2, 32, 113, 113, 0, 1, 0},  {7, 1, 13, 130, 130, 0, 1, 0},
    {9, 3, 80, 65, 65, 0, 1, 0},     {4, 1, 256, 17, 17, 0, 1, 0},   {2, 2, 1, 64, 64, 0, 1, 0},
    /* decode and chunks (bottom-right aligned) */
    {8, 2, 32, 1, 113, 112, 1, 0},   {6, 2, 16, 5, 70, 65, 1, 0},    {4, 4, 64, 1, 1, 0, 1, 0},
    /* non-causal, and queries past the keys */
    {6, 3, 24, 9, 130, 0, 0, 0},     {4, 2, 8, 3, 40, 100, 0, 0},
    /* windows (causal or not) */
    {8, 2, 32, 113, 113, 0, 1, 7},   {4, 1, 16, 130, 130, 0, 1, 64}, {3, 3, 8, 17, 17, 0, 1, 1},
    {6, 2, 8, 20, 50, 10, 0, 9},     {4, 2, 8, 4, 30, 40, 0, 5},
};

static void compare(const char *what, const char *kernel, const bcase *c, const float *got,
                    const float *ref, size_t n, int64_t heads, int64_t d)
{
    tu_check chk;
    /* f32 sums of up to ~130 products of O(1) terms against double sums. */
    tu_check_begin(&chk, what, 2e-5, 2e-4, heads, d);
    tu_check_range(&chk, got, ref, 0, (int64_t)n);
    if (!tu_check_ok(&chk))
        tu_check_report(&chk);
    CHECK(tu_check_ok(&chk),
          "%s %s vs ref: H=%d G=%d d=%d n_q=%lld n_kv=%lld q_pos=%lld causal=%d window=%d", what,
          kernel, c->H, c->G, c->d, (long long)c->n_q, (long long)c->n_kv, (long long)c->q_pos,
          c->causal, c->window);
}

static void test_sweep(void)
{
    for (size_t i = 0; i < sizeof sweep / sizeof sweep[0]; i++) {
        const bcase *c = &sweep[i];
        bdata ref, b;
        bdata_make(&ref, c, 1000 + i);
        if (tu_select_kernel("ref") != 1)
            return;
        CHECK(forward(&ref) == GQA_OK, "forward: %s", gqa_last_error());
        CHECK(backward(&ref) == GQA_OK, "ref backward: %s", gqa_last_error());
        for (int kset = 0; kset < tu_n_fast_kernels; kset++) {
            const char *name = tu_fast_kernels[kset];
            if (tu_select_kernel(name) != 1)
                continue;
            bdata_make(&b, c, 1000 + i);
            memcpy(b.out, ref.out, sizeof(float) * b.nq);
            memcpy(b.lse, ref.lse, sizeof(float) * (size_t)(c->n_q * c->H));
            gqa_set_num_threads(1);
            CHECK(backward(&b) == GQA_OK, "%s backward: %s", name, gqa_last_error());
            compare("d_q", name, c, b.dq, ref.dq, b.nq, c->H, c->d);
            compare("d_k", name, c, b.dk, ref.dk, b.nkv, c->G, c->d);
            compare("d_v", name, c, b.dv, ref.dv, b.nkv, c->G, c->d);
            /* 2 threads: bitwise the same (each output row has one owner). */
            float *dq1 = tu_xmalloc(sizeof(float) * (b.nq + 2 * b.nkv));
            memcpy(dq1, b.dq, sizeof(float) * b.nq);
            memcpy(dq1 + b.nq, b.dk, sizeof(float) * b.nkv);
            memcpy(dq1 + b.nq + b.nkv, b.dv, sizeof(float) * b.nkv);
            gqa_set_num_threads(2);
            CHECK(backward(&b) == GQA_OK, "%s backward: %s", name, gqa_last_error());
            CHECK(!memcmp(dq1, b.dq, sizeof(float) * b.nq) &&
                      !memcmp(dq1 + b.nq, b.dk, sizeof(float) * b.nkv) &&
                      !memcmp(dq1 + b.nq + b.nkv, b.dv, sizeof(float) * b.nkv),
                  "%s: 1 and 2 threads differ (case %zu)", name, i);
            free(dq1);
            gqa_set_num_threads(0);
            bdata_free(&b);
        }
        bdata_free(&ref);
    }
}

/* ---------------------------------------------------- 3. masked keys -- */

/* Queries at positions 40..49 with a window of 4 see keys 37..49 only. Fill
 * every other key with NaN: the gradients of the seen ones must not change,
 * the unseen get zeros. */
static void test_masked_nan(void)
{
    const bcase c = {4, 2, 16, 10, 60, 40, 1, 4};
    for (int kset = -1; kset < tu_n_fast_kernels; kset++) {
        const char *name = kset < 0 ? "ref" : tu_fast_kernels[kset];
        if (tu_select_kernel(name) != 1)
            continue;
        bdata a, b;
        bdata_make(&a, &c, 7);
        bdata_make(&b, &c, 7);
        CHECK(forward(&a) == GQA_OK && backward(&a) == GQA_OK, "%s", gqa_last_error());
        for (int64_t j = 0; j < c.n_kv; j++)
            if (j < 37 || j > 49)
                for (int e = 0; e < c.G * c.d; e++) {
                    b.k[j * c.G * c.d + e] = NAN;
                    b.v[j * c.G * c.d + e] = NAN;
                }
        CHECK(forward(&b) == GQA_OK && backward(&b) == GQA_OK, "%s", gqa_last_error());
        CHECK(!memcmp(a.dq, b.dq, sizeof(float) * a.nq), "%s: NaN in masked keys changed d_q",
              name);
        int bad = 0;
        for (int64_t j = 0; j < c.n_kv; j++)
            for (int e = 0; e < c.G * c.d; e++) {
                const size_t at = (size_t)(j * c.G * c.d + e);
                const int seen = j >= 37 && j <= 49;
                if (seen ? (a.dk[at] != b.dk[at] || a.dv[at] != b.dv[at])
                         : (b.dk[at] != 0.0f || b.dv[at] != 0.0f || a.dk[at] != 0.0f))
                    bad++;
            }
        CHECK(bad == 0, "%s: masked keys: %d wrong gradient elements", name, bad);
        bdata_free(&a);
        bdata_free(&b);
    }
}

/* ----------------------------------------------------------- 4. errors -- */

static void test_errors(void)
{
    const bcase c = {4, 2, 8, 3, 5, 2, 1, 0};
    bdata b;
    bdata_make(&b, &c, 3);
    tu_select_kernel(tu_fast_kernels[0]);
    CHECK(forward(&b) == GQA_OK, "%s", gqa_last_error());
    const gqa_attn_desc *dsc = &b.desc;
    CHECK(gqa_attention_backward(NULL, 3, 5, 2, b.q, b.k, b.v, b.out, b.lse, b.dout, b.dq, b.dk,
                                 b.dv) == GQA_ERR_INVALID_ARG,
          "NULL desc");
    CHECK(gqa_attention_backward(dsc, 3, 5, 2, b.q, b.k, b.v, b.out, NULL, b.dout, b.dq, b.dk,
                                 b.dv) == GQA_ERR_INVALID_ARG &&
              strstr(gqa_last_error(), "lse"),
          "NULL lse: %s", gqa_last_error());
    CHECK(gqa_attention_backward(dsc, 3, 5, 2, b.q, b.k, b.v, b.out, b.lse, b.dout, NULL, b.dk,
                                 b.dv) == GQA_ERR_INVALID_ARG,
          "NULL d_q");
    CHECK(gqa_attention_backward(dsc, 3, 5, 3, b.q, b.k, b.v, b.out, b.lse, b.dout, b.dq, b.dk,
                                 b.dv) == GQA_ERR_INVALID_ARG,
          "causal q_pos + n_q > n_kv");
    gqa_attn_desc f16 = *dsc;
    f16.kv_dtype = GQA_F16;
    CHECK(gqa_attention_backward(&f16, 3, 5, 2, b.q, b.k, b.v, b.out, b.lse, b.dout, b.dq, b.dk,
                                 b.dv) == GQA_ERR_UNSUPPORTED,
          "f16 K/V: %s", gqa_last_error());
    gqa_attn_desc odd = *dsc;
    odd.n_kv_heads = 3;
    CHECK(gqa_attention_backward(&odd, 3, 5, 2, b.q, b.k, b.v, b.out, b.lse, b.dout, b.dq, b.dk,
                                 b.dv) == GQA_ERR_INVALID_ARG,
          "H %% G != 0");
    /* n_q = 0: no query, no gradient; q and the others may be NULL. */
    for (size_t i = 0; i < b.nkv; i++)
        b.dk[i] = b.dv[i] = 1.0f;
    CHECK(gqa_attention_backward(dsc, 0, 5, 0, NULL, b.k, b.v, NULL, NULL, NULL, NULL, b.dk,
                                 b.dv) == GQA_OK,
          "n_q = 0: %s", gqa_last_error());
    int nonzero = 0;
    for (size_t i = 0; i < b.nkv; i++)
        nonzero += b.dk[i] != 0.0f || b.dv[i] != 0.0f;
    CHECK(nonzero == 0, "n_q = 0 leaves %d nonzero gradient elements", nonzero);
    bdata_free(&b);
}

int main(void)
{
    printf("test_attention_backward: default kernel set \"%s\"\n", gqa_kernel_name());
    test_finite_differences();
    test_sweep();
    test_masked_nan();
    test_errors();
    gqa_workspace_release();
    return tu_summary();
}
