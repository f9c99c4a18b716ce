/* test_gemm.c - the trainer's matrix multiply (src/train/gemm.h).
 *
 * For the reference and every micro-kernel this CPU runs (scalar, avx2,
 * avx512), all four trans combinations, m, n, k in {1, 3, 17, 64, 113} plus
 * larger shapes that cross the k and n block sizes (k up to 1100, n up to
 * 1100), row strides padded past the row length, alpha in {1, -0.5},
 * beta in {0 (C starts as NaN), 1, 0.25}:
 *  - each result against the exact product in double: per element
 *      |got - exact| <= (k + 3) * 2^-24 * (|alpha| S + |beta c0|),
 *    S = sum_p |a_ip b_pj| (the f32 rounding bound of a k-term sum, the scale
 *    by alpha and the addition of beta C);
 *  - C's padding between rows is never written;
 *  - 1 and 2 threads give bitwise equal C (also on shapes big enough that the
 *    product runs threaded);
 *  - gqa_train_gemm follows the kernel set: GQA ref -> gqa_train_gemm_ref,
 *    otherwise the set's micro-kernel, bitwise.
 * k = 0 gives C = beta C. The public gqa_gemm_f32 rejects bad arguments and
 * otherwise equals gqa_train_gemm; gqa_gemm_kernel_info names the kernel.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "gqa_gemm.h"
#include "test_util.h"
#include "train/gemm.h"

#define U24      (1.0 / 16777216.0)
#define SENTINEL 12345.0f

typedef struct shape {
    int ta, tb;
    int64_t m, n, k;
    float alpha, beta;
} shape;

/* Operands of one case: A, B with padded strides, C's starting value. */
typedef struct operands {
    float *a, *b, *c0;
    int64_t lda, ldb, ldc;
    size_t na, nb, nc;
} operands;

static void make_operands(tu_rng *r, const shape *s, operands *o)
{
    const int64_t a_rows = s->ta ? s->k : s->m, a_cols = s->ta ? s->m : s->k;
    const int64_t b_rows = s->tb ? s->n : s->k, b_cols = s->tb ? s->k : s->n;
    o->lda = a_cols + tu_rng_int(r, 0, 5);
    o->ldb = b_cols + tu_rng_int(r, 0, 5);
    o->ldc = s->n + tu_rng_int(r, 0, 5);
    o->na = (size_t)(a_rows * o->lda);
    o->nb = (size_t)(b_rows * o->ldb);
    o->nc = (size_t)(s->m * o->ldc);
    o->a = tu_xmalloc((o->na + 1) * sizeof(float));
    o->b = tu_xmalloc((o->nb + 1) * sizeof(float));
    o->c0 = tu_xmalloc((o->nc + 1) * sizeof(float));
    tu_fill_uniform(r, o->a, o->na, -1.0f, 1.0f);
    tu_fill_uniform(r, o->b, o->nb, -1.0f, 1.0f);
    for (int64_t i = 0; i < s->m; i++)
        for (int64_t j = 0; j < o->ldc; j++)
            o->c0[i * o->ldc + j] = j >= s->n         ? SENTINEL
                                    : s->beta == 0.0f ? NAN
                                                      : tu_rng_uniform(r, -1.0f, 1.0f);
}

static void free_operands(operands *o)
{
    free(o->a);
    free(o->b);
    free(o->c0);
}

static double op_a(const shape *s, const operands *o, int64_t i, int64_t p)
{
    return s->ta ? o->a[p * o->lda + i] : o->a[i * o->lda + p];
}

static double op_b(const shape *s, const operands *o, int64_t p, int64_t j)
{
    return s->tb ? o->b[j * o->ldb + p] : o->b[p * o->ldb + j];
}

