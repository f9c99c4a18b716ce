/* safetensors_write.c - writing a .safetensors file (gqa_st_write).
 *
 * The file is what the reference writer (the Rust `safetensors` crate)
 * produces: u64 header length, the header JSON padded with spaces to a
 * multiple of 8 bytes (so the data section starts 8-byte aligned), then the
 * tensors' bytes back to back. Tensors are laid out largest element size
 * first (stable otherwise), which keeps every tensor aligned to its element
 * size without padding between tensors: the format has no padding, the
 * data_offsets must tile the data section.
 *
 * Integers in the header are printed by us as cJSON "raw" items ("%llu"):
 * cJSON prints numbers from doubles and would write 1e+15 for a large offset,
 * which the reference reader (serde, u64) rejects.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "convert/convert_internal.h"
#include "convert/hf_internal.h"
#include "convert/hf_util.h"
#include "core/internal.h"

gqa_status gqa_st_out_bytes(const gqa_st_out_tensor *t, uint64_t *bytes)
{
    if (!t || !bytes)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_out_bytes: NULL argument");
    if (!t->name)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_write: a tensor has no name");
    size_t len = strlen(t->name);
    int reserved = strcmp(t->name, "__metadata__") == 0;
    if (reserved || gqa_utf8_check(t->name, len) != len)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_write: tensor name '%.200s' is %s", t->name,
                        reserved ? "reserved" : "not valid UTF-8");
    int bits = gqa_st_dtype_bits(t->dtype);
    if (!bits)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_write: tensor '%.200s': invalid dtype %d",
                        t->name, (int)t->dtype);
    if (t->n_dims < 0 || t->n_dims > GQA_ST_MAX_DIMS)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_write: tensor '%.200s': rank %d not in 0..%d",
                        t->name, (int)t->n_dims, GQA_ST_MAX_DIMS);
    uint64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if (t->shape[d] < 0 || (uint64_t)t->shape[d] > (1ull << 53) ||
            __builtin_mul_overflow(n, (uint64_t)t->shape[d], &n))
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "gqa_st_write: tensor '%.200s': shape[%d] = %lld is negative or "
                            "too large",
                            t->name, d, (long long)t->shape[d]);
    }
    uint64_t b;
    if (__builtin_mul_overflow(n, (uint64_t)bits, &b) || b % 8 || b / 8 > (1ull << 53))
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_st_write: tensor '%.200s': %llu elements of %s are not a whole "
                        "number of bytes, or too many",
                        t->name, (unsigned long long)n, gqa_st_dtype_name(t->dtype));
    *bytes = b / 8;
    return GQA_OK;
}

/* qsort context; writers on several threads each have their own. */
static _Thread_local const gqa_st_out_tensor *cmp_tensors;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(cmp_tensors[*(const int64_t *)a].name, cmp_tensors[*(const int64_t *)b].name);
}

/* Largest element first; the original index breaks ties (a stable sort). */
static int cmp_layout(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int bx = gqa_st_dtype_bits(cmp_tensors[x].dtype), by = gqa_st_dtype_bits(cmp_tensors[y].dtype);
    if (bx != by)
        return bx > by ? -1 : 1;
    return (x > y) - (x < y);
}

/* Check every tensor and metadata entry; fill bytes[] and the data order. */
static gqa_status plan(const gqa_st_out_tensor *t, int64_t n, const char *const *mk,
                       const char *const *mv, int64_t n_meta, uint64_t *bytes, int64_t *order)
{
    for (int64_t i = 0; i < n; i++) {
        gqa_status s = gqa_st_out_bytes(&t[i], &bytes[i]);
        if (s != GQA_OK)
            return s;
        if (!t[i].data && !t[i].fill)
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "gqa_st_write: tensor '%.200s' has neither data nor a fill callback",
                            t[i].name);
        order[i] = i;
    }
    cmp_tensors = t;
    if (n)
        qsort(order, (size_t)n, sizeof *order, cmp_name);
    for (int64_t i = 1; i < n; i++)
        if (strcmp(t[order[i - 1]].name, t[order[i]].name) == 0)
            return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_write: duplicate tensor name '%.200s'",
                            t[order[i]].name);
    for (int64_t i = 0; i < n_meta; i++) {
        if (!mk[i] || !mv[i] || gqa_utf8_check(mk[i], strlen(mk[i])) != strlen(mk[i]) ||
            gqa_utf8_check(mv[i], strlen(mv[i])) != strlen(mv[i]))
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "gqa_st_write: metadata entry %lld is NULL or not valid UTF-8",
                            (long long)i);
        for (int64_t j = 0; j < i; j++)
            if (strcmp(mk[i], mk[j]) == 0)
                return gqa_fail(GQA_ERR_INVALID_ARG,
                                "gqa_st_write: duplicate metadata key '%.200s'", mk[i]);
    }
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    if (n)
        qsort(order, (size_t)n, sizeof *order, cmp_layout);
    return GQA_OK;
}

