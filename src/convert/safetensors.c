/* safetensors.c - opening a .safetensors file: mapping it, validating the
 * header, and the accessors.
 *
 * Layout (https://github.com/huggingface/safetensors, "Format"):
 *   u64 N (little-endian), N bytes of UTF-8 JSON starting with '{' (may be
 *   padded with trailing spaces), then the data section.
 *   The JSON object maps each tensor name to
 *     {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 *   with offsets relative to the data section, and may hold "__metadata__",
 *   a string -> string map.
 *
 * Everything is checked at open, so the accessors index tables only:
 *   - the header length: at most GQA_ST_MAX_HEADER and inside the file;
 *   - the header text: valid UTF-8, no NUL byte and no \u0000 escape (cJSON
 *     would silently cut a name there, making two names look alike), starts
 *     with '{', well-formed JSON (cJSON) with only whitespace after it;
 *   - each entry: an object with exactly dtype, shape and data_offsets; a
 *     known dtype; non-negative integer dims and offsets (at most 2^53, the
 *     doubles cJSON stores are exact up to there); begin <= end; end - begin
 *     == product(shape) * bits / 8, all overflow-checked, whole bytes;
 *   - the tensors, sorted by offset, tile the data section exactly: the
 *     first starts at 0, each starts where the previous ended, the last ends
 *     at the end of the file. The format requires this ("cannot contain
 *     holes"), and it rules out overlaps and out-of-bounds data at once;
 *   - names unique (cJSON keeps duplicate keys; we reject them), also among
 *     __metadata__ keys, whose values must be strings.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "convert/hf_internal.h"
#include "convert/hf_util.h"
#include "core/internal.h"

/* ------------------------------------------------------------- dtypes -- */

