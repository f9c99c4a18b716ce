/* test_errors.c - bad input, edge values and special numbers.
 *
 *  - every invalid argument of gqa_attention returns the documented status and
 *    leaves a gqa_last_error() message that names the offending value;
 *  - status and dtype names, gqa_last_error's lifetime rules, kernel and
 *    thread selection;
 *  - n_q == 0 is a no-op; rows that see no key give zeros and lse = -inf;
 *  - NaN/Inf in q, k or v reach exactly the rows that read them, in every
 *    kernel set, and nothing crashes;
 *  - the f16/bf16 conversions on zeros, infinities, NaNs, subnormals, the
 *    largest finite values and rounding ties, plus a nearest-even property
 *    check on random values and an exhaustive round trip.
 */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "test_util.h"


/* ---------------------------------------------------- message checks -- */

static int is_word_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_';
}

/* Case-insensitive search for `tok` standing alone: not glued to letters,
 * digits or '_' on either side (so "4" does not match inside "64"). */
static int has_token(const char *msg, const char *tok, size_t len)
{
    size_t n = strlen(msg);
    for (size_t i = 0; i + len <= n; i++) {
        size_t j = 0;
        while (j < len && tolower((unsigned char)msg[i + j]) == tolower((unsigned char)tok[j]))
            j++;
        if (j < len)
            continue;
        int left_ok = i == 0 || !is_word_char(msg[i - 1]) || !is_word_char(tok[0]);
        int right_ok = i + len == n || !is_word_char(msg[i + len]) || !is_word_char(tok[len - 1]);
        if (left_ok && right_ok)
            return 1;
    }
    return 0;
}

/* `spec` is "a|b;c": every ';'-separated group must match, a group matches
 * when any of its '|'-separated tokens does. */
static int message_matches(const char *msg, const char *spec)
{
    const char *p = spec;
    while (*p) {
        const char *group_end = strchr(p, ';');
        if (!group_end)
            group_end = p + strlen(p);
        int any = 0;
        const char *t = p;
        while (t < group_end) {
            const char *alt_end = memchr(t, '|', (size_t)(group_end - t));
            if (!alt_end)
                alt_end = group_end;
            any |= alt_end > t && has_token(msg, t, (size_t)(alt_end - t));
            t = alt_end + 1;
        }
        if (!any)
            return 0;
        p = *group_end ? group_end + 1 : group_end;
    }
    return 1;
}

/* Put a known message in gqa_last_error() so that a stale message cannot pass
 * for the one the next call should leave. */
static char sentinel[512];
static void set_sentinel(void)
{
    gqa_set_kernel("zz-no-such-kernel");
    snprintf(sentinel, sizeof sentinel, "%s", gqa_last_error());
}

/* ------------------------------------------------- argument checking -- */

#define BUF_FLOATS (1 << 16)
static float *buf_q, *buf_k, *buf_v, *buf_out, *buf_lse;

static gqa_attn_desc base_desc(void)
{
    gqa_attn_desc d = {8, 2, 64, 0.0f, 0, 0, GQA_F32};
    return d;
}

typedef struct bad_call {
    int line;
    const char *what;
    gqa_status want;
    const char *needles; /* see message_matches */
    int desc_null;
    gqa_attn_desc desc;
    int64_t n_q, n_kv, q_pos;
    const float *q;
    const void *k, *v;
    float *out;
} bad_call;

static void expect_error(const bad_call *b)
{
    set_sentinel();
    gqa_status s = gqa_attention(b->desc_null ? NULL : &b->desc, b->n_q, b->n_kv, b->q_pos, b->q,
                                 b->k, b->v, b->out, buf_lse);
    const char *msg = gqa_last_error();
    int fresh = msg && msg[0] && strcmp(msg, sentinel) != 0;
    int named = msg && message_matches(msg, b->needles);
    CHECK(s == b->want && fresh && named,
          "line %d, %s: got %s \"%s\", want %s and a new message containing \"%s\"", b->line,
          b->what, gqa_status_string(s), msg ? msg : "(NULL)", gqa_status_string(b->want),
          b->needles);
}

static bad_call good_call(int line, const char *what, const char *needles)
{
    bad_call b;
    memset(&b, 0, sizeof b);
    b.line = line;
    b.what = what;
    b.want = GQA_ERR_INVALID_ARG;
    b.needles = needles;
    b.desc = base_desc();
    b.n_q = 4;
    b.n_kv = 16;
    b.q_pos = 0;
    b.q = buf_q;
    b.k = buf_k;
    b.v = buf_v;
    b.out = buf_out;
    return b;
}

