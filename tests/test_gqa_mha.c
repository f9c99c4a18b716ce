/* test_gqa_mha.c - GQA is MHA with each KV head shared by its group.
 *
 * For each shape, the same q with (a) G KV heads and (b) those heads copied
 * H/G times in group order (kx[j][h] = k[j][h / (H/G)]) with G = H must give
 * the same output and lse. Checked for the reference and every fast kernel
 * set this CPU runs, at 1 and 2 threads. This pins the head mapping (a wrong
 * h -> group formula disagrees by O(1)) and its independence from the tiling.
 *
 * Tolerance: 1e-6 absolute plus 1e-6 relative. Mathematically the two are
 * identical; a kernel set may still tile or split the two shapes differently
 * (e.g. split-KV only when there are few KV heads), which reorders float sums
 * at the 1e-7 level. A mapping bug is off by O(|v|) = O(1).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "test_util.h"

#define ATOL_SAME 1e-6
#define RTOL_SAME 1e-6

typedef struct mha_case {
    const char *label;
    int32_t H, G, d;
    int64_t n_q, n_kv, q_pos;
    int32_t causal, window;
    gqa_dtype dtype;
} mha_case;

static const mha_case cases[] = {
    {"decode, causal, f16", 8, 2, 64, 1, 1000, 999, 1, 0, GQA_F16},
    {"MQA split decode, non-causal, bf16", 32, 1, 128, 1, 4096, 0, 0, 0, GQA_BF16},
    {"prefill, causal, H/G 3, odd d, f32", 9, 3, 37, 64, 300, 236, 1, 0, GQA_F32},
    {"prefill, causal window 64, H/G 7, bf16", 14, 2, 80, 100, 500, 400, 1, 64, GQA_BF16},
    {"non-causal window 20 past the keys, f16", 8, 1, 96, 40, 113, 100, 0, 20, GQA_F16},
    {"MQA H 27, d 256, f32", 27, 1, 256, 7, 17, 0, 0, 0, GQA_F32},
};

#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static int passed, failed;

static void report(const mha_case *c, const char *kernel, int threads, const char *what)
{
    printf("FAIL [%s, %d threads] %s: H=%d G=%d d=%d n_q=%lld n_kv=%lld q_pos=%lld causal=%d "
           "window=%d dtype=%s: %s\n",
           kernel, threads, c->label, (int)c->H, (int)c->G, (int)c->d, (long long)c->n_q,
           (long long)c->n_kv, (long long)c->q_pos, (int)c->causal, (int)c->window,
           gqa_dtype_name(c->dtype), what);
}

static void run_shape(const mha_case *c, int case_no, const char *kernel, int threads,
                      const float *q, const void *k, const void *v, const void *kx, const void *vx)
{
    int64_t n_out = c->n_q * c->H * c->d, n_lse = c->n_q * c->H;
    gqa_attn_desc gqa = {c->H, c->G, c->d, 0.0f, c->causal, c->window, c->dtype};
    gqa_attn_desc mha = gqa;
    mha.n_kv_heads = c->H;
    tu_guarded out_g, lse_g, out_m, lse_m;
    tu_guarded_alloc(&out_g, (size_t)n_out);
    tu_guarded_alloc(&lse_g, (size_t)n_lse);
    tu_guarded_alloc(&out_m, (size_t)n_out);
    tu_guarded_alloc(&lse_m, (size_t)n_lse);

    gqa_set_num_threads(threads);
    gqa_status s1 = gqa_attention(&gqa, c->n_q, c->n_kv, c->q_pos, q, k, v, out_g.p, lse_g.p);
    gqa_status s2 = gqa_attention(&mha, c->n_q, c->n_kv, c->q_pos, q, kx, vx, out_m.p, lse_m.p);
    if (s1 != GQA_OK || s2 != GQA_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "status %s / %s: %s", gqa_status_string(s1),
                 gqa_status_string(s2), gqa_last_error());
        report(c, kernel, threads, msg);
        failed++;
    } else {
        tu_check co, cl;
        tu_check_begin(&co, "out (GQA vs MHA)", ATOL_SAME, RTOL_SAME, c->H, c->d);
        tu_check_begin(&cl, "lse (GQA vs MHA)", ATOL_SAME, RTOL_SAME, c->H, 1);
        tu_check_range(&co, out_g.p, out_m.p, 0, n_out);
        tu_check_range(&cl, lse_g.p, lse_m.p, 0, n_lse);
        /* Rows that see no key are zeros in both; everything else must be
         * finite, or agreement between two NaN outputs would pass. */
        int64_t nonfinite = 0;
        for (int64_t i = 0; i < n_out; i++)
            nonfinite += !isfinite(out_g.p[i]);
        int guards = tu_guarded_intact(&out_g) && tu_guarded_intact(&lse_g) &&
                     tu_guarded_intact(&out_m) && tu_guarded_intact(&lse_m);
        if (tu_check_ok(&co) && tu_check_ok(&cl) && guards && nonfinite == 0) {
            passed++;
        } else {
            report(c, kernel, threads, "GQA and MHA differ");
            printf("    case %d\n", case_no);
            if (!tu_check_ok(&co))
                tu_check_report(&co);
            if (!tu_check_ok(&cl))
                tu_check_report(&cl);
            if (!guards)
                printf("    wrote outside out/lse (guard band changed)\n");
            if (nonfinite)
                printf("    %lld non-finite output values\n", (long long)nonfinite);
            failed++;
        }
    }
    tu_guarded_free(&out_g);
    tu_guarded_free(&lse_g);
    tu_guarded_free(&out_m);
    tu_guarded_free(&lse_m);
}