static const struct {
    const char *name;
    int bits;
} st_dtypes[GQA_ST_N_DTYPES] = {
    [GQA_ST_BOOL] = {"BOOL", 8},
    [GQA_ST_F4] = {"F4", 4},
    [GQA_ST_F6_E2M3] = {"F6_E2M3", 6},
    [GQA_ST_F6_E3M2] = {"F6_E3M2", 6},
    [GQA_ST_U8] = {"U8", 8},
    [GQA_ST_I8] = {"I8", 8},
    [GQA_ST_F8_E5M2] = {"F8_E5M2", 8},
    [GQA_ST_F8_E4M3] = {"F8_E4M3", 8},
    [GQA_ST_F8_E8M0] = {"F8_E8M0", 8},
    [GQA_ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [GQA_ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [GQA_ST_I16] = {"I16", 16},
    [GQA_ST_U16] = {"U16", 16},
    [GQA_ST_F16] = {"F16", 16},
    [GQA_ST_BF16] = {"BF16", 16},
    [GQA_ST_I32] = {"I32", 32},
    [GQA_ST_U32] = {"U32", 32},
    [GQA_ST_F32] = {"F32", 32},
    [GQA_ST_C64] = {"C64", 64},
    [GQA_ST_F64] = {"F64", 64},
    [GQA_ST_I64] = {"I64", 64},
    [GQA_ST_U64] = {"U64", 64},
};

const char *gqa_st_dtype_name(int dtype)
{
    return dtype >= 0 && dtype < GQA_ST_N_DTYPES ? st_dtypes[dtype].name : "unknown";
}

int gqa_st_dtype_bits(int dtype)
{
    return dtype >= 0 && dtype < GQA_ST_N_DTYPES ? st_dtypes[dtype].bits : 0;
}

int gqa_st_dtype_supported(int dtype)
{
    return dtype == GQA_ST_F32 || dtype == GQA_ST_F16 || dtype == GQA_ST_BF16;
}

int gqa_st_dtype_to_ggml(int dtype, uint32_t *out)
{
    /* ids as in gqa_ggml_type (gqa_model.h): F32 0, F16 1, BF16 30 */
    uint32_t id;
    switch (dtype) {
    case GQA_ST_F32: id = 0; break;
    case GQA_ST_F16: id = 1; break;
    case GQA_ST_BF16: id = 30; break;
    default: return 0;
    }
    if (out)
        *out = id;
    return 1;
}

int gqa_st_dtype_from_ggml(uint32_t ggml_type, int *out)
{
    int d;
    switch (ggml_type) {
    case 0: d = GQA_ST_F32; break;
    case 1: d = GQA_ST_F16; break;
    case 30: d = GQA_ST_BF16; break;
    default: return 0;
    }
    if (out)
        *out = d;
    return 1;
}

int gqa_st_dtype_from_name(const char *name)
{
    for (int i = 0; name && i < GQA_ST_N_DTYPES; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------- handle -- */

struct gqa_st_file {
    const uint8_t *base;
    uint64_t size;
    void *map; /* non-NULL when we own an mmap of map_size bytes */
    size_t map_size;
    uint64_t data_off;
    int64_t n_tensors;
    gqa_st_tensor *tensors; /* data order */
    int64_t *by_name;       /* tensor indices sorted by name */
    int64_t n_meta;
    char **meta_keys, **meta_vals;
};

/* ------------------------------------------------------- header text -- */

/* Reject what cJSON would accept but a name must not contain: NUL bytes and
 * \u0000 escapes (an escape is a backslash preceded by an even number of
 * backslashes). Backslashes only occur inside strings in valid JSON, so this
 * lexical scan is exact for every header cJSON goes on to accept. */
static gqa_status check_nul(const char *p, uint64_t n)
{
    const char *z = memchr(p, 0, (size_t)n);
    if (z)
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: header contains a NUL byte at offset %llu",
                        (unsigned long long)(8 + (uint64_t)(z - p)));
    for (uint64_t i = 0; i < n; i++) {
        if (p[i] != '\\')
            continue;
        uint64_t run = 0;
        while (i + run < n && p[i + run] == '\\')
            run++;
        i += run;
        if (run % 2 == 1 && i + 5 <= n && p[i] == 'u' && memcmp(p + i + 1, "0000", 4) == 0)
            return gqa_fail(GQA_ERR_FORMAT,
                            "safetensors: header contains a \\u0000 escape at offset %llu "
                            "(NUL is not allowed in names or metadata)",
                            (unsigned long long)(8 + i - 1));
    }
    return GQA_OK;
}

/* Parse the header text with cJSON. `text` is NUL-terminated at n (a copy of
 * the file's bytes), so cJSON never reads past the buffer. */
static gqa_status parse_json(const char *text, uint64_t n, cJSON **root)
{
    uint64_t bad = gqa_utf8_check(text, n);
    if (bad < n)
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: header is not valid UTF-8 at offset %llu",
                        (unsigned long long)(8 + bad));
    gqa_status s = check_nul(text, n);
    if (s != GQA_OK)
        return s;
    if (n == 0 || text[0] != '{')
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: header must start with '{' at offset 8 (found %s)",
                        n ? "another byte" : "an empty header");
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    if (!*root) {
        uint64_t at = end && end >= text ? (uint64_t)(end - text) : 0;
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: header is not valid JSON (near offset %llu)",
                        (unsigned long long)(8 + at));
    }
    for (uint64_t i = (uint64_t)(end - text); i < n; i++)
        if (!strchr(" \t\r\n", text[i]))
            return gqa_fail(GQA_ERR_FORMAT,
                            "safetensors: header has non-whitespace after the JSON object at "
                            "offset %llu",
                            (unsigned long long)(8 + i));
    if (!cJSON_IsObject(*root))
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: header is not a JSON object");
    return GQA_OK;
}

/* --------------------------------------------------------- entries -- */

static gqa_status dup_str(const char *s, char **out)
{
    size_t n = strlen(s) + 1;
    *out = malloc(n);
    if (!*out)
        return gqa_fail(GQA_ERR_NO_MEMORY, "safetensors: out of memory");
    memcpy(*out, s, n);
    return GQA_OK;
}

static gqa_status parse_shape(const cJSON *v, const char *name, gqa_st_tensor *t)
{
    if (!cJSON_IsArray(v))
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: tensor '%.200s': shape is not an array",
                        name);
    int n = cJSON_GetArraySize(v);
    if (n > GQA_ST_MAX_DIMS)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "safetensors: tensor '%.200s' has %d dimensions (at most %d supported)",
                        name, n, GQA_ST_MAX_DIMS);
    t->n_dims = n;
    t->n_elements = 1;
    for (int i = 0; i < GQA_ST_MAX_DIMS; i++)
        t->shape[i] = 1;
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        uint64_t d;
        if (!gqa_json_uint(e, &d))
            return gqa_fail(GQA_ERR_FORMAT,
                            "safetensors: tensor '%.200s': shape[%d] is not a non-negative "
                            "integer below 2^53",
                            name, i);
        t->shape[i] = (int64_t)d;
        if (__builtin_mul_overflow(t->n_elements, t->shape[i], &t->n_elements))
            return gqa_fail(GQA_ERR_FORMAT, "safetensors: tensor '%.200s': element count overflows",
                            name);
    }
    return GQA_OK;
}

