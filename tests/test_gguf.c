/* test_gguf.c - the GGUF reader (gqa_model.h) on valid, malformed and real files.
 *
 *  - files written by the PyPI `gguf` package (tests/gguf/make_gguf.py, run
 *    by the CTest fixture gguf_data): every metadata value and tensor
 *    description reads back, tensor bytes are the generator's pattern;
 *  - the same file truncated at every byte, into a buffer of exactly that
 *    size (so ASan sees any read past it): FORMAT below the end of the last
 *    tensor's data, OK from there on; every byte overwritten with a few
 *    values: never a crash, every accessor safe on what opens;
 *  - malformed files built byte by byte here (a second, independent writer):
 *    each gives GQA_ERR_FORMAT with a message containing the expected words;
 *  - open errors: missing file, directory, empty file -> IO / FORMAT;
 *  - the real SmolLM2-135M-Instruct Q4_1 file when present (models/ or
 *    GQA_MODEL_PATH; GQA_REQUIRE_MODEL=1 makes its absence a failure).
 *
 * Usage: test_gguf DATA_DIR SOURCE_DIR
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa_model.h"
#include "gguf/gguf_touch.h"
#include "test_util.h"

/* ------------------------------------------------------- file helpers -- */

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = tu_xmalloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(p, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        free(p);
        return NULL;
    }
    *size = (size_t)n;
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        printf("cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* Open a copy of p[0..n) in a heap buffer of exactly n bytes, so that ASan
 * flags any read past the end. The copy lives until close_exact (one at a
 * time). */
static unsigned char *exact_copy;

static gqa_status open_exact(const unsigned char *p, size_t n, gqa_gguf **g)
{
    exact_copy = tu_xmalloc(n ? n : 1);
    memcpy(exact_copy, p, n);
    gqa_status s = gqa_gguf_open_memory(exact_copy, n, g);
    if (s != GQA_OK) {
        free(exact_copy);
        exact_copy = NULL;
    }
    return s;
}

static void close_exact(gqa_gguf *g)
{
    gqa_gguf_close(g);
    free(exact_copy);
    exact_copy = NULL;
}

/* Touch everything an accessor can reach (ASan checks the reads). Returns a
 * checksum so the reads are not optimised away. */
static unsigned touch_all(const gqa_gguf *g)
{
    unsigned sum = 0;
    for (int64_t i = 0; i < gqa_gguf_n_keys(g); i++)
        sum += gguf_touch_key(g, gqa_gguf_key_name(g, i), 64);
    for (int64_t i = 0; i < gqa_gguf_n_tensors(g); i++) {
        gqa_gguf_tensor_info t;
        if (gqa_gguf_tensor_at(g, i, &t) == GQA_OK && t.n_bytes) {
            const unsigned char *d = t.data;
            sum += d[0] + d[t.n_bytes - 1] + (unsigned char)t.name[0];
        }
    }
    return sum;
}

/* ------------------------------------------------ the generated files -- */

/* Byte j of raw tensor number k in make_gguf.py. */
static unsigned char pattern(int64_t j, int k)
{
    return (unsigned char)((j * 31 + 7 * k + 1) % 256);
}

static void check_u32(const gqa_gguf *g, const char *key, uint32_t want)
{
    uint32_t v = 0;
    gqa_status s = gqa_gguf_get_u32(g, key, &v);
    CHECK(s == GQA_OK && v == want, "%s: status %d value %u, want %u (%s)", key, s, v, want,
          gqa_last_error());
}

static void check_i32(const gqa_gguf *g, const char *key, int32_t want)
{
    int32_t v = 0;
    gqa_status s = gqa_gguf_get_i32(g, key, &v);
    CHECK(s == GQA_OK && v == want, "%s: status %d value %d, want %d (%s)", key, s, v, want,
          gqa_last_error());
}

static void check_refused(gqa_status s, const char *what)
{
    CHECK(s == GQA_ERR_FORMAT && gqa_last_error()[0], "%s: status %d, want FORMAT with a message",
          what, s);
}

static void check_str(const gqa_gguf *g, const char *key, const char *want)
{
    const char *s = NULL;
    size_t len = 0;
    gqa_status st = gqa_gguf_get_str(g, key, &s, &len);
    CHECK(st == GQA_OK && len == strlen(want) && memcmp(s, want, len) == 0, "%s: string mismatch",
          key);
}

static void check_metadata(const gqa_gguf *g)
{
    check_str(g, "general.architecture", "testarch");
    check_u32(g, "test.u8", 200);
    check_i32(g, "test.u8", 200);
    check_i32(g, "test.i8", -100);
    check_u32(g, "test.u16", 60000);
    check_i32(g, "test.i16", -30000);
    check_u32(g, "test.u32", 4000000000u);
    check_i32(g, "test.i32", -2000000000);
    check_u32(g, "test.small_u32", 7);
    check_i32(g, "test.small_u32", 7);
    check_u32(g, "test.small_i64", 576); /* lossless i64 -> u32 */
    uint64_t u64 = 0;
    CHECK(gqa_gguf_get_u64(g, "test.u64", &u64) == GQA_OK && u64 == (1ull << 40) + 7, "u64");
    CHECK(gqa_gguf_get_u64(g, "test.u32", &u64) == GQA_OK && u64 == 4000000000u, "u32 as u64");
    /* lossy conversions are refused */
    uint32_t u32;
    int32_t i32;
    check_refused(gqa_gguf_get_u32(g, "test.i8", &u32), "negative as u32");
    check_refused(gqa_gguf_get_i32(g, "test.u32", &i32), "4e9 as i32");
    check_refused(gqa_gguf_get_u32(g, "test.u64", &u32), "2^40 as u32");
    check_refused(gqa_gguf_get_u64(g, "test.i64", &u64), "negative as u64");
    check_refused(gqa_gguf_get_u32(g, "test.f32", &u32), "f32 as u32");
    check_refused(gqa_gguf_get_u32(g, "test.bool", &u32), "bool as u32");
    check_refused(gqa_gguf_get_u32(g, "test.str", &u32), "string as u32");
    check_refused(gqa_gguf_get_u32(g, "no.such.key", &u32), "missing key");
    CHECK(strstr(gqa_last_error(), "no.such.key") != NULL, "missing key named: %s",
          gqa_last_error());
    float f = 0;
    CHECK(gqa_gguf_get_f32(g, "test.f32", &f) == GQA_OK && f == 1.5f, "f32");
    CHECK(gqa_gguf_get_f32(g, "test.f64", &f) == GQA_OK && f == 0.25f, "exact f64 as f32");
    check_refused(gqa_gguf_get_f32(g, "test.f64_inexact", &f), "inexact f64 as f32");
    check_refused(gqa_gguf_get_f32(g, "test.i32", &f), "i32 as f32");
    int b = -1;
    CHECK(gqa_gguf_get_bool(g, "test.bool", &b) == GQA_OK && b == 1, "bool true");
    CHECK(gqa_gguf_get_bool(g, "test.bool_false", &b) == GQA_OK && b == 0, "bool false");
    check_str(g, "test.str", "h\xc3\xa9llo w\xc3\xb6rld");

    gqa_gguf_type et;
    uint64_t n;
    const char *want_str[] = {"a", "", "bc", "\xe6\x97\xa5\xe6\x9c\xac"};
    CHECK(gqa_gguf_get_arr(g, "test.arr_str", &et, &n) == GQA_OK && et == GQA_GGUF_TYPE_STRING &&
              n == 4,
          "arr_str header");
    for (uint64_t i = 0; i < 4; i++) {
        const char *s;
        size_t len;
        CHECK(gqa_gguf_arr_str(g, "test.arr_str", i, &s, &len) == GQA_OK &&
                  len == strlen(want_str[i]) && memcmp(s, want_str[i], len) == 0,
              "arr_str[%u]", (unsigned)i);
    }
    const char *s;
    size_t len;
    CHECK(gqa_gguf_arr_str(g, "test.arr_str", 4, &s, &len) == GQA_ERR_INVALID_ARG,
          "arr_str index past the end");
    int32_t iv[5];
    const int32_t want_i32[5] = {1, -2, 3, 2147483647, -2147483647 - 1};
    CHECK(gqa_gguf_arr_i32(g, "test.arr_i32", 0, 5, iv) == GQA_OK &&
              memcmp(iv, want_i32, sizeof iv) == 0,
          "arr_i32");
    CHECK(gqa_gguf_arr_i32(g, "test.arr_i32", 3, 3, iv) == GQA_ERR_INVALID_ARG, "arr_i32 range");
    CHECK(gqa_gguf_arr_i32(g, "test.arr_u8", 0, 3, iv) == GQA_OK && iv[0] == 0 && iv[1] == 1 &&
              iv[2] == 255,
          "arr_u8 as i32");
    CHECK(gqa_gguf_arr_i32(g, "test.arr_u32_big", 0, 1, iv) == GQA_OK && iv[0] == 1,
          "arr_u32 small element as i32");
    check_refused(gqa_gguf_arr_i32(g, "test.arr_u32_big", 1, 1, iv), "arr_u32 4e9 as i32");
    check_refused(gqa_gguf_arr_i32(g, "test.arr_str", 0, 1, iv), "string array as i32");
    float fv[3];
    CHECK(gqa_gguf_arr_f32(g, "test.arr_f32", 0, 3, fv) == GQA_OK && fv[0] == 0.5f &&
              fv[1] == -1.25f && fv[2] == 3.0f,
          "arr_f32");
    CHECK(gqa_gguf_get_arr(g, "test.arr_bool", &et, &n) == GQA_OK && et == GQA_GGUF_TYPE_BOOL &&
              n == 3,
          "arr_bool");
    CHECK(gqa_gguf_get_arr(g, "test.arr_nested", &et, &n) == GQA_OK && et == GQA_GGUF_TYPE_ARRAY &&
              n == 2,
          "arr_nested");
    check_refused(gqa_gguf_get_arr(g, "test.u8", &et, &n), "scalar as array");

    /* iteration and lookup agree */
    int64_t nk = gqa_gguf_n_keys(g);
    CHECK(nk == 24, "key count %lld", (long long)nk);
    for (int64_t i = 0; i < nk; i++)
        CHECK(gqa_gguf_find_key(g, gqa_gguf_key_name(g, i)) == i, "find_key(key_name(%lld))",
              (long long)i);
    CHECK(gqa_gguf_key_name(g, nk) == NULL && gqa_gguf_key_type(g, -1) == -1, "key index range");
    CHECK(gqa_gguf_key_type(g, gqa_gguf_find_key(g, "test.arr_str")) == GQA_GGUF_TYPE_ARRAY,
          "key_type");
    CHECK(gqa_gguf_find_key(g, "test") == -1 && gqa_gguf_find_key(g, "test.u8x") == -1,
          "find_key misses");
}

typedef struct want_tensor {
    const char *name;
    uint32_t type;
    int32_t n_dims;
    int64_t d0, d1;
    uint64_t n_bytes;
    int raw_k; /* pattern index, or -1 for the f32/f16 tensors */
} want_tensor;

static const want_tensor want_tensors[] = {
    {"t.f32", GQA_GGML_TYPE_F32, 2, 4, 3, 48, -1},
    {"t.f16", GQA_GGML_TYPE_F16, 2, 8, 2, 32, -1},
    {"t.q8_0", GQA_GGML_TYPE_Q8_0, 2, 64, 2, 136, 0},
    {"t.q4_0", GQA_GGML_TYPE_Q4_0, 2, 32, 3, 54, 1},
    {"t.q4_1", GQA_GGML_TYPE_Q4_1, 2, 32, 1, 20, 2},
    {"t.bf16", GQA_GGML_TYPE_BF16, 1, 5, 1, 10, 3},
    {"t.q6_k", GQA_GGML_TYPE_Q6_K, 2, 256, 1, 210, 4},
    {"blk.0.attn_q.weight", GQA_GGML_TYPE_Q4_1, 2, 64, 4, 160, 5},
};
#define N_WANT_TENSORS ((int)(sizeof want_tensors / sizeof want_tensors[0]))

/* Checks the tensors; returns the end offset of the last tensor's data. */
static uint64_t check_tensors(const gqa_gguf *g, const unsigned char *file, uint32_t alignment)
{
    CHECK(gqa_gguf_n_tensors(g) == N_WANT_TENSORS, "tensor count %lld",
          (long long)gqa_gguf_n_tensors(g));
    CHECK(gqa_gguf_alignment(g) == alignment, "alignment %u", gqa_gguf_alignment(g));
    CHECK(gqa_gguf_data_offset(g) % alignment == 0, "data offset aligned");
    uint64_t end = 0;
    for (int i = 0; i < N_WANT_TENSORS; i++) {
        const want_tensor *w = &want_tensors[i];
        gqa_gguf_tensor_info t;
        gqa_status s = gqa_gguf_tensor(g, w->name, &t);
        CHECK(s == GQA_OK, "tensor %s: %s", w->name, gqa_last_error());
        if (s != GQA_OK)
            continue;
        CHECK(strcmp(t.name, w->name) == 0 && t.ggml_type == w->type && t.n_dims == w->n_dims &&
                  t.dims[0] == w->d0 && t.dims[1] == w->d1 && t.dims[2] == 1 && t.dims[3] == 1 &&
                  t.n_elements == w->d0 * w->d1 && t.n_bytes == w->n_bytes,
              "tensor %s info: type %u dims %lld x %lld, %llu bytes", w->name, t.ggml_type,
              (long long)t.dims[0], (long long)t.dims[1], (unsigned long long)t.n_bytes);
        CHECK((t.offset - gqa_gguf_data_offset(g)) % alignment == 0, "tensor %s offset aligned",
              w->name);
        CHECK(gqa_gguf_find_tensor(g, w->name) == i, "tensor %s index", w->name);
        if (file)
            CHECK((const unsigned char *)t.data == file + t.offset, "tensor %s data pointer",
                  w->name);
        const unsigned char *d = t.data;
        int ok = 1;
        if (w->raw_k >= 0) {
            for (uint64_t j = 0; j < t.n_bytes; j++)
                ok &= d[j] == pattern((int64_t)j, w->raw_k);
        } else if (w->type == GQA_GGML_TYPE_F32) {
            for (int64_t j = 0; j < 12; j++) {
                float v;
                memcpy(&v, d + 4 * j, 4);
                ok &= v == 0.5f * (float)j;
            }
        } else {
            for (int64_t j = 0; j < 16; j++) {
                uint16_t h;
                memcpy(&h, d + 2 * j, 2);
                ok &= gqa_f16_to_f32(h) == (float)(j - 8);
            }
        }
        CHECK(ok, "tensor %s data bytes", w->name);
        if (t.offset + t.n_bytes > end)
            end = t.offset + t.n_bytes;
    }
    gqa_gguf_tensor_info t;
    check_refused(gqa_gguf_tensor(g, "t.nope", &t), "missing tensor");
    CHECK(gqa_gguf_tensor_at(g, N_WANT_TENSORS, &t) == GQA_ERR_INVALID_ARG, "tensor index range");
    CHECK(gqa_gguf_find_tensor(g, "t.nope") == -1, "find_tensor miss");
    return end;
}

static void test_generated(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/valid.gguf", dir);
    gqa_gguf *g = NULL;
    gqa_status s = gqa_gguf_open(path, &g);
    CHECK(s == GQA_OK, "open %s: %s", path, gqa_last_error());
    if (s != GQA_OK)
        return;
    size_t size = 0;
    unsigned char *file = read_file(path, &size);
    CHECK(file != NULL && gqa_gguf_file_size(g) == size, "file size");
    CHECK(gqa_gguf_version(g) == 3, "version %u", gqa_gguf_version(g));
    check_metadata(g);
    uint64_t end = check_tensors(g, NULL, 32);
    gqa_gguf_close(g);

    /* From memory: pointers land in the caller's buffer. Version 2 has the
     * same layout, so the same bytes with version 2 must read identically. */
    for (uint32_t version = 3; version >= 2; version--) {
        file[4] = (unsigned char)version;
        s = gqa_gguf_open_memory(file, size, &g);
        CHECK(s == GQA_OK && gqa_gguf_version(g) == version, "memory v%u: %s", version,
              gqa_last_error());
        if (s == GQA_OK) {
            check_metadata(g);
            check_tensors(g, file, 32);
            gqa_gguf_close(g);
        }
    }
    file[4] = 3;

    /* Truncated at every byte, in an exactly-sized buffer. */
    double t0 = tu_seconds();
    int bad = 0;
    for (size_t n = 0; n < size; n++) {
        s = open_exact(file, n, &g);
        if (n < end) {
            if (s != GQA_ERR_FORMAT || !gqa_last_error()[0]) {
                if (bad++ < 5)
                    printf("FAIL truncated at %zu: status %d\n", n, s);
            }
        } else if (s != GQA_OK) {
            if (bad++ < 5)
                printf("FAIL truncated at %zu (after the data end %llu): status %d: %s\n", n,
                       (unsigned long long)end, s, gqa_last_error());
        }
        if (s == GQA_OK) {
            touch_all(g);
            close_exact(g);
        }
    }
    CHECK(bad == 0, "%d truncations misjudged", bad);
    printf("  truncation: %zu lengths (data ends at %llu) in %.2f s\n", size,
           (unsigned long long)end, tu_seconds() - t0);

    /* Every byte overwritten with a few values: any status, but no crash,
     * and everything reachable is safe to read. */
    static const unsigned char vals[] = {0x00, 0xff, 0x80, 0x01, 0x7f};
    int opened = 0, total = 0;
    unsigned sum = 0;
    t0 = tu_seconds();
    for (size_t i = 0; i < size; i++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            unsigned char keep = file[i];
            if (keep == vals[v])
                continue;
            file[i] = vals[v];
            unsigned char *copy = tu_xmalloc(size);
            memcpy(copy, file, size);
            file[i] = keep;
            s = gqa_gguf_open_memory(copy, size, &g);
            total++;
            if (s == GQA_OK) {
                opened++;
                sum += touch_all(g);
                gqa_gguf_close(g);
            } else if (s != GQA_ERR_FORMAT || !gqa_last_error()[0]) {
                CHECK(0, "byte %zu = %u: status %d", i, vals[v], s);
            }
            free(copy);
        }
    }
    CHECK(1, "mutations");
    printf("  mutation: %d files, %d opened (checksum %u) in %.2f s\n", total, opened, sum,
           tu_seconds() - t0);
    free(file);

    snprintf(path, sizeof path, "%s/align64.gguf", dir);
    s = gqa_gguf_open(path, &g);
    CHECK(s == GQA_OK, "open %s: %s", path, gqa_last_error());
    if (s == GQA_OK) {
        check_u32(g, "general.alignment", 64);
        check_tensors(g, NULL, 64);
        gqa_gguf_close(g);
    }
    const char *others[] = {"empty.gguf", "metadata_only.gguf", "tensors_only.gguf"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, others[i]);
        s = gqa_gguf_open(path, &g);
        CHECK(s == GQA_OK, "open %s: %s", path, gqa_last_error());
        if (s == GQA_OK) {
            touch_all(g);
            gqa_gguf_close(g);
        }
    }
}