static cJSON *raw_u64(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return cJSON_CreateRaw(buf);
}

/* One "name": {"dtype", "shape", "data_offsets"} entry. 0 on out of memory. */
static int add_entry(cJSON *root, const gqa_st_out_tensor *t, uint64_t begin, uint64_t end)
{
    cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
    int ok = e && shape && offs;
    for (int d = 0; ok && d < t->n_dims; d++) {
        cJSON *v = raw_u64((uint64_t)t->shape[d]);
        ok = v && cJSON_AddItemToArray(shape, v);
    }
    cJSON *b = ok ? raw_u64(begin) : NULL, *x = ok ? raw_u64(end) : NULL;
    ok = ok && b && cJSON_AddItemToArray(offs, b);
    ok = ok && x && cJSON_AddItemToArray(offs, x);
    if (!ok) {
        cJSON_Delete(e);
        cJSON_Delete(shape);
        cJSON_Delete(offs);
        return 0;
    }
    ok = cJSON_AddStringToObject(e, "dtype", gqa_st_dtype_name(t->dtype)) != NULL;
    ok = cJSON_AddItemToObject(e, "shape", shape) && ok;
    ok = cJSON_AddItemToObject(e, "data_offsets", offs) && ok;
    ok = cJSON_AddItemToObject(root, t->name, e) && ok;
    return ok;
}

/* The padded header text (length a multiple of 8) into *out, *len. */
static gqa_status build_header(const gqa_st_out_tensor *t, int64_t n, const uint64_t *bytes,
                               const int64_t *order, const char *const *mk, const char *const *mv,
                               int64_t n_meta, char **out, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        ok = meta != NULL;
        for (int64_t i = 0; ok && i < n_meta; i++)
            ok = cJSON_AddStringToObject(meta, mk[i], mv[i]) != NULL;
    }
    uint64_t at = 0;
    for (int64_t k = 0; ok && k < n; k++) {
        int64_t i = order[k];
        /* our reader, like cJSON's doubles, is exact only up to 2^53 */
        if (__builtin_add_overflow(at, bytes[i], &at) || at > (1ull << 53)) {
            cJSON_Delete(root);
            return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_write: total data size is too large");
        }
        ok = add_entry(root, &t[i], at - bytes[i], at);
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return gqa_fail(GQA_ERR_NO_MEMORY, "gqa_st_write: out of memory building the header");
    size_t n_text = strlen(text), padded = (n_text + 7) / 8 * 8;
    if (padded > GQA_ST_MAX_HEADER) {
        free(text);
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_st_write: header of %zu bytes exceeds the %u-byte limit", padded,
                        GQA_ST_MAX_HEADER);
    }
    char *p = realloc(text, padded + 1);
    if (!p) {
        free(text);
        return gqa_fail(GQA_ERR_NO_MEMORY, "gqa_st_write: out of memory");
    }
    memset(p + n_text, ' ', padded - n_text);
    p[padded] = '\0';
    *out = p;
    *len = padded;
    return GQA_OK;
}

