/* test_sampler.c - the token sampler (gqa_sampler.h).
 *
 * 1. Bad configs, bad arguments and unusable logits give GQA_ERR_INVALID_ARG
 *    with a message naming the field; a failed sample writes nothing and uses
 *    no random number.
 * 2. Greedy: the argmax, the lowest id on ties; NaN never, +inf first.
 *    top_k = 1 gives the same token at any temperature.
 * 3. Determinism: the same seed gives the same sequence, another seed a
 *    different one, reset replays it, and two pinned sequences (golden values
 *    from this implementation: they change only if every seeded run changes).
 * 4. Distributions: over many draws, token counts match the probabilities the
 *    documented chain gives, computed here in double with libm's exp, by a
 *    chi-square test whose bound is the 1 - 1e-6 quantile (Wilson-Hilferty);
 *    tokens the chain excludes must never appear. Cases are built so that the
 *    excluded set is known exactly and far from any threshold: top-k, top-p
 *    (with the 49152-token vocabulary, both with and without top-k), min-p,
 *    the order top-k -> temperature -> top-p / min-p.
 * 5. A random sweep against a brute-force reference of the chain (full sort,
 *    double precision): every drawn token must be allowed by the reference
 *    with thresholds loosened by 1e-6 (to stay clear of rounding), and never
 *    a NaN or -inf token.
 * 6. Penalties: repeat / frequency / presence change the argmax in built
 *    cases, only for tokens in the window, once per distinct token, with the
 *    window sliding, -1 meaning everything, 0 meaning off; logits untouched.
 * With --time: microseconds per sample() call for n_vocab = 49152.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa_sampler.h"
#include "test_util.h"

#define BIG_V 49152 /* SmolLM2's vocabulary */

/* ----------------------------------------------------------- helpers -- */

/* A config with every filter and penalty off. */
static gqa_sampler_config plain(float temperature, uint64_t seed)
{
    gqa_sampler_config c;
    gqa_sampler_config_default(&c);
    c.temperature = temperature;
    c.top_k = 0;
    c.top_p = 1.0f;
    c.min_p = 0.0f;
    c.seed = seed;
    return c;
}

static gqa_sampler *make(const gqa_sampler_config *c, int32_t v)
{
    gqa_sampler *s = NULL;
    gqa_status st = gqa_sampler_create(c, v, &s);
    if (st != GQA_OK || !s) {
        printf("FAIL: gqa_sampler_create(n_vocab %d): %s (%s)\n", (int)v, gqa_status_string(st),
               gqa_last_error());
        exit(1);
    }
    return s;
}

static int32_t sample1(gqa_sampler *s, const float *logits)
{
    int32_t t = -1;
    gqa_status st = gqa_sampler_sample(s, logits, &t);
    if (st != GQA_OK) {
        printf("FAIL: gqa_sampler_sample: %s (%s)\n", gqa_status_string(st), gqa_last_error());
        exit(1);
    }
    return t;
}

/* Argmax, lowest id on ties, NaN skipped; -1 if nothing is above -inf. */
static int32_t argmax_ref(const float *x, int32_t v)
{
    int32_t best = -1;
    for (int32_t i = 0; i < v; i++)
        if (!isnan(x[i]) && x[i] > -INFINITY && (best < 0 || x[i] > x[best]))
            best = i;
    return best;
}

/* Upper 1 - 1e-6 quantile of chi-square with df degrees of freedom
 * (Wilson-Hilferty; within a few percent, on the generous side, for df >= 1). */
static double chi2_bound(int df)
{
    const double z = 4.7534; /* one-sided normal 1e-6 */
    const double a = 2.0 / (9.0 * df);
    const double c = 1.0 - a + z * sqrt(a);
    return df * c * c * c;
}

/* Draw n tokens and compare the counts with p[0..v) (0 = excluded). */
static void check_distribution(const char *what, const gqa_sampler_config *c, const float *logits,
                               int32_t v, const double *p, int n)
{
    gqa_sampler *s = make(c, v);
    int *count = calloc((size_t)v, sizeof *count);
    if (!count)
        exit(1);
    for (int i = 0; i < n; i++)
        count[sample1(s, logits)]++;
    double chi2 = 0.0, psum = 0.0;
    int df = -1, bad = 0;
    for (int32_t i = 0; i < v; i++) {
        if (p[i] > 0.0) {
            const double e = n * p[i];
            chi2 += (count[i] - e) * (count[i] - e) / e;
            df++;
            psum += p[i];
        } else if (count[i] != 0) {
            if (bad++ < 3)
                printf("  %s: excluded token %d drawn %d times\n", what, (int)i, count[i]);
        }
    }
    CHECK(fabs(psum - 1.0) < 1e-9, "%s: expected probabilities sum to %.12f", what, psum);
    CHECK(bad == 0, "%s: %d excluded tokens were drawn", what, bad);
    if (df > 0)
        CHECK(chi2 <= chi2_bound(df), "%s: chi2 = %.2f > %.2f (df %d, %d draws)", what, chi2,
              chi2_bound(df), df, n);
    else
        CHECK(df == 0, "%s: no token expected", what);
    printf("  %-58s chi2 %7.2f (df %d, bound %.1f)\n", what, chi2, df, chi2_bound(df > 0 ? df : 1));
    free(count);
    gqa_sampler_free(s);
}

