/* test_safetensors.c - the safetensors reader/writer and the Hugging Face
 * model directory module (src/convert/hf_internal.h, an internal API).
 *
 * DATA_DIR is written first by tests/safetensors/make_hf.py (CTest fixture
 * safetensors_data) with the PyPI `safetensors` package: two model
 * directories (single file; two shards) whose every value follows the
 * formula below, edge-case files, malformed files and broken directories,
 * with what to expect in DATA_DIR/expect.json. This test
 *   - reads the models and checks config, names, dtypes, shapes, every value;
 *   - checks every malformed file and directory fails with the expected
 *     status and message, and that truncations and random corruption of a
 *     valid file never crash and never hand out data outside the file;
 *   - writes converted copies (K/V heads halved, some tensors changed,
 *     dropped or added, num_key_value_heads changed), re-reads them, and has
 *     make_hf.py check them with the reference implementation;
 *   - checks the writers' argument and output-directory errors.
 *
 * usage: test_safetensors DATA_DIR PYTHON MAKE_HF_PY
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "convert/hf_internal.h"
#include "core/internal.h" /* gqa_fail, for the fill callbacks */
#include "test_util.h"

/* Element i of the tensor with this seed (make_hf.py's values()). */
static double value(int64_t seed, int64_t i)
{
    return (double)((7 * i + 13 * seed) % 97 - 48) / 16.0;
}

static double decode(int dtype, const void *data, int64_t i)
{
    const unsigned char *p = data;
    if (dtype == GQA_ST_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return (double)f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    if (dtype == GQA_ST_F16)
        return (double)gqa_f16_to_f32(h);
    uint32_t bits = (uint32_t)h << 16; /* bf16: the top half of an f32 */
    float f;
    memcpy(&f, &bits, 4);
    return (double)f;
}

static void encode(int dtype, int64_t seed, int64_t n, void *dst)
{
    unsigned char *p = dst;
    for (int64_t i = 0; i < n; i++) {
        float f = (float)value(seed, i);
        uint16_t h = dtype == GQA_ST_F16 ? gqa_f32_to_f16(f) : gqa_f32_to_bf16(f);
        if (dtype == GQA_ST_F32)
            memcpy(p + 4 * i, &f, 4);
        else
            memcpy(p + 2 * i, &h, 2);
    }
}

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return cJSON_Parse(buf);
}

