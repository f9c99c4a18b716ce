/* test_determinism.c - same inputs, same thread count, same bits.
 *
 * gqa.h promises bitwise identical results from run to run at a fixed thread
 * count. For the reference and every fast kernel set, at 1, 2 and 3 threads,
 * each shape runs four times with a different shape in between (so a reused
 * workspace holds someone else's data), and every output and lse must equal
 * the first bit for bit. The shapes are a split-KV decode (H 32, G 1, d 128,
 * n_kv 4096, n_q 1: few KV heads and one query, so the keys are split across
 * threads and merged), a causal prefill and a windowed GQA decode.
 *
 * Different thread counts may split and merge differently, so across thread
 * counts the results need only agree within the tolerance of
 * test_attention.c (the same constants; see the justification there).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "test_util.h"

#define ATOL_OUT 2e-5 /* = test_attention.c */
#define RTOL_OUT 2e-4
#define ATOL_LSE 2e-5
#define RTOL_LSE 2e-5

#define N_REPEATS 4

typedef struct det_case {
    const char *label;
    int32_t H, G, d;
    int64_t n_q, n_kv, q_pos;
    int32_t causal, window;
    gqa_dtype dtype;
} det_case;

static const det_case cases[] = {
    {"split-KV decode", 32, 1, 128, 1, 4096, 4095, 1, 0, GQA_F16},
    {"causal prefill", 8, 2, 64, 256, 600, 344, 1, 0, GQA_F32},
    {"windowed GQA decode", 8, 2, 80, 3, 3000, 2997, 0, 1000, GQA_BF16},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
static const int thread_counts[] = {1, 2, 3};
#define N_THREADS ((int)(sizeof thread_counts / sizeof thread_counts[0]))

typedef struct det_data {
    float *q;
    void *k, *v;
} det_data;

static int passed, failed;

static void make(const det_case *c, int n, det_data *dd)
{
    size_t nq = (size_t)(c->n_q * c->H * c->d), nkv = (size_t)(c->n_kv * c->G * c->d);
    tu_rng rng;
    tu_rng_seed(&rng, 0xde7e2ull + (uint64_t)n);
    float *kf = tu_xmalloc(nkv * sizeof(float)), *vf = tu_xmalloc(nkv * sizeof(float));
    dd->q = tu_xmalloc(nq * sizeof(float));
    tu_fill_uniform(&rng, dd->q, nq, -1.0f, 1.0f);
    tu_fill_uniform(&rng, kf, nkv, -1.0f, 1.0f);
    tu_fill_uniform(&rng, vf, nkv, -1.0f, 1.0f);
    dd->k = tu_xmalloc(tu_bytes(c->dtype, nkv));
    dd->v = tu_xmalloc(tu_bytes(c->dtype, nkv));
    tu_encode(c->dtype, kf, dd->k, nkv);
    tu_encode(c->dtype, vf, dd->v, nkv);
    free(kf);
    free(vf);
}

static gqa_status run(const det_case *c, const det_data *dd, float *out, float *lse)
{
    gqa_attn_desc desc = {c->H, c->G, c->d, 0.0f, c->causal, c->window, c->dtype};
    return gqa_attention(&desc, c->n_q, c->n_kv, c->q_pos, dd->q, dd->k, dd->v, out, lse);
}

/* The index of the first differing float, or -1. */
static int64_t first_diff(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            return i;
    return -1;
}

static void check_kernel(const char *kernel, det_data *data)
{
    for (int n = 0; n < N_CASES; n++) {
        const det_case *c = &cases[n], *other = &cases[(n + 1) % N_CASES];
        int64_t n_out = c->n_q * c->H * c->d, n_lse = c->n_q * c->H;
        int64_t o_out = other->n_q * other->H * other->d, o_lse = other->n_q * other->H;
        float *first_out[N_THREADS], *first_lse[N_THREADS];
        float *out = tu_xmalloc((size_t)n_out * sizeof(float));
        float *lse = tu_xmalloc((size_t)n_lse * sizeof(float));
        float *oo = tu_xmalloc((size_t)o_out * sizeof(float));
        float *ol = tu_xmalloc((size_t)o_lse * sizeof(float));
        for (int t = 0; t < N_THREADS; t++) {
            first_out[t] = tu_xmalloc((size_t)n_out * sizeof(float));
            first_lse[t] = tu_xmalloc((size_t)n_lse * sizeof(float));
            gqa_set_num_threads(thread_counts[t]);
            int ok = 1;
            for (int rep = 0; rep < N_REPEATS && ok; rep++) {
                float *o = rep == 0 ? first_out[t] : out, *l = rep == 0 ? first_lse[t] : lse;
                gqa_status s = run(c, &data[n], o, l);
                if (s != GQA_OK) {
                    printf("FAIL [%s, %d threads] %s: %s (%s)\n", kernel, thread_counts[t],
                           c->label, gqa_status_string(s), gqa_last_error());
                    ok = 0;
                    break;
                }
                if (rep > 0) {
                    int64_t di = first_diff(first_out[t], out, n_out);
                    int64_t dl = first_diff(first_lse[t], lse, n_lse);
                    if (di >= 0 || dl >= 0) {
                        printf("FAIL [%s, %d threads] %s: call %d differs from call 1", kernel,
                               thread_counts[t], c->label, rep + 1);
                        if (di >= 0)
                            printf("; out[%lld] %.9g vs %.9g", (long long)di, (double)out[di],
                                   (double)first_out[t][di]);
                        if (dl >= 0)
                            printf("; lse[%lld] %.9g vs %.9g", (long long)dl, (double)lse[dl],
                                   (double)first_lse[t][dl]);
                        printf("\n");
                        ok = 0;
                    }
                }
                /* A different shape in between, through the same workspace. */
                if (rep == 1 && run(other, &data[(n + 1) % N_CASES], oo, ol) != GQA_OK) {
                    printf("FAIL [%s] %s: %s\n", kernel, other->label, gqa_last_error());
                    ok = 0;
                }
            }
            if (ok)
                passed++;
            else
                failed++;
        }
        /* Across thread counts: within tolerance of the 1-thread result. */
        for (int t = 1; t < N_THREADS; t++) {
            tu_check co, cl;
            tu_check_begin(&co, "out", ATOL_OUT, RTOL_OUT, c->H, c->d);
            tu_check_begin(&cl, "lse", ATOL_LSE, RTOL_LSE, c->H, 1);
            tu_check_range(&co, first_out[t], first_out[0], 0, n_out);
            tu_check_range(&cl, first_lse[t], first_lse[0], 0, n_lse);
            if (tu_check_ok(&co) && tu_check_ok(&cl)) {
                passed++;
            } else {
                failed++;
                printf("FAIL [%s] %s: %d threads vs 1 thread\n", kernel, c->label,
                       thread_counts[t]);
                if (!tu_check_ok(&co))
                    tu_check_report(&co);
                if (!tu_check_ok(&cl))
                    tu_check_report(&cl);
            }
        }
        for (int t = 0; t < N_THREADS; t++) {
            free(first_out[t]);
            free(first_lse[t]);
        }
        free(out);
        free(lse);
        free(oo);
        free(ol);
    }
}

int main(void)
{
    double t0 = tu_seconds();
    det_data data[N_CASES];
    for (int n = 0; n < N_CASES; n++)
        make(&cases[n], n, &data[n]);
    for (int ki = -1; ki < tu_n_fast_kernels; ki++) {
        const char *kernel = ki < 0 ? "ref" : tu_fast_kernels[ki];
        int sel = tu_select_kernel(kernel);
        if (sel < 0)
            failed++;
        if (sel == 1)
            check_kernel(kernel, data);
    }
    for (int n = 0; n < N_CASES; n++) {
        free(data[n].q);
        free(data[n].k);
        free(data[n].v);
    }
    printf("total %.1f s\n", tu_seconds() - t0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