/* Header and data, through the atomic file. */
static gqa_status write_body(gqa_afile *f, const char *hdr, size_t hdr_len,
                             const gqa_st_out_tensor *t, int64_t n, const uint64_t *bytes,
                             const int64_t *order)
{
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hdr_len >> (8 * i));
    gqa_status s = gqa_afile_write(f, len8, 8);
    if (s == GQA_OK)
        s = gqa_afile_write(f, hdr, hdr_len);
    void *buf = NULL;
    uint64_t buf_cap = 0;
    for (int64_t k = 0; s == GQA_OK && k < n; k++) {
        const gqa_st_out_tensor *x = &t[order[k]];
        uint64_t nb = bytes[order[k]];
        if (x->data) {
            s = gqa_afile_write(f, x->data, nb);
            continue;
        }
        if (nb > buf_cap) { /* the caller computes this one now */
            gqa_aligned_free(buf);
            buf_cap = 0;
            buf = nb <= SIZE_MAX ? gqa_aligned_alloc((size_t)nb) : NULL;
            if (!buf)
                return gqa_fail(GQA_ERR_NO_MEMORY,
                                "gqa_st_write: out of memory for tensor '%.200s' (%llu bytes)",
                                x->name, (unsigned long long)nb);
            buf_cap = nb;
        }
        s = x->fill(x->fill_user, buf, nb);
        if (s == GQA_OK)
            s = gqa_afile_write(f, buf, nb);
    }
    gqa_aligned_free(buf);
    return s;
}

/* Everything before opening the file: checks, data order, header text and
 * the file's total size. On success the caller frees *bytes, *order, *hdr. */
static gqa_status prepare(const gqa_st_out_tensor *tensors, int64_t n, const char *const *mk,
                          const char *const *mv, int64_t n_meta, uint64_t **bytes, int64_t **order,
                          char **hdr, size_t *hdr_len, uint64_t *total)
{
    *hdr = NULL;
    *bytes = NULL;
    *order = NULL;
    if (n < 0 || (n > 0 && !tensors) || n_meta < 0 || (n_meta > 0 && (!mk || !mv)))
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_st_write: NULL tensors or metadata, or a negative count");
    *bytes = malloc((size_t)(n ? n : 1) * sizeof **bytes);
    *order = malloc((size_t)(n ? n : 1) * sizeof **order);
    gqa_status s =
        *bytes && *order ? GQA_OK : gqa_fail(GQA_ERR_NO_MEMORY, "gqa_st_write: out of memory");
    if (s == GQA_OK)
        s = plan(tensors, n, mk, mv, n_meta, *bytes, *order);
    if (s == GQA_OK)
        s = build_header(tensors, n, *bytes, *order, mk, mv, n_meta, hdr, hdr_len);
    /* build_header kept the data under 2^53 bytes, the header under 10^8 */
    *total = 8 + (uint64_t)*hdr_len;
    for (int64_t i = 0; s == GQA_OK && i < n; i++)
        *total += (*bytes)[i];
    if (s != GQA_OK) {
        free(*hdr), free(*bytes), free(*order);
        *hdr = NULL, *bytes = NULL, *order = NULL;
    }
    return s;
}

gqa_status gqa_st_write_size(const gqa_st_out_tensor *tensors, int64_t n,
                             const char *const *meta_keys, const char *const *meta_values,
                             int64_t n_meta, uint64_t *size)
{
    uint64_t *bytes, total = 0;
    int64_t *order;
    char *hdr;
    size_t hdr_len = 0;
    if (!size)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_write_size: size is NULL");
    gqa_status s =
        prepare(tensors, n, meta_keys, meta_values, n_meta, &bytes, &order, &hdr, &hdr_len, &total);
    free(hdr), free(bytes), free(order);
    *size = s == GQA_OK ? total : 0;
    return s;
}

gqa_status gqa_st_write(const char *path, const gqa_st_out_tensor *tensors, int64_t n,
                        const char *const *meta_keys, const char *const *meta_values,
                        int64_t n_meta, gqa_progress_fn progress, void *progress_user)
{
    if (!path)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_st_write: path is NULL");
    uint64_t *bytes, total = 0;
    int64_t *order;
    char *hdr;
    size_t hdr_len = 0;
    gqa_status s =
        prepare(tensors, n, meta_keys, meta_values, n_meta, &bytes, &order, &hdr, &hdr_len, &total);
    gqa_afile *f = NULL;
    if (s == GQA_OK)
        s = gqa_afile_open(path, total, progress, progress_user, &f);
    if (s == GQA_OK) {
        s = write_body(f, hdr, hdr_len, tensors, n, bytes, order);
        if (s == GQA_OK)
            s = gqa_afile_commit(f); /* removes the temporary file on failure */
        else
            gqa_afile_abort(f);
    }
    free(hdr), free(bytes), free(order);
    return s;
}