static void test_bad_arguments(void)
{
    bad_call b;

    /* The base call is valid: the cases below differ from it in one thing. */
    b = good_call(__LINE__, "valid base call", "");
    gqa_status s = gqa_attention(&b.desc, b.n_q, b.n_kv, b.q_pos, b.q, b.k, b.v, b.out, buf_lse);
    CHECK(s == GQA_OK, "the valid base call returned %s: %s", gqa_status_string(s),
          gqa_last_error());

    b = good_call(__LINE__, "desc NULL", "desc|descriptor");
    b.desc_null = 1;
    expect_error(&b);
    b = good_call(__LINE__, "q NULL with n_q > 0", "q|query");
    b.q = NULL;
    expect_error(&b);
    b = good_call(__LINE__, "k NULL", "k|key|keys");
    b.k = NULL;
    expect_error(&b);
    b = good_call(__LINE__, "v NULL", "v|value|values");
    b.v = NULL;
    expect_error(&b);
    b = good_call(__LINE__, "out NULL", "out|output");
    b.out = NULL;
    expect_error(&b);

    b = good_call(__LINE__, "H % G != 0 (H 14, G 4)", "14;4");
    b.desc.n_q_heads = 14;
    b.desc.n_kv_heads = 4;
    expect_error(&b);
    b = good_call(__LINE__, "G > H (H 2, G 8)", "2;8");
    b.desc.n_q_heads = 2;
    b.desc.n_kv_heads = 8;
    expect_error(&b);
    b = good_call(__LINE__, "H 0", "0");
    b.desc.n_q_heads = 0;
    expect_error(&b);
    b = good_call(__LINE__, "H -4", "-4");
    b.desc.n_q_heads = -4;
    expect_error(&b);
    b = good_call(__LINE__, "G 0", "0");
    b.desc.n_kv_heads = 0;
    expect_error(&b);
    b = good_call(__LINE__, "G -2", "-2");
    b.desc.n_kv_heads = -2;
    expect_error(&b);
    b = good_call(__LINE__, "d 0", "0");
    b.desc.head_dim = 0;
    expect_error(&b);
    b = good_call(__LINE__, "d 257", "257");
    b.desc.head_dim = 257;
    expect_error(&b);
    b = good_call(__LINE__, "d -3", "-3");
    b.desc.head_dim = -3;
    expect_error(&b);
    b = good_call(__LINE__, "n_kv 0", "0");
    b.n_kv = 0;
    expect_error(&b);
    b = good_call(__LINE__, "n_kv -7", "-7");
    b.n_kv = -7;
    expect_error(&b);
    b = good_call(__LINE__, "n_q -3", "-3");
    b.n_q = -3;
    expect_error(&b);
    b = good_call(__LINE__, "q_pos -5", "-5");
    b.q_pos = -5;
    expect_error(&b);
    b = good_call(__LINE__, "causal, q_pos 9 + n_q 5 > n_kv 11", "11;14|9");
    b.desc.causal = 1;
    b.q_pos = 9;
    b.n_q = 5;
    b.n_kv = 11;
    expect_error(&b);
    b = good_call(__LINE__, "causal, q_pos INT64_MAX (q_pos + n_q overflows)",
                  "9223372036854775807|overflow|overflows");
    b.desc.causal = 1;
    b.q_pos = INT64_MAX;
    b.n_q = 1;
    expect_error(&b);
    b = good_call(__LINE__, "window -2", "-2");
    b.desc.window = -2;
    expect_error(&b);
    b = good_call(__LINE__, "scale -1", "-1");
    b.desc.scale = -1.0f;
    expect_error(&b);
    b = good_call(__LINE__, "scale NaN", "nan");
    b.desc.scale = NAN;
    expect_error(&b);
    b = good_call(__LINE__, "scale +Inf", "inf");
    b.desc.scale = INFINITY;
    expect_error(&b);
    b = good_call(__LINE__, "kv_dtype 99", "99");
    b.desc.kv_dtype = (gqa_dtype)99;
    expect_error(&b);
    /* q8_0 rows are whole 32-value blocks: any other head_dim is a valid
     * request this build cannot serve. */
    b = good_call(__LINE__, "kv_dtype q8_0 with head_dim 8", "q8_0|head_dim");
    b.want = GQA_ERR_UNSUPPORTED;
    b.desc.kv_dtype = GQA_Q8_0;
    b.desc.head_dim = 8;
    expect_error(&b);
    b = good_call(__LINE__, "kv_dtype q8_0 with head_dim 40", "40");
    b.want = GQA_ERR_UNSUPPORTED;
    b.desc.kv_dtype = GQA_Q8_0;
    b.desc.head_dim = 40;
    expect_error(&b);

    /* Sizes whose byte counts overflow: the library must refuse before it
     * touches the (small) buffers. */
    b = good_call(__LINE__, "n_kv INT64_MAX/2", "4611686018427387903|overflow|overflows");
    b.n_kv = INT64_MAX / 2;
    expect_error(&b);
    b = good_call(__LINE__, "n_q INT64_MAX/2", "4611686018427387903|overflow|overflows");
    b.n_q = INT64_MAX / 2;
    expect_error(&b);
    /* n_kv * G * d = 2^62 + 128 fits in int64, but its byte count (x 4)
     * exceeds even SIZE_MAX. */
    b = good_call(__LINE__, "n_kv whose element count fits but byte count overflows",
                  "36028797018963969|overflow|overflows");
    b.n_kv = ((int64_t)1 << 55) + 1; /* 36028797018963969 */
    expect_error(&b);
}