static gqa_status parse_offsets(const cJSON *v, const char *name, uint64_t *begin, uint64_t *end)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !gqa_json_uint(v->child, begin) ||
        !gqa_json_uint(v->child->next, end))
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: tensor '%.200s': data_offsets is not [begin, end] with "
                        "non-negative integers below 2^53",
                        name);
    if (*end < *begin)
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: tensor '%.200s': data_offsets [%llu, %llu] end before "
                        "they begin",
                        name, (unsigned long long)*begin, (unsigned long long)*end);
    return GQA_OK;
}

/* Byte size from shape and dtype, checked against the data_offsets. */
static gqa_status check_size(gqa_st_tensor *t, uint64_t begin, uint64_t end)
{
    uint64_t bits;
    if (__builtin_mul_overflow((uint64_t)t->n_elements, (uint64_t)gqa_st_dtype_bits(t->dtype),
                               &bits))
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: tensor '%.200s': byte size overflows",
                        t->name);
    if (bits % 8)
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: tensor '%.200s': %lld elements of %s are not a whole "
                        "number of bytes",
                        t->name, (long long)t->n_elements, gqa_st_dtype_name(t->dtype));
    t->n_bytes = bits / 8;
    t->offset = begin;
    if (end - begin != t->n_bytes)
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: tensor '%.200s': data_offsets [%llu, %llu] hold %llu "
                        "bytes, but %lld elements of %s need %llu",
                        t->name, (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)(end - begin), (long long)t->n_elements,
                        gqa_st_dtype_name(t->dtype), (unsigned long long)t->n_bytes);
    return GQA_OK;
}

/* One "name": {"dtype", "shape", "data_offsets"} entry; exactly those keys. */
static gqa_status parse_tensor(const cJSON *item, gqa_st_tensor *t)
{
    gqa_status s = dup_str(item->string, (char **)&t->name);
    if (s != GQA_OK)
        return s;
    const char *name = t->name;
    if (!cJSON_IsObject(item))
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: tensor '%.200s' is not a JSON object", name);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *k = item->child; k; k = k->next) {
        const cJSON **slot = strcmp(k->string, "dtype") == 0          ? &dtype
                             : strcmp(k->string, "shape") == 0        ? &shape
                             : strcmp(k->string, "data_offsets") == 0 ? &offs
                                                                      : NULL;
        if (!slot || *slot)
            return gqa_fail(GQA_ERR_FORMAT, "safetensors: tensor '%.200s': %s key '%.60s'", name,
                            slot ? "duplicate" : "unexpected", k->string);
        *slot = k;
    }
    if (!dtype || !shape || !offs)
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: tensor '%.200s': missing '%s'", name,
                        !dtype   ? "dtype"
                        : !shape ? "shape"
                                 : "data_offsets");
    int dt = cJSON_IsString(dtype) ? gqa_st_dtype_from_name(dtype->valuestring) : -1;
    if (dt < 0)
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: tensor '%.200s': unknown dtype %s%.40s%s",
                        name, cJSON_IsString(dtype) ? "'" : "(not a string)",
                        cJSON_IsString(dtype) ? dtype->valuestring : "",
                        cJSON_IsString(dtype) ? "'" : "");
    t->dtype = (gqa_st_dtype)dt;
    uint64_t begin = 0, end = 0;
    if ((s = parse_shape(shape, name, t)) != GQA_OK ||
        (s = parse_offsets(offs, name, &begin, &end)) != GQA_OK)
        return s;
    return check_size(t, begin, end);
}

static gqa_status parse_meta(gqa_st_file *f, const cJSON *item)
{
    if (cJSON_IsNull(item))
        return GQA_OK;
    if (!cJSON_IsObject(item))
        return gqa_fail(GQA_ERR_FORMAT, "safetensors: __metadata__ is not a JSON object");
    int n = cJSON_GetArraySize(item);
    f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_vals = calloc((size_t)n + 1, sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals)
        return gqa_fail(GQA_ERR_NO_MEMORY, "safetensors: out of memory");
    for (const cJSON *k = item->child; k; k = k->next) {
        if (!cJSON_IsString(k))
            return gqa_fail(GQA_ERR_FORMAT,
                            "safetensors: __metadata__ value of '%.200s' is not a string",
                            k->string);
        for (int64_t j = 0; j < f->n_meta; j++)
            if (strcmp(f->meta_keys[j], k->string) == 0)
                return gqa_fail(GQA_ERR_FORMAT, "safetensors: duplicate __metadata__ key '%.200s'",
                                k->string);
        gqa_status s = dup_str(k->string, &f->meta_keys[f->n_meta]);
        if (s == GQA_OK)
            s = dup_str(k->valuestring, &f->meta_vals[f->n_meta]);
        if (s != GQA_OK)
            return s;
        f->n_meta++;
    }
    return GQA_OK;
}

