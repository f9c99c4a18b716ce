/* gguf_write.c - the GGUF v3 writer (gqa_convert.h): metadata held in memory,
 * tensor data borrowed or produced one tensor at a time, and an atomic write
 * (temporary file in the same directory, fsync, rename) that never leaves a
 * half-written file under the final name.
 *
 * Layout (little-endian), the one src/model/gguf_parse.c reads:
 *   "GGUF" u32 3, u64 n_tensors, u64 n_kv
 *   n_kv x      { u64 len, key, u32 type, value }
 *   n_tensors x { u64 len, name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset }
 *   zeros to the alignment; then each tensor's data at data_start + offset,
 *   offsets multiples of the alignment, each tensor followed by zeros to the
 *   alignment.
 */
#include <stdlib.h>
#include <string.h>

#include "convert/convert_internal.h"
#include "model/gguf_internal.h"

#define WRITER_DEFAULT_ALIGNMENT 32u
#define WRITER_MAX_NAME          64 /* ggml's GGML_MAX_NAME, terminating NUL included */

typedef struct kv_entry {
    char *key;
    uint32_t type;
    unsigned char *val; /* the encoded value: what follows the u32 type */
    uint64_t len;
} kv_entry;

typedef struct tensor_entry {
    char *name;
    uint32_t type;
    int32_t n_dims;
    int64_t dims[GGUF_MAX_DIMS];
    uint64_t n_bytes;
    const void *data; /* borrowed, or NULL when fill produces the bytes */
    gqa_gguf_fill_fn fill;
    void *user;
    uint64_t offset; /* relative to the data section; set by the layout */
} tensor_entry;

struct gqa_gguf_writer {
    kv_entry *kv;
    int64_t n_kv, cap_kv;
    tensor_entry *t;
    int64_t n_t, cap_t;
};

/* ------------------------------------------------------------ helpers -- */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static gqa_status grow(void **p, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap)
        return GQA_OK;
    int64_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, (size_t)n * elem);
    if (!q)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory");
    *p = q;
    *cap = n;
    return GQA_OK;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static uint64_t round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* -------------------------------------------------------------- create -- */

gqa_status gqa_gguf_writer_create(gqa_gguf_writer **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_writer_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory");
    return GQA_OK;
}

void gqa_gguf_writer_free(gqa_gguf_writer *w)
{
    if (!w)
        return;
    for (int64_t i = 0; i < w->n_kv; i++)
        free(w->kv[i].key), free(w->kv[i].val);
    for (int64_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* ------------------------------------------------------------ metadata -- */

/* Take ownership of val (len bytes, malloc'd) as the value of key. */
static gqa_status set_value(gqa_gguf_writer *w, const char *key, uint32_t type, unsigned char *val,
                            uint64_t len)
{
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].val);
            w->kv[i].type = type, w->kv[i].val = val, w->kv[i].len = len;
            return GQA_OK;
        }
    gqa_status s = grow((void **)&w->kv, &w->cap_kv, w->n_kv + 1, sizeof *w->kv);
    char *k = s == GQA_OK ? dup_str(key) : NULL;
    if (!k) {
        free(val);
        return s != GQA_OK ? s : gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory");
    }
    w->kv[w->n_kv++] = (kv_entry){k, type, val, len};
    return GQA_OK;
}

static gqa_status check_key(const gqa_gguf_writer *w, const char *key, const char *fn)
{
    if (!w || !key || !key[0])
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: NULL writer or NULL/empty key", fn);
    return GQA_OK;
}

/* Encode n fixed-size values of type t from host representation. */
static void encode_fixed(unsigned char *dst, uint32_t t, const void *src, uint64_t n)
{
    const uint64_t sz = gqa_gguf_value_fixed_size(t);
    const unsigned char *s = src;
    for (uint64_t i = 0; i < n; i++, s += sz, dst += sz) {
        uint64_t v = 0;
        if (sz == 1)
            v = s[0];
        else if (sz == 2) {
            uint16_t x;
            memcpy(&x, s, 2);
            v = x;
        } else if (sz == 4) {
            uint32_t x;
            memcpy(&x, s, 4);
            v = x;
        } else
            memcpy(&v, s, 8);
        for (uint64_t b = 0; b < sz; b++)
            dst[b] = (unsigned char)(v >> (8 * b));
    }
}

