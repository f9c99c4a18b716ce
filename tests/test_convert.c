/* test_convert.c - the GGUF writer and gqa_convert_gguf on small synthetic
 * models (tests/convert/make_convert_gguf.py, the convert_data fixture).
 *
 *   test_convert DATA_DIR WORK_DIR PYTHON CHECK_SCRIPT
 *
 * 1. The writer: every metadata setter and both kinds of tensor read back by
 *    the project's reader; argument errors; a failing fill leaves nothing.
 * 2. mha.gguf (G0 = H = 4, K/V in f32, f16, bf16, q8_0, q4_0, q4_1, biases)
 *    to G = 2 and 1 with every method and output type; gqa.gguf (G0 = 2)
 *    repeated. Each output is checked here with the project's reader against
 *    heads computed from the definition, and by check_convert.py (PyPI gguf +
 *    NumPy + gguf's reference quantisers) byte for byte.
 * 3. Round trips: repeat then mean gives the input file back byte for byte;
 *    through f32 and back, every type's tensors come back exactly.
 * 4. random is deterministic per seed; progress is monotonic, ends at the size.
 * 5. Converted models load; the repeated model's logits equal the original's.
 * 6. Bad inputs: the right status and words, and no output or temporary file.
 * 7. Internals (src/convert/convert_internal.h): encoder edge cases the
 *    oracle's random data never reaches (zero, constant, non-finite blocks).
 */
#define _XOPEN_SOURCE 700 /* realpath, symlink */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/conv_test_util.h"
#include "convert/convert_internal.h" /* src/: the encoders and head arithmetic */
#include "gqa.h"
#include "gqa_convert.h"
#include "gqa_model.h"
#include "test_util.h"

#define KV_KEY "llama.attention.head_count_kv"

static const char *data_dir, *work_dir;
static FILE *manifest; /* cases for check_convert.py */

/* Paths in the data and work directories, in rotating buffers: a result
 * stays valid for the next 15 calls of the same function. */
static const char *in_path(const char *name)
{
    static char buf[16][4096];
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", data_dir, name);
    return buf[k];
}

static const char *out_path(const char *name)
{
    static char buf[16][4096];
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", work_dir, name);
    return buf[k];
}

static gqa_status convert(const char *in, const char *out, int32_t g, gqa_convert_method m,
                          gqa_convert_out_type t, uint64_t seed)
{
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = g, o.method = m, o.out_type = t, o.seed = seed;
    return gqa_convert_gguf(in, out, &o);
}

/* ---------------------------------------------------------- internals -- */