/* ------------------------------------------------------ valid edges -- */

static void test_valid_edges(void)
{
    gqa_attn_desc desc = base_desc();
    tu_guarded out, lse;
    tu_guarded_alloc(&out, 64);
    tu_guarded_alloc(&lse, 8);

    /* n_q == 0: OK with q NULL, and nothing is written. */
    for (int with_q = 0; with_q <= 1; with_q++) {
        tu_guarded_fill(&out, 1234.5f);
        tu_guarded_fill(&lse, 1234.5f);
        gqa_status s =
            gqa_attention(&desc, 0, 16, 0, with_q ? buf_q : NULL, buf_k, buf_v, out.p, lse.p);
        int untouched = tu_guarded_intact(&out) && tu_guarded_intact(&lse);
        for (size_t i = 0; i < out.n; i++)
            untouched &= out.p[i] == 1234.5f;
        for (size_t i = 0; i < lse.n; i++)
            untouched &= lse.p[i] == 1234.5f;
        CHECK(s == GQA_OK && untouched, "n_q 0 (q %s): got %s (%s), output untouched: %d",
              with_q ? "set" : "NULL", gqa_status_string(s), gqa_last_error(), untouched);
    }

    /* A non-causal window whose queries sit far past the keys: every row sees
     * nothing, so zeros and lse = -inf (documented). In every kernel set. */
    gqa_attn_desc w = {4, 2, 8, 0.0f, 0, 16, GQA_F32};
    tu_guarded o2, l2;
    tu_guarded_alloc(&o2, 3 * 4 * 8);
    tu_guarded_alloc(&l2, 3 * 4);
    for (int ki = -1; ki < tu_n_fast_kernels; ki++) {
        const char *kernel = ki < 0 ? "ref" : tu_fast_kernels[ki];
        int sel = tu_select_kernel(kernel);
        if (sel < 0)
            tu_failed++;
        if (sel != 1)
            continue;
        for (int64_t q_pos = 100; q_pos <= 1000000000000ll; q_pos *= 10000) {
            tu_guarded_fill(&o2, NAN);
            tu_guarded_fill(&l2, NAN);
            gqa_status s = gqa_attention(&w, 3, 50, q_pos, buf_q, buf_k, buf_v, o2.p, l2.p);
            int ok = s == GQA_OK && tu_guarded_intact(&o2) && tu_guarded_intact(&l2);
            for (size_t i = 0; i < o2.n; i++)
                ok &= o2.p[i] == 0.0f;
            for (size_t i = 0; i < l2.n; i++)
                ok &= isinf(l2.p[i]) && l2.p[i] < 0;
            CHECK(ok,
                  "[%s] window 16, n_kv 50, q_pos %lld: want OK, zeros and lse -inf; got %s "
                  "(%s), out[0] %g lse[0] %g",
                  kernel, (long long)q_pos, gqa_status_string(s), gqa_last_error(), (double)o2.p[0],
                  (double)l2.p[0]);
        }
    }
    tu_guarded_free(&out);
    tu_guarded_free(&lse);
    tu_guarded_free(&o2);
    tu_guarded_free(&l2);
}

/* ------------------------------------------------ API housekeeping -- */