/* p_i proportional to exp(l_i / T) over the ids in keep[0..n), 0 elsewhere. */
static void softmax_over(const float *logits, int32_t v, double t, const int32_t *keep, int n,
                         double *p)
{
    double mx = -(double)INFINITY, z = 0.0;
    for (int32_t i = 0; i < v; i++)
        p[i] = 0.0;
    for (int j = 0; j < n; j++)
        mx = fmax(mx, (double)logits[keep[j]]);
    for (int j = 0; j < n; j++)
        z += exp(((double)logits[keep[j]] - mx) / t);
    for (int j = 0; j < n; j++)
        p[keep[j]] = exp(((double)logits[keep[j]] - mx) / t) / z;
}

/* --------------------------------------------------------- 1. errors -- */

static void test_errors(void)
{
    printf("errors\n");
    gqa_sampler_config d;
    gqa_sampler_config_default(&d);
    CHECK(d.temperature == 0.8f && d.top_k == 40 && d.top_p == 0.95f && d.min_p == 0.05f &&
              d.repeat_penalty == 1.0f && d.frequency_penalty == 0.0f &&
              d.presence_penalty == 0.0f && d.repeat_last_n == 64 && d.seed == 0,
          "defaults");
    gqa_sampler_config_default(NULL);

    struct {
        const char *field;
        gqa_sampler_config c;
    } bad[32];
    int nb = 0;
#define BAD(fieldname, value)                                                                      \
    do {                                                                                           \
        bad[nb].field = #fieldname;                                                                \
        bad[nb].c = d;                                                                             \
        bad[nb].c.fieldname = (value);                                                             \
        nb++;                                                                                      \
    } while (0)
    BAD(temperature, NAN);
    BAD(temperature, INFINITY);
    BAD(temperature, -INFINITY);
    BAD(top_k, -1);
    BAD(top_p, 0.0f);
    BAD(top_p, -0.5f);
    BAD(top_p, 1.0001f);
    BAD(top_p, NAN);
    BAD(min_p, -0.01f);
    BAD(min_p, 1.01f);
    BAD(min_p, NAN);
    BAD(repeat_penalty, 0.0f);
    BAD(repeat_penalty, -1.0f);
    BAD(repeat_penalty, NAN);
    BAD(repeat_penalty, INFINITY);
    BAD(frequency_penalty, NAN);
    BAD(frequency_penalty, -INFINITY);
    BAD(presence_penalty, INFINITY);
    BAD(repeat_last_n, -2);
#undef BAD
    for (int i = 0; i < nb; i++) {
        gqa_sampler *s = (gqa_sampler *)&d; /* any non-NULL value: must become NULL */
        gqa_status st = gqa_sampler_create(&bad[i].c, 100, &s);
        CHECK(st == GQA_ERR_INVALID_ARG, "bad %s: status %s", bad[i].field,
              gqa_status_string(st));
        CHECK(s == NULL, "bad %s: *out not NULL", bad[i].field);
        CHECK(strstr(gqa_last_error(), bad[i].field) != NULL, "bad %s: message '%s'",
              bad[i].field, gqa_last_error());
    }
    gqa_sampler *s = NULL;
    CHECK(gqa_sampler_create(&d, 0, &s) == GQA_ERR_INVALID_ARG && !s, "n_vocab 0");
    CHECK(strstr(gqa_last_error(), "n_vocab") != NULL, "n_vocab message '%s'", gqa_last_error());
    CHECK(gqa_sampler_create(&d, -7, &s) == GQA_ERR_INVALID_ARG && !s, "n_vocab -7");
    CHECK(gqa_sampler_create(&d, 10, NULL) == GQA_ERR_INVALID_ARG, "out NULL");

    /* Edges that are valid. */
    gqa_sampler_config ok[6];
    for (int i = 0; i < 6; i++)
        ok[i] = d;
    ok[0].top_p = 1.0f;
    ok[1].min_p = 1.0f;
    ok[2].temperature = -3.0f; /* greedy */
    ok[3].top_k = 1000000;     /* >= n_vocab: off */
    ok[4].repeat_last_n = -1;
    ok[5].repeat_penalty = 0.5f; /* < 1 favours repeats; allowed */
    for (int i = 0; i < 6; i++) {
        gqa_status st = gqa_sampler_create(&ok[i], 10, &s);
        CHECK(st == GQA_OK && s, "valid edge config %d rejected: %s", i, gqa_last_error());
        gqa_sampler_free(s);
        s = NULL;
    }
    CHECK(gqa_sampler_create(NULL, 10, &s) == GQA_OK && s, "NULL config means defaults");

    /* accept */
    CHECK(gqa_sampler_accept(NULL, 0) == GQA_ERR_INVALID_ARG, "accept NULL");
    CHECK(gqa_sampler_accept(s, -1) == GQA_ERR_INVALID_ARG, "accept -1");
    CHECK(gqa_sampler_accept(s, 10) == GQA_ERR_INVALID_ARG, "accept n_vocab");
    CHECK(strstr(gqa_last_error(), "10") != NULL, "accept message '%s'", gqa_last_error());
    CHECK(gqa_sampler_accept(s, 9) == GQA_OK, "accept 9");

    /* sample: NULLs, and logits with nothing to choose */
    float x[10];
    int32_t t = 1234;
    for (int i = 0; i < 10; i++)
        x[i] = (float)i;
    CHECK(gqa_sampler_sample(NULL, x, &t) == GQA_ERR_INVALID_ARG, "sample NULL sampler");
    CHECK(gqa_sampler_sample(s, NULL, &t) == GQA_ERR_INVALID_ARG, "sample NULL logits");
    CHECK(gqa_sampler_sample(s, x, NULL) == GQA_ERR_INVALID_ARG, "sample NULL token");
    for (int i = 0; i < 10; i++)
        x[i] = (i % 2) ? NAN : -INFINITY;
    const int32_t paths_k[3] = {0, 4, 0};
    const float paths_t[3] = {1.0f, 1.0f, 0.0f};
    for (int p = 0; p < 3; p++) {
        gqa_sampler_config c = plain(paths_t[p], 5);
        c.top_k = paths_k[p];
        c.top_p = 0.9f;
        gqa_sampler *sp = make(&c, 10);
        t = 1234;
        gqa_status st = gqa_sampler_sample(sp, x, &t);
        CHECK(st == GQA_ERR_INVALID_ARG, "all NaN/-inf (path %d): status %s", p,
              gqa_status_string(st));
        CHECK(t == 1234, "all NaN/-inf (path %d): token written (%d)", p, (int)t);
        CHECK(strstr(gqa_last_error(), "NaN") != NULL, "message '%s'", gqa_last_error());
        gqa_sampler_free(sp);
    }
    /* A failed call uses no random number: the sequence after it is the
     * sequence of a fresh sampler. */
    {
        float y[10];
        for (int i = 0; i < 10; i++)
            y[i] = (float)(i % 3);
        gqa_sampler_config c = plain(1.0f, 99);
        gqa_sampler *a = make(&c, 10), *b = make(&c, 10);
        CHECK(gqa_sampler_sample(a, x, &t) == GQA_ERR_INVALID_ARG, "fail first");
        int same = 1;
        for (int i = 0; i < 50; i++)
            same &= sample1(a, y) == sample1(b, y);
        CHECK(same, "a failed sample consumed a random number");
        gqa_sampler_free(a);
        gqa_sampler_free(b);
    }
    gqa_sampler_free(s);
    gqa_sampler_free(NULL);
    gqa_sampler_reset(NULL);

    /* n_vocab = 1: always token 0, on every path. */
    const float one = 3.0f;
    for (int p = 0; p < 4; p++) {
        gqa_sampler_config c = plain(p == 0 ? 0.0f : 1.0f, 1);
        c.top_k = p == 2 ? 1 : 0;
        c.top_p = p == 3 ? 0.5f : 1.0f;
        gqa_sampler *s1 = make(&c, 1);
        CHECK(sample1(s1, &one) == 0, "n_vocab 1, path %d", p);
        gqa_sampler_free(s1);
    }
}