/* -------------------------------------------------------- ordering -- */

static int cmp_offset(const void *a, const void *b)
{
    const gqa_st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->n_bytes > y->n_bytes) - (x->n_bytes < y->n_bytes);
}

/* qsort has no context argument; several files may be opened concurrently,
 * so the table being sorted is thread-local. */
static _Thread_local const gqa_st_tensor *sort_tensors;

static int cmp_name(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return strcmp(sort_tensors[x].name, sort_tensors[y].name);
}

/* Sort into data order and check that the tensors tile the data section. */
static gqa_status check_layout(gqa_st_file *f)
{
    uint64_t data_size = f->size - f->data_off;
    if (f->n_tensors)
        qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_offset);
    uint64_t at = 0;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gqa_st_tensor *t = &f->tensors[i];
        if (t->offset != at) {
            if (t->offset < at)
                return gqa_fail(GQA_ERR_FORMAT,
                                "safetensors: tensor '%.200s' (bytes %llu..%llu) overlaps "
                                "tensor '%.200s' (ends at %llu)",
                                t->name, (unsigned long long)t->offset,
                                (unsigned long long)(t->offset + t->n_bytes),
                                f->tensors[i - 1].name, (unsigned long long)at);
            return gqa_fail(GQA_ERR_FORMAT,
                            "safetensors: gap in the data section: bytes %llu..%llu belong to no "
                            "tensor (next: '%.200s')",
                            (unsigned long long)at, (unsigned long long)t->offset, t->name);
        }
        if (t->n_bytes > data_size - at)
            return gqa_fail(GQA_ERR_FORMAT,
                            "safetensors: tensor '%.200s': data_offsets [%llu, %llu] run past "
                            "the end of the data section (%llu bytes)",
                            t->name, (unsigned long long)t->offset,
                            (unsigned long long)(t->offset + t->n_bytes),
                            (unsigned long long)data_size);
        at += t->n_bytes;
        t->data = f->base + f->data_off + t->offset;
    }
    if (at != data_size)
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: the tensors cover %llu bytes of the %llu-byte data section "
                        "(trailing bytes belong to no tensor)",
                        (unsigned long long)at, (unsigned long long)data_size);
    f->by_name = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *f->by_name);
    if (!f->by_name)
        return gqa_fail(GQA_ERR_NO_MEMORY, "safetensors: out of memory");
    for (int64_t i = 0; i < f->n_tensors; i++)
        f->by_name[i] = i;
    sort_tensors = f->tensors;
    if (f->n_tensors)
        qsort(f->by_name, (size_t)f->n_tensors, sizeof *f->by_name, cmp_name);
    for (int64_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[f->by_name[i - 1]].name, f->tensors[f->by_name[i]].name) == 0)
            return gqa_fail(GQA_ERR_FORMAT, "safetensors: duplicate tensor name '%.200s'",
                            f->tensors[f->by_name[i]].name);
    return GQA_OK;
}

/* ----------------------------------------------------------- parse -- */

static gqa_status parse_entries(gqa_st_file *f, const cJSON *root)
{
    int64_t n = 0;
    for (const cJSON *k = root->child; k; k = k->next)
        n += strcmp(k->string, "__metadata__") != 0;
    f->tensors = calloc((size_t)(n ? n : 1), sizeof *f->tensors);
    if (!f->tensors)
        return gqa_fail(GQA_ERR_NO_MEMORY, "safetensors: out of memory for %lld tensors",
                        (long long)n);
    int seen_meta = 0;
    for (const cJSON *k = root->child; k; k = k->next) {
        gqa_status s;
        if (strcmp(k->string, "__metadata__") == 0) {
            if (seen_meta++)
                return gqa_fail(GQA_ERR_FORMAT, "safetensors: duplicate __metadata__");
            s = parse_meta(f, k);
        } else {
            s = parse_tensor(k, &f->tensors[f->n_tensors++]);
        }
        if (s != GQA_OK)
            return s;
    }
    return check_layout(f);
}