gqa_status gqa_gguf_writer_set_scalar(gqa_gguf_writer *w, const char *key, gqa_gguf_type type,
                                      const void *value)
{
    gqa_status s = check_key(w, key, "gqa_gguf_writer_set_scalar");
    if (s != GQA_OK)
        return s;
    const uint64_t sz = gqa_gguf_value_fixed_size((uint32_t)type);
    if (!value || sz == 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_writer_set_scalar: key %s: %s", key,
                        value ? "not a fixed-size value type" : "value is NULL");
    if (type == GQA_GGUF_TYPE_BOOL && *(const unsigned char *)value > 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "key %s: a bool must be 0 or 1", key);
    unsigned char *v = malloc(sz);
    if (!v)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory");
    encode_fixed(v, (uint32_t)type, value, 1);
    return set_value(w, key, (uint32_t)type, v, sz);
}

gqa_status gqa_gguf_writer_set_u32(gqa_gguf_writer *w, const char *key, uint32_t v)
{
    return gqa_gguf_writer_set_scalar(w, key, GQA_GGUF_TYPE_UINT32, &v);
}

gqa_status gqa_gguf_writer_set_f32(gqa_gguf_writer *w, const char *key, float v)
{
    return gqa_gguf_writer_set_scalar(w, key, GQA_GGUF_TYPE_FLOAT32, &v);
}

gqa_status gqa_gguf_writer_set_bool(gqa_gguf_writer *w, const char *key, int v)
{
    unsigned char b = v != 0;
    return gqa_gguf_writer_set_scalar(w, key, GQA_GGUF_TYPE_BOOL, &b);
}

gqa_status gqa_gguf_writer_set_str(gqa_gguf_writer *w, const char *key, const char *str, size_t len)
{
    gqa_status s = check_key(w, key, "gqa_gguf_writer_set_str");
    if (s != GQA_OK)
        return s;
    if (!str && len)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_writer_set_str: key %s: NULL string", key);
    unsigned char *v = malloc(8 + len);
    if (!v)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory");
    put_u64(v, len);
    if (len)
        memcpy(v + 8, str, len);
    return set_value(w, key, GQA_GGUF_TYPE_STRING, v, 8 + (uint64_t)len);
}

gqa_status gqa_gguf_writer_set_arr(gqa_gguf_writer *w, const char *key, gqa_gguf_type elem_type,
                                   const void *elems, uint64_t n)
{
    gqa_status s = check_key(w, key, "gqa_gguf_writer_set_arr");
    if (s != GQA_OK)
        return s;
    const uint64_t sz = gqa_gguf_value_fixed_size((uint32_t)elem_type);
    if (sz == 0 || (!elems && n) || n > (SIZE_MAX - 12) / sz)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_writer_set_arr: key %s: %s", key,
                        sz == 0 ? "element type is not fixed-size (use set_arr_str)"
                                : "NULL elements or too many");
    if (elem_type == GQA_GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const unsigned char *)elems)[i] > 1)
                return gqa_fail(GQA_ERR_INVALID_ARG, "key %s: bool element %llu is not 0 or 1", key,
                                (unsigned long long)i);
    unsigned char *v = malloc(12 + n * sz);
    if (!v)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory");
    put_u32(v, (uint32_t)elem_type);
    put_u64(v + 4, n);
    encode_fixed(v + 12, (uint32_t)elem_type, elems, n);
    return set_value(w, key, GQA_GGUF_TYPE_ARRAY, v, 12 + n * sz);
}