int main(void)
{
    double t0 = tu_seconds();
    for (int n = 0; n < N_CASES; n++) {
        const mha_case *c = &cases[n];
        size_t nq = (size_t)(c->n_q * c->H * c->d), nkv = (size_t)(c->n_kv * c->G * c->d);
        size_t es = tu_dtype_size(c->dtype), row = (size_t)c->d * es;
        tu_rng rng;
        tu_rng_seed(&rng, 0x4d4841ull + (uint64_t)n);
        float *q = tu_xmalloc(nq * sizeof(float));
        float *kf = tu_xmalloc(nkv * sizeof(float)), *vf = tu_xmalloc(nkv * sizeof(float));
        tu_fill_uniform(&rng, q, nq, -1.0f, 1.0f);
        tu_fill_uniform(&rng, kf, nkv, -1.0f, 1.0f);
        tu_fill_uniform(&rng, vf, nkv, -1.0f, 1.0f);
        unsigned char *k = tu_xmalloc(nkv * es), *v = tu_xmalloc(nkv * es);
        tu_encode(c->dtype, kf, k, nkv);
        tu_encode(c->dtype, vf, v, nkv);

        /* The MHA copy: KV head h / (H/G) repeated for each query head h. */
        size_t nkx = (size_t)(c->n_kv * c->H) * row;
        unsigned char *kx = tu_xmalloc(nkx), *vx = tu_xmalloc(nkx);
        int64_t group = c->H / c->G;
        for (int64_t j = 0; j < c->n_kv; j++)
            for (int64_t h = 0; h < c->H; h++) {
                size_t dst = (size_t)(j * c->H + h) * row,
                       src = (size_t)(j * c->G + h / group) * row;
                memcpy(kx + dst, k + src, row);
                memcpy(vx + dst, v + src, row);
            }

        for (int ki = -1; ki < tu_n_fast_kernels; ki++) {
            const char *kernel = ki < 0 ? "ref" : tu_fast_kernels[ki];
            int sel = tu_select_kernel(kernel);
            if (sel < 0)
                failed++;
            if (sel != 1)
                continue;
            for (int threads = 1; threads <= 2; threads++)
                run_shape(c, n, kernel, threads, q, k, v, kx, vx);
        }
        free(q);
        free(kf);
        free(vf);
        free(k);
        free(v);
        free(kx);
        free(vx);
    }
    printf("total %.1f s\n", tu_seconds() - t0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
