/* test_train_model.c - the whole trainable model's gradient against float64
 * central finite differences of a float64 forward written here (naive loops:
 * embedding, RMSNorm, projections, RoPE on adjacent pairs, causal GQA softmax
 * attention, SwiGLU, classifier, mean cross-entropy).
 *
 * Tiny awkward models (2 layers, E 16, H 4, d 4, F 12, V 19, B 2 x T 5) with
 * G = 1 (MQA), G = 2 and G = H (MHA), tied and untied classifiers, weights
 * drawn large enough that every part of the function matters. EVERY
 * parameter is perturbed (h = 1e-5). Tolerances:
 *   logits (f32 forward vs float64): |a - b| <= 1e-5 + 1e-4 |b|
 *   gradient: |g - fd| <= 1e-4 * max|fd| + 2e-3 * |fd| (f32 forward and
 *     backward through two blocks; the FD error itself is ~1e-10).
 * The max errors are printed. Also: backward accumulates (two backwards =
 * twice the gradient, up to the rounding of running sums),
 * 1 and 2 threads give bitwise the same gradient, bad arguments fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa_train.h"
#include "test_util.h"

typedef struct ref_model {
    gqa_train_config c;
    const double *p; /* parameters, laid out as the model's flat array */
    int64_t off_emb, off_onorm, off_out;
    int64_t off_layer[8][9]; /* attn_norm, q, k, v, o, ffn_norm, gate, up, down */
    int32_t B, T;
    const int32_t *tok, *tgt;
} ref_model;

static void ref_rmsnorm(const double *x, const double *w, int64_t E, double eps, double *y)
{
    double ss = 0.0;
    for (int64_t i = 0; i < E; i++)
        ss += x[i] * x[i];
    const double r = 1.0 / sqrt(ss / (double)E + eps);
    for (int64_t i = 0; i < E; i++)
        y[i] = x[i] * r * w[i];
}

/* y[o] = sum_i W[o][i] x[i] */
static void ref_linear(const double *x, const double *W, int64_t in, int64_t out, double *y)
{
    for (int64_t o = 0; o < out; o++) {
        double s = 0.0;
        for (int64_t i = 0; i < in; i++)
            s += W[o * in + i] * x[i];
        y[o] = s;
    }
}

static void ref_rope(double *x, int32_t heads, int32_t d, int32_t pos, double base)
{
    for (int32_t h = 0; h < heads; h++)
        for (int32_t i = 0; i < d / 2; i++) {
            const double th = pos * pow(base, -2.0 * i / d);
            double *v = x + h * d + 2 * i;
            const double x0 = v[0], x1 = v[1];
            v[0] = x0 * cos(th) - x1 * sin(th);
            v[1] = x0 * sin(th) + x1 * cos(th);
        }
}