static int json_int(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* 1 when t's dtype and shape are those of the JSON description e. */
static int same_desc(const gqa_st_tensor *t, const cJSON *e)
{
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (gqa_st_dtype_from_name(json_str(e, "dtype")) != (int)t->dtype ||
        cJSON_GetArraySize(shape) != t->n_dims)
        return 0;
    int d = 0;
    for (const cJSON *x = shape->child; x; x = x->next, d++)
        if ((double)t->shape[d] != x->valuedouble)
            return 0;
    return 1;
}

/* Every value of tensor t equals the formula for `seed`. */
static int values_match(const gqa_st_tensor *t, int64_t seed)
{
    for (int64_t i = 0; i < t->n_elements; i++)
        if (decode(t->dtype, t->data, i) != value(seed, i)) {
            printf("  %s[%lld] = %g, want %g\n", t->name, (long long)i,
                   decode(t->dtype, t->data, i), value(seed, i));
            return 0;
        }
    return 1;
}

/* ------------------------------------------------------ reading models -- */

static void check_model(const char *data_dir, const cJSON *m)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, json_str(m, "dir"));
    gqa_hf_dir *d = NULL;
    gqa_status s = gqa_hf_open(path, &d);
    CHECK(s == GQA_OK, "open %s: %s", path, gqa_last_error());
    if (s != GQA_OK)
        return;
    const gqa_hf_config *c = gqa_hf_config_get(d);
    CHECK(c->n_heads == json_int(m, "heads") && c->n_kv_heads == json_int(m, "kv_heads") &&
              c->hidden_size == json_int(m, "hidden") && c->head_dim == json_int(m, "head_dim") &&
              c->n_layers == json_int(m, "layers"),
          "%s config: H %d G %d hidden %d d %d layers %d", path, c->n_heads, c->n_kv_heads,
          c->hidden_size, c->head_dim, c->n_layers);
    CHECK(strcmp(c->architecture, json_str(m, "architecture")) == 0 &&
              strcmp(c->model_type, json_str(m, "model_type")) == 0,
          "%s architecture '%s' model_type '%s'", path, c->architecture, c->model_type);
    double eps = 0;
    CHECK(gqa_hf_config_number(d, "rms_norm_eps", &eps) && eps > 0 && eps < 1e-4, "rms_norm_eps %g",
          eps);
    CHECK(!gqa_hf_config_number(d, "no_such_key", &eps), "no_such_key found");
    CHECK(gqa_hf_sharded(d) == cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "sharded")),
          "%s sharded %d", path, gqa_hf_sharded(d));
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(m, "tensors");
    CHECK(gqa_hf_n_tensors(d) == cJSON_GetArraySize(ts), "%s: %lld tensors, want %d", path,
          (long long)gqa_hf_n_tensors(d), cJSON_GetArraySize(ts));
    int bad = 0;
    for (const cJSON *e = ts->child; e; e = e->next) {
        const char *name = json_str(e, "name");
        int64_t i = gqa_hf_find(d, name);
        const gqa_st_tensor *t = gqa_hf_tensor_at(d, i);
        const char *shard = gqa_hf_shard_name(d, gqa_hf_tensor_shard(d, i));
        if (!t || strcmp(t->name, name) != 0 || !same_desc(t, e) || !shard ||
            strcmp(shard, json_str(e, "shard")) != 0 || !values_match(t, json_int(e, "seed"))) {
            printf("  tensor %s: missing, misdescribed, in the wrong shard or wrong values\n",
                   name);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %d tensors wrong", path, bad);
    const gqa_st_tensor *t = NULL;
    CHECK(gqa_hf_tensor(d, "no.such.tensor", &t) == GQA_ERR_FORMAT && t == NULL &&
              strstr(gqa_last_error(), "no.such.tensor"),
          "missing tensor: %s", gqa_last_error());
    CHECK(gqa_hf_find(d, "no.such.tensor") == -1 && gqa_hf_tensor_at(d, -1) == NULL &&
              gqa_hf_tensor_at(d, gqa_hf_n_tensors(d)) == NULL,
          "out-of-range lookups");
    for (int32_t sh = 0; sh < gqa_hf_n_shards(d); sh++) {
        const gqa_st_file *f = gqa_hf_shard(d, sh);
        const char *fmt = gqa_st_meta_get(f, "format");
        CHECK(fmt && strcmp(fmt, "pt") == 0 && gqa_st_data_offset(f) % 8 == 0,
              "shard %s: format '%s', data at %llu", gqa_hf_shard_name(d, sh), fmt ? fmt : "",
              (unsigned long long)gqa_st_data_offset(f));
    }
    gqa_hf_close(d);
}

/* ------------------------------------------------------------ edge cases -- */

static void check_good_files(const char *data_dir, const cJSON *goods)
{
    for (const cJSON *g = goods ? goods->child : NULL; g; g = g->next) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", data_dir, g->string);
        gqa_st_file *f = NULL;
        gqa_status s = gqa_st_open(path, &f);
        CHECK(s == GQA_OK, "open %s: %s", path, gqa_last_error());
        if (s != GQA_OK)
            continue;
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(g, "tensors");
        CHECK(gqa_st_n_tensors(f) == cJSON_GetArraySize(ts) &&
                  (int)gqa_st_data_offset(f) == json_int(g, "data_offset"),
              "%s: %lld tensors, data at %llu", path, (long long)gqa_st_n_tensors(f),
              (unsigned long long)gqa_st_data_offset(f));
        int64_t i = 0;
        for (const cJSON *e = ts->child; e; e = e->next, i++) {
            const gqa_st_tensor *t = gqa_st_tensor_at(f, i); /* both in data order */
            CHECK(t && strcmp(t->name, json_str(e, "name")) == 0 && same_desc(t, e) &&
                      (int)t->offset == json_int(e, "offset") &&
                      (int)t->n_bytes == json_int(e, "n_bytes") && gqa_st_find(f, t->name) == i &&
                      t->data != NULL,
                  "%s: tensor %lld ('%s')", path, (long long)i, json_str(e, "name"));
        }
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(g, "metadata");
        int ok = gqa_st_n_meta(f) == cJSON_GetArraySize(meta);
        for (const cJSON *k = meta->child; ok && k; k = k->next)
            ok = gqa_st_meta_get(f, k->string) &&
                 strcmp(gqa_st_meta_get(f, k->string), k->valuestring) == 0;
        CHECK(ok, "%s: metadata differs", path);
        gqa_st_close(f);
    }
}

static gqa_status status_named(const char *name)
{
    return strcmp(name, "io") == 0            ? GQA_ERR_IO
           : strcmp(name, "unsupported") == 0 ? GQA_ERR_UNSUPPORTED
                                              : GQA_ERR_FORMAT;
}