static void test_internals(void)
{
    float zero[32] = {0}, same[32], bad[32] = {0};
    unsigned char b[64];
    for (int i = 0; i < 32; i++)
        same[i] = 3.0f;
    bad[5] = NAN;
    /* d = max / -8 = -0.0: ggml stores the f16 -0 (0x8000) */
    static const unsigned char q4_0_zero[18] = {0,    0x80, 0x88, 0x88, 0x88, 0x88,
                                                0x88, 0x88, 0x88, 0x88, 0x88, 0x88,
                                                0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    CHECK(gqa_conv_encode(GQA_GGML_TYPE_Q8_0, zero, 32, b) == GQA_OK &&
              !memcmp(b, (unsigned char[34]){0}, 34),
          "q8_0 of zeros: scale 0, quants 0");
    CHECK(gqa_conv_encode(GQA_GGML_TYPE_Q4_0, zero, 32, b) == GQA_OK && !memcmp(b, q4_0_zero, 18),
          "q4_0 of zeros: scale -0, nibbles 8 (ggml's rule)");
    float back[32];
    CHECK(gqa_conv_encode(GQA_GGML_TYPE_Q4_1, same, 32, b) == GQA_OK &&
              gqa_dequantize_row(GQA_GGML_TYPE_Q4_1, b, 32, back) == GQA_OK && back[0] == 3.0f &&
              back[31] == 3.0f,
          "q4_1 of a constant block gives it back");
    CHECK(gqa_conv_encode(GQA_GGML_TYPE_Q8_0, bad, 32, b) == GQA_ERR_INVALID_ARG &&
              strstr(gqa_last_error(), "non-finite"),
          "a NaN cannot be quantised: %s", gqa_last_error());
    CHECK(gqa_conv_encode(GQA_GGML_TYPE_Q4_1, zero, 31, b) == GQA_ERR_INVALID_ARG,
          "31 values are not whole blocks");
    CHECK(gqa_conv_encode(GQA_GGML_TYPE_Q6_K, zero, 32, b) == GQA_ERR_UNSUPPORTED,
          "q6_k is not written");
    /* mean of equal heads is exact even at the extremes of f32 */
    float old[6] = {3.4e38f, 1e-45f, -7.25f, 3.4e38f, 1e-45f, -7.25f}, out[3];
    gqa_conv_heads c = {GQA_CONVERT_MEAN, 2, 1, 3, 0.0, 0};
    gqa_conv_heads_f32(&c, old, out);
    CHECK(!memcmp(out, old, sizeof out), "mean of equal heads is exact");
    CHECK(gqa_conv_check_heads(9, 3, 9, GQA_CONVERT_REPEAT) == GQA_OK &&
              gqa_conv_check_heads(9, 3, 1, GQA_CONVERT_MEAN) == GQA_OK &&
              gqa_conv_check_heads(9, 3, 2, GQA_CONVERT_MEAN) == GQA_ERR_INVALID_ARG &&
              gqa_conv_check_heads(9, 3, 6, GQA_CONVERT_REPEAT) == GQA_ERR_INVALID_ARG,
          "head-count rules");
    CHECK(gqa_conv_out_type(GQA_CONVERT_KEEP, GQA_GGML_TYPE_Q6_K, 2) == GQA_GGML_TYPE_F16 &&
              gqa_conv_out_type(GQA_CONVERT_Q8_0, GQA_GGML_TYPE_F32, 1) == GQA_GGML_TYPE_F32 &&
              gqa_conv_out_type(GQA_CONVERT_KEEP, GQA_GGML_TYPE_Q4_1, 2) == GQA_GGML_TYPE_Q4_1,
          "output type rules");
}

/* ------------------------------------------------------------- writer -- */

static gqa_status fill_bytes(void *user, void *dst, uint64_t n)
{
    memset(dst, *(const int *)user, (size_t)n);
    return GQA_OK;
}

static gqa_status fill_fails(void *user, void *dst, uint64_t n)
{
    (void)user, (void)dst, (void)n;
    return GQA_ERR_NO_MEMORY;
}

static void check_writer_file(const char *path, const float *f32)
{
    gqa_gguf *g = NULL;
    if (gqa_gguf_open(path, &g) != GQA_OK) {
        CHECK(0, "written file opens: %s", gqa_last_error());
        return;
    }
    uint32_t u;
    int32_t i;
    uint64_t u64;
    float f;
    int b;
    const char *s;
    size_t n;
    CHECK(gqa_gguf_version(g) == 3 && gqa_gguf_alignment(g) == 128, "v3, alignment 128");
    CHECK(gqa_gguf_n_keys(g) == 10 && !strcmp(gqa_gguf_key_name(g, 0), "w.u32") &&
              !strcmp(gqa_gguf_key_name(g, 9), "general.alignment"),
          "keys in the order first set (%lld)", (long long)gqa_gguf_n_keys(g));
    CHECK(gqa_gguf_get_u32(g, "w.u32", &u) == GQA_OK && u == 42, "replaced u32 kept its place");
    CHECK(gqa_gguf_get_i32(g, "w.i16", &i) == GQA_OK && i == -300, "i16");
    CHECK(gqa_gguf_get_u64(g, "w.u64", &u64) == GQA_OK && u64 == (1ull << 40) + 3, "u64");
    CHECK(gqa_gguf_get_f32(g, "w.f32", &f) == GQA_OK && f == 1.25f, "f32");
    CHECK(gqa_gguf_get_bool(g, "w.bool", &b) == GQA_OK && b == 1, "bool");
    CHECK(gqa_gguf_get_str(g, "w.str", &s, &n) == GQA_OK && n == 3 && !memcmp(s, "a\0b", 3),
          "string with a NUL byte");
    int32_t arr[3] = {0};
    CHECK(gqa_gguf_arr_i32(g, "w.arr_i32", 0, 3, arr) == GQA_OK && arr[0] == 7 && arr[2] == -9,
          "i32 array");
    CHECK(gqa_gguf_arr_str(g, "w.arr_str", 1, &s, &n) == GQA_OK && n == 2 && !memcmp(s, "bc", 2),
          "string array with lengths");
    CHECK(gqa_gguf_arr_str(g, "w.arr_cstr", 2, &s, &n) == GQA_OK && n == 0,
          "NUL-terminated string array");
    gqa_gguf_tensor_info t;
    CHECK(gqa_gguf_tensor(g, "borrowed", &t) == GQA_OK && t.ggml_type == GQA_GGML_TYPE_F32 &&
              t.dims[0] == 32 && t.dims[1] == 3 && !memcmp(t.data, f32, 96 * 4) &&
              t.offset % 128 == 0,
          "borrowed f32 tensor");
    CHECK(gqa_gguf_tensor(g, "filled", &t) == GQA_OK && t.ggml_type == GQA_GGML_TYPE_Q8_0 &&
              t.n_bytes == 4 * 34 && ((const unsigned char *)t.data)[0] == 0x11 &&
              t.offset % 128 == 0,
          "filled q8_0 tensor");
    gqa_gguf_close(g);
}

static void test_writer(void)
{
    gqa_gguf_writer *w = NULL;
    CHECK(gqa_gguf_writer_create(&w) == GQA_OK, "create");
    if (!w)
        return;
    int16_t i16 = -300;
    uint64_t u64 = (1ull << 40) + 3;
    int32_t arr[3] = {7, 8, -9};
    const char *strs[] = {"a", "bcd", ""};
    const size_t lens[] = {1, 2, 0};
    CHECK(gqa_gguf_writer_set_u32(w, "w.u32", 1) == GQA_OK, "set u32");
    CHECK(gqa_gguf_writer_set_scalar(w, "w.i16", GQA_GGUF_TYPE_INT16, &i16) == GQA_OK, "i16");
    CHECK(gqa_gguf_writer_set_scalar(w, "w.u64", GQA_GGUF_TYPE_UINT64, &u64) == GQA_OK, "u64");
    CHECK(gqa_gguf_writer_set_f32(w, "w.f32", 1.25f) == GQA_OK, "f32");
    CHECK(gqa_gguf_writer_set_bool(w, "w.bool", 5) == GQA_OK, "bool");
    CHECK(gqa_gguf_writer_set_str(w, "w.str", "a\0b", 3) == GQA_OK, "str");
    CHECK(gqa_gguf_writer_set_arr(w, "w.arr_i32", GQA_GGUF_TYPE_INT32, arr, 3) == GQA_OK, "arr");
    CHECK(gqa_gguf_writer_set_arr_str(w, "w.arr_str", strs, lens, 3) == GQA_OK, "arr_str");
    CHECK(gqa_gguf_writer_set_arr_str(w, "w.arr_cstr", strs, NULL, 3) == GQA_OK, "arr_cstr");
    CHECK(gqa_gguf_writer_set_u32(w, "w.u32", 42) == GQA_OK, "replace u32");
    CHECK(gqa_gguf_writer_set_u32(w, "general.alignment", 128) == GQA_OK, "alignment");
    float f32[96];
    for (int k = 0; k < 96; k++)
        f32[k] = (float)k * 0.5f - 3.0f;
    const int64_t d1[2] = {32, 3}, d2[2] = {64, 2}, bad[2] = {31, 2}, zero[2] = {0, 2};
    static const int pattern = 0x11;
    CHECK(gqa_gguf_writer_add_tensor(w, "borrowed", GQA_GGML_TYPE_F32, 2, d1, f32) == GQA_OK,
          "borrowed tensor");
    CHECK(gqa_gguf_writer_add_tensor_fill(w, "filled", GQA_GGML_TYPE_Q8_0, 2, d2, fill_bytes,
                                          (void *)&pattern) == GQA_OK,
          "filled tensor");
    /* argument errors */
    char long_name[80];
    memset(long_name, 'x', 64), long_name[64] = '\0';
    CHECK(gqa_gguf_writer_add_tensor(w, "borrowed", 0, 2, d1, f32) == GQA_ERR_INVALID_ARG,
          "duplicate tensor name");
    CHECK(gqa_gguf_writer_add_tensor(w, long_name, 0, 2, d1, f32) == GQA_ERR_INVALID_ARG,
          "64-byte name");
    CHECK(gqa_gguf_writer_add_tensor(w, "q", GQA_GGML_TYPE_Q8_0, 2, bad, f32) ==
                  GQA_ERR_INVALID_ARG &&
              strstr(gqa_last_error(), "block"),
          "row not whole blocks: %s", gqa_last_error());
    CHECK(gqa_gguf_writer_add_tensor(w, "z", 0, 2, zero, f32) == GQA_ERR_INVALID_ARG, "dim 0");
    CHECK(gqa_gguf_writer_add_tensor(w, "u", 4, 2, d1, f32) == GQA_ERR_UNSUPPORTED,
          "retired type id 4");
    CHECK(gqa_gguf_writer_add_tensor(w, "n", 0, 5, d1, f32) == GQA_ERR_INVALID_ARG, "n_dims 5");
    CHECK(gqa_gguf_writer_add_tensor(w, "n", 0, 2, d1, NULL) == GQA_ERR_INVALID_ARG, "no data");
    CHECK(gqa_gguf_writer_set_scalar(w, "s", GQA_GGUF_TYPE_STRING, "x") == GQA_ERR_INVALID_ARG,
          "set_scalar with a string type");
    unsigned char two = 2;
    CHECK(gqa_gguf_writer_set_scalar(w, "b", GQA_GGUF_TYPE_BOOL, &two) == GQA_ERR_INVALID_ARG,
          "bool 2");
    CHECK(gqa_gguf_writer_set_u32(w, "", 1) == GQA_ERR_INVALID_ARG, "empty key");

    const char *path = out_path("writer.gguf");
    CHECK(gqa_gguf_writer_write(w, path, NULL, NULL) == GQA_OK, "write: %s", gqa_last_error());
    check_writer_file(path, f32);
    fprintf(manifest, "load %s\n", path);
    CHECK(gqa_gguf_writer_write(w, out_path("writer2.gguf"), NULL, NULL) == GQA_OK &&
              ct_same_file(path, out_path("writer2.gguf")),
          "a writer writes the same file twice");
    /* a failing fill and a bad alignment leave nothing */
    CHECK(gqa_gguf_writer_add_tensor_fill(w, "fails", GQA_GGML_TYPE_F32, 2, d1, fill_fails, NULL) ==
              GQA_OK,
          "add failing tensor");
    gqa_status st = gqa_gguf_writer_write(w, out_path("fill_fails.gguf"), NULL, NULL);
    CHECK(st == GQA_ERR_NO_MEMORY && strstr(gqa_last_error(), "fails"),
          "a fill failure is the write's status, naming the tensor: %s", gqa_last_error());
    CHECK(!ct_exists(out_path("fill_fails.gguf")) && ct_leftovers(work_dir) == 0,
          "no output and no temporary file after a failed fill");
    gqa_gguf_writer_set_u32(w, "general.alignment", 48);
    CHECK(gqa_gguf_writer_write(w, out_path("align48.gguf"), NULL, NULL) == GQA_ERR_INVALID_ARG &&
              !ct_exists(out_path("align48.gguf")),
          "alignment 48 refused");
    gqa_gguf_writer_free(w);
    gqa_gguf_writer_free(NULL);
}

/* ------------------------------------------------- conversion checks -- */

static double rms(const float *x, int64_t n)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    return n > 0 ? sqrt(ss / (double)n) : 0.0;
}