/* --------------------------------------------------------- 2. greedy -- */

static void test_greedy(void)
{
    printf("greedy, top_k = 1\n");
    tu_rng r;
    tu_rng_seed(&r, 1);
    const int32_t v = 1000;
    float *x = tu_xmalloc(sizeof(float) * BIG_V);
    const float temps[] = {0.0f, -1.0f};
    for (int trial = 0; trial < 50; trial++) {
        tu_fill_uniform(&r, x, (size_t)v, -10.0f, 10.0f);
        if (trial % 2) /* integers: many ties */
            for (int32_t i = 0; i < v; i++)
                x[i] = floorf(x[i]);
        gqa_sampler_config c = plain(temps[trial % 2], (uint64_t)trial);
        gqa_sampler *s = make(&c, v);
        const int32_t got = sample1(s, x), want = argmax_ref(x, v);
        CHECK(got == want, "greedy trial %d: %d, want %d", trial, (int)got, (int)want);
        gqa_sampler_free(s);
    }
    /* ties: lowest id */
    for (int32_t i = 0; i < v; i++)
        x[i] = -1.0f;
    x[500] = x[77] = x[3] = 2.5f;
    gqa_sampler_config c = plain(0.0f, 0);
    gqa_sampler *s = make(&c, v);
    CHECK(sample1(s, x) == 3, "tie: want lowest id 3");
    /* NaN at the front and everywhere: never chosen */
    for (int32_t i = 0; i < v; i++)
        x[i] = NAN;
    x[999] = -1e30f;
    x[10] = -INFINITY;
    CHECK(sample1(s, x) == 999, "greedy picked a NaN/-inf token");
    /* +inf wins, the lowest id among several */
    for (int32_t i = 0; i < v; i++)
        x[i] = 1e30f;
    x[20] = x[10] = INFINITY;
    CHECK(sample1(s, x) == 10, "greedy with +inf");
    gqa_sampler_free(s);

    /* top_k = 1 is greedy at any temperature, ties included, for the full
     * vocabulary size too. */
    const float tk_temps[] = {0.05f, 1.0f, 50.0f, 1e30f};
    int mismatches = 0;
    for (int trial = 0; trial < 40; trial++) {
        const int32_t vv = trial % 10 == 0 ? BIG_V : v;
        tu_fill_uniform(&r, x, (size_t)vv, -5.0f, 5.0f);
        if (trial % 2)
            for (int32_t i = 0; i < vv; i++)
                x[i] = floorf(x[i]); /* ties at the top */
        if (trial % 3 == 0)
            x[0] = NAN;
        gqa_sampler_config ck = plain(tk_temps[trial % 4], (uint64_t)trial);
        ck.top_k = 1;
        ck.top_p = trial % 5 == 0 ? 0.3f : 1.0f;
        gqa_sampler *sk = make(&ck, vv);
        const int32_t want = argmax_ref(x, vv);
        for (int i = 0; i < 20; i++)
            mismatches += sample1(sk, x) != want;
        gqa_sampler_free(sk);
    }
    CHECK(mismatches == 0, "top_k = 1 differed from greedy %d times", mismatches);
    free(x);
}

/* --------------------------------------------------- 3. determinism -- */

