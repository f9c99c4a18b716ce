/* test_kv_attention.c - batched paged attention (gqa_kv_attention) against
 * the core kernel on contiguous copies, under random cache histories.
 *
 * A random walk of thousands of operations (create, append, reserve + write
 * one layer at a time, fork, truncate, free, attend) runs on the paged cache.
 * After every attend step, each sequence of a random batch is read back as
 * f32 ([token][head][dim], dequantised) and gqa_attention on that contiguous
 * copy is the expectation for gqa_kv_attention on the blocks. Both read the
 * same f32 values (dequantisation is exact arithmetic on the stored values),
 * so the only differences are the order of float accumulation:
 * atol 2e-5, rtol 2e-4, the same as the core sweep for f32.
 * It also measures q8_0's error against f32 storage on the same data, and
 * runs every available kernel set (ref included) and 1 and 2 threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "test_util.h"

#define ATOL 2e-5
#define RTOL 2e-4
#define MAX_SEQS 12


typedef struct shape {
    int L, H, G, d, block_tokens;
    gqa_dtype dtype;
    int causal, window;
} shape;

/* Append n random tokens to seq, all layers at once or layer by layer. */
static gqa_status append_random(gqa_kv_cache *c, const shape *s, int32_t seq, int64_t n,
                                tu_rng *rng, int by_layer)
{
    const size_t per_layer = (size_t)n * s->G * s->d;
    float *k = tu_xmalloc(per_layer * s->L * sizeof(float));
    float *v = tu_xmalloc(per_layer * s->L * sizeof(float));
    tu_fill_uniform(rng, k, per_layer * s->L, -1.0f, 1.0f);
    tu_fill_uniform(rng, v, per_layer * s->L, -1.0f, 1.0f);
    gqa_status st;
    if (!by_layer) {
        st = gqa_kv_seq_append(c, seq, n, k, v);
    } else {
        const int64_t pos = gqa_kv_seq_len(c, seq);
        st = gqa_kv_seq_reserve(c, seq, n);
        for (int l = 0; st == GQA_OK && l < s->L; l++)
            st = gqa_kv_write_layer(c, seq, l, pos, n, k + per_layer * l, v + per_layer * l);
    }
    free(k);
    free(v);
    return st;
}

/* One attend step: a random batch of live sequences, random n_q each. */
static void attend(gqa_kv_cache *c, const shape *s, const int32_t *live, int n_live, tu_rng *rng,
                   const char *kernel, int threads, int step)
{
    gqa_kv_batch_item items[MAX_SEQS];
    float *q[MAX_SEQS], *out[MAX_SEQS], *lse[MAX_SEQS];
    int n = 0;
    const int layer = tu_rng_int(rng, 0, s->L - 1);
    for (int i = 0; i < n_live; i++) {
        const int64_t len = gqa_kv_seq_len(c, live[i]);
        if (len < 1 || tu_rng_int(rng, 0, 3) == 0)
            continue;
        int64_t nq = tu_rng_int(rng, 0, 2) == 0 ? tu_rng_int(rng, 1, (int)(len < 40 ? len : 40)) : 1;
        const size_t qn = (size_t)nq * s->H * s->d;
        q[n] = tu_xmalloc(qn * sizeof(float));
        out[n] = tu_xmalloc(qn * sizeof(float));
        lse[n] = tu_xmalloc((size_t)nq * s->H * sizeof(float));
        tu_fill_uniform(rng, q[n], qn, -1.0f, 1.0f);
        items[n] = (gqa_kv_batch_item){live[i], nq, q[n], out[n], lse[n]};
        n++;
    }
    if (n == 0)
        return;
    const gqa_attn_desc desc = {s->H, s->G, s->d, 0.0f, s->causal, s->window, s->dtype};
    gqa_attn_desc d32 = desc;
    d32.kv_dtype = GQA_F32;
    gqa_status st = gqa_kv_attention(c, layer, &desc, items, n);
    CHECK(st == GQA_OK, "[%s/%d] step %d: gqa_kv_attention: %s (%s)", kernel, threads, step,
          gqa_status_string(st), gqa_last_error());
    for (int i = 0; st == GQA_OK && i < n; i++) {
        const int64_t len = gqa_kv_seq_len(c, items[i].seq), nq = items[i].n_q;
        const size_t kn = (size_t)len * s->G * s->d, qn = (size_t)nq * s->H * s->d;
        float *k = tu_xmalloc(kn * sizeof(float)), *v = tu_xmalloc(kn * sizeof(float));
        float *want = tu_xmalloc(qn * sizeof(float));
        float *want_lse = tu_xmalloc((size_t)nq * s->H * sizeof(float));
        gqa_status rs = gqa_kv_read_layer(c, items[i].seq, layer, 0, len, k, v);
        CHECK(rs == GQA_OK, "read_layer: %s", gqa_last_error());
        rs = gqa_attention(&d32, nq, len, len - nq, q[i], k, v, want, want_lse);
        CHECK(rs == GQA_OK, "gqa_attention: %s", gqa_last_error());
        tu_check chk;
        char what[160];
        snprintf(what, sizeof what,
                 "[%s/%d threads] step %d seq %d len %lld n_q %lld layer %d %s bt %d", kernel,
                 threads, step, (int)items[i].seq, (long long)len, (long long)nq, layer,
                 gqa_dtype_name(s->dtype), s->block_tokens);
        tu_check_begin(&chk, what, ATOL, RTOL, s->H, s->d);
        tu_check_range(&chk, out[i], want, 0, (int64_t)qn);
        if (!tu_check_ok(&chk))
            tu_check_report(&chk);
        CHECK(tu_check_ok(&chk), "%s: output differs from contiguous attention", what);
        double lse_err = 0.0;
        for (size_t e = 0; e < (size_t)nq * s->H; e++) {
            double diff = fabs((double)lse[i][e] - (double)want_lse[e]);
            lse_err = diff > lse_err ? diff : lse_err;
        }
        CHECK(lse_err <= 1e-4, "%s: lse differs by %g", what, lse_err);
        free(k);
        free(v);
        free(want);
        free(want_lse);
    }
    for (int i = 0; i < n; i++) {
        free(q[i]);
        free(out[i]);
        free(lse[i]);
    }
}