/* Mean cross-entropy of the model (logits written when not NULL). */
static double ref_forward(const ref_model *r, double *logits_out)
{
    const gqa_train_config *c = &r->c;
    const int64_t E = c->n_embd, H = c->n_heads, G = c->n_kv_heads, d = c->head_dim, F = c->n_ff,
                  V = c->n_vocab, N = (int64_t)r->B * r->T;
    double *x = calloc((size_t)(N * E), sizeof(double)), *xn = malloc(sizeof(double) * E),
           *q = malloc(sizeof(double) * N * H * d), *k = malloc(sizeof(double) * N * G * d),
           *v = malloc(sizeof(double) * N * G * d), *att = malloc(sizeof(double) * H * d),
           *o = malloc(sizeof(double) * E), *g = malloc(sizeof(double) * F),
           *u = malloc(sizeof(double) * F), *lg = malloc(sizeof(double) * V),
           *sc = malloc(sizeof(double) * r->T);
    for (int64_t t = 0; t < N; t++)
        memcpy(x + t * E, r->p + r->off_emb + r->tok[t] * E, sizeof(double) * E);
    for (int32_t l = 0; l < c->n_layers; l++) {
        const int64_t *w = r->off_layer[l];
        for (int64_t t = 0; t < N; t++) {
            ref_rmsnorm(x + t * E, r->p + w[0], E, c->rms_eps, xn);
            ref_linear(xn, r->p + w[1], E, H * d, q + t * H * d);
            ref_linear(xn, r->p + w[2], E, G * d, k + t * G * d);
            ref_linear(xn, r->p + w[3], E, G * d, v + t * G * d);
            ref_rope(q + t * H * d, (int32_t)H, (int32_t)d, (int32_t)(t % r->T), c->rope_base);
            ref_rope(k + t * G * d, (int32_t)G, (int32_t)d, (int32_t)(t % r->T), c->rope_base);
        }
        for (int64_t t = 0; t < N; t++) {
            const int64_t b0 = t / r->T * r->T; /* first row of this sequence */
            for (int64_t h = 0; h < H; h++) {
                const int64_t kh = h / (H / G);
                double mx = -INFINITY, sum = 0.0;
                for (int64_t j = b0; j <= t; j++) {
                    double s = 0.0;
                    for (int64_t i = 0; i < d; i++)
                        s += q[(t * H + h) * d + i] * k[(j * G + kh) * d + i];
                    sc[j - b0] = s / sqrt((double)d);
                    mx = fmax(mx, sc[j - b0]);
                }
                for (int64_t j = b0; j <= t; j++)
                    sum += exp(sc[j - b0] - mx);
                for (int64_t i = 0; i < d; i++) {
                    double a = 0.0;
                    for (int64_t j = b0; j <= t; j++)
                        a += exp(sc[j - b0] - mx) / sum * v[(j * G + kh) * d + i];
                    att[h * d + i] = a;
                }
            }
            ref_linear(att, r->p + w[4], H * d, E, o);
            for (int64_t i = 0; i < E; i++)
                x[t * E + i] += o[i];
        }
        for (int64_t t = 0; t < N; t++) {
            ref_rmsnorm(x + t * E, r->p + w[5], E, c->rms_eps, xn);
            ref_linear(xn, r->p + w[6], E, F, g);
            ref_linear(xn, r->p + w[7], E, F, u);
            for (int64_t i = 0; i < F; i++)
                g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            ref_linear(g, r->p + w[8], F, E, o);
            for (int64_t i = 0; i < E; i++)
                x[t * E + i] += o[i];
        }
    }
    double loss = 0.0;
    for (int64_t t = 0; t < N; t++) {
        ref_rmsnorm(x + t * E, r->p + r->off_onorm, E, c->rms_eps, xn);
        ref_linear(xn, r->p + r->off_out, E, V, lg);
        double mx = -INFINITY, s = 0.0;
        for (int64_t j = 0; j < V; j++)
            mx = fmax(mx, lg[j]);
        for (int64_t j = 0; j < V; j++)
            s += exp(lg[j] - mx);
        loss += mx + log(s) - lg[r->tgt[t]];
        if (logits_out)
            memcpy(logits_out + t * V, lg, sizeof(double) * V);
    }
    free(x), free(xn), free(q), free(k), free(v), free(att), free(o), free(g), free(u), free(lg),
        free(sc);
    return loss / (double)N;
}

/* Offsets of the model's tensors in its flat array, by name. */
static void ref_bind(ref_model *r, gqa_train_model *m)
{
    const float *base = gqa_train_model_params(m);
    static const char *const sfx[9] = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                                       "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
    for (int32_t i = 0; i < gqa_train_model_n_tensors(m); i++) {
        gqa_train_tensor t;
        gqa_train_model_tensor(m, i, &t);
        const int64_t off = t.data - base;
        if (!strcmp(t.name, "token_embd.weight"))
            r->off_emb = off;
        else if (!strcmp(t.name, "output_norm.weight"))
            r->off_onorm = off;
        else if (!strcmp(t.name, "output.weight"))
            r->off_out = off;
        int l;
        char s[32];
        if (sscanf(t.name, "blk.%d.%31[a-z_]", &l, s) == 2)
            for (int j = 0; j < 9; j++)
                if (!strcmp(s, sfx[j]))
                    r->off_layer[l][j] = off;
    }
    if (r->c.tied_output)
        r->off_out = r->off_emb;
}

/* Central differences of the float64 model over every parameter p[0..P)
 * against the analytic gradient g; prints the first bad one; returns the
 * number outside the tolerance, *fmax_out = max|fd|, *emax_out = max error. */
static int64_t fd_compare(const ref_model *r, double *p, int64_t P, const float *g,
                          double *fmax_out, double *emax_out)
{
    double fmax_ = 0.0, emax = 0.0;
    double *fd = malloc(sizeof(double) * (size_t)P);
    for (int64_t i = 0; i < P; i++) {
        const double keep = p[i];
        p[i] = keep + 1e-5;
        const double lp = ref_forward(r, NULL);
        p[i] = keep - 1e-5;
        const double lm = ref_forward(r, NULL);
        p[i] = keep;
        fd[i] = (lp - lm) / 2e-5;
        fmax_ = fmax(fmax_, fabs(fd[i]));
    }
    int64_t bad = 0;
    for (int64_t i = 0; i < P; i++) {
        const double e = fabs((double)g[i] - fd[i]);
        emax = fmax(emax, e);
        if (!(e <= 1e-4 * fmax_ + 2e-3 * fabs(fd[i])) && bad++ == 0)
            printf("  first bad gradient [%lld]: %.8g vs fd %.8g\n", (long long)i, (double)g[i],
                   fd[i]);
    }
    free(fd);
    *fmax_out = fmax_;
    *emax_out = emax;
    return bad;
}