static void run_seq(const gqa_sampler_config *c, const float *x, int32_t v, int n, int32_t *out)
{
    gqa_sampler *s = make(c, v);
    for (int i = 0; i < n; i++)
        out[i] = sample1(s, x);
    gqa_sampler_free(s);
}

static void test_determinism(void)
{
    printf("determinism\n");
    enum { N = 500 };
    const int32_t v = 1000;
    float x[1000];
    tu_rng r;
    tu_rng_seed(&r, 2);
    tu_fill_uniform(&r, x, (size_t)v, -1.0f, 1.0f);
    static int32_t a[N], b[N], c2[N];
    const int32_t ks[] = {0, 40};
    for (int ki = 0; ki < 2; ki++) {
        gqa_sampler_config c = plain(1.0f, 42);
        c.top_k = ks[ki];
        c.top_p = 0.9f;
        run_seq(&c, x, v, N, a);
        run_seq(&c, x, v, N, b);
        CHECK(memcmp(a, b, sizeof a) == 0, "top_k %d: same seed, different sequences",
              (int)ks[ki]);
        c.seed = 43;
        run_seq(&c, x, v, N, c2);
        int diff = 0;
        for (int i = 0; i < N; i++)
            diff += a[i] != c2[i];
        CHECK(diff > N * 8 / 10, "top_k %d: seeds 42 and 43 agree at %d of %d draws",
              (int)ks[ki], N - diff, N);
        /* reset replays from the configured seed */
        c.seed = 42;
        gqa_sampler *s = make(&c, v);
        for (int i = 0; i < 37; i++)
            (void)sample1(s, x);
        gqa_sampler_reset(s);
        int same = 1;
        for (int i = 0; i < N; i++)
            same &= sample1(s, x) == a[i];
        CHECK(same, "top_k %d: reset did not replay the sequence", (int)ks[ki]);
        gqa_sampler_free(s);
    }

    /* Pinned sequences. Logits are exact small binary fractions so that
     * nothing here depends on the platform either. */
    float g[64];
    for (int i = 0; i < 64; i++)
        g[i] = (float)((i * 37) % 64) / 16.0f - 2.0f;
    /* want_plain is also what a straight Python transcription of
     * splitmix64 -> xoshiro256** and the draw (u = next >> 11 times 2^-53,
     * first token whose running weight sum in id order exceeds u * total)
     * gives with math.exp: the generator is the published one. */
    static const int32_t want_plain[16] = {48, 10, 62, 5, 36, 1, 12, 19,
                                           24, 57, 50, 34, 55, 60, 10, 56};
    static const int32_t want_default[16] = {50, 57, 24, 43, 43, 24, 19, 19,
                                             12, 38, 31, 5, 43, 24, 12, 31};
    int32_t got[16];
    gqa_sampler_config cp = plain(1.0f, 12345);
    run_seq(&cp, g, 64, 16, got);
    int ok = memcmp(got, want_plain, sizeof got) == 0;
    CHECK(ok, "pinned sequence (T = 1, no filters, seed 12345) changed");
    if (!ok || getenv("GQA_PRINT_GOLDEN")) {
        printf("  plain:  ");
        for (int i = 0; i < 16; i++)
            printf("%d, ", (int)got[i]);
        printf("\n");
    }
    gqa_sampler_config cd;
    gqa_sampler_config_default(&cd);
    cd.top_k = 10;
    cd.temperature = 1.5f;
    cd.top_p = 0.9f;
    cd.seed = 7;
    run_seq(&cd, g, 64, 16, got);
    ok = memcmp(got, want_default, sizeof got) == 0;
    CHECK(ok, "pinned sequence (top_k 10, T 1.5, top_p 0.9, seed 7) changed");
    if (!ok || getenv("GQA_PRINT_GOLDEN")) {
        printf("  default:");
        for (int i = 0; i < 16; i++)
            printf("%d, ", (int)got[i]);
        printf("\n");
    }
}

/* -------------------------------------------------- 4. distributions -- */