static int is_kv(const char *name)
{
    return !strncmp(name, "blk.", 4) && (strstr(name, ".attn_k.") || strstr(name, ".attn_v."));
}

/* Allowed |got - want| in a block of 32 wanted values quantised as t: half a
 * step (a full one for q4_0, whose largest positive value is clamped to
 * 7 steps) plus the f16 rounding of the stored scale and minimum. */
static double block_tol(uint32_t t, const float *x)
{
    double amax = 0, mn = x[0], mx = x[0];
    for (int i = 0; i < 32; i++) {
        amax = fmax(amax, fabs((double)x[i]));
        mn = fmin(mn, (double)x[i]), mx = fmax(mx, (double)x[i]);
    }
    if (t == GQA_GGML_TYPE_Q8_0)
        return amax / 127 * 0.5 + amax * 0x1p-10 + 1e-7;
    if (t == GQA_GGML_TYPE_Q4_0)
        return amax / 8 + amax * 0x1p-9 + 1e-7;
    return (mx - mn) / 15 * 0.5 + (fabs(mn) + fabs(mx)) * 0x1p-10 + 1e-7;
}

/* Compare one new head (he values) with its definition. */
static int head_ok(uint32_t t, const float *got, const float *want, int64_t he)
{
    for (int64_t i = 0; i < he; i++) {
        double tol = 0;
        float w = want[i];
        if (t == GQA_GGML_TYPE_F16)
            w = gqa_f16_to_f32(gqa_f32_to_f16(w));
        else if (t == GQA_GGML_TYPE_BF16)
            w = gqa_bf16_to_f32(gqa_f32_to_bf16(w));
        else if (t != GQA_GGML_TYPE_F32)
            tol = block_tol(t, want + i / 32 * 32);
        if (!(fabs((double)got[i] - (double)w) <= tol))
            return 0;
    }
    return 1;
}