static void check_model(int32_t G, int tied, int threads)
{
    const gqa_train_config c = {.n_vocab = 19,
                                .n_layers = 2,
                                .n_embd = 16,
                                .n_heads = 4,
                                .n_kv_heads = G,
                                .head_dim = 4,
                                .n_ff = 12,
                                .n_ctx = 8,
                                .rope_base = 10000.0f,
                                .rms_eps = 1e-5f,
                                .tied_output = tied};
    enum { B = 2, T = 5, N = B * T };
    gqa_set_num_threads(threads);
    gqa_train_model *m;
    gqa_status s = gqa_train_model_create(&c, 7, &m);
    CHECK(s == GQA_OK, "create: %s", gqa_last_error());
    if (s != GQA_OK)
        return;
    tu_rng rng;
    tu_rng_seed(&rng, 100 + (uint64_t)G);
    /* weights large enough that attention, norms and SwiGLU are not linear */
    for (int32_t i = 0; i < gqa_train_model_n_tensors(m); i++) {
        gqa_train_tensor t;
        gqa_train_model_tensor(m, i, &t);
        const size_t n = (size_t)(t.dims[0] * t.dims[1]);
        if (t.n_dims == 1)
            tu_fill_uniform(&rng, t.data, n, 0.5f, 1.5f);
        else
            tu_fill_uniform(&rng, t.data, n, -0.6f, 0.6f);
    }
    int32_t tok[N], tgt[N];
    for (int i = 0; i < N; i++) {
        tok[i] = tu_rng_int(&rng, 0, 18);
        tgt[i] = tu_rng_int(&rng, 0, 18);
    }
    const int64_t P = gqa_train_model_n_params(m);
    double *p = malloc(sizeof(double) * (size_t)P), *lref = malloc(sizeof(double) * N * 19);
    const float *pf = gqa_train_model_params(m);
    for (int64_t i = 0; i < P; i++)
        p[i] = pf[i];
    ref_model r = {.c = c, .p = p, .B = B, .T = T, .tok = tok, .tgt = tgt};
    ref_bind(&r, m);

    float loss, logits[N * 19];
    gqa_train_model_zero_grad(m);
    s = gqa_train_model_forward(m, tok, tgt, B, T, &loss, logits);
    CHECK(s == GQA_OK, "forward: %s", gqa_last_error());
    const double lr = ref_forward(&r, lref);
    double lerr = 0.0;
    int lbad = 0;
    for (int i = 0; i < N * 19; i++) {
        const double e = fabs((double)logits[i] - lref[i]);
        lerr = fmax(lerr, e);
        lbad += !(e <= 1e-5 + 1e-4 * fabs(lref[i]));
    }
    CHECK(lbad == 0 && fabs((double)loss - lr) <= 1e-5 * fabs(lr) + 1e-6,
          "G %d tied %d: %d logits off (max err %.3g), loss %.9g vs %.9g", (int)G, tied, lbad, lerr,
          (double)loss, lr);
    s = gqa_train_model_backward(m, 1.0f);
    CHECK(s == GQA_OK, "backward: %s", gqa_last_error());
    const float *g = gqa_train_model_grads(m);
    double fmax_, emax;
    const int64_t bad = fd_compare(&r, p, P, g, &fmax_, &emax);
    CHECK(bad == 0, "G %d tied %d threads %d: %lld of %lld gradients off", (int)G, tied, threads,
          (long long)bad, (long long)P);
    printf("  G %d %-6s threads %d: %lld params, loss %.6f, logits max err %.2e, grad max|fd| "
           "%.3e max err %.3e\n",
           (int)G, tied ? "tied" : "untied", threads, (long long)P, (double)loss, lerr, fmax_,
           emax);

    /* a second forward+backward adds the same gradient again */
    float *g1 = malloc(sizeof(float) * (size_t)P);
    memcpy(g1, g, sizeof(float) * (size_t)P);
    gqa_train_model_forward(m, tok, tgt, B, T, NULL, NULL);
    gqa_train_model_backward(m, 1.0f);
    /* equal up to the rounding of the embedding rows' running sums */
    double aerr = 0.0, gmax = 0.0;
    for (int64_t i = 0; i < P; i++) {
        aerr = fmax(aerr, fabs((double)g[i] - 2.0 * (double)g1[i]));
        gmax = fmax(gmax, fabs((double)g1[i]));
    }
    CHECK(aerr <= 1e-6 * gmax, "backward does not accumulate: err %.3g (max |g| %.3g)", aerr, gmax);
    CHECK(gqa_train_model_backward(m, 1.0f) == GQA_ERR_INVALID_ARG,
          "a second backward without a forward must fail");
    free(g1), free(p), free(lref);
    gqa_train_model_free(m);
}