static gqa_status parse(gqa_st_file *f)
{
    if (f->size < 8)
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: file of %llu bytes is too short for the 8-byte header "
                        "length",
                        (unsigned long long)f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | f->base[i];
    if (n > GQA_ST_MAX_HEADER)
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: header length %llu exceeds the limit of %u bytes",
                        (unsigned long long)n, GQA_ST_MAX_HEADER);
    if (n > f->size - 8)
        return gqa_fail(GQA_ERR_FORMAT,
                        "safetensors: header length %llu runs past the end of the file "
                        "(%llu bytes after the length)",
                        (unsigned long long)n, (unsigned long long)(f->size - 8));
    f->data_off = 8 + n;
    char *text = malloc((size_t)n + 1);
    if (!text)
        return gqa_fail(GQA_ERR_NO_MEMORY, "safetensors: out of memory for a %llu-byte header",
                        (unsigned long long)n);
    memcpy(text, f->base + 8, (size_t)n);
    text[n] = '\0';
    cJSON *root = NULL;
    gqa_status s = parse_json(text, n, &root);
    if (s == GQA_OK)
        s = parse_entries(f, root);
    cJSON_Delete(root);
    free(text);
    return s;
}

/* ------------------------------------------------------ open/close -- */

static gqa_status open_image(const void *data, size_t size, void *map, gqa_st_file **out)
{
    gqa_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        if (map)
            munmap(map, size);
        return gqa_fail(GQA_ERR_NO_MEMORY, "safetensors: out of memory");
    }
    f->base = data;
    f->size = size;
    f->map = map;
    f->map_size = size;
    gqa_status s = parse(f);
    if (s != GQA_OK) {
        gqa_st_close(f);
        return s;
    }
    *out = f;
    return GQA_OK;
}

gqa_status gqa_st_open_memory(const void *data, size_t size, gqa_st_file **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_open_memory: out is NULL");
    *out = NULL;
    if (!data && size)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_open_memory: data is NULL");
    static const uint8_t empty[1];
    return open_image(data ? data : empty, size, NULL, out);
}

gqa_status gqa_st_open(const char *path, gqa_st_file **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_open: out is NULL");
    *out = NULL;
    if (!path)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_open: path is NULL");
    void *map = NULL;
    size_t size = 0;
    gqa_status s = gqa_map_file(path, &map, &size);
    if (s != GQA_OK)
        return s;
    static const uint8_t empty[1];
    s = open_image(map ? map : empty, size, map, out);
    if (s == GQA_ERR_FORMAT || s == GQA_ERR_UNSUPPORTED) { /* name the file first */
        char msg[400];
        snprintf(msg, sizeof msg, "%s", gqa_last_error());
        gqa_fail(s, "'%s': %s", path, msg);
    }
    return s;
}

void gqa_st_close(gqa_st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_size);
    for (int64_t i = 0; f->tensors && i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    for (int64_t i = 0; f->meta_keys && f->meta_keys[i]; i++)
        free(f->meta_keys[i]);
    for (int64_t i = 0; f->meta_vals && f->meta_vals[i]; i++)
        free(f->meta_vals[i]);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->tensors);
    free(f->by_name);
    free(f);
}

/* ------------------------------------------------------- accessors -- */

int64_t gqa_st_n_tensors(const gqa_st_file *f)
{
    return f ? f->n_tensors : 0;
}

const gqa_st_tensor *gqa_st_tensor_at(const gqa_st_file *f, int64_t i)
{
    return f && i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

int64_t gqa_st_find(const gqa_st_file *f, const char *name)
{
    if (!f || !name)
        return -1;
    int64_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(f->tensors[f->by_name[mid]].name, name);
        if (r == 0)
            return f->by_name[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

uint64_t gqa_st_data_offset(const gqa_st_file *f)
{
    return f ? f->data_off : 0;
}

uint64_t gqa_st_file_size(const gqa_st_file *f)
{
    return f ? f->size : 0;
}

int64_t gqa_st_n_meta(const gqa_st_file *f)
{
    return f ? f->n_meta : 0;
}

const char *gqa_st_meta_key(const gqa_st_file *f, int64_t i)
{
    return f && i >= 0 && i < f->n_meta ? f->meta_keys[i] : NULL;
}

const char *gqa_st_meta_value(const gqa_st_file *f, int64_t i)
{
    return f && i >= 0 && i < f->n_meta ? f->meta_vals[i] : NULL;
}

const char *gqa_st_meta_get(const gqa_st_file *f, const char *key)
{
    for (int64_t i = 0; f && key && i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}