static void check_kv(const gqa_gguf *a, const gqa_gguf *b, const gqa_gguf_tensor_info *ta,
                     const gqa_gguf_tensor_info *tb, int32_t g0, int32_t g, gqa_convert_method m)
{
    const int bias = ta->n_dims == 1;
    const int64_t rows = bias ? ta->dims[0] : ta->dims[1], d = rows / g0;
    const int64_t he = bias ? d : d * ta->dims[0];
    CHECK((bias ? tb->dims[0] : tb->dims[1]) == g * d && tb->n_dims == ta->n_dims,
          "%s: %lld rows for %d heads", tb->name, (long long)(bias ? tb->dims[0] : tb->dims[1]),
          (int)g);
    gqa_gguf_tensor_info x, y;
    float *old = ct_tensor_f32(a, ta->name, &x), *got = ct_tensor_f32(b, tb->name, &y);
    if (!old || !got) { /* q6_k: no dequantiser; copies are compared as bytes below */
        CHECK(ta->ggml_type == tb->ggml_type && m != GQA_CONVERT_MEAN &&
                  !memcmp(tb->data, ta->data, tb->n_bytes / (size_t)g),
              "%s: first head's bytes copied", tb->name);
        free(old), free(got);
        return;
    }
    if (m == GQA_CONVERT_RANDOM) {
        const double r0 = rms(old, ta->n_elements), r1 = rms(got, tb->n_elements);
        /* the RMS of n normal draws is within a few 1/sqrt(2n) of the scale */
        const double lo = tb->n_elements >= 256 ? 0.8 : tb->n_elements >= 64 ? 0.6 : 0.2;
        CHECK(r1 > lo * r0 && r1 < r0 / lo && isfinite(r1), "%s: random RMS %g vs %g", tb->name, r1,
              r0);
    } else {
        float *want = tu_xmalloc((size_t)he * sizeof *want);
        for (int32_t j = 0; j < g; j++) {
            ct_expected_head(old, g0, g, he, m, j, want);
            CHECK(head_ok(tb->ggml_type, got + (size_t)j * (size_t)he, want, he),
                  "%s (%s -> %s): head %d as defined", tb->name, gqa_gguf_type_name(ta->ggml_type),
                  gqa_gguf_type_name(tb->ggml_type), (int)j);
        }
        free(want);
    }
    free(old), free(got);
}

/* The project's reader on (in, out): keys, head_count_kv, untouched tensors
 * byte-identical, K/V heads as defined. */