/* Each malformed file or directory fails with its status and message. */
static void check_bad(const char *data_dir, const cJSON *cases, int dirs)
{
    int n = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, n++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", data_dir, c->string);
        gqa_status want = status_named(json_str(c, "status")), s;
        if (dirs) {
            gqa_hf_dir *d = (gqa_hf_dir *)&n; /* must come back NULL */
            s = gqa_hf_open(path, &d);
            CHECK(d == NULL, "%s: handle not NULL on failure", path);
        } else {
            gqa_st_file *f = (gqa_st_file *)&n;
            s = gqa_st_open(path, &f);
            CHECK(f == NULL, "%s: handle not NULL on failure", path);
        }
        CHECK(s == want && strstr(gqa_last_error(), json_str(c, "message")) &&
                  (dirs || strstr(gqa_last_error(), path)),
              "%s: status %s, message \"%s\"; want %s with \"%s\"", c->string, gqa_status_string(s),
              gqa_last_error(), json_str(c, "status"), json_str(c, "message"));
    }
    printf("  %d %s\n", n, dirs ? "broken directories" : "malformed files");
}

/* An open handle's tensors all lie inside [base, base + n). */
static int inside(const gqa_st_file *f, const unsigned char *base, size_t n)
{
    for (int64_t i = 0; i < gqa_st_n_tensors(f); i++) {
        const gqa_st_tensor *t = gqa_st_tensor_at(f, i);
        const unsigned char *p = t->data;
        if (p < base || p > base + n || t->n_bytes > (uint64_t)(base + n - p))
            return 0;
    }
    return 1;
}

/* Every prefix of a valid file is malformed; random corruption of the
 * header never crashes and never yields data outside the buffer. Each
 * image is an exactly-sized copy, so a sanitizer build sees any overread. */
static void check_corruption(const char *data_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/single/model.safetensors", data_dir);
    size_t n = 0;
    unsigned char *file = tu_read_file(path, &n);
    CHECK(file && n > 64, "read %s", path);
    if (!file)
        return;
    uint64_t hdr = 0;
    for (int i = 7; i >= 0; i--)
        hdr = hdr << 8 | file[i];
    /* every length through the header, then a sample of the data section */
    int bad_prefix = 0, escaped = 0, opened = 0, tried = 0;
    for (size_t len = 0; len < n; len += len < 8 + hdr + 64 ? 1 : 97, tried++) {
        unsigned char *img = tu_xmalloc(len ? len : 1);
        memcpy(img, file, len);
        gqa_st_file *f = NULL;
        if (gqa_st_open_memory(img, len, &f) != GQA_ERR_FORMAT || f)
            bad_prefix++;
        gqa_st_close(f);
        free(img);
    }
    CHECK(bad_prefix == 0, "%d truncations of %s did not fail with GQA_ERR_FORMAT", bad_prefix,
          path);
    tu_rng rng;
    tu_rng_seed(&rng, 42);
    for (int it = 0; it < 3000; it++) {
        unsigned char *img = tu_xmalloc(n);
        memcpy(img, file, n);
        int flips = tu_rng_int(&rng, 1, 4);
        for (int k = 0; k < flips; k++) { /* mostly the header, sometimes its length */
            size_t at = (size_t)tu_rng_int(&rng, 0, (int)(8 + hdr - 1));
            img[at] = (unsigned char)tu_rng_int(&rng, 0, 255);
        }
        gqa_st_file *f = NULL;
        gqa_status s = gqa_st_open_memory(img, n, &f);
        if (s == GQA_OK) {
            opened++;
            escaped += !inside(f, img, n);
        } else if ((s != GQA_ERR_FORMAT && s != GQA_ERR_UNSUPPORTED) || f || !gqa_last_error()[0]) {
            escaped++;
        }
        gqa_st_close(f);
        free(img);
    }
    CHECK(escaped == 0, "%d corrupted images misbehaved", escaped);
    printf("  %d truncations, 3000 corruptions (%d still valid)\n", tried, opened);
    free(file);
}

/* ---------------------------------------------------------------- writing -- */

typedef struct fill_job {
    int dtype;
    int64_t n, seed;
    int calls;
    gqa_status fail; /* GQA_OK, or the status to fail with */
} fill_job;

static gqa_status fill_values(void *user, void *dst, uint64_t n_bytes)
{
    fill_job *j = user;
    j->calls++;
    if (j->fail != GQA_OK)
        return gqa_fail(j->fail, "fill_values: failing on purpose");
    if (n_bytes != (uint64_t)(j->n * gqa_st_dtype_bits(j->dtype) / 8))
        return gqa_fail(GQA_ERR_INVALID_ARG, "fill_values: asked for %llu bytes",
                        (unsigned long long)n_bytes);
    encode(j->dtype, j->seed, j->n, dst);
    return GQA_OK;
}