/* Runs one kernel (NULL: the reference) on a fresh copy of C. */
static float *run(const gqa_gemm_kernel *kn, const shape *s, const operands *o)
{
    float *c = tu_xmalloc((o->nc + 1) * sizeof(float));
    memcpy(c, o->c0, o->nc * sizeof(float));
    gqa_train_gemm_with(kn, s->ta, s->tb, s->m, s->n, s->k, s->alpha, o->a, o->lda, o->b, o->ldb,
                        s->beta, c, o->ldc);
    return c;
}

/* got against the exact double product; 1 when every element is within the
 * bound and the padding holds the sentinel. */
static int check_exact(const char *who, const shape *s, const operands *o, const float *got)
{
    int64_t bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < s->m; i++) {
        for (int64_t j = 0; j < o->ldc; j++) {
            const float g = got[i * o->ldc + j];
            if (j >= s->n) {
                if (memcmp(&g, &(float){SENTINEL}, sizeof g) != 0 && bad++ < 3)
                    printf("  %s: padding C[%lld][%lld] written\n", who, (long long)i,
                           (long long)j);
                continue;
            }
            double exact = 0.0, mag = 0.0;
            for (int64_t p = 0; p < s->k; p++) {
                const double t = op_a(s, o, i, p) * op_b(s, o, p, j);
                exact += t;
                mag += fabs(t);
            }
            exact *= (double)s->alpha;
            mag *= fabs((double)s->alpha);
            if (s->beta != 0.0f) {
                const double cb = (double)s->beta * (double)o->c0[i * o->ldc + j];
                exact += cb;
                mag += fabs(cb);
            }
            const double err = fabs((double)g - exact);
            const double tol = (double)(s->k + 3) * U24 * mag + 1e-30;
            if (!(err <= tol)) {
                if (bad++ < 3)
                    printf("  %s: C[%lld][%lld] = %.9g, exact %.9g, bound %.3g\n", who,
                           (long long)i, (long long)j, (double)g, exact, tol);
            } else if (err / tol > worst) {
                worst = err / tol;
            }
        }
    }
    if (bad)
        printf("  %s: %lld bad elements (worst passing error %.2f of the bound)\n", who,
               (long long)bad, worst);
    return bad == 0;
}

static int same_bits(const float *x, const float *y, size_t n)
{
    return memcmp(x, y, n * sizeof(float)) == 0;
}

/* Kernels under test: NULL (reference) and every micro-kernel here. */
static const gqa_gemm_kernel *kernels[4];
static int n_kernels;

static void case_all_kernels(tu_rng *r, const shape *s, int exact)
{
    operands o;
    make_operands(r, s, &o);
    for (int ki = 0; ki < n_kernels; ki++) {
        const gqa_gemm_kernel *kn = kernels[ki];
        const char *name = kn ? kn->name : "ref";
        char who[160];
        snprintf(who, sizeof who, "%s ta=%d tb=%d m=%lld n=%lld k=%lld alpha=%g beta=%g", name,
                 s->ta, s->tb, (long long)s->m, (long long)s->n, (long long)s->k, (double)s->alpha,
                 (double)s->beta);
        gqa_set_num_threads(1);
        float *c1 = run(kn, s, &o);
        gqa_set_num_threads(2);
        float *c2 = run(kn, s, &o);
        if (exact)
            CHECK(check_exact(who, s, &o, c1), "%s: against the exact product", who);
        CHECK(same_bits(c1, c2, o.nc), "%s: 1 and 2 threads differ", who);
        free(c1);
        free(c2);
    }
    free_operands(&o);
}

static void sweep(tu_rng *r)
{
    static const int64_t sizes[] = {1, 3, 17, 64, 113};
    static const float alphas[] = {1.0f, -0.5f}, betas[] = {0.0f, 1.0f, 0.25f};
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    int idx = 0;
    for (int t = 0; t < 4; t++)
        for (int im = 0; im < ns; im++)
            for (int in = 0; in < ns; in++)
                for (int ik = 0; ik < ns; ik++, idx++) {
                    shape s = {t & 1,     t >> 1,          sizes[im],     sizes[in],
                               sizes[ik], alphas[idx % 2], betas[idx % 3]};
                    case_all_kernels(r, &s, 1);
                }
}