gqa_status gqa_gguf_writer_set_arr_str(gqa_gguf_writer *w, const char *key, const char *const *strs,
                                       const size_t *lens, uint64_t n)
{
    gqa_status s = check_key(w, key, "gqa_gguf_writer_set_arr_str");
    if (s != GQA_OK)
        return s;
    if (!strs && n)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_writer_set_arr_str: key %s: NULL", key);
    uint64_t total = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i])
            return gqa_fail(GQA_ERR_INVALID_ARG, "key %s: string %llu is NULL", key,
                            (unsigned long long)i);
        const uint64_t l = lens ? lens[i] : strlen(strs[i]);
        if (__builtin_add_overflow(total, 8 + l, &total) || total > SIZE_MAX)
            return gqa_fail(GQA_ERR_NO_MEMORY, "key %s: array too large", key);
    }
    unsigned char *v = malloc((size_t)total);
    if (!v)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory");
    put_u32(v, GQA_GGUF_TYPE_STRING);
    put_u64(v + 4, n);
    unsigned char *p = v + 12;
    for (uint64_t i = 0; i < n; i++) {
        const size_t l = lens ? lens[i] : strlen(strs[i]);
        put_u64(p, l);
        memcpy(p + 8, strs[i], l);
        p += 8 + l;
    }
    return set_value(w, key, GQA_GGUF_TYPE_ARRAY, v, total);
}

/* Bytes of the value of type t at p (at most `left` bytes available). The
 * source was validated at open, so this only re-walks it; the bounds are
 * checked anyway so that a bug cannot read past the mapping. Returns 0 on
 * failure (no value is 0 bytes long). */
static uint64_t value_size(const uint8_t *p, uint64_t left, uint32_t t, int depth)
{
    uint64_t fixed = gqa_gguf_value_fixed_size(t);
    if (fixed)
        return fixed <= left ? fixed : 0;
    if (t == GQA_GGUF_TYPE_STRING) {
        if (left < 8)
            return 0;
        uint64_t n = gguf_load_u64(p);
        return n <= left - 8 ? 8 + n : 0;
    }
    if (t != GQA_GGUF_TYPE_ARRAY || left < 12 || depth > 16)
        return 0;
    const uint32_t et = gguf_load_u32(p);
    const uint64_t n = gguf_load_u64(p + 4);
    uint64_t pos = 12;
    fixed = gqa_gguf_value_fixed_size(et);
    if (fixed)
        return n <= (left - pos) / fixed ? pos + n * fixed : 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t e = value_size(p + pos, left - pos, et, depth + 1);
        if (e == 0)
            return 0;
        pos += e;
    }
    return pos;
}

gqa_status gqa_gguf_writer_copy_key(gqa_gguf_writer *w, const gqa_gguf *src, int64_t i)
{
    if (!w || !src || i < 0 || i >= src->n_kv)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_gguf_writer_copy_key: NULL argument or key "
                        "index %lld out of range",
                        (long long)i);
    const gguf_kv *kv = &src->kv[i];
    const char *key = gguf_entry_name(src, 0, i);
    /* the value follows the key's u64 length, its bytes and the u32 type */
    const uint64_t start = kv->key_off + 8 + strlen(key) + 4;
    const uint64_t len =
        start < src->size ? value_size(src->base + start, src->size - start, kv->type, 0) : 0;
    if (len == 0)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF writer: cannot re-read key %s", key);
    unsigned char *v = malloc((size_t)len);
    if (!v)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory (%llu bytes)",
                        (unsigned long long)len);
    memcpy(v, src->base + start, (size_t)len);
    return set_value(w, key, kv->type, v, len);
}

gqa_status gqa_gguf_writer_copy_keys(gqa_gguf_writer *w, const gqa_gguf *src)
{
    if (!w || !src)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_writer_copy_keys: NULL argument");
    for (int64_t i = 0; i < src->n_kv; i++) {
        gqa_status s = gqa_gguf_writer_copy_key(w, src, i);
        if (s != GQA_OK)
            return s;
    }
    return GQA_OK;
}

/* ------------------------------------------------------------- tensors -- */