static void random_walk(const shape *s, const char *kernel, int threads, int steps, uint64_t seed)
{
    const uint64_t bpt = gqa_kv_bytes_per_token(s->L, s->G, s->d, s->dtype);
    gqa_kv_config cfg = {s->L, s->G, s->d, s->block_tokens, s->dtype,
                         bpt * (uint64_t)s->block_tokens * 96};
    gqa_kv_cache *c = NULL;
    gqa_status st = gqa_kv_cache_create(&cfg, &c);
    CHECK(st == GQA_OK, "create: %s", gqa_last_error());
    if (st != GQA_OK)
        return;
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    int32_t live[MAX_SEQS];
    int n_live = 0;
    for (int step = 0; step < steps; step++) {
        const int op = tu_rng_int(&rng, 0, 9);
        if (n_live == 0 || (op == 0 && n_live < MAX_SEQS)) {
            int32_t id;
            if (gqa_kv_seq_create(c, &id) == GQA_OK)
                live[n_live++] = id;
        } else if (op <= 3) {
            const int32_t seq = live[tu_rng_int(&rng, 0, n_live - 1)];
            st = append_random(c, s, seq, tu_rng_int(&rng, 1, 37), &rng, op == 3);
            CHECK(st == GQA_OK || st == GQA_ERR_CAPACITY, "append: %s", gqa_last_error());
        } else if (op == 4 && n_live < MAX_SEQS) {
            int32_t child;
            if (gqa_kv_seq_fork(c, live[tu_rng_int(&rng, 0, n_live - 1)], &child) == GQA_OK)
                live[n_live++] = child;
        } else if (op == 5) {
            const int32_t seq = live[tu_rng_int(&rng, 0, n_live - 1)];
            const int64_t len = gqa_kv_seq_len(c, seq);
            st = gqa_kv_seq_truncate(c, seq, len > 0 ? tu_rng_int(&rng, 0, (int)len) : 0);
            CHECK(st == GQA_OK, "truncate: %s", gqa_last_error());
        } else if (op == 6 && n_live > 1) {
            const int at = tu_rng_int(&rng, 0, n_live - 1);
            CHECK(gqa_kv_seq_free(c, live[at]) == GQA_OK, "free: %s", gqa_last_error());
            live[at] = live[--n_live];
        } else {
            attend(c, s, live, n_live, &rng, kernel, threads, step);
        }
    }
    gqa_kv_cache_free(c);
}

/* q8_0 against f32 storage on the same data: realistic-ish K/V (sums of
 * uniforms, roughly normal, with one outlier channel in K, as real K caches
 * have), decode and a short causal prefill chunk; docs/kv-cache.md quotes
 * what this prints. */