/* Shapes that cross the block sizes (k > 512 splits k; n > 512 splits n),
 * and training-like shapes big enough to run threaded. */
static void big_shapes(tu_rng *r)
{
    static const int64_t mnk[][3] = {
        {257, 40, 1030}, {30, 1100, 70}, {257, 257, 257}, {5, 600, 600}, {200, 96, 300}};
    for (size_t i = 0; i < sizeof mnk / sizeof mnk[0]; i++)
        for (int t = 0; t < 4; t++) {
            shape s = {t & 1,
                       t >> 1,
                       mnk[i][0],
                       mnk[i][1],
                       mnk[i][2],
                       t == 2 ? -0.5f : 1.0f,
                       t == 1   ? 0.0f
                       : t == 3 ? 0.25f
                                : 1.0f};
            case_all_kernels(r, &s, 1);
        }
}

/* gqa_train_gemm picks the reference under GQA ref and the set's kernel
 * otherwise: bitwise the same as calling them directly. */
static void dispatch(tu_rng *r)
{
    const char *sets[] = {"ref", "scalar", "avx2", "avx512"};
    shape s = {0, 1, 70, 90, 130, 1.0f, 0.25f};
    operands o;
    make_operands(r, &s, &o);
    for (int i = 0; i < 4; i++) {
        const int ok = tu_select_kernel(sets[i]);
        if (ok <= 0) {
            CHECK(ok == 0, "cannot select kernel set %s", sets[i]);
            continue;
        }
        const gqa_gemm_kernel *kn = gqa_gemm_kernel_for(sets[i]);
        CHECK((kn == NULL) == (strcmp(sets[i], "ref") == 0), "%s: kernel_for", sets[i]);
        float *want = run(kn, &s, &o);
        float *c = tu_xmalloc((o.nc + 1) * sizeof(float));
        memcpy(c, o.c0, o.nc * sizeof(float));
        gqa_train_gemm(s.ta, s.tb, s.m, s.n, s.k, s.alpha, o.a, o.lda, o.b, o.ldb, s.beta, c,
                       o.ldc);
        CHECK(same_bits(c, want, o.nc), "%s: gqa_train_gemm is not the set's kernel", sets[i]);
        free(want);
        free(c);
    }
    free_operands(&o);
    CHECK(tu_select_kernel("ref") == 1, "back to ref");
}

/* k = 0: C = beta C, and C untouched for m or n = 0. */
static void degenerate(void)
{
    float a[1] = {1.0f}, b[1] = {1.0f}, c[4] = {2.0f, -4.0f, 8.0f, 1.0f};
    for (int ki = 0; ki < n_kernels; ki++) {
        float x[4];
        memcpy(x, c, sizeof x);
        gqa_train_gemm_with(kernels[ki], 0, 0, 2, 2, 0, 1.0f, a, 1, b, 2, 0.5f, x, 2);
        CHECK(x[0] == 1.0f && x[1] == -2.0f && x[2] == 4.0f && x[3] == 0.5f, "k = 0, beta 0.5");
        x[0] = NAN;
        gqa_train_gemm_with(kernels[ki], 0, 0, 1, 1, 0, 1.0f, a, 1, b, 1, 0.0f, x, 1);
        CHECK(x[0] == 0.0f, "k = 0, beta 0 on NaN");
        gqa_train_gemm_with(kernels[ki], 0, 0, 0, 2, 3, 1.0f, NULL, 3, NULL, 2, 0.0f, x, 2);
        gqa_train_gemm_with(kernels[ki], 0, 0, 2, 0, 3, 1.0f, NULL, 3, NULL, 0, 0.0f, x, 1);
        CHECK(x[1] == -2.0f, "m or n = 0 writes nothing");
    }
}