typedef struct progress_log {
    int calls, backwards;
    int64_t last_done, last_total;
} progress_log;

static void log_progress(void *user, int64_t done, int64_t total)
{
    progress_log *p = user;
    p->backwards += done < p->last_done || done > total;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
}

static gqa_st_out_tensor out_tensor(const char *name, int dtype, int n_dims, const int64_t *shape,
                                    const void *data)
{
    gqa_st_out_tensor t = {name, dtype, n_dims, {0}, data, NULL, NULL};
    for (int d = 0; d < n_dims; d++)
        t.shape[d] = shape[d];
    return t;
}

/* Entries of `dir` whose name contains "tmp-" (leftover temporary files). */
static int leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += strstr(e->d_name, "tmp-") != NULL;
    if (d)
        closedir(d);
    return n;
}

/* Remove a directory of plain files (an output of an earlier run). */
static void remove_flat(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Data order (largest element first, stable), alignment, values, metadata
 * and progress of a file written by gqa_st_write. */
static void check_st_write(const char *data_dir)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/written", data_dir);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/edge.safetensors", dir);
    static const int64_t s3[] = {3}, s2[] = {2}, s0[] = {0}, s5[] = {5}, s23[] = {2, 3};
    unsigned char a[6], b[8], f4 = 0x21, u8[5] = {1, 2, 3, 4, 5}, c[2];
    encode(GQA_ST_F16, 1, 3, a);
    encode(GQA_ST_F32, 2, 2, b);
    encode(GQA_ST_BF16, 3, 1, c);
    fill_job job = {GQA_ST_F32, 6, 4, 0, GQA_OK};
    gqa_st_out_tensor t[] = {out_tensor("a.f16", GQA_ST_F16, 1, s3, a),
                             out_tensor("b.f32", GQA_ST_F32, 1, s2, b),
                             out_tensor("c.scalar", GQA_ST_BF16, 0, NULL, c),
                             out_tensor("d.f4", GQA_ST_F4, 1, s2, &f4),
                             out_tensor("e.empty", GQA_ST_F64, 1, s0, NULL),
                             out_tensor("f.u8", GQA_ST_U8, 1, s5, u8),
                             out_tensor("g.\xe5\x90\x8d \"q\"\\", GQA_ST_F32, 2, s23, NULL)};
    t[4].fill = fill_values; /* 0 bytes: never called with a buffer that matters */
    fill_job empty_job = {GQA_ST_F64, 0, 0, 0, GQA_OK};
    t[4].fill_user = &empty_job;
    t[6].fill = fill_values;
    t[6].fill_user = &job;
    const char *mk[] = {"format", "k\xc3\xa9y"}, *mv[] = {"pt", "v\"al\nue"};
    progress_log pl = {0};
    uint64_t size = 0;
    CHECK(gqa_st_write_size(t, 7, mk, mv, 2, &size) == GQA_OK, "size: %s", gqa_last_error());
    gqa_status s = gqa_st_write(path, t, 7, mk, mv, 2, log_progress, &pl);
    CHECK(s == GQA_OK, "write %s: %s", path, gqa_last_error());
    CHECK(pl.calls >= 2 && pl.backwards == 0 && pl.last_done == pl.last_total &&
              (uint64_t)pl.last_total == size && job.calls == 1,
          "progress: %d calls, last %lld/%lld, size %llu, fill calls %d", pl.calls,
          (long long)pl.last_done, (long long)pl.last_total, (unsigned long long)size, job.calls);
    gqa_st_file *f = NULL;
    s = gqa_st_open(path, &f);
    CHECK(s == GQA_OK, "reopen %s: %s", path, gqa_last_error());
    if (s != GQA_OK)
        return;
    /* data order: F64, F32 (given order), F16, BF16, U8, F4 */
    static const char *const order[] = {
        "e.empty", "b.f32", "g.\xe5\x90\x8d \"q\"\\", "a.f16", "c.scalar", "f.u8", "d.f4"};
    int ok =
        gqa_st_n_tensors(f) == 7 && gqa_st_data_offset(f) % 8 == 0 && gqa_st_file_size(f) == size;
    for (int i = 0; ok && i < 7; i++) {
        const gqa_st_tensor *x = gqa_st_tensor_at(f, i);
        int align = gqa_st_dtype_bits(x->dtype) >= 8 ? gqa_st_dtype_bits(x->dtype) / 8 : 1;
        ok = strcmp(x->name, order[i]) == 0 && (gqa_st_data_offset(f) + x->offset) % align == 0;
    }
    CHECK(ok, "layout of %s", path);
    const gqa_st_tensor *x = gqa_st_tensor_at(f, gqa_st_find(f, "g.\xe5\x90\x8d \"q\"\\"));
    CHECK(x && x->n_dims == 2 && x->shape[0] == 2 && x->shape[1] == 3 && values_match(x, 4),
          "filled tensor");
    x = gqa_st_tensor_at(f, gqa_st_find(f, "c.scalar"));
    CHECK(x && x->n_dims == 0 && x->n_elements == 1 && values_match(x, 3), "scalar");
    x = gqa_st_tensor_at(f, gqa_st_find(f, "d.f4"));
    CHECK(x && x->n_bytes == 1 && *(const unsigned char *)x->data == 0x21, "f4");
    CHECK(gqa_st_n_meta(f) == 2 && strcmp(gqa_st_meta_key(f, 1), mk[1]) == 0 &&
              strcmp(gqa_st_meta_value(f, 1), mv[1]) == 0,
          "metadata round trip");
    gqa_st_close(f);
    CHECK(leftovers(dir) == 0, "temporary files left in %s", dir);
}