static void test_distributions(void)
{
    printf("distributions\n");
    double *p = tu_xmalloc(sizeof(double) * BIG_V);
    float *x = tu_xmalloc(sizeof(float) * BIG_V);
    enum { N_SMALL = 200000, N_BIG = 10000 };

    /* A. six tokens, no filter: softmax(l / T) */
    const float six[6] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f};
    const int32_t all6[6] = {0, 1, 2, 3, 4, 5};
    gqa_sampler_config c = plain(0.7f, 11);
    softmax_over(six, 6, 0.7, all6, 6, p);
    check_distribution("softmax(l/0.7), 6 tokens, no filter", &c, six, 6, p, N_SMALL);
    c.top_p = 0.999f; /* every token stays (the last has ~0.8%): the sorted path */
    check_distribution("same, top_p 0.999 (nothing cut)", &c, six, 6, p, N_SMALL);
    c.top_p = 1.0f;
    c.temperature = 3.0f;
    softmax_over(six, 6, 3.0, all6, 6, p);
    check_distribution("softmax(l/3), 6 tokens", &c, six, 6, p, N_SMALL);

    /* B. top-k 4 of the 6: ids 4, 0, 1, 2 */
    const int32_t top4[4] = {4, 0, 1, 2};
    c = plain(0.7f, 12);
    c.top_k = 4;
    softmax_over(six, 6, 0.7, top4, 4, p);
    check_distribution("top_k 4 of 6", &c, six, 6, p, N_SMALL);

    /* C. top-p in the full vocabulary. Probabilities 0.45 0.30 0.13 0.07 at
     * ids 40000 17 3000 9, and 0.05 spread evenly over the other 49148.
     * top_p 0.8: cumulative 0.45, 0.75, 0.88 -> the first three.
     * top_p 0.9: 0.95 -> the four. */
    const int32_t ids[4] = {40000, 17, 3000, 9};
    const double pr[4] = {0.45, 0.30, 0.13, 0.07};
    for (int32_t i = 0; i < BIG_V; i++)
        x[i] = (float)log(0.05 / (BIG_V - 4));
    for (int j = 0; j < 4; j++)
        x[ids[j]] = (float)log(pr[j]);
    c = plain(1.0f, 13);
    c.top_p = 0.8f;
    softmax_over(x, BIG_V, 1.0, ids, 3, p);
    check_distribution("top_p 0.8, 49152 tokens -> 3", &c, x, BIG_V, p, N_BIG);
    c.top_k = 100; /* renormalised over the top 100: 0.789, 0.926 -> still 3 */
    check_distribution("top_k 100 + top_p 0.8 -> 3", &c, x, BIG_V, p, N_BIG);
    c.top_k = 0;
    c.top_p = 0.9f;
    softmax_over(x, BIG_V, 1.0, ids, 4, p);
    check_distribution("top_p 0.9, 49152 tokens -> 4", &c, x, BIG_V, p, N_BIG);

    /* D. min-p: relative weights 1 0.5 0.2 0.04 0.01 at ids 700 3 350 0 999,
     * 0.001 for the other 995 tokens; min_p 0.1 keeps the first three. */
    const int32_t mids[5] = {700, 3, 350, 0, 999};
    const double mw[5] = {1.0, 0.5, 0.2, 0.04, 0.01};
    for (int32_t i = 0; i < 1000; i++)
        x[i] = (float)log(0.001);
    for (int j = 0; j < 5; j++)
        x[mids[j]] = (float)log(mw[j]);
    softmax_over(x, 1000, 1.0, mids, 3, p);
    c = plain(1.0f, 14);
    c.min_p = 0.1f;
    check_distribution("min_p 0.1 (no other filter)", &c, x, 1000, p, N_SMALL / 4);
    c.top_p = 0.99f; /* the nucleus reaches into the tail; min-p cuts it */
    check_distribution("min_p 0.1 + top_p 0.99", &c, x, 1000, p, N_SMALL / 4);
    c.top_k = 500;
    check_distribution("min_p 0.1 + top_p 0.99 + top_k 500", &c, x, 1000, p, N_SMALL / 4);

    /* E. The order: temperature before top-p and min-p. T = 1 probabilities
     * 0.5 0.3 0.2; at T = 0.5 they are 0.658 0.237 0.105. */
    const float three[3] = {(float)log(0.5), (float)log(0.3), (float)log(0.2)};
    const int32_t first1[1] = {0}, first2[2] = {0, 1}, all3[3] = {0, 1, 2};
    c = plain(0.5f, 15);
    c.top_p = 0.6f; /* tempered: 0.658 >= 0.6 -> token 0 alone (at T = 1: 0 and 1) */
    softmax_over(three, 3, 0.5, first1, 1, p);
    check_distribution("T 0.5 then top_p 0.6 -> 1 token", &c, three, 3, p, N_SMALL / 4);
    c.temperature = 1.0f;
    softmax_over(three, 3, 1.0, first2, 2, p);
    check_distribution("T 1 then top_p 0.6 -> 2 tokens", &c, three, 3, p, N_SMALL / 4);
    c = plain(0.5f, 16);
    c.min_p = 0.3f; /* tempered ratios 1, 0.36, 0.16 (at T = 1: 1, 0.6, 0.4) */
    softmax_over(three, 3, 0.5, first2, 2, p);
    check_distribution("T 0.5 then min_p 0.3 -> 2 tokens", &c, three, 3, p, N_SMALL / 4);
    c.temperature = 1.0f;
    softmax_over(three, 3, 1.0, all3, 3, p);
    check_distribution("T 1 then min_p 0.3 -> 3 tokens", &c, three, 3, p, N_SMALL / 4);

    /* F. top-k before top-p: 0.4 0.3 0.2 0.1; top_k 2 renormalises to
     * 0.571 0.429, so top_p 0.5 keeps token 0 alone (without top-k: 0, 1). */
    const float four[4] = {(float)log(0.4), (float)log(0.3), (float)log(0.2), (float)log(0.1)};
    c = plain(1.0f, 17);
    c.top_k = 2;
    c.top_p = 0.5f;
    softmax_over(four, 4, 1.0, first1, 1, p);
    check_distribution("top_k 2 then top_p 0.5 -> 1 token", &c, four, 4, p, N_SMALL / 4);
    c.top_k = 0;
    softmax_over(four, 4, 1.0, first2, 2, p);
    check_distribution("top_p 0.5 alone -> 2 tokens", &c, four, 4, p, N_SMALL / 4);

    /* G. Non-finite logits: NaN and -inf never drawn; two +inf share all. */
    for (int32_t i = 0; i < 1000; i++)
        x[i] = (i % 3 == 0) ? NAN : (i % 3 == 1) ? -INFINITY : (float)(i % 7) - 3.0f;
    int32_t finite_ids[1000];
    int nf = 0;
    for (int32_t i = 0; i < 1000; i++)
        if (i % 3 == 2)
            finite_ids[nf++] = i;
    c = plain(2.0f, 18);
    softmax_over(x, 1000, 2.0, finite_ids, nf, p);
    check_distribution("NaN and -inf among 1000 (full path)", &c, x, 1000, p, N_SMALL);
    c.top_k = 400; /* more than the 333 finite ones: -inf in the heap */
    check_distribution("NaN and -inf among 1000, top_k 400", &c, x, 1000, p, N_SMALL);
    x[5] = x[500] = INFINITY;
    const int32_t infs[2] = {5, 500};
    for (int32_t i = 0; i < 1000; i++)
        p[i] = (i == 5 || i == 500) ? 0.5 : 0.0;
    (void)infs;
    c = plain(1.0f, 19);
    check_distribution("two +inf share everything", &c, x, 1000, p, N_SMALL / 4);
    c.top_k = 10;
    check_distribution("two +inf, top_k 10", &c, x, 1000, p, N_SMALL / 4);

    free(p);
    free(x);
}