/* gqa_gemm_f32: the checks in front of gqa_train_gemm, then the same bits. */
static void public_api(tu_rng *r)
{
    float a[12], b[12], c[9];
    tu_fill_uniform(r, a, 12, -1.0f, 1.0f);
    tu_fill_uniform(r, b, 12, -1.0f, 1.0f);
    CHECK(gqa_gemm_f32(0, 0, -1, 3, 4, 1.0f, a, 4, b, 3, 0.0f, c, 3) == GQA_ERR_INVALID_ARG,
          "negative m");
    CHECK(gqa_gemm_f32(0, 0, 3, 3, 4, 1.0f, NULL, 4, b, 3, 0.0f, c, 3) == GQA_ERR_INVALID_ARG,
          "NULL a");
    CHECK(gqa_gemm_f32(0, 0, 3, 3, 4, 1.0f, a, 3, b, 3, 0.0f, c, 3) == GQA_ERR_INVALID_ARG,
          "lda < k");
    CHECK(gqa_gemm_f32(1, 0, 3, 3, 4, 1.0f, a, 2, b, 3, 0.0f, c, 3) == GQA_ERR_INVALID_ARG,
          "lda < m, transposed");
    CHECK(gqa_gemm_f32(0, 1, 3, 3, 4, 1.0f, a, 4, b, 3, 0.0f, c, 3) == GQA_ERR_INVALID_ARG,
          "ldb < k, transposed");
    CHECK(gqa_gemm_f32(0, 0, 3, 3, 4, 1.0f, a, 4, b, 3, 0.0f, c, 2) == GQA_ERR_INVALID_ARG,
          "ldc < n");
    CHECK(strstr(gqa_last_error(), "ldc") != NULL, "message names ldc: %s", gqa_last_error());
    CHECK(gqa_gemm_f32(0, 0, 0, 3, 4, 1.0f, NULL, 4, NULL, 3, 0.0f, NULL, 3) == GQA_OK, "m = 0");
    float want[9];
    gqa_train_gemm(0, 1, 3, 3, 4, 0.5f, a, 4, b, 4, 0.0f, want, 3);
    CHECK(gqa_gemm_f32(0, 1, 3, 3, 4, 0.5f, a, 4, b, 4, 0.0f, c, 3) == GQA_OK, "valid call");
    CHECK(same_bits(c, want, 9), "gqa_gemm_f32 differs from gqa_train_gemm");
    const gqa_gemm_kernel *kn = gqa_gemm_kernel_for(gqa_kernel_name());
    char info[64] = "ref";
    if (kn)
        snprintf(info, sizeof info, "%s %dx%d", kn->name, kn->mr, kn->nr);
    CHECK(strcmp(gqa_gemm_kernel_info(), info) == 0, "kernel info '%s', kernel %s",
          gqa_gemm_kernel_info(), info);
}

int main(void)
{
    tu_rng r;
    tu_rng_seed(&r, 0x6e3a11);
    const char *names[] = {"scalar", "avx2", "avx512"};
    kernels[n_kernels++] = NULL;
    for (int i = 0; i < 3; i++) {
        const gqa_gemm_kernel *kn = gqa_gemm_kernel_for(names[i]);
        if (kn)
            kernels[n_kernels++] = kn;
        else
            printf("note: gemm kernel %s not available here\n", names[i]);
    }
    const double t0 = tu_seconds();
    degenerate();
    sweep(&r);
    big_shapes(&r);
    dispatch(&r);
    for (int i = 0; i < 4; i++) {
        const char *sets[] = {"ref", "scalar", "avx2", "avx512"};
        if (tu_select_kernel(sets[i]) == 1)
            public_api(&r);
    }
    printf("gemm: %d kernels, %.1f s\n", n_kernels, tu_seconds() - t0);
    return tu_summary();
}