/* A write that must fail with `want` and a message containing `msg`,
 * leaving `path` as it was (absent, or the file of `before` bytes). */
static void expect_write_fail(const char *path, const gqa_st_out_tensor *t, int64_t n,
                              const char *const *mk, const char *const *mv, int64_t n_meta,
                              gqa_status want, const char *msg, long before)
{
    gqa_status s = gqa_st_write(path, t, n, mk, mv, n_meta, NULL, NULL);
    struct stat st;
    int same =
        !path || (before < 0 ? stat(path, &st) != 0 : stat(path, &st) == 0 && st.st_size == before);
    CHECK(s == want && strstr(gqa_last_error(), msg) && same,
          "write %s: %s \"%s\", want %s \"%s\" (file unchanged: %d)", path ? path : "(null)",
          gqa_status_string(s), gqa_last_error(), gqa_status_string(want), msg, same);
}

static void check_write_errors(const char *data_dir)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/written", data_dir);
    snprintf(path, sizeof path, "%s/err.safetensors", dir);
    unlink(path); /* left by an earlier run */
    static const int64_t s2[] = {2}, s3[] = {3}, neg[] = {-1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    float v[2] = {1, 2};
    gqa_st_out_tensor ok = out_tensor("x", GQA_ST_F32, 1, s2, v);
    gqa_st_out_tensor dup[2] = {ok, ok};
    gqa_st_out_tensor t = ok;
    const char *mk[] = {"k", "k"}, *mv[] = {"a", "b"};
    expect_write_fail(path, dup, 2, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "duplicate tensor", -1);
    t.name = "__metadata__";
    expect_write_fail(path, &t, 1, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "reserved", -1);
    t.name = "bad\xff";
    expect_write_fail(path, &t, 1, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "UTF-8", -1);
    t = ok, t.dtype = 99;
    expect_write_fail(path, &t, 1, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "invalid dtype", -1);
    t = out_tensor("x", GQA_ST_F32, 1, neg, v);
    expect_write_fail(path, &t, 1, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "shape[0]", -1);
    t = out_tensor("x", GQA_ST_F4, 1, s3, v);
    expect_write_fail(path, &t, 1, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "whole number", -1);
    t = out_tensor("x", GQA_ST_F32, 1, s2, NULL);
    expect_write_fail(path, &t, 1, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "neither data", -1);
    t = ok, t.n_dims = 9;
    memcpy(t.shape, s9, sizeof t.shape);
    expect_write_fail(path, &t, 1, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "rank 9", -1);
    expect_write_fail(path, &ok, 1, mk, mv, 2, GQA_ERR_INVALID_ARG, "duplicate metadata", -1);
    expect_write_fail(NULL, &ok, 1, NULL, NULL, 0, GQA_ERR_INVALID_ARG, "NULL", -1);
    char nodir[4300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.safetensors", dir);
    expect_write_fail(nodir, &ok, 1, NULL, NULL, 0, GQA_ERR_IO, "no/such/dir/x.safetensors", -1);
    /* a failing producer: the existing file survives, no temporary is left */
    CHECK(gqa_st_write(path, &ok, 1, NULL, NULL, 0, NULL, NULL) == GQA_OK, "write: %s",
          gqa_last_error());
    struct stat st;
    long before = stat(path, &st) == 0 ? (long)st.st_size : -2;
    fill_job job = {GQA_ST_F32, 2, 1, 0, GQA_ERR_NO_MEMORY};
    gqa_st_out_tensor two[2] = {ok, out_tensor("y", GQA_ST_F32, 1, s2, NULL)};
    two[1].fill = fill_values, two[1].fill_user = &job;
    expect_write_fail(path, two, 2, NULL, NULL, 0, GQA_ERR_NO_MEMORY, "on purpose", before);
    CHECK(leftovers(dir) == 0, "temporary files left in %s after failures", dir);
}

/* A directory write that must fail with `want` and `msg`, creating nothing. */
static void expect_dir_fail(const gqa_hf_dir *src, const char *out, const gqa_st_out_tensor *t,
                            int64_t n, int32_t g, gqa_status want, const char *msg, int exists)
{
    gqa_status s = gqa_hf_write(src, out, t, n, g, NULL, NULL);
    struct stat st;
    int same = (stat(out, &st) == 0) == exists;
    CHECK(s == want && strstr(gqa_last_error(), msg) && same,
          "hf_write %s: %s \"%s\", want %s \"%s\" (exists as before: %d)", out,
          gqa_status_string(s), gqa_last_error(), gqa_status_string(want), msg, same);
}

/* Output-directory rules, failure clean-up, and gqa_hf_write_new. */
static void check_dir_errors(const char *data_dir, const gqa_hf_dir *src, const char *existing,
                             const gqa_st_out_tensor *t, int64_t n, int32_t g)
{
    char p[4400];
    expect_dir_fail(src, existing, t, n, g, GQA_ERR_INVALID_ARG, "not empty", 1);
    expect_dir_fail(src, gqa_hf_path(src), t, n, g, GQA_ERR_INVALID_ARG, "input directory", 1);
    snprintf(p, sizeof p, "%s/config.json", existing);
    expect_dir_fail(src, p, t, n, g, GQA_ERR_INVALID_ARG, "already exists", 1);
    snprintf(p, sizeof p, "%s_g0", existing);
    expect_dir_fail(src, p, t, n, 0, GQA_ERR_INVALID_ARG, "n_kv_heads", 0);
    /* a producer failing half-way: no OUT, no temporary directory or file */
    gqa_st_out_tensor *t2 = tu_xmalloc((size_t)n * sizeof *t2);
    memcpy(t2, t, (size_t)n * sizeof *t2);
    fill_job fail = {GQA_ST_F32, 0, 0, 0, GQA_ERR_NO_MEMORY};
    t2[n / 2].data = NULL, t2[n / 2].fill = fill_values, t2[n / 2].fill_user = &fail;
    snprintf(p, sizeof p, "%s_fail", existing);
    expect_dir_fail(src, p, t2, n, g, GQA_ERR_NO_MEMORY, "on purpose", 0);
    free(t2);
    CHECK(leftovers(data_dir) == 0, "temporary directories left in %s", data_dir);
    /* a dangling symlink in the source: GQA_ERR_IO naming it, nothing left */
    gqa_hf_dir *dg = NULL;
    snprintf(p, sizeof p, "%s/dangling", data_dir);
    CHECK(gqa_hf_open(p, &dg) == GQA_OK, "open %s: %s", p, gqa_last_error());
    snprintf(p, sizeof p, "%s_dangling", existing);
    if (dg)
        expect_dir_fail(dg, p, NULL, 0, 1, GQA_ERR_IO, "tokenizer.model", 0);
    gqa_hf_close(dg);
    CHECK(leftovers(data_dir) == 0, "temporary directories left in %s", data_dir);
    /* an existing empty OUT is fine, with or without a trailing slash */
    snprintf(p, sizeof p, "%s_empty", existing);
    remove_flat(p);
    mkdir(p, 0777);
    strcat(p, "/");
    CHECK(gqa_hf_write(src, p, t, n, g, NULL, NULL) == GQA_OK, "write into empty %s: %s", p,
          gqa_last_error());
    /* a new directory from scratch */
    snprintf(p, sizeof p, "%s_new", existing);
    remove_flat(p);
    cJSON *cfg = cJSON_Parse("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8, "
                             "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                             "\"num_hidden_layers\": 1}");
    CHECK(gqa_hf_write_new(p, cfg, t, n, NULL, NULL) == GQA_OK, "write_new %s: %s", p,
          gqa_last_error());
    CHECK(gqa_hf_write_new(p, cfg, t, n, NULL, NULL) == GQA_ERR_INVALID_ARG, "write_new twice");
    cJSON_Delete(cfg);
    gqa_hf_dir *d = NULL;
    CHECK(gqa_hf_open(p, &d) == GQA_OK && gqa_hf_n_tensors(d) == n &&
              gqa_hf_config_get(d)->n_kv_heads == 1 && !gqa_hf_sharded(d) &&
              strcmp(gqa_st_meta_get(gqa_hf_shard(d, 0), "format"), "pt") == 0,
          "reopen %s: %s", p, gqa_last_error());
    gqa_hf_close(d);
}

/* The tensors of a converted copy, and their description for make_hf.py. */
typedef struct converted {
    gqa_st_out_tensor *t;
    fill_job *jobs;
    void **bufs;
    int64_t n, cap;
    cJSON *expect; /* {"n_kv_heads": G, "tensors": [{name, dtype, shape, seed}]} */
} converted;

static void add_converted(converted *cv, gqa_st_out_tensor o, int64_t seed)
{
    cJSON *d = cJSON_CreateObject(), *sh = cJSON_AddArrayToObject(d, "shape");
    cJSON_AddStringToObject(d, "name", o.name);
    cJSON_AddStringToObject(d, "dtype", gqa_st_dtype_name(o.dtype));
    for (int k = 0; k < o.n_dims; k++)
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)o.shape[k]));
    cJSON_AddNumberToObject(d, "seed", (double)seed);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(cv->expect, "tensors"), d);
    cv->t[cv->n++] = o;
}