static void test_names_and_settings(void)
{
    const gqa_status all[] = {
        GQA_OK,     GQA_ERR_INVALID_ARG, GQA_ERR_NO_MEMORY, GQA_ERR_UNSUPPORTED,
        GQA_ERR_IO, GQA_ERR_FORMAT,      GQA_ERR_CAPACITY};
    const int n = (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < n; i++) {
        const char *a = gqa_status_string(all[i]);
        CHECK(a && a[0] && strcmp(a, "unknown status") != 0, "gqa_status_string(%d) = \"%s\"",
              (int)all[i], a ? a : "(NULL)");
        for (int j = 0; a && j < i; j++) {
            const char *b = gqa_status_string(all[j]);
            CHECK(b && strcmp(a, b) != 0, "statuses %d and %d share the name \"%s\"", (int)all[i],
                  (int)all[j], a);
        }
    }
    const char *unknown = gqa_status_string((gqa_status)99);
    CHECK(unknown && strcmp(unknown, "unknown status") == 0, "gqa_status_string(99) = \"%s\"",
          unknown ? unknown : "(NULL)");

    const gqa_dtype dts[] = {GQA_F32, GQA_F16, GQA_BF16, GQA_Q8_0};
    const char *names[] = {"f32", "f16", "bf16", "q8_0"};
    for (int i = 0; i < 4; i++) {
        const char *a = gqa_dtype_name(dts[i]);
        CHECK(a && strcmp(a, names[i]) == 0, "gqa_dtype_name(%d) = \"%s\"", i, a ? a : "(NULL)");
    }
    const char *ud = gqa_dtype_name((gqa_dtype)99);
    CHECK(ud && strcmp(ud, "unknown") == 0, "gqa_dtype_name(99) = \"%s\"", ud ? ud : "(NULL)");

    /* Kernel selection. */
    const char *kn = gqa_kernel_name();
    CHECK(kn && (strcmp(kn, "avx512") == 0 || strcmp(kn, "avx2") == 0 || strcmp(kn, "neon") == 0 ||
                 strcmp(kn, "scalar") == 0 || strcmp(kn, "ref") == 0),
          "gqa_kernel_name() = \"%s\"", kn ? kn : "(NULL)");
    set_sentinel();
    gqa_status s = gqa_set_kernel("bogus-isa");
    CHECK(s == GQA_ERR_INVALID_ARG && has_token(gqa_last_error(), "bogus-isa", 9),
          "gqa_set_kernel(\"bogus-isa\") = %s \"%s\"", gqa_status_string(s), gqa_last_error());
    s = gqa_set_kernel(NULL);
    CHECK(s == GQA_ERR_INVALID_ARG, "gqa_set_kernel(NULL) = %s", gqa_status_string(s));
    for (int ki = -1; ki < tu_n_fast_kernels; ki++) {
        const char *name = ki < 0 ? "ref" : tu_kernel_set(tu_fast_kernels[ki]);
        s = gqa_set_kernel(name);
        int must = ki <= 0; /* ref and scalar always exist */
        CHECK(s == GQA_OK || (!must && s == GQA_ERR_UNSUPPORTED), "gqa_set_kernel(\"%s\") = %s",
              name, gqa_status_string(s));
        if (s == GQA_OK)
            CHECK(strcmp(gqa_kernel_name(), name) == 0, "after selecting \"%s\" the name is \"%s\"",
                  name, gqa_kernel_name());
    }

    /* Threads: n < 0 is 0, 0 is one per core, always >= 1. */
    gqa_set_num_threads(3);
    CHECK(gqa_get_num_threads() == 3, "set 3 threads, get %d", gqa_get_num_threads());
    gqa_set_num_threads(0);
    CHECK(gqa_get_num_threads() >= 1, "0 threads resolves to %d", gqa_get_num_threads());
    int per_core = gqa_get_num_threads();
    gqa_set_num_threads(-5);
    CHECK(gqa_get_num_threads() == per_core, "-5 threads resolves to %d, 0 to %d",
          gqa_get_num_threads(), per_core);
    gqa_set_num_threads(2);

    /* gqa_last_error: a failure leaves a message; a later success keeps it. */
    gqa_attn_desc bad = base_desc();
    bad.head_dim = 300;
    gqa_attention(&bad, 1, 16, 0, buf_q, buf_k, buf_v, buf_out, NULL);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", gqa_last_error());
    gqa_attn_desc good = base_desc();
    s = gqa_attention(&good, 1, 16, 0, buf_q, buf_k, buf_v, buf_out, NULL);
    CHECK(s == GQA_OK && strcmp(saved, gqa_last_error()) == 0,
          "a successful call changed gqa_last_error from \"%s\" to \"%s\"", saved,
          gqa_last_error());
}

/* ------------------------------------------------- special numbers -- */

/* Which (row, head) pairs of an n_q x H output are expected NaN, per element. */
typedef int (*nan_rule)(int64_t i, int64_t h, int64_t t, void *ctx);

typedef struct special_setup {
    int32_t H, G, d;
    int64_t n_q, n_kv, q_pos;
    int64_t row, head, key, group, dim; /* where the special value is planted */
} special_setup;

static int sees_key(const special_setup *s, int64_t i)
{
    return s->q_pos + i >= s->key; /* causal, no window */
}

static int rule_q(int64_t i, int64_t h, int64_t t, void *ctx)
{
    const special_setup *s = ctx;
    (void)t;
    return i == s->row && h == s->head;
}

static int rule_k(int64_t i, int64_t h, int64_t t, void *ctx)
{
    const special_setup *s = ctx;
    (void)t;
    return h / (s->H / s->G) == s->group && sees_key(s, i);
}

static int rule_v(int64_t i, int64_t h, int64_t t, void *ctx)
{
    const special_setup *s = ctx;
    return h / (s->H / s->G) == s->group && sees_key(s, i) && t == s->dim;
}