static void check_case(const char *in, const char *out, int32_t g, gqa_convert_method m)
{
    gqa_gguf *a = NULL, *b = NULL;
    if (gqa_gguf_open(in, &a) != GQA_OK || gqa_gguf_open(out, &b) != GQA_OK) {
        CHECK(0, "open %s / %s: %s", in, out, gqa_last_error());
        gqa_gguf_close(a);
        return;
    }
    uint32_t h = 0, g0 = 0, gn = 0;
    gqa_gguf_get_u32(a, "llama.attention.head_count", &h);
    const int had = gqa_gguf_find_key(a, KV_KEY) >= 0;
    if (gqa_gguf_get_u32(a, KV_KEY, &g0) != GQA_OK)
        g0 = h;
    int keys_ok = gqa_gguf_n_keys(b) == gqa_gguf_n_keys(a) + !had;
    for (int64_t i = 0; keys_ok && i < gqa_gguf_n_keys(a); i++)
        keys_ok = !strcmp(gqa_gguf_key_name(a, i), gqa_gguf_key_name(b, i)) &&
                  gqa_gguf_key_type(a, i) == gqa_gguf_key_type(b, i);
    CHECK(keys_ok, "%s: the same keys in the same order%s", out, had ? "" : ", one added");
    CHECK(gqa_gguf_get_u32(b, KV_KEY, &gn) == GQA_OK && gn == (uint32_t)g, "%s: %s = %u", out,
          KV_KEY, gn);
    CHECK(gqa_gguf_n_tensors(a) == gqa_gguf_n_tensors(b), "%s: tensor count", out);
    for (int64_t i = 0; i < gqa_gguf_n_tensors(a) && i < gqa_gguf_n_tensors(b); i++) {
        gqa_gguf_tensor_info ta, tb;
        gqa_gguf_tensor_at(a, i, &ta);
        gqa_gguf_tensor_at(b, i, &tb);
        if (strcmp(ta.name, tb.name) != 0) {
            CHECK(0, "%s: tensor %lld is %s, expected %s", out, (long long)i, tb.name, ta.name);
            continue;
        }
        if (is_kv(ta.name))
            check_kv(a, b, &ta, &tb, (int32_t)g0, g, m);
        else if (!(ta.ggml_type == tb.ggml_type && ta.n_bytes == tb.n_bytes &&
                   !memcmp(ta.data, tb.data, ta.n_bytes)))
            CHECK(0, "%s: untouched tensor %s is not byte-identical", out, ta.name);
    }
    gqa_gguf_close(a);
    gqa_gguf_close(b);
}

/* Convert, check with the reader, and queue the case for the Python oracle. */
static void run_case(const char *in_name, const char *out_name, int32_t g, gqa_convert_method m,
                     gqa_convert_out_type t, uint64_t seed)
{
    const char *in = in_path(in_name), *out = out_path(out_name);
    gqa_status st = convert(in, out, g, m, t, seed);
    CHECK(st == GQA_OK, "%s -> %s (%s to %d, %s): %s", in_name, out_name,
          gqa_convert_method_name(m), (int)g, gqa_convert_out_type_name(t), gqa_last_error());
    if (st != GQA_OK)
        return;
    check_case(in, out, g, m);
    fprintf(manifest, "%s %s %d %s %s\n", in, out, (int)g, gqa_convert_method_name(m),
            gqa_convert_out_type_name(t));
}

static void test_conversions(void)
{
    static const gqa_convert_method pool[] = {GQA_CONVERT_MEAN, GQA_CONVERT_FIRST,
                                              GQA_CONVERT_RANDOM};
    char name[128];
    for (int k = 0; k < 3; k++)
        for (int32_t g = 2; g >= 1; g--) {
            snprintf(name, sizeof name, "mha_%s_%d.gguf", gqa_convert_method_name(pool[k]), g);
            run_case("mha.gguf", name, g, pool[k], GQA_CONVERT_KEEP, 7);
        }
    for (int t = GQA_CONVERT_F32; t <= GQA_CONVERT_Q4_1; t++) {
        snprintf(name, sizeof name, "mha_mean_2_%s.gguf",
                 gqa_convert_out_type_name((gqa_convert_out_type)t));
        run_case("mha.gguf", name, 2, GQA_CONVERT_MEAN, (gqa_convert_out_type)t, 0);
    }
    run_case("mha.gguf", "mha_first_1_f16.gguf", 1, GQA_CONVERT_FIRST, GQA_CONVERT_F16, 0);
    run_case("mha.gguf", "mha_random_1_q8_0.gguf", 1, GQA_CONVERT_RANDOM, GQA_CONVERT_Q8_0, 3);
    run_case("mha.gguf", "mha_mean_4.gguf", 4, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP, 0);
    run_case("nokv.gguf", "nokv_mean_2.gguf", 2, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP, 0);
    run_case("kvi16.gguf", "kvi16_mean_2.gguf", 2, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP, 0);
    run_case("gqa.gguf", "gqa_repeat_4.gguf", 4, GQA_CONVERT_REPEAT, GQA_CONVERT_KEEP, 0);
    run_case("gqa.gguf", "gqa_repeat_4_f32.gguf", 4, GQA_CONVERT_REPEAT, GQA_CONVERT_F32, 0);
    run_case("gqa.gguf", "gqa_repeat_2.gguf", 2, GQA_CONVERT_REPEAT, GQA_CONVERT_KEEP, 0);
    run_case("gqa.gguf", "gqa_mean_1.gguf", 1, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP, 0);
    run_case("q6k.gguf", "q6k_first_2.gguf", 2, GQA_CONVERT_FIRST, GQA_CONVERT_KEEP, 0);
}

/* ------------------------------------------------------- round trips -- */