/* K/V heads halved (K produced by a fill callback, V from a buffer, layer
 * 0's V turned into BF16), lm_head dropped, a new tensor added; the rest
 * borrowed from the source mapping. */
static void build_converted(const gqa_hf_dir *src, const cJSON *m, int32_t g, converted *cv)
{
    cv->cap = gqa_hf_n_tensors(src) + 1;
    cv->n = 0;
    cv->t = tu_xmalloc((size_t)cv->cap * sizeof *cv->t);
    cv->jobs = tu_xmalloc((size_t)cv->cap * sizeof *cv->jobs);
    cv->bufs = calloc((size_t)cv->cap, sizeof *cv->bufs);
    cv->expect = cJSON_CreateObject();
    cJSON_AddArrayToObject(cv->expect, "tensors");
    cJSON_AddNumberToObject(cv->expect, "n_kv_heads", g);
    const cJSON *seeds = cJSON_GetObjectItemCaseSensitive(m, "tensors");
    for (const cJSON *e = seeds->child; e; e = e->next) {
        const char *name = json_str(e, "name");
        const gqa_st_tensor *x = gqa_hf_tensor_at(src, gqa_hf_find(src, name));
        if (!x || strstr(name, "lm_head"))
            continue;
        gqa_st_out_tensor o = out_tensor(x->name, x->dtype, x->n_dims, x->shape, x->data);
        int64_t seed = json_int(e, "seed"), i = cv->n;
        int is_k = strstr(name, "k_proj") != NULL, is_v = strstr(name, "v_proj") != NULL;
        if (is_k || is_v) {
            o.shape[0] = (int64_t)g * gqa_hf_config_get(src)->head_dim;
            seed += is_k ? 1000 : 2000;
            cv->jobs[i] = (fill_job){o.dtype, o.shape[0] * o.shape[1], seed, 0, GQA_OK};
        }
        if (is_k) {
            o.data = NULL, o.fill = fill_values, o.fill_user = &cv->jobs[i];
        } else if (is_v) {
            if (strstr(name, "layers.0."))
                o.dtype = GQA_ST_BF16;
            cv->bufs[i] = tu_xmalloc((size_t)(cv->jobs[i].n * 4));
            encode(o.dtype, seed, cv->jobs[i].n, cv->bufs[i]);
            o.data = cv->bufs[i];
        }
        add_converted(cv, o, seed);
    }
    static const int64_t s5[] = {5};
    cv->bufs[cv->n] = tu_xmalloc(20);
    encode(GQA_ST_F32, 3000, 5, cv->bufs[cv->n]);
    add_converted(cv, out_tensor("extra.new_bias", GQA_ST_F32, 1, s5, cv->bufs[cv->n]), 3000);
}