typedef enum plant_kind { PLANT_Q_NAN, PLANT_K_NAN, PLANT_K_INF, PLANT_V_NAN } plant_kind;

static void run_special(plant_kind kind, gqa_dtype dt, const char *kernel, int threads)
{
    static const char *const kind_names[] = {"NaN in q", "NaN in k", "+Inf in k", "NaN in v"};
    special_setup s = {8, 2, 64, 5, 100, 95, 2, 3, 97, 1, 7};
    if (kind == PLANT_K_INF)
        s.group = 0;
    size_t nq = (size_t)(s.n_q * s.H * s.d), nkv = (size_t)(s.n_kv * s.G * s.d);
    tu_rng rng;
    tu_rng_seed(&rng, 0xbad5eedull + (uint64_t)kind);
    float *q = tu_xmalloc(nq * sizeof(float)), *kf = tu_xmalloc(nkv * sizeof(float));
    float *vf = tu_xmalloc(nkv * sizeof(float));
    tu_fill_uniform(&rng, q, nq, -1.0f, 1.0f);
    tu_fill_uniform(&rng, kf, nkv, -1.0f, 1.0f);
    tu_fill_uniform(&rng, vf, nkv, -1.0f, 1.0f);
    size_t kv_at = (size_t)((s.key * s.G + s.group) * s.d + s.dim);
    nan_rule rule = rule_q;
    switch (kind) {
    case PLANT_Q_NAN: q[(s.row * s.H + s.head) * s.d + s.dim] = NAN; break;
    case PLANT_K_NAN:
        kf[kv_at] = NAN;
        rule = rule_k;
        break;
    case PLANT_K_INF:
        /* With every q[.][.][dim] > 0 the score of the key is +Inf, and
         * exp(+Inf - max) = exp(Inf - Inf) is NaN: the row cannot be finite. */
        for (size_t e = (size_t)s.dim; e < nq; e += (size_t)s.d)
            q[e] = 0.25f + fabsf(q[e]);
        kf[kv_at] = INFINITY;
        rule = rule_k;
        break;
    case PLANT_V_NAN:
        vf[kv_at] = NAN;
        rule = rule_v;
        break;
    }
    size_t es = tu_dtype_size(dt);
    void *k = tu_xmalloc(nkv * es), *v = tu_xmalloc(nkv * es);
    tu_encode(dt, kf, k, nkv);
    tu_encode(dt, vf, v, nkv);

    tu_guarded out, lse;
    tu_guarded_alloc(&out, nq);
    tu_guarded_alloc(&lse, (size_t)(s.n_q * s.H));
    gqa_attn_desc desc = {s.H, s.G, s.d, 0.0f, 1, 0, dt};
    gqa_set_num_threads(threads);
    gqa_status st = gqa_attention(&desc, s.n_q, s.n_kv, s.q_pos, q, k, v, out.p, lse.p);
    int64_t wrong = 0, first_i = -1, first_h = -1, first_t = -1;
    for (int64_t i = 0; i < s.n_q; i++)
        for (int64_t h = 0; h < s.H; h++) {
            for (int64_t t = 0; t < s.d; t++) {
                int want_nan = rule(i, h, t, &s);
                float x = out.p[(i * s.H + h) * s.d + t];
                if (want_nan ? !isnan(x) : !isfinite(x)) {
                    if (wrong++ == 0) {
                        first_i = i;
                        first_h = h;
                        first_t = t;
                    }
                }
            }
            /* lse: NaN where the scores are; a NaN in v leaves it finite. */
            int want_nan = kind != PLANT_V_NAN && rule(i, h, 0, &s);
            float x = lse.p[i * s.H + h];
            if (want_nan ? !isnan(x) : !isfinite(x)) {
                if (wrong++ == 0) {
                    first_i = i;
                    first_h = h;
                    first_t = -1;
                }
            }
        }
    int guards = tu_guarded_intact(&out) && tu_guarded_intact(&lse);
    CHECK(st == GQA_OK && wrong == 0 && guards,
          "[%s, %d threads, %s] %s at row %lld head %lld key %lld group %lld dim %lld: status "
          "%s, %lld wrong elements (first: token %lld head %lld %s %lld), guards %s",
          kernel, threads, gqa_dtype_name(dt), kind_names[kind], (long long)s.row,
          (long long)s.head, (long long)s.key, (long long)s.group, (long long)s.dim,
          gqa_status_string(st), (long long)wrong, (long long)first_i, (long long)first_h,
          first_t < 0 ? "lse" : "dim", (long long)first_t, guards ? "intact" : "overwritten");
    tu_guarded_free(&out);
    tu_guarded_free(&lse);
    free(q);
    free(kf);
    free(vf);
    free(k);
    free(v);
}