/* ----------------------------------------- 5. sweep against a reference -- */

static const float *g_sort_x;
static int cmp_desc(const void *pa, const void *pb)
{
    const int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    const float xa = g_sort_x[a], xb = g_sort_x[b];
    if (xa != xb)
        return xa > xb ? -1 : 1;
    return a < b ? -1 : 1;
}

/* allowed[i] = 1 if token i may be drawn under the documented chain, with
 * top_p and min_p loosened by 1e-6 so that rounding never decides. */
static void reference_allowed(const float *logits, int32_t v, const gqa_sampler_config *c,
                              unsigned char *allowed, int32_t *order, float *xs)
{
    for (int32_t i = 0; i < v; i++) {
        const float l = logits[i];
        xs[i] = isnan(l) ? -INFINITY : l == INFINITY ? FLT_MAX : l;
        order[i] = i;
        allowed[i] = 0;
    }
    g_sort_x = xs;
    qsort(order, (size_t)v, sizeof *order, cmp_desc);
    const int32_t k = c->top_k > 0 && c->top_k < v ? c->top_k : v;
    const double mx = (double)xs[order[0]], t = (double)c->temperature;
    double z = 0.0;
    for (int32_t j = 0; j < k; j++)
        z += exp(((double)xs[order[j]] - mx) / t);
    int32_t m = k;
    if (c->top_p < 1.0f) {
        const double need = ((double)c->top_p + 1e-6) * z;
        double cum = 0.0;
        for (m = 0; m < k;) {
            cum += exp(((double)xs[order[m++]] - mx) / t);
            if (cum >= need)
                break;
        }
    }
    for (int32_t j = 0; j < m; j++) {
        const double w = exp(((double)xs[order[j]] - mx) / t);
        if (w >= (double)c->min_p - 1e-6 && xs[order[j]] > -INFINITY)
            allowed[order[j]] = 1;
    }
}

static void test_sweep(void)
{
    printf("sweep against the reference chain\n");
    static const int32_t vs[] = {1, 2, 3, 17, 1000, BIG_V};
    static const float temps[] = {0.1f, 0.7f, 1.5f, 5.0f};
    static const int32_t ks[] = {0, 0, 1, 5, 40, 1 << 20};
    static const float tps[] = {1.0f, 0.95f, 0.5f, 0.1f};
    static const float mps[] = {0.0f, 0.05f, 0.3f, 1.0f};
    tu_rng r;
    tu_rng_seed(&r, 3);
    float *x = tu_xmalloc(sizeof(float) * BIG_V), *xs = tu_xmalloc(sizeof(float) * BIG_V);
    int32_t *order = tu_xmalloc(sizeof(int32_t) * BIG_V);
    unsigned char *allowed = tu_xmalloc(BIG_V);
    int n_cases = 0, n_bad = 0;
    for (int vi = 0; vi < 6; vi++) {
        const int n_trials = vs[vi] == BIG_V ? 40 : 120;
        for (int trial = 0; trial < n_trials; trial++) {
            const int32_t v = vs[vi];
            const float spread = trial % 3 == 0 ? 1.0f : trial % 3 == 1 ? 8.0f : 30.0f;
            tu_fill_uniform(&r, x, (size_t)v, -spread, spread);
            if (trial % 4 == 1) /* ties */
                for (int32_t i = 0; i < v; i++)
                    x[i] = floorf(x[i]);
            if (trial % 5 == 2 && v > 1) /* some NaN and -inf */
                for (int32_t i = 0; i < v; i += 3)
                    x[i] = (i / 3) % 2 ? NAN : -INFINITY;
            gqa_sampler_config c = plain(temps[tu_rng_int(&r, 0, 3)], (uint64_t)trial);
            c.top_k = ks[tu_rng_int(&r, 0, 5)];
            c.top_p = tps[tu_rng_int(&r, 0, 3)];
            c.min_p = mps[tu_rng_int(&r, 0, 3)];
            if (argmax_ref(x, v) < 0)
                x[v - 1] = 0.0f;
            reference_allowed(x, v, &c, allowed, order, xs);
            gqa_sampler *s = make(&c, v);
            const int draws = v == BIG_V ? 50 : 200;
            for (int i = 0; i < draws; i++) {
                const int32_t t = sample1(s, x);
                const int ok = t >= 0 && t < v && allowed[t] && !isnan(x[t]) && x[t] > -INFINITY;
                if (!ok && n_bad++ < 5)
                    printf("  n_vocab %d T %g top_k %d top_p %g min_p %g: drew %d (logit %g)\n",
                           (int)v, (double)c.temperature, (int)c.top_k, (double)c.top_p,
                           (double)c.min_p, (int)t, t >= 0 && t < v ? (double)x[t] : 0.0);
            }
            gqa_sampler_free(s);
            n_cases++;
        }
    }
    CHECK(n_bad == 0, "%d draws outside the reference's allowed set", n_bad);
    printf("  %d cases\n", n_cases);
    free(x);
    free(xs);
    free(order);
    free(allowed);
}