/* Tensor `name` has the same type and bytes in both files. */
static int same_tensor(const char *pa, const char *pb, const char *name)
{
    gqa_gguf *a = NULL, *b = NULL;
    gqa_gguf_tensor_info ta, tb;
    int same = gqa_gguf_open(pa, &a) == GQA_OK && gqa_gguf_open(pb, &b) == GQA_OK &&
               gqa_gguf_tensor(a, name, &ta) == GQA_OK && gqa_gguf_tensor(b, name, &tb) == GQA_OK &&
               ta.ggml_type == tb.ggml_type && ta.n_bytes == tb.n_bytes &&
               !memcmp(ta.data, tb.data, ta.n_bytes);
    gqa_gguf_close(a);
    gqa_gguf_close(b);
    return same;
}

static void test_round_trips(void)
{
    const char *orig = in_path("gqa.gguf");
    /* KEEP: repeat copies blocks, mean of identical heads copies them back */
    CHECK(convert(out_path("gqa_repeat_4.gguf"), out_path("rt_keep.gguf"), 2, GQA_CONVERT_MEAN,
                  GQA_CONVERT_KEEP, 0) == GQA_OK &&
              ct_same_file(orig, out_path("rt_keep.gguf")),
          "repeat then mean (keep) gives gqa.gguf back byte for byte");
    /* through f32: the mean of identical f32 values is exact, and re-encoding
     * values that came from a type gives that type's bytes back (for q*: when
     * the blocks were made by the reference quantiser, as here) */
    static const gqa_convert_out_type layer_type[] = {GQA_CONVERT_F32,  GQA_CONVERT_F16,
                                                      GQA_CONVERT_BF16, GQA_CONVERT_Q8_0,
                                                      GQA_CONVERT_Q4_0, GQA_CONVERT_Q4_1};
    for (int l = 0; l < 6; l++) {
        char name[64], kname[64], vname[64];
        snprintf(name, sizeof name, "rt_f32_%s.gguf", gqa_convert_out_type_name(layer_type[l]));
        snprintf(kname, sizeof kname, "blk.%d.attn_k.weight", l);
        snprintf(vname, sizeof vname, "blk.%d.attn_v.weight", l);
        gqa_status st = convert(out_path("gqa_repeat_4_f32.gguf"), out_path(name), 2,
                                GQA_CONVERT_MEAN, layer_type[l], 0);
        CHECK(st == GQA_OK && same_tensor(orig, out_path(name), kname) &&
                  same_tensor(orig, out_path(name), vname),
              "repeat (f32) then mean (%s): layer %d's %s K/V come back exactly",
              gqa_convert_out_type_name(layer_type[l]), l,
              gqa_convert_out_type_name(layer_type[l]));
    }
    CHECK(same_tensor(orig, out_path("rt_f32_f32.gguf"), "blk.0.attn_k.bias") &&
              same_tensor(orig, out_path("rt_f32_f32.gguf"), "blk.0.attn_v.bias"),
          "biases come back exactly");
}

/* --------------------------------------------- determinism, progress -- */

typedef struct progress_log {
    int calls, monotonic;
    int64_t first, last, total;
} progress_log;

static void on_progress(void *user, int64_t done, int64_t total)
{
    progress_log *p = user;
    if (p->calls++ == 0)
        p->first = done;
    else if (done < p->last || total != p->total)
        p->monotonic = 0;
    p->last = done, p->total = total;
}

static void test_determinism_progress(void)
{
    const char *in = in_path("mha.gguf");
    CHECK(convert(in, out_path("rand7a.gguf"), 2, GQA_CONVERT_RANDOM, GQA_CONVERT_KEEP, 7) ==
                  GQA_OK &&
              convert(in, out_path("rand7b.gguf"), 2, GQA_CONVERT_RANDOM, GQA_CONVERT_KEEP, 7) ==
                  GQA_OK &&
              ct_same_file(out_path("rand7a.gguf"), out_path("rand7b.gguf")),
          "random with one seed is deterministic");
    CHECK(
        convert(in, out_path("rand8.gguf"), 2, GQA_CONVERT_RANDOM, GQA_CONVERT_KEEP, 8) == GQA_OK &&
            !same_tensor(out_path("rand7a.gguf"), out_path("rand8.gguf"), "blk.0.attn_k.weight") &&
            same_tensor(out_path("rand7a.gguf"), out_path("rand8.gguf"), "blk.0.attn_q.weight"),
        "another seed gives other K/V weights and leaves the rest alone");
    progress_log p = {0, 1, -1, -1, -1};
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = 1, o.progress = on_progress, o.progress_user = &p;
    CHECK(gqa_convert_gguf(in, out_path("progress.gguf"), &o) == GQA_OK, "convert with progress");
    struct stat st;
    stat(out_path("progress.gguf"), &st);
    CHECK(p.calls >= 2 && p.first == 0 && p.monotonic && p.last == p.total &&
              p.total == (int64_t)st.st_size,
          "progress: %d calls from %lld to %lld of %lld (file %lld bytes)", p.calls,
          (long long)p.first, (long long)p.last, (long long)p.total, (long long)st.st_size);
}

/* ------------------------------------------------------------ logits -- */

/* Logits of every position of `n` tokens (f32 KV cache), malloc'd; NULL if
 * the model does not load or run. */