/* The same gradient, bitwise, at 1 and 2 threads on a bigger model (the ops,
 * the GEMM and the attention backward promise it; gqa_attention's forward only
 * at a fixed thread count, but sequences of 33 keys are not split). */
static void check_threads(void)
{
    const gqa_train_config c = {.n_vocab = 37,
                                .n_layers = 2,
                                .n_embd = 48,
                                .n_heads = 6,
                                .n_kv_heads = 2,
                                .head_dim = 8,
                                .n_ff = 72,
                                .n_ctx = 40,
                                .rope_base = 10000.0f,
                                .rms_eps = 1e-5f,
                                .tied_output = 0};
    enum { B = 3, T = 33 };
    int32_t tok[B * T], tgt[B * T];
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    for (int i = 0; i < B * T; i++) {
        tok[i] = tu_rng_int(&rng, 0, 36);
        tgt[i] = tu_rng_int(&rng, 0, 36);
    }
    float *grad[2];
    float loss[2];
    int64_t P = 0;
    for (int t = 0; t < 2; t++) {
        gqa_set_num_threads(t + 1);
        gqa_train_model *m;
        if (gqa_train_model_create(&c, 11, &m) != GQA_OK)
            return;
        gqa_train_model_forward(m, tok, tgt, B, T, &loss[t], NULL);
        gqa_train_model_backward(m, 0.5f);
        P = gqa_train_model_n_params(m);
        grad[t] = malloc(sizeof(float) * (size_t)P);
        memcpy(grad[t], gqa_train_model_grads(m), sizeof(float) * (size_t)P);
        gqa_train_model_free(m);
    }
    CHECK(loss[0] == loss[1] && !memcmp(grad[0], grad[1], sizeof(float) * (size_t)P),
          "1 and 2 threads: losses %.9g / %.9g or gradients differ", (double)loss[0],
          (double)loss[1]);
    free(grad[0]), free(grad[1]);
}

static void check_errors(void)
{
    gqa_train_config c = {.n_vocab = 19,
                          .n_layers = 1,
                          .n_embd = 16,
                          .n_heads = 4,
                          .n_kv_heads = 3,
                          .head_dim = 4,
                          .n_ff = 12,
                          .n_ctx = 8,
                          .rope_base = 10000.0f,
                          .rms_eps = 1e-5f};
    gqa_train_model *m = (gqa_train_model *)&c;
    CHECK(gqa_train_model_create(&c, 1, &m) == GQA_ERR_INVALID_ARG && m == NULL,
          "H %% G != 0 must fail");
    c.n_kv_heads = 2;
    c.head_dim = 5;
    CHECK(gqa_train_model_create(&c, 1, &m) == GQA_ERR_INVALID_ARG, "odd head_dim must fail");
    c.head_dim = 4;
    CHECK(gqa_train_model_create(&c, 1, &m) == GQA_OK, "create: %s", gqa_last_error());
    int32_t tok[9] = {0}, bad[9] = {0, 0, 19};
    CHECK(gqa_train_model_forward(m, tok, NULL, 1, 9, NULL, NULL) == GQA_ERR_INVALID_ARG,
          "T > n_ctx must fail");
    CHECK(gqa_train_model_forward(m, bad, NULL, 1, 3, NULL, NULL) == GQA_ERR_INVALID_ARG,
          "token 19 of 19 must fail");
    CHECK(gqa_train_model_forward(m, tok, bad, 1, 3, NULL, NULL) == GQA_ERR_INVALID_ARG,
          "target 19 of 19 must fail");
    CHECK(gqa_train_model_forward(m, tok, NULL, 1, 3, NULL, NULL) == GQA_OK, "forward");
    CHECK(gqa_train_model_backward(m, 1.0f) == GQA_ERR_INVALID_ARG,
          "backward after a forward without targets must fail");
    gqa_train_model_free(m);
    gqa_train_model_free(NULL);
}

int main(void)
{
    const int32_t Gs[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++)
        check_model(Gs[i], i == 1, 1);
    check_model(2, 0, 2);
    check_threads();
    check_errors();
    return tu_summary();
}