/* ------------------------------------------------------- 6. penalties -- */

/* Greedy choice after accepting tokens acc[0..n). */
static int32_t greedy_after(const gqa_sampler_config *c, const float *x, int32_t v,
                            const int32_t *acc, int n)
{
    gqa_sampler *s = make(c, v);
    for (int i = 0; i < n; i++)
        CHECK(gqa_sampler_accept(s, acc[i]) == GQA_OK, "accept %d", (int)acc[i]);
    const int32_t t = sample1(s, x);
    gqa_sampler_free(s);
    return t;
}

static void test_penalties(void)
{
    printf("penalties\n");
    enum { V = 16 };
    float x[V];
    for (int i = 0; i < V; i++)
        x[i] = 0.0f;
    x[5] = 2.0f;
    x[9] = 1.9f;
    x[12] = 1.85f;
    gqa_sampler_config c = plain(0.0f, 0);
    c.repeat_penalty = 1.1f;
    c.repeat_last_n = 64;
    const int32_t a5[] = {5}, a59[] = {5, 9}, a123[] = {1, 2, 3};
    CHECK(greedy_after(&c, x, V, NULL, 0) == 5, "no history: 5");
    CHECK(greedy_after(&c, x, V, a5, 1) == 9, "5 penalised: 2/1.1 < 1.9 -> 9");
    CHECK(greedy_after(&c, x, V, a59, 2) == 12, "5 and 9 penalised, 12 not -> 12");
    CHECK(greedy_after(&c, x, V, a123, 3) == 5, "tokens outside the window unchanged -> 5");
    /* top_k = 1 at a temperature goes through the same penalties */
    gqa_sampler_config ck = c;
    ck.temperature = 1.0f;
    ck.top_k = 1;
    CHECK(greedy_after(&ck, x, V, a5, 1) == 9, "top_k 1 path: penalised");
    ck.top_k = 0;
    ck.top_p = 0.01f;
    CHECK(greedy_after(&ck, x, V, a5, 1) == 9, "top_p path: penalised");

    /* negative logits are multiplied */
    float y[V];
    for (int i = 0; i < V; i++)
        y[i] = -3.0f;
    y[2] = -1.0f;
    y[4] = -1.05f;
    const int32_t a2[] = {2};
    CHECK(greedy_after(&c, y, V, a2, 1) == 4, "negative: -1 * 1.1 < -1.05 -> 4");

    /* once per distinct token: 2/1.1 = 1.818 > 1.75, 2/1.21 = 1.65 < 1.75 */
    float z[V];
    memcpy(z, x, sizeof z);
    z[9] = 1.75f;
    z[12] = 0.0f;
    const int32_t a55[] = {5, 5, 5};
    CHECK(greedy_after(&c, z, V, a55, 3) == 5, "repeat penalty applied more than once");

    /* the window slides: last_n 3 */
    c.repeat_last_n = 3;
    const int32_t s512[] = {5, 1, 2}, s5123[] = {5, 1, 2, 3};
    CHECK(greedy_after(&c, x, V, s512, 3) == 9, "5 still in the window of 3");
    CHECK(greedy_after(&c, x, V, s5123, 4) == 5, "5 left the window of 3");
    /* counts follow the window: frequency 0.07, 2 - 0.07 c vs 1.9 and 1.85 */
    gqa_sampler_config cf = plain(0.0f, 0);
    cf.frequency_penalty = 0.07f;
    cf.repeat_last_n = 3;
    const int32_t f55[] = {5, 5}, f551[] = {5, 5, 1}, f5512[] = {5, 5, 1, 2};
    CHECK(greedy_after(&cf, x, V, f55, 2) == 9, "frequency: count 2 -> 1.86 < 1.9");
    CHECK(greedy_after(&cf, x, V, f551, 3) == 9, "frequency: count still 2");
    CHECK(greedy_after(&cf, x, V, f5512, 4) == 5, "frequency: count 1 after sliding -> 1.93");
    /* wrap-around many times */
    {
        gqa_sampler *s = make(&cf, V);
        for (int i = 0; i < 1000; i++)
            gqa_sampler_accept(s, (int32_t)(i % 4)); /* 0..3 only */
        gqa_sampler_accept(s, 5);
        CHECK(sample1(s, x) == 5, "frequency after wrap: count 1");
        gqa_sampler_accept(s, 5);
        CHECK(sample1(s, x) == 9, "frequency after wrap: count 2");
        gqa_sampler_accept(s, 0);
        gqa_sampler_accept(s, 1);
        gqa_sampler_accept(s, 2);
        CHECK(sample1(s, x) == 5, "frequency after wrap: 5 gone");
        gqa_sampler_free(s);
    }
    /* presence: once per distinct token whatever the count */
    gqa_sampler_config cp = plain(0.0f, 0);
    cp.presence_penalty = 0.15f;
    float w[V];
    memcpy(w, x, sizeof w);
    w[9] = 1.8f;
    w[12] = 0.0f;
    CHECK(greedy_after(&cp, w, V, a55, 3) == 5, "presence: 2 - 0.15 = 1.85 > 1.8");
    w[9] = 1.9f;
    CHECK(greedy_after(&cp, w, V, a5, 1) == 9, "presence: 1.85 < 1.9");

    /* -1: everything since create/reset; reset forgets; 0: off */
    c.repeat_last_n = -1;
    {
        gqa_sampler *s = make(&c, V);
        gqa_sampler_accept(s, 5);
        for (int i = 0; i < 1000; i++)
            gqa_sampler_accept(s, (int32_t)(i % 4));
        CHECK(sample1(s, x) == 9, "last_n -1: 5 remembered");
        gqa_sampler_reset(s);
        CHECK(sample1(s, x) == 5, "reset forgot the history");
        gqa_sampler_free(s);
    }
    c.repeat_last_n = 0;
    CHECK(greedy_after(&c, x, V, a5, 1) == 5, "last_n 0: no penalty");

    /* penalties never revive NaN / -inf, even when they favour repeats */
    float u[V];
    for (int i = 0; i < V; i++)
        u[i] = -1.0f;
    u[3] = NAN;
    u[7] = -INFINITY;
    gqa_sampler_config cb = plain(1.0f, 1);
    cb.repeat_penalty = 0.01f;
    cb.presence_penalty = -1000.0f;
    cb.frequency_penalty = -1e30f;
    {
        gqa_sampler *s = make(&cb, V);
        gqa_sampler_accept(s, 3);
        gqa_sampler_accept(s, 7);
        int bad = 0;
        for (int i = 0; i < 2000; i++) {
            const int32_t t = sample1(s, u);
            bad += t == 3 || t == 7;
        }
        CHECK(bad == 0, "penalties revived a NaN/-inf token %d times", bad);
        gqa_sampler_accept(s, 0); /* boosted far above everything: always 0 */
        int zeros = 0;
        for (int i = 0; i < 100; i++)
            zeros += sample1(s, u) == 0;
        CHECK(zeros == 100, "a boosted token (logit clamped to FLT_MAX) won %d of 100", zeros);
        gqa_sampler_free(s);
    }

    /* the logits are read only */
    {
        float before[V], after[V];
        memcpy(before, x, sizeof x);
        gqa_sampler_config cd;
        gqa_sampler_config_default(&cd);
        cd.repeat_penalty = 1.3f;
        cd.frequency_penalty = 0.2f;
        cd.presence_penalty = 0.1f;
        gqa_sampler *s = make(&cd, V);
        gqa_sampler_accept(s, 5);
        gqa_sampler_accept(s, 9);
        (void)sample1(s, x);
        memcpy(after, x, sizeof x);
        CHECK(memcmp(before, after, sizeof x) == 0, "sample() modified the logits");
        gqa_sampler_free(s);
    }
}