static void free_converted(converted *cv)
{
    for (int64_t i = 0; i < cv->cap; i++)
        free(cv->bufs[i]);
    free(cv->bufs);
    free(cv->jobs);
    free(cv->t);
    cJSON_Delete(cv->expect);
}

/* Our own reader on what our writer wrote. */
static void reread(const char *out_path, const gqa_hf_dir *src, const converted *cv, int32_t g)
{
    gqa_hf_dir *out = NULL;
    if (gqa_hf_open(out_path, &out) != GQA_OK) {
        CHECK(0, "reopen %s: %s", out_path, gqa_last_error());
        return;
    }
    int bad = gqa_hf_n_tensors(out) != cv->n || gqa_hf_config_get(out)->n_kv_heads != g ||
              gqa_hf_n_shards(out) != gqa_hf_n_shards(src);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(cv->expect, "tensors");
    for (const cJSON *e = list->child; e; e = e->next) {
        const gqa_st_tensor *x = gqa_hf_tensor_at(out, gqa_hf_find(out, json_str(e, "name")));
        bad += !x || !same_desc(x, e) || !values_match(x, json_int(e, "seed"));
    }
    CHECK(!bad, "%s re-read: %d problems", out_path, bad);
    gqa_hf_close(out);
}

/* make_hf.py check: the reference implementation reads the copy back. */
static void reference_check(const char *src_path, const char *out_path, const converted *cv,
                            const char *python, const char *script)
{
    char exp_path[4300], cmd[20000];
    snprintf(exp_path, sizeof exp_path, "%s.expect.json", out_path);
    char *text = cJSON_Print(cv->expect);
    FILE *fe = fopen(exp_path, "w");
    int ok = fe && text && fputs(text, fe) >= 0;
    if (fe)
        ok = fclose(fe) == 0 && ok;
    free(text);
    CHECK(ok, "write %s", exp_path);
    snprintf(cmd, sizeof cmd, "'%s' '%s' check '%s' '%s' '%s'", python, script, src_path, out_path,
             exp_path);
    fflush(stdout);
    int rc = system(cmd);
    CHECK(rc == 0, "make_hf.py check of %s failed (status %d): %s", out_path, rc, cmd);
}