static void q8_accuracy_case(int H, int G, int d, int len, int n_q)
{
    tu_rng rng;
    tu_rng_seed(&rng, 77u + (uint64_t)d);
    const size_t kn = (size_t)len * G * d, qn = (size_t)n_q * H * d;
    float *k = tu_xmalloc(kn * sizeof(float)), *v = tu_xmalloc(kn * sizeof(float));
    float *q = tu_xmalloc(qn * sizeof(float)), *o32 = tu_xmalloc(qn * sizeof(float));
    float *o8 = tu_xmalloc(qn * sizeof(float));
    for (size_t i = 0; i < kn; i++) {
        float a = 0.0f, b = 0.0f;
        for (int r = 0; r < 4; r++) {
            a += tu_rng_uniform(&rng, -1.0f, 1.0f);
            b += tu_rng_uniform(&rng, -1.0f, 1.0f);
        }
        k[i] = (i % (size_t)d) == 5 ? 6.0f * a : a;
        v[i] = b;
    }
    tu_fill_uniform(&rng, q, qn, -1.0f, 1.0f);
    for (int pass = 0; pass < 2; pass++) {
        const gqa_dtype dt = pass ? GQA_Q8_0 : GQA_F32;
        gqa_kv_config cfg = {1, G, d, 16, dt, gqa_kv_bytes_per_token(1, G, d, dt) * (uint64_t)len};
        gqa_kv_cache *c = NULL;
        int32_t seq = -1;
        CHECK(gqa_kv_cache_create(&cfg, &c) == GQA_OK && gqa_kv_seq_create(c, &seq) == GQA_OK &&
                  gqa_kv_seq_append(c, seq, len, k, v) == GQA_OK,
              "q8 accuracy setup: %s", gqa_last_error());
        gqa_attn_desc desc = {H, G, d, 0.0f, 1, 0, dt};
        gqa_kv_batch_item it = {seq, n_q, q, pass ? o8 : o32, NULL};
        CHECK(gqa_kv_attention(c, 0, &desc, &it, 1) == GQA_OK, "q8 accuracy attention: %s",
              gqa_last_error());
        gqa_kv_cache_free(c);
    }
    double max_err = 0.0, sum_err = 0.0, sum_sq = 0.0;
    for (size_t i = 0; i < qn; i++) {
        const double e = fabs((double)o8[i] - (double)o32[i]);
        max_err = e > max_err ? e : max_err;
        sum_err += e;
        sum_sq += (double)o32[i] * (double)o32[i];
    }
    printf("q8_0 vs f32 storage, H=%d G=%d d=%d, %d keys, %d queries: max abs error %.3g, mean %.3g "
           "(output rms %.3g)\n",
           H, G, d, len, n_q, max_err, sum_err / (double)qn, sqrt(sum_sq / (double)qn));
    /* The outputs are averages of values of magnitude ~1; q8_0 keeps 1/254 of
     * each block's range. A bound of 0.02 flags a broken dequantiser without
     * being tight enough to flake. */
    CHECK(max_err < 0.02, "q8_0 attention error %g too large", max_err);
    free(k);
    free(v);
    free(q);
    free(o32);
    free(o8);
}

static void q8_accuracy(void)
{
    q8_accuracy_case(9, 3, 64, 2048, 1);
    q8_accuracy_case(32, 8, 128, 4096, 1);
    q8_accuracy_case(32, 8, 128, 1024, 64);
}

/* Bad input to gqa_kv_attention: a status, a message naming the value, and
 * no write to the outputs. */