/* --------------------------------------------------------------- time -- */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void time_one(const char *what, const gqa_sampler_config *c, const float *x, int accept)
{
    enum { REPS = 2000 };
    static double t[REPS];
    gqa_sampler *s = make(c, BIG_V);
    for (int i = 0; i < accept; i++)
        gqa_sampler_accept(s, (int32_t)((i * 7919) % BIG_V));
    for (int i = 0; i < 50; i++)
        (void)sample1(s, x);
    for (int i = 0; i < REPS; i++) {
        const double t0 = tu_seconds();
        (void)sample1(s, x);
        t[i] = tu_seconds() - t0;
    }
    qsort(t, REPS, sizeof t[0], cmp_double);
    printf("  %-52s median %7.1f us   p99 %7.1f us\n", what, t[REPS / 2] * 1e6,
           t[REPS * 99 / 100] * 1e6);
    gqa_sampler_free(s);
}

static void time_sampler(void)
{
    printf("sample() for n_vocab = %d (median of 2000 calls)\n", BIG_V);
    float *x = tu_xmalloc(sizeof(float) * BIG_V), *flat = tu_xmalloc(sizeof(float) * BIG_V);
    tu_rng r;
    tu_rng_seed(&r, 4);
    /* LLM-like logits: roughly normal (sum of 4 uniforms), sd ~ 3, plus a
     * few strong candidates. */
    for (int32_t i = 0; i < BIG_V; i++) {
        float a = 0.0f;
        for (int j = 0; j < 4; j++)
            a += tu_rng_uniform(&r, -2.6f, 2.6f);
        x[i] = a;
        flat[i] = 1.0f;
    }
    for (int j = 0; j < 5; j++)
        x[tu_rng_int(&r, 0, BIG_V - 1)] = 14.0f + (float)j;
    gqa_sampler_config c;
    gqa_sampler_config_default(&c);
    time_one("default (T 0.8, top_k 40, top_p 0.95, min_p 0.05)", &c, x, 0);
    c.repeat_penalty = 1.1f;
    c.frequency_penalty = 0.1f;
    time_one("default + penalties, 64-token window", &c, x, 64);
    gqa_sampler_config_default(&c);
    c.temperature = 0.0f;
    time_one("greedy", &c, x, 0);
    gqa_sampler_config_default(&c);
    c.top_k = 0;
    time_one("top_k 0, top_p 0.95, min_p 0.05", &c, x, 0);
    c.min_p = 0.0f;
    time_one("top_k 0, top_p 0.95, min_p 0", &c, x, 0);
    c.temperature = 1.5f;
    time_one("top_k 0, top_p 0.95, min_p 0, T 1.5", &c, x, 0);
    c.top_p = 1.0f;
    time_one("top_k 0, top_p 1, min_p 0 (pure softmax)", &c, x, 0);
    c.top_p = 0.95f;
    time_one("worst: flat logits, top_k 0, top_p 0.95, min_p 0", &c, flat, 0);
    gqa_sampler_config_default(&c);
    c.top_k = 40000;
    time_one("flat logits, top_k 40000", &c, flat, 0);
    free(x);
    free(flat);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--time") == 0) {
        time_sampler();
        return 0;
    }
    test_errors();
    test_greedy();
    test_determinism();
    test_distributions();
    test_sweep();
    test_penalties();
    return tu_summary();
}