/* Convert one model (num_key_value_heads halved), check the copy with both
 * readers, then the directory writer's errors. */
static void check_convert(const char *data_dir, const cJSON *m, const char *python,
                          const char *script)
{
    char src_path[4096], out_path[4200];
    snprintf(src_path, sizeof src_path, "%s/%s", data_dir, json_str(m, "dir"));
    snprintf(out_path, sizeof out_path, "%s/out_%s", data_dir, json_str(m, "dir"));
    remove_flat(out_path); /* left by an earlier run */
    gqa_hf_dir *src = NULL;
    if (gqa_hf_open(src_path, &src) != GQA_OK) {
        CHECK(0, "open %s: %s", src_path, gqa_last_error());
        return;
    }
    int32_t g = gqa_hf_config_get(src)->n_kv_heads / 2;
    converted cv;
    build_converted(src, m, g, &cv);
    progress_log pl = {0};
    gqa_status s = gqa_hf_write(src, out_path, cv.t, cv.n, g, log_progress, &pl);
    CHECK(s == GQA_OK, "hf_write %s: %s", out_path, gqa_last_error());
    CHECK(pl.backwards == 0 && pl.calls >= 2 && pl.last_done == pl.last_total,
          "progress: %d calls, %d backwards, last %lld/%lld", pl.calls, pl.backwards,
          (long long)pl.last_done, (long long)pl.last_total);
    if (s == GQA_OK) {
        reread(out_path, src, &cv, g);
        reference_check(src_path, out_path, &cv, python, script);
    }
    check_dir_errors(data_dir, src, out_path, cv.t, cv.n, g);
    free_converted(&cv);
    gqa_hf_close(src);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        printf("usage: test_safetensors DATA_DIR PYTHON MAKE_HF_PY\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/expect.json", argv[1]);
    cJSON *expect = load_json(path);
    if (!expect) {
        printf("FAIL: cannot read %s (run the safetensors_make_data test first: make_hf.py)\n",
               path);
        return 1;
    }
    double t0 = tu_seconds();
    printf("models\n");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(expect, "models");
    for (const cJSON *m = models ? models->child : NULL; m; m = m->next)
        check_model(argv[1], m);
    printf("edge cases and malformed input\n");
    check_good_files(argv[1], cJSON_GetObjectItemCaseSensitive(expect, "good_files"));
    check_bad(argv[1], cJSON_GetObjectItemCaseSensitive(expect, "bad_files"), 0);
    check_bad(argv[1], cJSON_GetObjectItemCaseSensitive(expect, "bad_dirs"), 1);
    check_corruption(argv[1]);
    printf("writing\n");
    check_st_write(argv[1]);
    check_write_errors(argv[1]);
    for (const cJSON *m = models ? models->child : NULL; m; m = m->next)
        check_convert(argv[1], m, argv[2], argv[3]);
    cJSON_Delete(expect);
    printf("total %.2f s\n", tu_seconds() - t0);
    return tu_summary();
}
