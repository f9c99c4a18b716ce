/* test_matvec.c - weight types: gqa_dequantize_row and gqa_matvec.
 *
 * 1. Test data comes from quantisers written here (GGML's rules: q8_0 scale
 *    amax/127, q4_0 scale "signed max" / -8, q4_1 (max - min) / 15 with the
 *    min as offset), with f16/bf16 encoders written here too; nothing of the
 *    library's conversion code makes the inputs.
 * 2. gqa_dequantize_row must match an element-by-element decoder written
 *    here EXACTLY: every supported value (q * d, (nib - 8) * d with an f16 d,
 *    nib * d + m rounded once) is exact or singly rounded the same way.
 * 3. gqa_matvec for every type x kernel set x rows {1, 7, 113} x cols
 *    {32, 64, 576, 1536} (plus tails 1, 13, 37 for f32/f16/bf16) x 1 and 2
 *    threads, against sum_i (double)w_i * x_i over the dequantised row.
 *    Tolerances, per row, with S = sum_i |w_i * x_i|:
 *      fast sets: |got - ref| <= (cols + 4) * 2^-24 * S. Any f32 summation
 *        order of n products (fma or not) plus one block-scale multiply per
 *        block is within gamma_(n+2) * S of the exact sum (Higham, 3.1);
 *        the bound holds for every order the ISAs use, so it is the same
 *        for all of them. The report prints the largest error seen in units
 *        of 2^-24 * S - in practice far below the bound.
 *      ref: |got - ref| <= 2^-24 * |ref| + 1e-12 * S: a double sum (error
 *        below n * 2^-53 * S) rounded once to f32.
 *    Also: y outside rows stays untouched (guards), 1 and 2 threads agree
 *    bitwise, q* weights at an odd address work.
 * 4. Bad input: NULL, unknown types (GQA_ERR_UNSUPPORTED naming the type),
 *    cols not a multiple of the block, negative sizes, misaligned f32.
 * 5. With models/SmolLM2-135M-Instruct.Q4_1.gguf (or GQA_MODEL_PATH): the
 *    real blk.0.attn_q.weight matvec on every kernel set, and token_embd rows
 *    through gqa_dequantize_row against the decoder here.
 * With --time: a 576 x 1536 q4_1 matvec timed per kernel set (GB/s of weights).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa_model.h"
#include "test_util.h"

#define QK 32
#define U24 (1.0 / 16777216.0) /* 2^-24, unit roundoff of f32 */

/* ------------------------------------------ independent encoders, decoders -- */