static float *model_logits(const char *path, const int32_t *ids, int64_t n, int32_t *n_vocab)
{
    gqa_model *m = NULL;
    gqa_kv_cache *c = NULL;
    gqa_kv_config cfg;
    gqa_model_info in;
    float *lg = NULL;
    int32_t seq;
    if (gqa_model_load(path, &m) != GQA_OK || gqa_model_info_get(m, &in) != GQA_OK ||
        gqa_model_kv_config(m, GQA_F32, 16, 1u << 20, &cfg) != GQA_OK ||
        gqa_kv_cache_create(&cfg, &c) != GQA_OK || gqa_kv_seq_create(c, &seq) != GQA_OK) {
        printf("      %s: %s\n", path, gqa_last_error());
    } else {
        lg = tu_xmalloc((size_t)n * (size_t)in.n_vocab * sizeof *lg);
        gqa_forward_item it = {
            .seq = seq, .tokens = ids, .n_tokens = n, .logits = lg, .all_logits = 1};
        if (gqa_model_forward(m, c, &it, 1) != GQA_OK) {
            printf("      forward %s: %s\n", path, gqa_last_error());
            free(lg), lg = NULL;
        }
        *n_vocab = in.n_vocab;
    }
    gqa_kv_cache_free(c);
    gqa_model_free(m);
    return lg;
}

static void test_logits(void)
{
    static const int32_t ids[] = {1, 5, 9, 3, 7, 2, 15, 0};
    const int64_t n = 8;
    int32_t v0 = 0, v1 = 0, v2 = 0;
    /* the f32 weight path (no packed kernel; packed activations are int16 and
     * turn f32 reordering noise into rounding flips, see test_convert_model) */
    const char *saved = gqa_kernel_name();
    if (tu_select_kernel("avx2") != 1 && tu_select_kernel("neon") != 1)
        tu_select_kernel("scalar");
    float *ref = model_logits(in_path("gqa.gguf"), ids, n, &v0);
    float *rep = model_logits(out_path("gqa_repeat_4.gguf"), ids, n, &v1);
    float *mqa = model_logits(out_path("mha_mean_1.gguf"), ids, n, &v2);
    gqa_set_kernel(saved);
    CHECK(ref && rep && mqa, "the original, repeated and pooled synthetic models load and run");
    if (ref && rep) {
        /* the same K/V values reach every query head; only the grouping and
         * so the order of some f32 sums may differ */
        tu_check ck;
        tu_check_begin(&ck, "repeat-to-MHA logits == original (synthetic)", 1e-4, 1e-4, 1, v0);
        tu_check_range(&ck, rep, ref, 0, n * v0);
        tu_check_report(&ck);
        CHECK(tu_check_ok(&ck) && v0 == v1, "repeated model computes the same function");
    }
    int finite = mqa != NULL;
    for (int64_t i = 0; mqa && i < n * v2; i++)
        finite &= isfinite(mqa[i]) != 0;
    CHECK(finite, "the MQA model's logits are finite");
    free(ref), free(rep), free(mqa);
}

/* -------------------------------------------------------- bad inputs -- */

/* A conversion that must fail with `want` and `words` in the message, and
 * leave neither `out` nor a temporary file behind. */
static void expect_fail(const char *what, const char *in, const char *out, int32_t g,
                        gqa_convert_method m, gqa_status want, const char *words)
{
    const int existed = ct_exists(out);
    gqa_status st = convert(in, out, g, m, GQA_CONVERT_KEEP, 0);
    CHECK(st == want && strstr(gqa_last_error(), words), "%s: %s (%s), want %s with '%s'", what,
          gqa_status_string(st), gqa_last_error(), gqa_status_string(want), words);
    CHECK(existed || !ct_exists(out), "%s: no output file left", what);
    CHECK(ct_leftovers(work_dir) == 0, "%s: no temporary file left", what);
}

static void test_disk_full(void)
{
    /* a file size limit makes write(2) fail with EFBIG part-way through, as a
     * full disk fails with ENOSPC; SIGXFSZ would otherwise kill the test */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 20000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    const char *keep = out_path("keep.gguf");
    CHECK(ct_write_file(keep, "sentinel", 8), "write %s", keep);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        CHECK(0, "setrlimit: %s", strerror(errno));
        return;
    }
    expect_fail("disk full", in_path("mha.gguf"), out_path("full.gguf"), 2, GQA_CONVERT_MEAN,
                GQA_ERR_IO, "full.gguf");
    CHECK(strstr(gqa_last_error(), strerror(EFBIG)) != NULL, "the system's reason: %s",
          gqa_last_error());
    expect_fail("disk full over an existing file", in_path("mha.gguf"), keep, 2, GQA_CONVERT_MEAN,
                GQA_ERR_IO, "keep.gguf");
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    size_t n;
    unsigned char *p = tu_read_file(keep, &n);
    CHECK(p && n == 8 && !memcmp(p, "sentinel", 8), "a failed write leaves the old file alone");
    free(p);
}