static gqa_status add_tensor(gqa_gguf_writer *w, const char *name, uint32_t type, int32_t n_dims,
                             const int64_t *dims, tensor_entry e)
{
    if (!w || !name || !dims || (!e.data && !e.fill))
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_writer_add_tensor: NULL argument");
    if (!name[0] || strlen(name) >= WRITER_MAX_NAME)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tensor name '%s' must be 1..%d bytes", name,
                        WRITER_MAX_NAME - 1);
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return gqa_fail(GQA_ERR_INVALID_ARG, "tensor %s added twice", name);
    int64_t be, bb;
    if (!gqa_gguf_type_block(type, &be, &bb))
        return gqa_fail(GQA_ERR_UNSUPPORTED, "tensor %s: ggml type %u is unknown", name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tensor %s: n_dims %d (must be 1..%d)", name,
                        (int)n_dims, GGUF_MAX_DIMS);
    int64_t n_el = 1;
    for (int32_t d = 0; d < n_dims; d++)
        if (dims[d] < 1 || gqa_mul_overflow_i64(n_el, dims[d], &n_el))
            return gqa_fail(GQA_ERR_INVALID_ARG, "tensor %s: dimension %d is %lld", name, (int)d,
                            (long long)dims[d]);
    if (dims[0] % be != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "tensor %s: row length %lld is not a multiple of "
                        "the %s block size %lld",
                        name, (long long)dims[0], gqa_gguf_type_name(type), (long long)be);
    int64_t nb;
    if (gqa_mul_overflow_i64(n_el / be, bb, &nb))
        return gqa_fail(GQA_ERR_INVALID_ARG, "tensor %s: byte size overflows", name);
    gqa_status s = grow((void **)&w->t, &w->cap_t, w->n_t + 1, sizeof *w->t);
    if (s != GQA_OK)
        return s;
    if (!(e.name = dup_str(name)))
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF writer: out of memory");
    e.type = type;
    e.n_dims = n_dims;
    for (int32_t d = 0; d < GGUF_MAX_DIMS; d++)
        e.dims[d] = d < n_dims ? dims[d] : 1;
    e.n_bytes = (uint64_t)nb;
    w->t[w->n_t++] = e;
    return GQA_OK;
}

gqa_status gqa_gguf_writer_add_tensor(gqa_gguf_writer *w, const char *name, uint32_t ggml_type,
                                      int32_t n_dims, const int64_t *dims, const void *data)
{
    tensor_entry e = {0};
    e.data = data;
    return add_tensor(w, name, ggml_type, n_dims, dims, e);
}

gqa_status gqa_gguf_writer_add_tensor_fill(gqa_gguf_writer *w, const char *name, uint32_t ggml_type,
                                           int32_t n_dims, const int64_t *dims,
                                           gqa_gguf_fill_fn fill, void *user)
{
    tensor_entry e = {0};
    e.fill = fill;
    e.user = user;
    return add_tensor(w, name, ggml_type, n_dims, dims, e);
}

/* -------------------------------------------------------------- layout -- */

static gqa_status alignment(const gqa_gguf_writer *w, uint32_t *out)
{
    *out = WRITER_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0)
            continue;
        const unsigned char *v = w->kv[i].val;
        const uint32_t a = w->kv[i].type == GQA_GGUF_TYPE_UINT32 ? gguf_load_u32(v) : 0;
        if (a == 0 || (a & (a - 1)) != 0)
            return gqa_fail(GQA_ERR_INVALID_ARG, "general.alignment must be a u32 power of two");
        *out = a;
    }
    return GQA_OK;
}

/* Byte size of everything before the data section; tensor offsets; total
 * file size. */
static gqa_status layout(gqa_gguf_writer *w, uint32_t align, uint64_t *head, uint64_t *total)
{
    uint64_t h = 24, off = 0;
    int bad = 0;
    for (int64_t i = 0; i < w->n_kv; i++)
        bad |= __builtin_add_overflow(h, 12 + strlen(w->kv[i].key) + w->kv[i].len, &h);
    for (int64_t i = 0; i < w->n_t; i++) {
        tensor_entry *t = &w->t[i];
        bad |= __builtin_add_overflow(h, 24 + strlen(t->name) + 8 * (uint64_t)t->n_dims, &h);
        t->offset = off;
        bad |= __builtin_add_overflow(off, t->n_bytes + align - 1, &off);
        off = off / align * align;
    }
    *head = round_up(h, align);
    bad |= *head < h || __builtin_add_overflow(*head, off, total) || *total > INT64_MAX;
    if (bad)
        return gqa_fail(GQA_ERR_INVALID_ARG, "GGUF writer: the file would be too large");
    return GQA_OK;
}

/* --------------------------------------------------------------- write -- */

static gqa_status write_str(gqa_afile *f, const char *s)
{
    unsigned char n[8];
    put_u64(n, strlen(s));
    gqa_status st = gqa_afile_write(f, n, 8);
    return st == GQA_OK ? gqa_afile_write(f, s, strlen(s)) : st;
}