static double h2d(uint16_t h)
{
    const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp((double)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp((double)(m | 1024), e - 25);
    return s ? -v : v;
}

/* f32 -> f16 bits, round to nearest even; finite inputs below 65504 only. */
static uint16_t d2h(double x)
{
    const uint16_t sign = x < 0 ? 0x8000 : 0;
    double a = fabs(x);
    if (a == 0.0)
        return sign;
    int e;
    (void)frexp(a, &e);
    int E = e - 1 < -14 ? -14 : e - 1;
    double k = nearbyint(a / ldexp(1.0, E - 10)); /* 1..2048 units of the ulp */
    if (k >= 2048.0) {
        k /= 2.0;
        E++;
    }
    if (k < 1024.0) /* subnormal */
        return (uint16_t)(sign | (uint16_t)k);
    return (uint16_t)(sign | (uint16_t)((E + 15) << 10) | (uint16_t)(k - 1024.0));
}

static uint16_t f2bf(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    b += 0x7FFFu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

static double bf2d(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return (double)f;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
}

typedef struct type_info {
    uint32_t id;
    const char *name;
    int be, bb; /* elements and bytes per block */
} type_info;

static const type_info types[] = {
    {GQA_GGML_TYPE_F32, "f32", 1, 4},    {GQA_GGML_TYPE_F16, "f16", 1, 2},
    {GQA_GGML_TYPE_BF16, "bf16", 1, 2},  {GQA_GGML_TYPE_Q8_0, "q8_0", 32, 34},
    {GQA_GGML_TYPE_Q4_0, "q4_0", 32, 18}, {GQA_GGML_TYPE_Q4_1, "q4_1", 32, 20},
};
#define N_TYPES ((int)(sizeof types / sizeof types[0]))

static const type_info *type_by_id(uint32_t id)
{
    for (int i = 0; i < N_TYPES; i++)
        if (types[i].id == id)
            return &types[i];
    return NULL;
}

/* Element i of a row of type t, as the float the format defines. */
static float decode(const type_info *t, const uint8_t *row, int64_t i)
{
    const uint8_t *b = row + (i / t->be) * t->bb;
    const int j = (int)(i % t->be);
    switch (t->id) {
    case GQA_GGML_TYPE_F32: {
        float f;
        memcpy(&f, b, 4);
        return f;
    }
    case GQA_GGML_TYPE_F16: return (float)h2d(rd16(b));
    case GQA_GGML_TYPE_BF16: return (float)bf2d(rd16(b));
    case GQA_GGML_TYPE_Q8_0: return (float)((double)(int8_t)b[2 + j] * h2d(rd16(b)));
    default: break;
    }
    const uint8_t *qs = b + (t->id == GQA_GGML_TYPE_Q4_1 ? 4 : 2);
    const int nib = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    if (t->id == GQA_GGML_TYPE_Q4_0)
        return (float)((nib - 8) * h2d(rd16(b)));
    return (float)(nib * h2d(rd16(b)) + h2d(rd16(b + 2)));
}

/* GGML-style quantisers of one block of 32 values (scales rounded to f16
 * first, values quantised with the rounded scale). */
static void quantise_block(uint32_t t, const float *x, uint8_t *b)
{
    if (t == GQA_GGML_TYPE_Q8_0) {
        double amax = 0;
        for (int i = 0; i < QK; i++)
            amax = fmax(amax, fabs((double)x[i]));
        uint16_t dh = d2h(amax / 127.0);
        double d = h2d(dh), id = d != 0 ? 1.0 / d : 0.0;
        wr16(b, dh);
        for (int i = 0; i < QK; i++) {
            double q = nearbyint((double)x[i] * id);
            b[2 + i] = (uint8_t)(int8_t)(q > 127 ? 127 : q < -128 ? -128 : q);
        }
    } else if (t == GQA_GGML_TYPE_Q4_0) {
        double amax = 0, max = 0;
        for (int i = 0; i < QK; i++)
            if (fabs((double)x[i]) > amax) {
                amax = fabs((double)x[i]);
                max = x[i];
            }
        uint16_t dh = d2h(max / -8.0);
        double d = h2d(dh), id = d != 0 ? 1.0 / d : 0.0;
        wr16(b, dh);
        for (int i = 0; i < QK / 2; i++) {
            int lo = (int)floor((double)x[i] * id + 8.5), hi = (int)floor((double)x[i + 16] * id + 8.5);
            lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
            hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
            b[2 + i] = (uint8_t)(lo | (hi << 4));
        }
    } else { /* q4_1 */
        double mn = x[0], mx = x[0];
        for (int i = 1; i < QK; i++) {
            mn = fmin(mn, (double)x[i]);
            mx = fmax(mx, (double)x[i]);
        }
        uint16_t dh = d2h((mx - mn) / 15.0), mh = d2h(mn);
        double d = h2d(dh), m = h2d(mh), id = d != 0 ? 1.0 / d : 0.0;
        wr16(b, dh);
        wr16(b + 2, mh);
        for (int i = 0; i < QK / 2; i++) {
            int lo = (int)floor(((double)x[i] - m) * id + 0.5);
            int hi = (int)floor(((double)x[i + 16] - m) * id + 0.5);
            lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
            hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
            b[4 + i] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* Encode n floats (n a multiple of the block) as one row of type t. */
static void encode_row(const type_info *t, const float *x, int64_t n, uint8_t *row)
{
    for (int64_t b = 0; b < n / t->be; b++) {
        uint8_t *p = row + b * t->bb;
        switch (t->id) {
        case GQA_GGML_TYPE_F32: memcpy(p, &x[b], 4); break;
        case GQA_GGML_TYPE_F16: wr16(p, d2h((double)x[b])); break;
        case GQA_GGML_TYPE_BF16: wr16(p, f2bf(x[b])); break;
        default: quantise_block(t->id, x + b * QK, p); break;
        }
    }
}

/* A matrix of random test weights. Row r has its own magnitude (1e-3 .. 8)
 * and an offset, so q4_1 mins are nonzero; every 5th row has one all-zero
 * block (d = 0), and q8_0 rows get a -128 poked in (a legal byte GGML's
 * quantiser never writes). */
static void make_matrix(tu_rng *rng, const type_info *t, int64_t rows, int64_t cols,
                        uint8_t *w, int64_t row_bytes)
{
    float *tmp = tu_xmalloc((size_t)cols * sizeof *tmp);
    for (int64_t r = 0; r < rows; r++) {
        float amp = powf(2.0f, tu_rng_uniform(rng, -10.0f, 3.0f));
        float off = tu_rng_uniform(rng, -0.5f, 0.5f) * amp;
        for (int64_t i = 0; i < cols; i++)
            tmp[i] = off + amp * tu_rng_uniform(rng, -1.0f, 1.0f);
        if (r % 5 == 4 && cols >= QK)
            memset(tmp, 0, QK * sizeof *tmp);
        encode_row(t, tmp, cols, w + r * row_bytes);
        if (t->id == GQA_GGML_TYPE_Q8_0)
            w[r * row_bytes + 2 + (r * 7) % (row_bytes - 2)] = 0x80;
    }
    free(tmp);
}

/* ------------------------------------------------------------ reference -- */

/* Dequantise every row with gqa_dequantize_row (checked exactly against
 * decode() for the first and last row), then ref[r] and S[r] in double. */
static int reference(const type_info *t, const uint8_t *w, int64_t rows, int64_t cols,
                     int64_t row_bytes, const float *x, double *ref, double *S)
{
    float *deq = tu_xmalloc((size_t)cols * sizeof *deq);
    int ok = 1;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = w + r * row_bytes;
        gqa_status s = gqa_dequantize_row(t->id, row, cols, deq);
        if (s != GQA_OK) {
            printf("  gqa_dequantize_row(%s): %s\n", t->name, gqa_last_error());
            ok = 0;
            break;
        }
        double sum = 0, mag = 0;
        for (int64_t i = 0; i < cols; i++) {
            if ((r == 0 || r == rows - 1) && memcmp(&deq[i], &(float){decode(t, row, i)}, 4) != 0) {
                if (ok)
                    printf("  %s row %lld elem %lld: dequantised %.9g, format says %.9g\n",
                           t->name, (long long)r, (long long)i, (double)deq[i],
                           (double)decode(t, row, i));
                ok = 0;
            }
            sum += (double)deq[i] * (double)x[i];
            mag += fabs((double)deq[i] * (double)x[i]);
        }
        ref[r] = sum;
        S[r] = mag;
    }
    free(deq);
    return ok;
}

/* ---------------------------------------------------------------- sweep -- */

static const char *const kernel_sets[] = {"ref", "scalar", "avx2", "avx512", "neon"};
#define N_SETS ((int)(sizeof kernel_sets / sizeof kernel_sets[0]))

typedef struct set_stats {
    int cases, bad;
    double worst_units; /* max |got - ref| / (2^-24 * S) */
} set_stats;

/* One matrix against every kernel set and both thread counts. */
static void run_case(tu_rng *rng, const type_info *t, int64_t rows, int64_t cols,
                     set_stats *stats)
{
    const int64_t row_bytes = cols / t->be * t->bb;
    const size_t offset = (t->be > 1 && rows == 7) ? 1 : 0; /* q*: odd address */
    uint8_t *buf = tu_xmalloc((size_t)(rows * row_bytes) + 64);
    uint8_t *w = buf + offset;
    float *x = tu_xmalloc((size_t)cols * sizeof *x);
    double *ref = tu_xmalloc((size_t)rows * sizeof *ref), *S = tu_xmalloc((size_t)rows * sizeof *S);
    float *y1 = tu_xmalloc((size_t)rows * sizeof *y1);
    make_matrix(rng, t, rows, cols, w, row_bytes);
    tu_fill_uniform(rng, x, (size_t)cols, -1.0f, 1.0f);
    CHECK(reference(t, w, rows, cols, row_bytes, x, ref, S),
          "%s %lldx%lld: gqa_dequantize_row differs from the format", t->name, (long long)rows,
          (long long)cols);

    for (int k = 0; k < N_SETS; k++) {
        if (tu_select_kernel(kernel_sets[k]) != 1)
            continue;
        for (int nt = 1; nt <= 2; nt++) {
            gqa_set_num_threads(nt);
            tu_guarded y;
            tu_guarded_alloc(&y, (size_t)rows);
            gqa_status s = gqa_matvec(t->id, w, rows, cols, x, y.p);
            int ok = s == GQA_OK && tu_guarded_intact(&y);
            double worst = 0;
            int64_t worst_r = -1;
            for (int64_t r = 0; ok && r < rows; r++) {
                double err = fabs((double)y.p[r] - ref[r]);
                double tol = k == 0 ? U24 * fabs(ref[r]) + 1e-12 * S[r] : (double)(cols + 4) * U24 * S[r];
                double units = S[r] > 0 ? err / (U24 * S[r]) : (err > 0 ? (double)INFINITY : 0.0);
                if (!(err <= tol) && worst_r < 0) {
                    printf("  %s %s %lldx%lld t%d row %lld: got %.9g ref %.9g err %.3g tol %.3g\n",
                           kernel_sets[k], t->name, (long long)rows, (long long)cols, nt,
                           (long long)r, (double)y.p[r], ref[r], err, tol);
                    worst_r = r;
                }
                if (units > worst)
                    worst = units;
            }
            if (worst_r >= 0)
                ok = 0;
            if (nt == 1)
                memcpy(y1, y.p, (size_t)rows * sizeof *y1);
            else if (ok && memcmp(y1, y.p, (size_t)rows * sizeof *y1) != 0) {
                printf("  %s %s %lldx%lld: 1 and 2 threads differ\n", kernel_sets[k], t->name,
                       (long long)rows, (long long)cols);
                ok = 0;
            }
            CHECK(ok, "gqa_matvec %s %s %lldx%lld threads %d: %s", kernel_sets[k], t->name,
                  (long long)rows, (long long)cols, nt,
                  s != GQA_OK ? gqa_last_error() : "wrong result or guard overwritten");
            stats[k].cases++;
            stats[k].bad += !ok;
            if (k > 0 && worst > stats[k].worst_units)
                stats[k].worst_units = worst;
            tu_guarded_free(&y);
        }
    }
    free(buf);
    free(x);
    free(ref);
    free(S);
    free(y1);
}

static void test_sweep(void)
{
    static const int64_t rows_list[] = {1, 7, 113};
    static const int64_t cols_list[] = {32, 64, 576, 1536, 1, 13, 37};
    set_stats stats[N_SETS];
    memset(stats, 0, sizeof stats);
    tu_rng rng;
    tu_rng_seed(&rng, 0x5eed4);
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int ri = 0; ri < 3; ri++)
            for (int ci = 0; ci < 7; ci++) {
                if (cols_list[ci] % types[ti].be != 0)
                    continue;
                run_case(&rng, &types[ti], rows_list[ri], cols_list[ci], stats);
            }
    for (int k = 0; k < N_SETS; k++)
        if (stats[k].cases && k == 0)
            printf("matvec %-6s: %d cases, %d failed (within 2^-24 |ref| + 1e-12 S)\n",
                   kernel_sets[k], stats[k].cases, stats[k].bad);
        else if (stats[k].cases)
            printf("matvec %-6s: %d cases, %d failed, largest error %.3g x 2^-24 x S\n",
                   kernel_sets[k], stats[k].cases, stats[k].bad, stats[k].worst_units);
    gqa_set_num_threads(0);
}

/* ------------------------------------------------------------ bad input -- */

static void expect(gqa_status got, gqa_status want, const char *needle, const char *what)
{
    const char *msg = gqa_last_error();
    CHECK(got == want && (!needle || strstr(msg, needle)), "%s: got %s (\"%s\"), want %s%s%s",
          what, gqa_status_string(got), msg, gqa_status_string(want), needle ? " naming " : "",
          needle ? needle : "");
}

static void test_bad_input(void)
{
    float x[64] = {0}, y[4], out[64];
    uint8_t w[4 * 40] = {0};
    float wf[2 * 64 + 1] = {0};
    expect(gqa_matvec(GQA_GGML_TYPE_Q4_0, NULL, 2, 32, x, y), GQA_ERR_INVALID_ARG, "w", "NULL w");
    expect(gqa_matvec(GQA_GGML_TYPE_Q4_0, w, 2, 32, NULL, y), GQA_ERR_INVALID_ARG, "x", "NULL x");
    expect(gqa_matvec(GQA_GGML_TYPE_Q4_0, w, 2, 32, x, NULL), GQA_ERR_INVALID_ARG, "y", "NULL y");
    expect(gqa_matvec(GQA_GGML_TYPE_Q4_K, w, 1, 256, x, y), GQA_ERR_UNSUPPORTED, "q4_k",
           "unsupported q4_k");
    expect(gqa_matvec(GQA_GGML_TYPE_Q6_K, w, 1, 256, x, y), GQA_ERR_UNSUPPORTED, "14",
           "unsupported q6_k names its id");
    expect(gqa_matvec(200, w, 1, 32, x, y), GQA_ERR_UNSUPPORTED, "200", "unknown id 200");
    expect(gqa_matvec(GQA_GGML_TYPE_Q4_1, w, 1, 48, x, y), GQA_ERR_INVALID_ARG, "48",
           "cols 48 for q4_1");
    expect(gqa_matvec(GQA_GGML_TYPE_Q8_0, w, 1, 33, x, y), GQA_ERR_INVALID_ARG, "33",
           "cols 33 for q8_0");
    expect(gqa_matvec(GQA_GGML_TYPE_Q8_0, w, -1, 32, x, y), GQA_ERR_INVALID_ARG, NULL,
           "negative rows");
    expect(gqa_matvec(GQA_GGML_TYPE_Q8_0, w, 1, -32, x, y), GQA_ERR_INVALID_ARG, NULL,
           "negative cols");
    expect(gqa_matvec(GQA_GGML_TYPE_F32, (const uint8_t *)wf + 1, 1, 16, x, y),
           GQA_ERR_INVALID_ARG, "aligned", "misaligned f32");
    expect(gqa_matvec(GQA_GGML_TYPE_Q8_0, w, INT64_MAX / 2, 32, x, y),
           GQA_ERR_INVALID_ARG, "overflow", "rows x row bytes overflow");
    expect(gqa_matvec(GQA_GGML_TYPE_Q4_0, w, 0, 32, x, y), GQA_OK, NULL, "rows 0");
    expect(gqa_matvec(GQA_GGML_TYPE_F32, wf, 2, 0, NULL, y), GQA_OK, NULL, "cols 0");
    CHECK(y[0] == 0.0f && y[1] == 0.0f, "cols 0 gives zeros: %g %g", (double)y[0], (double)y[1]);

    expect(gqa_dequantize_row(GQA_GGML_TYPE_Q4_0, NULL, 32, out), GQA_ERR_INVALID_ARG, "src",
           "dequantize NULL src");
    expect(gqa_dequantize_row(GQA_GGML_TYPE_Q4_0, w, 32, NULL), GQA_ERR_INVALID_ARG, "dst",
           "dequantize NULL dst");
    expect(gqa_dequantize_row(GQA_GGML_TYPE_Q5_0, w, 32, out), GQA_ERR_UNSUPPORTED, "q5_0",
           "dequantize q5_0");
    expect(gqa_dequantize_row(GQA_GGML_TYPE_Q4_0, w, 40, out), GQA_ERR_INVALID_ARG, "40",
           "dequantize 40 of q4_0");
    expect(gqa_dequantize_row(GQA_GGML_TYPE_Q4_0, w, -32, out), GQA_ERR_INVALID_ARG, NULL,
           "dequantize n < 0");
    expect(gqa_dequantize_row(GQA_GGML_TYPE_Q4_0, NULL, 0, NULL), GQA_OK, NULL, "dequantize n 0");
}

/* ----------------------------------------------------------- real model -- */

static const char *model_path(char *buf, size_t cap)
{
    const char *env = getenv("GQA_MODEL_PATH");
    if (env && *env)
        return env;
    /* The source tree: this file is <root>/tests/test_matvec.c. */
    const char *f = __FILE__, *tail = strstr(f, "tests/test_matvec.c");
    if (tail && (size_t)(tail - f) + 64 < cap) {
        snprintf(buf, cap, "%.*smodels/SmolLM2-135M-Instruct.Q4_1.gguf", (int)(tail - f), f);
        return buf;
    }
    return "models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

static void test_real_model(void)
{
    char buf[4096];
    const char *path = model_path(buf, sizeof buf);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        printf("note: %s not found; real-weight checks skipped\n", path);
        return;
    }
    fclose(probe);
    gqa_gguf *g = NULL;
    gqa_status s = gqa_gguf_open(path, &g);
    CHECK(s == GQA_OK, "open %s: %s", path, gqa_last_error());
    if (s != GQA_OK)
        return;

    gqa_gguf_tensor_info q;
    s = gqa_gguf_tensor(g, "blk.0.attn_q.weight", &q);
    const type_info *tq = s == GQA_OK ? type_by_id(q.ggml_type) : NULL;
    CHECK(tq != NULL, "blk.0.attn_q.weight: %s, type %s", gqa_last_error(),
          s == GQA_OK ? gqa_gguf_type_name(q.ggml_type) : "?");
    if (tq) {
        const int64_t cols = q.dims[0], rows = q.dims[1], row_bytes = cols / tq->be * tq->bb;
        float *x = tu_xmalloc((size_t)cols * sizeof *x), *y = tu_xmalloc((size_t)rows * sizeof *y);
        double *ref = tu_xmalloc((size_t)rows * sizeof *ref), *S = tu_xmalloc((size_t)rows * sizeof *S);
        tu_rng rng;
        tu_rng_seed(&rng, 77);
        tu_fill_uniform(&rng, x, (size_t)cols, -2.0f, 2.0f);
        CHECK(reference(tq, q.data, rows, cols, row_bytes, x, ref, S),
              "blk.0.attn_q.weight dequantisation");
        for (int k = 0; k < N_SETS; k++) {
            if (tu_select_kernel(kernel_sets[k]) != 1)
                continue;
            s = gqa_matvec(q.ggml_type, q.data, rows, cols, x, y);
            double worst = 0;
            int bad = s != GQA_OK;
            for (int64_t r = 0; !bad && r < rows; r++) {
                double err = fabs((double)y[r] - ref[r]);
                double tol = k == 0 ? U24 * fabs(ref[r]) + 1e-12 * S[r] : (double)(cols + 4) * U24 * S[r];
                bad |= !(err <= tol);
                if (S[r] > 0 && err / (U24 * S[r]) > worst)
                    worst = err / (U24 * S[r]);
            }
            CHECK(!bad, "real %s blk.0.attn_q.weight (%lldx%lld %s) matvec wrong", kernel_sets[k],
                  (long long)rows, (long long)cols, tq->name);
            printf("real blk.0.attn_q.weight %s %lldx%lld on %s: largest error %.3g x 2^-24 x S\n",
                   tq->name, (long long)rows, (long long)cols, kernel_sets[k], worst);
        }
        free(x);
        free(y);
        free(ref);
        free(S);
    }

    gqa_gguf_tensor_info e;
    s = gqa_gguf_tensor(g, "token_embd.weight", &e);
    const type_info *te = s == GQA_OK ? type_by_id(e.ggml_type) : NULL;
    CHECK(te != NULL, "token_embd.weight: %s", gqa_last_error());
    if (te) {
        const int64_t cols = e.dims[0], rows = e.dims[1], row_bytes = cols / te->be * te->bb;
        const int64_t picks[] = {0, 1, 2, 1000, rows / 2, rows - 1};
        float *row = tu_xmalloc((size_t)cols * sizeof *row);
        int bad = 0;
        for (int p = 0; p < 6; p++) {
            const uint8_t *src = (const uint8_t *)e.data + picks[p] * row_bytes;
            s = gqa_dequantize_row(e.ggml_type, src, cols, row);
            bad |= s != GQA_OK;
            for (int64_t i = 0; s == GQA_OK && i < cols; i++)
                bad |= memcmp(&row[i], &(float){decode(te, src, i)}, 4) != 0;
        }
        CHECK(!bad, "token_embd.weight (%s) rows differ from the format", te->name);
        printf("real token_embd.weight %s %lldx%lld: 6 rows dequantised exactly\n", te->name,
               (long long)rows, (long long)cols);
        free(row);
    }
    gqa_gguf_close(g);
}

/* --------------------------------------------------------------- timing -- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void time_q4_1(void)
{
    const int64_t rows = 576, cols = 1536, row_bytes = cols / QK * 20;
    const type_info *t = type_by_id(GQA_GGML_TYPE_Q4_1);
    uint8_t *w = tu_xmalloc((size_t)(rows * row_bytes));
    float *x = tu_xmalloc((size_t)cols * sizeof *x), *y = tu_xmalloc((size_t)rows * sizeof *y);
    tu_rng rng;
    tu_rng_seed(&rng, 9);
    make_matrix(&rng, t, rows, cols, w, row_bytes);
    tu_fill_uniform(&rng, x, (size_t)cols, -1.0f, 1.0f);
    enum { REPS = 31, INNER = 20 };
    double times[REPS];
    printf("timing: %lld x %lld q4_1 matvec (%.0f KiB of weights), median of %d x %d calls\n",
           (long long)rows, (long long)cols, (double)(rows * row_bytes) / 1024.0, REPS, INNER);
    for (int k = 0; k < N_SETS; k++) {
        if (tu_select_kernel(kernel_sets[k]) != 1)
            continue;
        for (int nt = 1; nt <= 2; nt++) {
            gqa_set_num_threads(nt);
            for (int i = 0; i < 5; i++)
                (void)gqa_matvec(t->id, w, rows, cols, x, y);
            for (int rep = 0; rep < REPS; rep++) {
                double t0 = tu_seconds();
                for (int i = 0; i < INNER; i++)
                    (void)gqa_matvec(t->id, w, rows, cols, x, y);
                times[rep] = (tu_seconds() - t0) / INNER;
            }
            qsort(times, REPS, sizeof times[0], cmp_double);
            double med = times[REPS / 2];
            printf("  %-6s threads %d: %8.1f us  %6.2f GB/s of weights\n", kernel_sets[k], nt,
                   med * 1e6, (double)(rows * row_bytes) / med * 1e-9);
        }
    }
    gqa_set_num_threads(0);
    free(w);
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--time") == 0) {
        time_q4_1();
        return 0;
    }
    test_bad_input();
    test_sweep();
    test_real_model();
    return tu_summary();
}