static void bad_input(void)
{
    gqa_kv_config cfg = {2, 2, 64, 16, GQA_F16, gqa_kv_bytes_per_token(2, 2, 64, GQA_F16) * 64};
    gqa_kv_cache *c = NULL;
    int32_t seq = -1;
    static float kv[2 * 4 * 2 * 64], q[2 * 8 * 64], out[2 * 8 * 64];
    CHECK(gqa_kv_cache_create(&cfg, &c) == GQA_OK && gqa_kv_seq_create(c, &seq) == GQA_OK &&
              gqa_kv_seq_append(c, seq, 4, kv, kv) == GQA_OK,
          "bad_input setup: %s", gqa_last_error());
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        out[i] = 12345.0f;
    const gqa_attn_desc good = {8, 2, 64, 0.0f, 1, 0, GQA_F16};
    gqa_kv_batch_item it = {seq, 1, q, out, NULL};
    struct {
        const char *what, *needle;
        gqa_attn_desc desc;
        int layer;
        gqa_kv_batch_item item;
        int n;
        int null_cache;
    } cases[] = {
        {"NULL cache", "cache", good, 0, it, 1, 1},
        {"layer out of range", "layer = 2", good, 2, it, 1, 0},
        {"negative layer", "layer = -1", good, -1, it, 1, 0},
        {"KV heads differ", "n_kv_heads = 1", {8, 1, 64, 0.0f, 1, 0, GQA_F16}, 0, it, 1, 0},
        {"head_dim differs", "head_dim = 32", {8, 2, 32, 0.0f, 1, 0, GQA_F16}, 0, it, 1, 0},
        {"dtype differs", "f32", {8, 2, 64, 0.0f, 1, 0, GQA_F32}, 0, it, 1, 0},
        {"H % G", "H % G", {7, 2, 64, 0.0f, 1, 0, GQA_F16}, 0, it, 1, 0},
        {"unknown sequence", "99", good, 0, {99, 1, q, out, NULL}, 1, 0},
        {"n_q beyond the length", "n_q = 5", good, 0, {seq, 5, q, out, NULL}, 1, 0},
        {"n_q zero", "n_q = 0", good, 0, {seq, 0, q, out, NULL}, 1, 0},
        {"NULL q", "q is NULL", good, 0, {seq, 1, NULL, out, NULL}, 1, 0},
        {"NULL out", "out is NULL", good, 0, {seq, 1, q, NULL, NULL}, 1, 0},
        {"negative n_items", "n_items = -1", good, 0, it, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gqa_status st = gqa_kv_attention(cases[i].null_cache ? NULL : c, cases[i].layer,
                                         &cases[i].desc, &cases[i].item, cases[i].n);
        CHECK(st == GQA_ERR_INVALID_ARG && strstr(gqa_last_error(), cases[i].needle),
              "%s: got %s '%s', want invalid argument naming '%s'", cases[i].what,
              gqa_status_string(st), gqa_last_error(), cases[i].needle);
    }
    int untouched = 1;
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        untouched &= out[i] == 12345.0f;
    CHECK(untouched, "a refused call wrote to out");
    /* A freed sequence is refused too. */
    CHECK(gqa_kv_seq_free(c, seq) == GQA_OK, "free: %s", gqa_last_error());
    CHECK(gqa_kv_attention(c, 0, &good, &it, 1) == GQA_ERR_INVALID_ARG, "freed sequence accepted");
    CHECK(gqa_kv_attention(c, 0, &good, NULL, 0) == GQA_OK, "an empty batch is a no-op");
    gqa_kv_cache_free(c);
}

int main(void)
{
    bad_input();
    static const char *const kernels[] = {"ref", "scalar", "avx2", "avx512", "avx512-amx", "neon"};
    /* Two have 16 and 32 query heads per KV head: the AMX path's jobs, its
     * 32-key tiles spanning blocks of 16 and 48 tokens, and (the window)
     * tiles that only some rows see in full. The last is MHA with an odd d. */
    const shape shapes[] = {
        {2, 8, 2, 64, 16, GQA_F32, 1, 0},  {2, 9, 3, 64, 17, GQA_F16, 1, 0},
        {1, 8, 8, 32, 1, GQA_Q8_0, 1, 0},  {2, 32, 1, 96, 16, GQA_BF16, 1, 0},
        {1, 12, 4, 40, 7, GQA_F32, 1, 9},  {1, 4, 1, 128, 32, GQA_Q8_0, 0, 0},
        {1, 32, 2, 64, 16, GQA_F16, 1, 0}, {1, 32, 1, 128, 48, GQA_BF16, 1, 70},
        {1, 6, 6, 40, 16, GQA_BF16, 1, 0},
    };
    const double t0 = tu_seconds();
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        if (!tu_select_kernel(kernels[k]))
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            gqa_set_num_threads(threads);
            const int steps = k == 0 ? 60 : 250;
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                random_walk(&shapes[i], kernels[k], threads, steps, 1000 + i * 7 + k);
        }
    }
    /* Again as if the K/V came from memory (the kernels prefetch differently
     * then), 2 threads, shorter walks. */
    tu_kv_from_memory(1);
    for (size_t k = 1; k < sizeof kernels / sizeof kernels[0]; k++) {
        if (!tu_select_kernel(kernels[k]))
            continue;
        char label[48];
        snprintf(label, sizeof label, "%s, from memory", kernels[k]);
        gqa_set_num_threads(2);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            random_walk(&shapes[i], label, 2, 120, 5000 + i * 7 + k);
    }
    tu_kv_from_memory(0);
    gqa_set_num_threads(0);
    for (size_t k = sizeof kernels / sizeof kernels[0]; k-- > 1;) /* the widest this CPU runs */
        if (tu_select_kernel(kernels[k]) == 1)
            break;
    q8_accuracy();
    printf("total %.1f s\n", tu_seconds() - t0);
    return tu_summary();
}