/* ----------------------------------------------- hand-built malformed -- */

typedef struct buf {
    unsigned char b[1024];
    size_t n;
} buf;

static void put(buf *w, const void *p, size_t n)
{
    if (w->n + n > sizeof w->b) {
        printf("test buffer too small\n");
        exit(1);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void u8_(buf *w, uint8_t v)
{
    put(w, &v, 1);
}
static void u32_(buf *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        u8_(w, (uint8_t)(v >> 8 * i));
}
static void u64_(buf *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        u8_(w, (uint8_t)(v >> 8 * i));
}
static void str_(buf *w, const char *s)
{
    u64_(w, strlen(s));
    put(w, s, strlen(s));
}
static void header(buf *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    w->n = 0;
    put(w, "GGUF", 4);
    u32_(w, version);
    u64_(w, n_tensors);
    u64_(w, n_kv);
}
static void kv_u32(buf *w, const char *key, uint32_t v)
{
    str_(w, key);
    u32_(w, GQA_GGUF_TYPE_UINT32);
    u32_(w, v);
}
/* A tensor info with up to 4 dims (n_dims may claim more: extra dims are 1). */
static void tinfo(buf *w, const char *name, uint32_t n_dims, const uint64_t *dims, uint32_t type,
                  uint64_t offset)
{
    str_(w, name);
    u32_(w, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        u64_(w, i < 4 ? dims[i] : 1);
    u32_(w, type);
    u64_(w, offset);
}
static void pad_to(buf *w, size_t a)
{
    while (w->n % a)
        u8_(w, 0);
}
static void zeros(buf *w, size_t n)
{
    while (n--)
        u8_(w, 0);
}

/* Case-insensitive substring test of every '|'-separated alternative. */
static int msg_has(const char *msg, const char *alts)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s", alts);
    for (char *tok = strtok(tmp, "|"); tok; tok = strtok(NULL, "|"))
        if (strstr(msg, tok))
            return 1;
    return 0;
}

static void expect_format(const buf *w, const char *what, const char *words)
{
    gqa_gguf *g = NULL;
    gqa_status s = open_exact(w->b, w->n, &g);
    const char *msg = gqa_last_error();
    CHECK(s == GQA_ERR_FORMAT && msg_has(msg, words) && strstr(msg, "offset") && g == NULL,
          "%s: status %d (want FORMAT), message \"%s\" (want \"%s\" and an offset)", what, s, msg,
          words);
    printf("  %-40s -> %s\n", what, msg);
    if (s == GQA_OK)
        close_exact(g);
}

static gqa_gguf *expect_ok(const buf *w, const char *what)
{
    gqa_gguf *g = NULL;
    gqa_status s = open_exact(w->b, w->n, &g);
    CHECK(s == GQA_OK, "%s: status %d: %s", what, s, gqa_last_error());
    return s == GQA_OK ? g : NULL;
}

/* One f32 tensor [8] at offset 0, plus its 32 data bytes. */
static void one_tensor_file(buf *w, uint32_t version)
{
    const uint64_t d8[1] = {8};
    header(w, version, 1, 1);
    kv_u32(w, "a.key", 1);
    tinfo(w, "w", 1, d8, GQA_GGML_TYPE_F32, 0);
    pad_to(w, 32);
    zeros(w, 32);
}

static void test_malformed(void)
{
    buf w;
    gqa_gguf *g;
    const uint64_t d8[1] = {8}, d16[1] = {16}, d8x4[4] = {8, 1, 1, 1};

    one_tensor_file(&w, 3);
    g = expect_ok(&w, "baseline one-tensor file");
    if (g) {
        gqa_gguf_tensor_info t;
        CHECK(gqa_gguf_tensor(g, "w", &t) == GQA_OK && t.n_bytes == 32, "baseline tensor");
        close_exact(g);
    }
    one_tensor_file(&w, 3);
    w.b[0] = 'X';
    expect_format(&w, "bad magic", "magic");
    one_tensor_file(&w, 1);
    expect_format(&w, "version 1", "version 1");
    one_tensor_file(&w, 4);
    expect_format(&w, "version 4", "version 4");
    one_tensor_file(&w, 0x03000000u);
    expect_format(&w, "big-endian version", "big-endian");

    header(&w, 3, 0, UINT64_MAX);
    expect_format(&w, "2^64-1 keys", "keys");
    header(&w, 3, 1ull << 62, 0);
    zeros(&w, 64);
    expect_format(&w, "2^62 tensors", "tensors");
    header(&w, 3, 0, 1);
    u64_(&w, 1000);
    put(&w, "abc", 3);
    zeros(&w, 10);
    expect_format(&w, "key length past EOF", "length 1000");
    header(&w, 3, 0, 1);
    u64_(&w, UINT64_MAX);
    zeros(&w, 10);
    expect_format(&w, "key length 2^64-1", "past the end");
    header(&w, 3, 0, 1);
    str_(&w, "k");
    u32_(&w, GQA_GGUF_TYPE_STRING);
    u64_(&w, 50);
    put(&w, "short", 5);
    expect_format(&w, "string value past EOF", "string value");
    header(&w, 3, 0, 1);
    str_(&w, "k");
    u32_(&w, 13);
    zeros(&w, 8);
    expect_format(&w, "value type 13", "invalid value type 13");
    header(&w, 3, 0, 1);
    str_(&w, "k");
    u32_(&w, GQA_GGUF_TYPE_BOOL);
    u8_(&w, 2);
    expect_format(&w, "bool value 2", "bool");

    /* arrays */
    static const uint32_t arr_types[] = {GQA_GGUF_TYPE_UINT8, GQA_GGUF_TYPE_UINT64,
                                         GQA_GGUF_TYPE_STRING, GQA_GGUF_TYPE_ARRAY};
    for (int i = 0; i < 4; i++) {
        header(&w, 3, 0, 1);
        str_(&w, "k");
        u32_(&w, GQA_GGUF_TYPE_ARRAY);
        u32_(&w, arr_types[i]);
        u64_(&w, 1ull << 62);
        zeros(&w, 40);
        char what[64];
        snprintf(what, sizeof what, "array of 2^62 %s",
                 gqa_gguf_value_type_name((int)arr_types[i]));
        expect_format(&w, what, "4611686018427387904 elements");
    }
    header(&w, 3, 0, 1);
    str_(&w, "k");
    u32_(&w, GQA_GGUF_TYPE_ARRAY);
    u32_(&w, GQA_GGUF_TYPE_STRING);
    u64_(&w, 2);
    str_(&w, "ok");
    u64_(&w, 99);
    put(&w, "x", 1);
    expect_format(&w, "string array element past EOF", "string array element");
    header(&w, 3, 0, 1);
    str_(&w, "k");
    u32_(&w, GQA_GGUF_TYPE_ARRAY);
    u32_(&w, 99);
    u64_(&w, 0);
    expect_format(&w, "array element type 99", "element type 99");
    header(&w, 3, 0, 1);
    str_(&w, "k");
    u32_(&w, GQA_GGUF_TYPE_ARRAY);
    u32_(&w, GQA_GGUF_TYPE_BOOL);
    u64_(&w, 3);
    u8_(&w, 1);
    u8_(&w, 0);
    u8_(&w, 7);
    expect_format(&w, "bool array element 7", "bool array");
    header(&w, 3, 0, 1); /* arrays nested 10 deep */
    str_(&w, "k");
    u32_(&w, GQA_GGUF_TYPE_ARRAY);
    for (int d = 0; d < 10; d++) {
        u32_(&w, GQA_GGUF_TYPE_ARRAY);
        u64_(&w, 1);
    }
    u32_(&w, GQA_GGUF_TYPE_UINT8);
    u64_(&w, 0);
    expect_format(&w, "arrays nested 10 deep", "nests deeper");
    header(&w, 3, 0, 2); /* empty arrays and nested arrays 3 deep are fine */
    str_(&w, "e");
    u32_(&w, GQA_GGUF_TYPE_ARRAY);
    u32_(&w, GQA_GGUF_TYPE_INT32);
    u64_(&w, 0);
    str_(&w, "n");
    u32_(&w, GQA_GGUF_TYPE_ARRAY);
    u32_(&w, GQA_GGUF_TYPE_ARRAY);
    u64_(&w, 1);
    u32_(&w, GQA_GGUF_TYPE_ARRAY);
    u64_(&w, 1);
    u32_(&w, GQA_GGUF_TYPE_STRING);
    u64_(&w, 1);
    str_(&w, "deep");
    g = expect_ok(&w, "empty and nested arrays");
    if (g) {
        uint64_t n = 9;
        gqa_gguf_type et;
        CHECK(gqa_gguf_get_arr(g, "e", &et, &n) == GQA_OK && n == 0 && et == GQA_GGUF_TYPE_INT32,
              "empty array");
        CHECK(gqa_gguf_arr_i32(g, "e", 0, 0, NULL) == GQA_OK, "empty range of empty array");
        CHECK(gqa_gguf_get_arr(g, "n", &et, &n) == GQA_OK && n == 1 && et == GQA_GGUF_TYPE_ARRAY,
              "nested array");
        int32_t x;
        check_refused(gqa_gguf_arr_i32(g, "n", 0, 1, &x), "nested array as i32");
        close_exact(g);
    }

    /* keys */
    header(&w, 3, 0, 2);
    kv_u32(&w, "dup", 1);
    kv_u32(&w, "dup", 2);
    expect_format(&w, "duplicate key", "duplicate key 'dup'");
    header(&w, 3, 0, 1);
    u64_(&w, 3);
    put(&w, "a\0b", 3);
    u32_(&w, GQA_GGUF_TYPE_UINT8);
    u8_(&w, 0);
    expect_format(&w, "NUL in key", "NUL");
    header(&w, 3, 0, 1);
    str_(&w, "general.alignment");
    u32_(&w, GQA_GGUF_TYPE_UINT64);
    u64_(&w, 32);
    expect_format(&w, "alignment as u64", "not u32");
    header(&w, 3, 0, 1);
    kv_u32(&w, "general.alignment", 0);
    expect_format(&w, "alignment 0", "power of two");
    header(&w, 3, 0, 1);
    kv_u32(&w, "general.alignment", 48);
    expect_format(&w, "alignment 48", "power of two");

    /* tensor infos */
    header(&w, 3, 1, 0);
    tinfo(&w, "w", 5, d8x4, GQA_GGML_TYPE_F32, 0);
    pad_to(&w, 32);
    zeros(&w, 32);
    expect_format(&w, "n_dims 5", "n_dims 5");
    header(&w, 3, 1, 0);
    tinfo(&w, "w", 0, d8, GQA_GGML_TYPE_F32, 0);
    pad_to(&w, 32);
    expect_format(&w, "n_dims 0", "n_dims 0");
    {
        const uint64_t big[4] = {1ull << 32, 1ull << 32, 4, 1};
        header(&w, 3, 1, 0);
        tinfo(&w, "w", 3, big, GQA_GGML_TYPE_F32, 0);
        pad_to(&w, 32);
        expect_format(&w, "dims product overflow", "overflows");
        const uint64_t neg[2] = {8, 1ull << 63};
        header(&w, 3, 1, 0);
        tinfo(&w, "w", 2, neg, GQA_GGML_TYPE_F32, 0);
        pad_to(&w, 32);
        expect_format(&w, "dim 2^63", "negative");
        const uint64_t huge[2] = {1ull << 31, 1ull << 31};
        header(&w, 3, 1, 0);
        tinfo(&w, "w", 2, huge, GQA_GGML_TYPE_F32, 0); /* 2^62 elements * 4 bytes */
        pad_to(&w, 32);
        expect_format(&w, "byte size overflow", "byte size overflows");
        const uint64_t d31[1] = {31};
        header(&w, 3, 1, 0);
        tinfo(&w, "w", 1, d31, GQA_GGML_TYPE_Q4_1, 0);
        pad_to(&w, 32);
        zeros(&w, 32);
        expect_format(&w, "q4_1 row of 31", "block size");
    }
    header(&w, 3, 1, 0);
    tinfo(&w, "w", 1, d8, GQA_GGML_TYPE_F32, 4);
    pad_to(&w, 32);
    zeros(&w, 64);
    expect_format(&w, "misaligned offset", "alignment");
    header(&w, 3, 1, 1); /* aligned to 64, but offset 32 */
    kv_u32(&w, "general.alignment", 64);
    tinfo(&w, "w", 1, d8, GQA_GGML_TYPE_F32, 32);
    pad_to(&w, 64);
    zeros(&w, 128);
    expect_format(&w, "offset misaligned to general.alignment", "alignment 64");
    header(&w, 3, 1, 0);
    tinfo(&w, "w", 1, d16, GQA_GGML_TYPE_F32, 0);
    pad_to(&w, 32);
    zeros(&w, 60); /* needs 64 */
    expect_format(&w, "data past EOF by 4 bytes", "past the end");
    header(&w, 3, 1, 0);
    tinfo(&w, "w", 1, d8, GQA_GGML_TYPE_F32, UINT64_MAX - 31);
    pad_to(&w, 32);
    zeros(&w, 32);
    expect_format(&w, "offset 2^64-32", "past the end");
    header(&w, 3, 1, 0);
    tinfo(&w, "w", 1, d8, GQA_GGML_TYPE_F32, 0);
    expect_format(&w, "data section past EOF", "data section");
    header(&w, 3, 2, 0);
    tinfo(&w, "a", 1, d16, GQA_GGML_TYPE_F32, 0); /* 64 bytes at 0 */
    tinfo(&w, "b", 1, d8, GQA_GGML_TYPE_F32, 32); /* 32 bytes at 32 */
    pad_to(&w, 32);
    zeros(&w, 64);
    expect_format(&w, "overlapping tensors", "overlap");
    header(&w, 3, 2, 0);
    tinfo(&w, "a", 1, d8, GQA_GGML_TYPE_F32, 0);
    tinfo(&w, "b", 1, d8, GQA_GGML_TYPE_F32, 0);
    pad_to(&w, 32);
    zeros(&w, 64);
    expect_format(&w, "two tensors at one offset", "overlap");
    header(&w, 3, 2, 0);
    tinfo(&w, "same", 1, d8, GQA_GGML_TYPE_F32, 0);
    tinfo(&w, "same", 1, d8, GQA_GGML_TYPE_F32, 32);
    pad_to(&w, 32);
    zeros(&w, 64);
    expect_format(&w, "duplicate tensor name", "duplicate tensor name 'same'");
    header(&w, 3, 2, 0);
    tinfo(&w, "a", 1, d8, GQA_GGML_TYPE_F32, 0);
    u64_(&w, 1000);
    zeros(&w, 40);
    expect_format(&w, "tensor name past EOF", "tensor name");

    /* An unknown type id is listed; its data is unsupported, named by id. */
    header(&w, 3, 2, 0);
    tinfo(&w, "known", 1, d8, GQA_GGML_TYPE_F32, 0);
    tinfo(&w, "odd", 1, d8, 99, 32);
    pad_to(&w, 32);
    zeros(&w, 64);
    g = expect_ok(&w, "unknown ggml type");
    if (g) {
        gqa_gguf_tensor_info t;
        gqa_status s = gqa_gguf_tensor(g, "odd", &t);
        CHECK(s == GQA_ERR_UNSUPPORTED && strstr(gqa_last_error(), "99") && t.data == NULL &&
                  t.n_bytes == 0 && t.ggml_type == 99 && strcmp(t.name, "odd") == 0 &&
                  t.n_elements == 8,
              "unknown type: status %d, message \"%s\"", s, gqa_last_error());
        CHECK(gqa_gguf_tensor(g, "known", &t) == GQA_OK, "known tensor next to an unknown one");
        close_exact(g);
    }
    /* Zero-size tensors and an empty file of counts. */
    {
        const uint64_t d0[2] = {0, 4};
        header(&w, 2, 2, 0);
        tinfo(&w, "z1", 2, d0, GQA_GGML_TYPE_Q8_0, 0);
        tinfo(&w, "z2", 1, d0, GQA_GGML_TYPE_F32, 0);
        pad_to(&w, 32);
        g = expect_ok(&w, "zero-size tensors");
        if (g) {
            gqa_gguf_tensor_info t;
            CHECK(gqa_gguf_tensor(g, "z1", &t) == GQA_OK && t.n_bytes == 0 && t.n_elements == 0,
                  "zero-size tensor");
            close_exact(g);
        }
    }
    header(&w, 2, 0, 0);
    g = expect_ok(&w, "no keys, no tensors");
    if (g) {
        CHECK(gqa_gguf_n_keys(g) == 0 && gqa_gguf_n_tensors(g) == 0 && gqa_gguf_alignment(g) == 32,
              "empty header");
        close_exact(g);
    }

    /* API misuse */
    CHECK(gqa_gguf_open_memory(NULL, 10, &g) == GQA_ERR_INVALID_ARG, "NULL data");
    CHECK(gqa_gguf_open_memory(w.b, w.n, NULL) == GQA_ERR_INVALID_ARG, "NULL out");
    CHECK(gqa_gguf_open(NULL, &g) == GQA_ERR_INVALID_ARG, "NULL path");
    gqa_gguf_close(NULL);
    CHECK(strcmp(gqa_gguf_type_name(GQA_GGML_TYPE_Q4_1), "q4_1") == 0 &&
              strcmp(gqa_gguf_type_name(4), "unknown") == 0 &&
              strcmp(gqa_gguf_type_name(GQA_GGML_TYPE_BF16), "bf16") == 0,
          "type names");
    int64_t be = 0, bb = 0;
    CHECK(gqa_gguf_type_block(GQA_GGML_TYPE_Q8_0, &be, &bb) == 1 && be == 32 && bb == 34 &&
              gqa_gguf_type_block(GQA_GGML_TYPE_Q4_0, &be, &bb) && bb == 18 &&
              gqa_gguf_type_block(GQA_GGML_TYPE_Q4_1, &be, &bb) && bb == 20 &&
              gqa_gguf_type_block(GQA_GGML_TYPE_Q6_K, &be, &bb) && be == 256 && bb == 210 &&
              gqa_gguf_type_block(1000, NULL, NULL) == 0,
          "block sizes");
}

static void test_open_errors(const char *dir)
{
    gqa_gguf *g = (gqa_gguf *)&g;
    char path[4096];
    snprintf(path, sizeof path, "%s/does-not-exist.gguf", dir);
    gqa_status s = gqa_gguf_open(path, &g);
    CHECK(s == GQA_ERR_IO && g == NULL && strstr(gqa_last_error(), path) &&
              strstr(gqa_last_error(), "No such file"),
          "missing file: status %d \"%s\"", s, gqa_last_error());
    s = gqa_gguf_open(dir, &g);
    CHECK(s == GQA_ERR_IO && strstr(gqa_last_error(), "not a regular file"),
          "directory: status %d \"%s\"", s, gqa_last_error());
    snprintf(path, sizeof path, "%s/empty-file.gguf", dir);
    write_file(path, "", 0);
    s = gqa_gguf_open(path, &g);
    CHECK(s == GQA_ERR_FORMAT && strstr(gqa_last_error(), path), "empty file: status %d \"%s\"", s,
          gqa_last_error());
    snprintf(path, sizeof path, "%s/three-bytes.gguf", dir);
    write_file(path, "GGU", 3);
    s = gqa_gguf_open(path, &g);
    CHECK(s == GQA_ERR_FORMAT && strstr(gqa_last_error(), "magic") &&
              strstr(gqa_last_error(), path),
          "3-byte file: status %d \"%s\"", s, gqa_last_error());
    buf w;
    one_tensor_file(&w, 3);
    snprintf(path, sizeof path, "%s/truncated.gguf", dir);
    write_file(path, w.b, w.n - 1);
    s = gqa_gguf_open(path, &g);
    CHECK(s == GQA_ERR_FORMAT && strstr(gqa_last_error(), "past the end"),
          "truncated file on disk: status %d \"%s\"", s, gqa_last_error());
}

/* ------------------------------------------------------- the real model -- */

static void test_real_model(const char *source_dir)
{
    char path[4096];
    const char *env = getenv("GQA_MODEL_PATH");
    if (env && env[0])
        snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", source_dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        const char *req = getenv("GQA_REQUIRE_MODEL");
        if (req && strcmp(req, "1") == 0) {
            CHECK(0, "GQA_REQUIRE_MODEL=1 but %s is absent (run scripts/fetch_model.sh)", path);
        } else {
            printf("  SKIP real model: %s absent (scripts/fetch_model.sh fetches it; "
                   "GQA_REQUIRE_MODEL=1 makes this a failure)\n",
                   path);
        }
        return;
    }
    fclose(f);
    double t0 = tu_seconds();
    gqa_gguf *g = NULL;
    gqa_status s = gqa_gguf_open(path, &g);
    double dt = tu_seconds() - t0;
    CHECK(s == GQA_OK, "open %s: %s", path, gqa_last_error());
    if (s != GQA_OK)
        return;
    printf("  real model: %s, GGUF v%u, %lld keys, %lld tensors, opened in %.1f ms\n", path,
           gqa_gguf_version(g), (long long)gqa_gguf_n_keys(g), (long long)gqa_gguf_n_tensors(g),
           dt * 1e3);
    check_str(g, "general.architecture", "llama");
    check_u32(g, "llama.block_count", 30);
    check_u32(g, "llama.embedding_length", 576);
    check_u32(g, "llama.attention.head_count", 9);
    check_u32(g, "llama.attention.head_count_kv", 3);
    gqa_gguf_type et;
    uint64_t n = 0;
    CHECK(gqa_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) == GQA_OK &&
              et == GQA_GGUF_TYPE_STRING && n == 49152,
          "vocab: %llu tokens", (unsigned long long)n);
    const char *tok;
    size_t len;
    CHECK(gqa_gguf_arr_str(g, "tokenizer.ggml.tokens", n - 1, &tok, &len) == GQA_OK, "last token");
    float eps = 0;
    CHECK(gqa_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps) == GQA_OK &&
              fabsf(eps - 1e-5f) < 1e-9f,
          "rms eps");
    /* Histogram of tensor types. */
    int64_t count[64] = {0};
    uint64_t bytes[64] = {0}, total = 0;
    int unknown = 0;
    for (int64_t i = 0; i < gqa_gguf_n_tensors(g); i++) {
        gqa_gguf_tensor_info t;
        if (gqa_gguf_tensor_at(g, i, &t) != GQA_OK || t.ggml_type >= 64) {
            unknown++;
            continue;
        }
        count[t.ggml_type]++;
        bytes[t.ggml_type] += t.n_bytes;
        total += t.n_bytes;
    }
    CHECK(unknown == 0, "%d tensors of unknown type", unknown);
    printf("  tensor types:");
    for (int i = 0; i < 64; i++)
        if (count[i])
            printf(" %s x%lld (%.1f MB)", gqa_gguf_type_name((uint32_t)i), (long long)count[i],
                   (double)bytes[i] / 1e6);
    printf("; %.1f MB of %.1f MB\n", (double)total / 1e6, (double)gqa_gguf_file_size(g) / 1e6);
    gqa_gguf_tensor_info t;
    CHECK(gqa_gguf_tensor(g, "token_embd.weight", &t) == GQA_OK && t.dims[0] == 576 &&
              t.dims[1] == 49152,
          "token_embd.weight %lld x %lld", (long long)t.dims[0], (long long)t.dims[1]);
    gqa_gguf_close(g);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        printf("usage: test_gguf DATA_DIR SOURCE_DIR\n");
        return 2;
    }
    double t0 = tu_seconds();
    printf("generated files (%s)\n", argv[1]);
    test_generated(argv[1]);
    printf("malformed files\n");
    test_malformed();
    printf("open errors\n");
    test_open_errors(argv[1]);
    printf("real model\n");
    test_real_model(argv[2]);
    printf("total %.2f s\n", tu_seconds() - t0);
    return tu_summary();
}