static void test_bad_inputs(void)
{
    char mha[4096], out[4096]; /* held across many in_path/out_path calls */
    snprintf(mha, sizeof mha, "%s", in_path("mha.gguf"));
    snprintf(out, sizeof out, "%s", out_path("bad.gguf"));
    expect_fail("wrong architecture", in_path("gpt2.gguf"), out, 2, GQA_CONVERT_MEAN,
                GQA_ERR_UNSUPPORTED, "gpt2");
    expect_fail("missing attn_k", in_path("missing_k.gguf"), out, 2, GQA_CONVERT_MEAN,
                GQA_ERR_FORMAT, "blk.1.attn_k.weight");
    expect_fail("K of the wrong shape", in_path("badshape.gguf"), out, 2, GQA_CONVERT_MEAN,
                GQA_ERR_FORMAT, "blk.0.attn_k.weight");
    expect_fail("G not dividing G0", mha, out, 3, GQA_CONVERT_MEAN, GQA_ERR_INVALID_ARG,
                "divide the model's 4 KV heads");
    expect_fail("G = 0", mha, out, 0, GQA_CONVERT_MEAN, GQA_ERR_INVALID_ARG, "at least 1");
    expect_fail("more heads by mean", mha, out, 8, GQA_CONVERT_MEAN, GQA_ERR_INVALID_ARG, "repeat");
    expect_fail("repeat to a non-multiple", in_path("gqa.gguf"), out, 3, GQA_CONVERT_REPEAT,
                GQA_ERR_INVALID_ARG, "multiple");
    expect_fail("repeat past H", in_path("gqa.gguf"), out, 8, GQA_CONVERT_REPEAT,
                GQA_ERR_INVALID_ARG, "divide its 4 query heads");
    expect_fail("mean of q6_k", in_path("q6k.gguf"), out, 2, GQA_CONVERT_MEAN, GQA_ERR_UNSUPPORTED,
                "q6_k");
    expect_fail("missing input", out_path("nothing.gguf"), out, 2, GQA_CONVERT_MEAN, GQA_ERR_IO,
                "nothing.gguf");
    /* OUT == IN, spelled the same, differently, through a link; a directory */
    size_t n0;
    unsigned char *before = tu_read_file(mha, &n0);
    char alias[4096], link[4096];
    snprintf(alias, sizeof alias, "%s/./mha.gguf", data_dir);
    snprintf(link, sizeof link, "%s/link.gguf", work_dir);
    unlink(link);
    char target[4096];
    CHECK(realpath(mha, target) && symlink(target, link) == 0, "symlink %s", link);
    expect_fail("OUT == IN", mha, mha, 2, GQA_CONVERT_MEAN, GQA_ERR_INVALID_ARG, "input");
    expect_fail("OUT == IN by another path", mha, alias, 2, GQA_CONVERT_MEAN, GQA_ERR_INVALID_ARG,
                "input");
    expect_fail("OUT a link to IN", mha, link, 2, GQA_CONVERT_MEAN, GQA_ERR_INVALID_ARG, "input");
    expect_fail("OUT a directory", mha, work_dir, 2, GQA_CONVERT_MEAN, GQA_ERR_INVALID_ARG,
                "directory");
    size_t n1;
    unsigned char *after = tu_read_file(mha, &n1);
    CHECK(before && after && n0 == n1 && !memcmp(before, after, n0), "the input is untouched");
    free(before), free(after);
    /* unwritable output directory */
    expect_fail("output directory missing", mha, out_path("no/such/dir/x.gguf"), 2,
                GQA_CONVERT_MEAN, GQA_ERR_IO, "no/such/dir/x.gguf");
    if (geteuid() != 0) {
        const char *ro = out_path("readonly");
        mkdir(ro, 0555);
        char p[4096];
        snprintf(p, sizeof p, "%s/x.gguf", ro);
        expect_fail("read-only output directory", mha, p, 2, GQA_CONVERT_MEAN, GQA_ERR_IO, p);
    } else {
        printf("note: running as root: the read-only directory case is skipped\n");
    }
    /* a truncated input: the header is whole, the tensor data is not */
    size_t n;
    unsigned char *img = tu_read_file(mha, &n);
    const char *trunc = out_path("truncated.gguf");
    CHECK(img && ct_write_file(trunc, img, n * 3 / 5), "write %s", trunc);
    free(img);
    expect_fail("truncated input", trunc, out, 2, GQA_CONVERT_MEAN, GQA_ERR_FORMAT,
                "truncated.gguf");
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = 2;
    CHECK(gqa_convert_gguf(NULL, out, &o) == GQA_ERR_INVALID_ARG &&
              gqa_convert_gguf(mha, out, NULL) == GQA_ERR_INVALID_ARG,
          "NULL arguments");
    o.method = (gqa_convert_method)9;
    CHECK(gqa_convert_gguf(mha, out, &o) == GQA_ERR_INVALID_ARG, "unknown method");
    o.method = GQA_CONVERT_MEAN, o.out_type = (gqa_convert_out_type)42;
    CHECK(gqa_convert_gguf(mha, out, &o) == GQA_ERR_INVALID_ARG, "unknown output type");
    test_disk_full();
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        printf("usage: test_convert DATA_DIR WORK_DIR PYTHON CHECK_SCRIPT\n");
        return 2;
    }
    data_dir = argv[1], work_dir = argv[2];
    mkdir(work_dir, 0777);
    char list[4096];
    snprintf(list, sizeof list, "%s/manifest.txt", work_dir);
    manifest = fopen(list, "w");
    if (!manifest) {
        printf("FAIL: cannot write %s\n", list);
        return 1;
    }
    test_internals();
    test_writer();
    test_conversions();
    test_round_trips();
    test_determinism_progress();
    test_logits();
    test_bad_inputs();
    fclose(manifest);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", argv[3], argv[4], list);
    fflush(stdout);
    CHECK(system(cmd) == 0, "check_convert.py agrees with every output: %s", cmd);
    return tu_summary();
}