static gqa_status write_header(gqa_afile *f, const gqa_gguf_writer *w)
{
    unsigned char b[24];
    memcpy(b, "GGUF", 4);
    put_u32(b + 4, 3);
    put_u64(b + 8, (uint64_t)w->n_t);
    put_u64(b + 16, (uint64_t)w->n_kv);
    gqa_status s = gqa_afile_write(f, b, 24);
    for (int64_t i = 0; s == GQA_OK && i < w->n_kv; i++) {
        put_u32(b, w->kv[i].type);
        if ((s = write_str(f, w->kv[i].key)) == GQA_OK && (s = gqa_afile_write(f, b, 4)) == GQA_OK)
            s = gqa_afile_write(f, w->kv[i].val, w->kv[i].len);
    }
    for (int64_t i = 0; s == GQA_OK && i < w->n_t; i++) {
        const tensor_entry *t = &w->t[i];
        unsigned char info[4 + 8 * GGUF_MAX_DIMS + 4 + 8], *p = info;
        put_u32(p, (uint32_t)t->n_dims), p += 4;
        for (int32_t d = 0; d < t->n_dims; d++)
            put_u64(p, (uint64_t)t->dims[d]), p += 8;
        put_u32(p, t->type), p += 4;
        put_u64(p, t->offset), p += 8;
        if ((s = write_str(f, t->name)) == GQA_OK)
            s = gqa_afile_write(f, info, (uint64_t)(p - info));
    }
    return s;
}

/* One tensor's bytes: borrowed as they are, or made by its fill callback
 * into a buffer that lives only while this tensor is written. */
static gqa_status write_tensor(gqa_afile *f, const tensor_entry *t)
{
    if (t->data)
        return gqa_afile_write(f, t->data, t->n_bytes);
    if (t->n_bytes > SIZE_MAX - 64)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tensor %s: %llu bytes do not fit in memory", t->name,
                        (unsigned long long)t->n_bytes);
    void *buf = gqa_aligned_alloc((size_t)t->n_bytes ? (size_t)t->n_bytes : 1);
    if (!buf)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tensor %s: out of memory (%llu bytes)", t->name,
                        (unsigned long long)t->n_bytes);
    gqa_fail(GQA_OK, "%s", ""); /* so that a callback that sets no message is noticed */
    gqa_status s = t->fill(t->user, buf, t->n_bytes);
    if (s != GQA_OK && !gqa_last_error()[0])
        gqa_fail(s, "tensor %s: the fill callback failed (%s)", t->name, gqa_status_string(s));
    if (s == GQA_OK)
        s = gqa_afile_write(f, buf, t->n_bytes);
    gqa_aligned_free(buf);
    return s;
}

gqa_status gqa_gguf_writer_write(gqa_gguf_writer *w, const char *path, gqa_progress_fn progress,
                                 void *progress_user)
{
    if (!w || !path || !path[0])
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_writer_write: NULL writer or path");
    uint32_t align = WRITER_DEFAULT_ALIGNMENT;
    uint64_t head = 0, total = 0;
    gqa_status s = alignment(w, &align);
    if (s == GQA_OK)
        s = layout(w, align, &head, &total);
    gqa_afile *f = NULL;
    if (s == GQA_OK)
        s = gqa_afile_open(path, total, progress, progress_user, &f);
    if (s != GQA_OK)
        return s;
    s = write_header(f, w);
    if (s == GQA_OK)
        s = gqa_afile_pad(f, align);
    for (int64_t i = 0; s == GQA_OK && i < w->n_t; i++) {
        s = write_tensor(f, &w->t[i]);
        if (s == GQA_OK)
            s = gqa_afile_pad(f, align);
    }
    if (s == GQA_OK && gqa_afile_pos(f) != total) /* a layout bug, never a file's fault */
        s = gqa_fail(GQA_ERR_IO, "writing '%s': wrote %llu bytes, the layout says %llu", path,
                     (unsigned long long)gqa_afile_pos(f), (unsigned long long)total);
    if (s != GQA_OK) {
        gqa_afile_abort(f);
        return s;
    }
    return gqa_afile_commit(f);
}