static void test_special_values(void)
{
    const gqa_dtype dts[] = {GQA_F32, GQA_F16, GQA_BF16};
    for (int ki = -1; ki < tu_n_fast_kernels; ki++) {
        const char *kernel = ki < 0 ? "ref" : tu_fast_kernels[ki];
        int sel = tu_select_kernel(kernel);
        if (sel < 0)
            tu_failed++;
        if (sel != 1)
            continue;
        for (int kind = PLANT_Q_NAN; kind <= PLANT_V_NAN; kind++)
            for (int di = 0; di < 3; di++)
                for (int threads = 1; threads <= 2; threads++)
                    run_special((plant_kind)kind, dts[di], kernel, threads);
    }
}

/* ------------------------------------------------------ conversions -- */

static float f32_of_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint32_t bits_of_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static int f16_is_nan(uint16_t h)
{
    return (h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0;
}

static int bf16_is_nan(uint16_t h)
{
    return (h & 0x7f80u) == 0x7f80u && (h & 0x007fu) != 0;
}

/* Magnitude of a 16-bit pattern (sign cleared); the pattern just past the
 * largest finite value stands for the next power of two, as rounding sees it. */
static double mag16(gqa_dtype t, uint16_t a)
{
    if (t == GQA_F16)
        return a == 0x7c00u ? 65536.0 : (double)gqa_f16_to_f32(a);
    return a == 0x7f80u ? ldexp(1.0, 128) : (double)gqa_bf16_to_f32(a);
}

/* The result is the nearest representable value to x, ties to an even
 * mantissa: checked against both neighbours, independent of how the library
 * computes it. x must be finite. */
static int rounds_to_nearest_even(gqa_dtype t, float x, uint16_t h)
{
    uint16_t sign = (uint16_t)(signbit(x) ? 0x8000u : 0);
    uint16_t inf = t == GQA_F16 ? 0x7c00u : 0x7f80u;
    if ((h & 0x8000u) != sign)
        return 0;
    uint16_t a = h & 0x7fffu;
    if (a > inf)
        return 0;
    double ax = fabs((double)x), e = fabs(ax - mag16(t, a));
    if (a > 0 && fabs(ax - mag16(t, (uint16_t)(a - 1))) < e)
        return 0;
    if (a < inf && fabs(ax - mag16(t, (uint16_t)(a + 1))) < e)
        return 0;
    int tie = (a > 0 && fabs(ax - mag16(t, (uint16_t)(a - 1))) == e) ||
              (a < inf && fabs(ax - mag16(t, (uint16_t)(a + 1))) == e);
    return !tie || (a & 1u) == 0;
}

typedef struct conv_case {
    uint32_t in;   /* f32 bits */
    uint16_t want; /* expected bits; 0xffff: any NaN with the input's sign */
    const char *what;
} conv_case;

static void test_conversions(void)
{
    static const conv_case f16_cases[] = {
        {0x00000000u, 0x0000u, "+0"},
        {0x80000000u, 0x8000u, "-0"},
        {0x7f800000u, 0x7c00u, "+Inf"},
        {0xff800000u, 0xfc00u, "-Inf"},
        {0x7fc00000u, 0xffffu, "quiet NaN"},
        {0xffc00000u, 0xffffu, "negative NaN"},
        {0x7f800001u, 0xffffu, "NaN with only the lowest payload bit (must not become Inf)"},
        {0x477fe000u, 0x7bffu, "65504, the largest f16"},
        {0xc77fe000u, 0xfbffu, "-65504"},
        {0x477fefffu, 0x7bffu, "just below 65520 rounds down to 65504"},
        {0x477ff000u, 0x7c00u, "65520, the tie above the largest, rounds to Inf (even)"},
        {0x49742400u, 0x7c00u, "1e6 overflows to Inf"},
        {0x33800000u, 0x0001u, "2^-24, the smallest subnormal"},
        {0xb3800000u, 0x8001u, "-2^-24"},
        {0x33000000u, 0x0000u, "2^-25, a tie, rounds to even 0"},
        {0x33000001u, 0x0001u, "just above 2^-25 rounds up"},
        {0x33c00000u, 0x0002u, "3 * 2^-25, a tie between 1 and 2 ulps, rounds to even 2"},
        {0x387fc000u, 0x03ffu, "1023 * 2^-24, the largest subnormal"},
        {0x38800000u, 0x0400u, "2^-14, the smallest normal"},
        {0x387fe000u, 0x0400u, "2^-14 - 2^-25, a tie, rounds up into the normals (even)"},
        {0x2edbe6ffu, 0x0000u, "1e-10 underflows to 0"},
        {0x00000001u, 0x0000u, "the smallest f32 subnormal underflows to 0"},
        {0x3f801000u, 0x3c00u, "1 + 2^-11, a tie, rounds to even 1"},
        {0x3f803000u, 0x3c02u, "1 + 3 * 2^-11, a tie, rounds to even 1 + 2^-9"},
        {0x3f801001u, 0x3c01u, "just above the tie rounds up"},
        {0x3f800000u, 0x3c00u, "1"},
        {0xc0490fdbu, 0xc248u, "-pi"},
    };
    static const conv_case bf16_cases[] = {
        {0x00000000u, 0x0000u, "+0"},
        {0x80000000u, 0x8000u, "-0"},
        {0x7f800000u, 0x7f80u, "+Inf"},
        {0xff800000u, 0xff80u, "-Inf"},
        {0x7fc00000u, 0xffffu, "quiet NaN"},
        {0xffc00000u, 0xffffu, "negative NaN"},
        {0x7f800001u, 0xffffu, "NaN with only the lowest payload bit (must not become Inf)"},
        {0x7f7f0000u, 0x7f7fu, "the largest bf16"},
        {0x7f7f7fffu, 0x7f7fu, "just below the tie above the largest bf16"},
        {0x7f7fffffu, 0x7f80u, "FLT_MAX rounds to Inf"},
        {0x3f808000u, 0x3f80u, "1 + 2^-8, a tie, rounds to even 1"},
        {0x3f818000u, 0x3f82u, "1 + 3 * 2^-8, a tie, rounds to even"},
        {0x3f808001u, 0x3f81u, "just above the tie rounds up"},
        {0x00010000u, 0x0001u, "the smallest bf16 subnormal"},
        {0x00008000u, 0x0000u, "half of it, a tie, rounds to even 0"},
        {0x00018000u, 0x0002u, "1.5 of it, a tie, rounds to even 2"},
        {0x00000001u, 0x0000u, "the smallest f32 subnormal rounds to 0"},
        {0x807fffffu, 0x8080u, "the largest negative f32 subnormal rounds up to -FLT_MIN"},
        {0xc0490fdbu, 0xc049u, "-pi"},
    };
    for (size_t i = 0; i < sizeof f16_cases / sizeof f16_cases[0]; i++) {
        const conv_case *c = &f16_cases[i];
        uint16_t h = gqa_f32_to_f16(f32_of_bits(c->in));
        int ok = c->want == 0xffffu ? f16_is_nan(h) && (h & 0x8000u) == ((c->in >> 16) & 0x8000u)
                                    : h == c->want;
        CHECK(ok, "gqa_f32_to_f16(%#010x: %s) = %#06x, want %#06x", (unsigned)c->in, c->what,
              (unsigned)h, (unsigned)c->want);
    }
    for (size_t i = 0; i < sizeof bf16_cases / sizeof bf16_cases[0]; i++) {
        const conv_case *c = &bf16_cases[i];
        uint16_t h = gqa_f32_to_bf16(f32_of_bits(c->in));
        int ok = c->want == 0xffffu ? bf16_is_nan(h) && (h & 0x8000u) == ((c->in >> 16) & 0x8000u)
                                    : h == c->want;
        CHECK(ok, "gqa_f32_to_bf16(%#010x: %s) = %#06x, want %#06x", (unsigned)c->in, c->what,
              (unsigned)h, (unsigned)c->want);
    }

    /* Decoding: exact values. */
    CHECK(gqa_f16_to_f32(0x0001u) == 0x1p-24f, "f16 0x0001 -> %g", (double)gqa_f16_to_f32(1));
    CHECK(gqa_f16_to_f32(0x03ffu) == 1023.0f * 0x1p-24f, "f16 0x03ff -> %g",
          (double)gqa_f16_to_f32(0x03ffu));
    CHECK(gqa_f16_to_f32(0x7bffu) == 65504.0f, "f16 0x7bff -> %g", (double)gqa_f16_to_f32(0x7bffu));
    CHECK(bits_of_f32(gqa_f16_to_f32(0x8000u)) == 0x80000000u, "f16 -0 -> %g",
          (double)gqa_f16_to_f32(0x8000u));
    CHECK(isinf(gqa_f16_to_f32(0xfc00u)) && gqa_f16_to_f32(0xfc00u) < 0, "f16 -Inf");
    CHECK(isnan(gqa_f16_to_f32(0x7e00u)) && isnan(gqa_f16_to_f32(0x7c01u)), "f16 NaN decodes");
    CHECK(gqa_bf16_to_f32(0x0001u) == f32_of_bits(0x00010000u), "bf16 0x0001");
    CHECK(gqa_bf16_to_f32(0x7f7fu) == f32_of_bits(0x7f7f0000u), "bf16 largest");
    CHECK(isnan(gqa_bf16_to_f32(0x7f81u)) && isnan(gqa_bf16_to_f32(0xffc0u)), "bf16 NaN decodes");

    /* Exhaustive round trip: every non-NaN 16-bit pattern survives f32 and
     * back unchanged; every NaN stays a NaN. */
    int64_t bad16 = 0, badbf = 0;
    uint32_t first16 = 0, firstbf = 0;
    for (uint32_t h = 0; h <= 0xffffu; h++) {
        uint16_t r16 = gqa_f32_to_f16(gqa_f16_to_f32((uint16_t)h));
        int ok16 = f16_is_nan((uint16_t)h) ? f16_is_nan(r16) : r16 == h;
        if (!ok16 && bad16++ == 0)
            first16 = h;
        uint16_t rbf = gqa_f32_to_bf16(gqa_bf16_to_f32((uint16_t)h));
        int okbf = bf16_is_nan((uint16_t)h) ? bf16_is_nan(rbf) : rbf == h;
        if (!okbf && badbf++ == 0)
            firstbf = h;
    }
    CHECK(bad16 == 0, "f16 round trip: %lld patterns change, first %#06x", (long long)bad16,
          (unsigned)first16);
    CHECK(badbf == 0, "bf16 round trip: %lld patterns change, first %#06x", (long long)badbf,
          (unsigned)firstbf);

    /* Nearest-even on random finite floats: uniform bit patterns (all
     * exponents) and values near the f16 range, plus every exact tie. */
    tu_rng rng;
    tu_rng_seed(&rng, 0xf16f16ull);
    int64_t bad_rand16 = 0, bad_randbf = 0;
    float first_r16 = 0.0f, first_rbf = 0.0f;
    for (int i = 0; i < 400000; i++) {
        uint32_t u = (uint32_t)tu_rng_next(&rng);
        if (i & 1) /* exponents around the f16 range: 2^-26 .. 2^17 */
            u = (u & 0x807fffffu) | ((uint32_t)(101 + (u >> 23) % 43) << 23);
        float x = f32_of_bits(u);
        if (!isfinite(x))
            continue;
        uint16_t h = gqa_f32_to_f16(x);
        if (!rounds_to_nearest_even(GQA_F16, x, h) && bad_rand16++ == 0)
            first_r16 = x;
        uint16_t b = gqa_f32_to_bf16(x);
        if (!rounds_to_nearest_even(GQA_BF16, x, b) && bad_randbf++ == 0)
            first_rbf = x;
    }
    /* Every tie: midpoints between consecutive finite 16-bit values. */
    for (uint32_t a = 0; a < 0x7bffu; a++) {
        float mid = (float)((mag16(GQA_F16, (uint16_t)a) + mag16(GQA_F16, (uint16_t)(a + 1))) / 2);
        if (!rounds_to_nearest_even(GQA_F16, mid, gqa_f32_to_f16(mid)) && bad_rand16++ == 0)
            first_r16 = mid;
    }
    CHECK(bad_rand16 == 0, "f16 nearest-even: %lld wrong, first x = %.9g (%#010x)",
          (long long)bad_rand16, (double)first_r16, (unsigned)bits_of_f32(first_r16));
    CHECK(bad_randbf == 0, "bf16 nearest-even: %lld wrong, first x = %.9g (%#010x)",
          (long long)bad_randbf, (double)first_rbf, (unsigned)bits_of_f32(first_rbf));
}

int main(void)
{
    const char *initial = gqa_last_error();
    CHECK(initial && initial[0] == '\0', "gqa_last_error() before any failure = \"%s\"",
          initial ? initial : "(NULL)");

    buf_q = tu_xmalloc(BUF_FLOATS * sizeof(float));
    buf_k = tu_xmalloc(BUF_FLOATS * sizeof(float));
    buf_v = tu_xmalloc(BUF_FLOATS * sizeof(float));
    buf_out = tu_xmalloc(BUF_FLOATS * sizeof(float));
    buf_lse = tu_xmalloc(BUF_FLOATS * sizeof(float));
    tu_rng rng;
    tu_rng_seed(&rng, 7);
    tu_fill_uniform(&rng, buf_q, BUF_FLOATS, -1.0f, 1.0f);
    tu_fill_uniform(&rng, buf_k, BUF_FLOATS, -1.0f, 1.0f);
    tu_fill_uniform(&rng, buf_v, BUF_FLOATS, -1.0f, 1.0f);

    test_names_and_settings();
    if (tu_select_kernel("ref") == 1)
        test_bad_arguments();
    else
        tu_failed++;
    for (int ki = 0; ki < tu_n_fast_kernels; ki++) /* checks must not depend on the kernel */
        if (tu_select_kernel(tu_fast_kernels[ki]) == 1)
            test_bad_arguments();
    test_valid_edges();
    test_special_values();
    test_conversions();

    const char *last = gqa_last_error();
    CHECK(last != NULL, "gqa_last_error() returned NULL");
    free(buf_q);
    free(buf_k);
    free(buf_v);
    free(buf_out);
    free(buf_lse);
    return tu_summary();
}
