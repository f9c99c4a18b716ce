/* gguf_parse.c - opening a GGUF (v2, v3) file: mapping it, validating it, and
 * building the tables the accessors (gguf.c) read.
 *
 * The whole file is parsed and checked once, at open: afterwards the
 * accessors only index tables built here (gguf_internal.h) and never re-read
 * an unchecked length. Everything read from the file goes through the bounds-checked
 * cursor below; every size computed from file values goes through
 * __builtin_*_overflow. Values are read with memcpy, so neither the mapping
 * nor a caller's buffer needs any alignment. Layout (all little-endian):
 *
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x    { string key, u32 value_type, value }
 *   n_tensors x { string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset }
 *   padding to `alignment`, then the data section; tensor offsets are
 *   relative to its start.
 *   string = u64 length + bytes; array = u32 elem_type, u64 n, n values.
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

#include "model/gguf_internal.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
/* Nested arrays are legal but rare; the limit keeps the recursive value
 * parser's stack small whatever the file says. */
#define GGUF_MAX_ARRAY_DEPTH 8
/* Smallest possible encodings, used to reject impossible counts before
 * allocating anything for them. */
#define GGUF_MIN_KV_BYTES     13u /* u64 key length + u32 type + 1-byte value */
#define GGUF_MIN_TENSOR_BYTES 32u /* u64 name length + u32 n_dims + 1 dim + u32 type + u64 offset  \
                                   */

/* ------------------------------------------------------------------ cursor -- */

typedef struct cursor {
    const uint8_t *p;
    uint64_t size;
    uint64_t pos;
} cursor;

static uint64_t cur_left(const cursor *c)
{
    return c->size - c->pos;
}

static gqa_status cur_need(const cursor *c, uint64_t n, const char *what)
{
    if (n > cur_left(c))
        return gqa_fail(
            GQA_ERR_FORMAT,
            "GGUF: truncated at offset %llu: %s needs %llu bytes, %llu left in the file",
            (unsigned long long)c->pos, what, (unsigned long long)n,
            (unsigned long long)cur_left(c));
    return GQA_OK;
}

static gqa_status cur_u32(cursor *c, uint32_t *v, const char *what)
{
    gqa_status s = cur_need(c, 4, what);
    if (s != GQA_OK)
        return s;
    const uint8_t *b = c->p + c->pos;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    c->pos += 4;
    return GQA_OK;
}

static gqa_status cur_u64(cursor *c, uint64_t *v, const char *what)
{
    gqa_status s = cur_need(c, 8, what);
    if (s != GQA_OK)
        return s;
    *v = gguf_load_u64(c->p + c->pos);
    c->pos += 8;
    return GQA_OK;
}

/* A string: its length is checked against the bytes left before anything
 * else; *off receives the offset of the bytes. */
static gqa_status cur_str(cursor *c, uint64_t *off, uint64_t *len, const char *what)
{
    uint64_t at = c->pos;
    gqa_status s = cur_u64(c, len, what);
    if (s != GQA_OK)
        return s;
    if (*len > cur_left(c))
        return gqa_fail(GQA_ERR_FORMAT,
                        "GGUF: %s at offset %llu has length %llu, past the end of the file "
                        "(%llu bytes left)",
                        what, (unsigned long long)at, (unsigned long long)*len,
                        (unsigned long long)cur_left(c));
    *off = c->pos;
    c->pos += *len;
    return GQA_OK;
}

/* ------------------------------------------------------------- name store -- */

static gqa_status grow(void **buf, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap)
        return GQA_OK;
    uint64_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > UINT64_MAX / 2)
            return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF: table too large");
        n *= 2;
    }
    size_t bytes;
    if (n > SIZE_MAX || __builtin_mul_overflow((size_t)n, elem, &bytes))
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF: table of %llu entries too large",
                        (unsigned long long)n);
    void *p = realloc(*buf, bytes);
    if (!p)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF: out of memory (%zu bytes)", bytes);
    *buf = p;
    *cap = n;
    return GQA_OK;
}

/* Copy a key or tensor name into the name store. Names must not contain NUL:
 * they are handed out NUL-terminated, and an embedded NUL would make two
 * different names look alike. */
static gqa_status store_name(gqa_gguf *g, uint64_t off, uint64_t len, uint64_t at, const char *what,
                             uint64_t *name)
{
    if (memchr(g->base + off, 0, (size_t)len) != NULL)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: %s at offset %llu contains a NUL byte", what,
                        (unsigned long long)at);
    uint64_t need = g->names_len + len + 1; /* cannot overflow: len <= file size */
    gqa_status s = grow((void **)&g->names, &g->names_cap, need, 1);
    if (s != GQA_OK)
        return s;
    memcpy(g->names + g->names_len, g->base + off, (size_t)len);
    g->names[g->names_len + len] = '\0';
    *name = g->names_len;
    g->names_len = need;
    return GQA_OK;
}

/* ------------------------------------------------------------------ values -- */

static gqa_status parse_value(gqa_gguf *g, cursor *c, uint32_t type, int depth, gguf_kv *rec);

/* An array: element type, count, then the elements. Counts are checked
 * against the bytes left using the smallest encoding of one element, so a
 * count of 2^62 fails before any loop runs. `rec` is the top-level key being
 * parsed (NULL inside nested arrays): string arrays there get an offset table
 * for O(1) element access. */
static gqa_status parse_array(gqa_gguf *g, cursor *c, int depth, gguf_kv *rec)
{
    uint64_t at = c->pos;
    uint32_t et = 0;
    uint64_t n = 0;
    gqa_status s = cur_u32(c, &et, "array element type");
    if (s == GQA_OK)
        s = cur_u64(c, &n, "array length");
    if (s != GQA_OK)
        return s;
    if (et > GQA_GGUF_TYPE_FLOAT64)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: array at offset %llu has invalid element type %u",
                        (unsigned long long)at, et);
    if (et == GQA_GGUF_TYPE_ARRAY && depth + 1 > GGUF_MAX_ARRAY_DEPTH)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: array at offset %llu nests deeper than %d levels",
                        (unsigned long long)at, GGUF_MAX_ARRAY_DEPTH);
    uint64_t min_elem = gqa_gguf_value_fixed_size(et);
    if (et == GQA_GGUF_TYPE_STRING)
        min_elem = 8;
    else if (et == GQA_GGUF_TYPE_ARRAY)
        min_elem = 12;
    if (n > cur_left(c) / min_elem)
        return gqa_fail(GQA_ERR_FORMAT,
                        "GGUF: array at offset %llu claims %llu elements of type %s; at least "
                        "%llu bytes each do not fit in the %llu bytes left",
                        (unsigned long long)at, (unsigned long long)n,
                        gqa_gguf_value_type_name((int)et), (unsigned long long)min_elem,
                        (unsigned long long)cur_left(c));
    if (rec) {
        rec->elem_type = et;
        rec->n = n;
        rec->val_off = c->pos;
    }
    if (et == GQA_GGUF_TYPE_BOOL) {
        const uint8_t *b = c->p + c->pos;
        for (uint64_t i = 0; i < n; i++)
            if (b[i] > 1)
                return gqa_fail(GQA_ERR_FORMAT,
                                "GGUF: bool array element at offset %llu is %u "
                                "(must be 0 or 1)",
                                (unsigned long long)(c->pos + i), b[i]);
    }
    if (gqa_gguf_value_fixed_size(et)) {
        c->pos += n * min_elem; /* checked above */
        return GQA_OK;
    }
    if (et == GQA_GGUF_TYPE_STRING) {
        if (rec) {
            rec->str_first = g->str_len;
            s = grow((void **)&g->str_offs, &g->str_cap, g->str_len + n, sizeof(uint64_t));
            if (s != GQA_OK)
                return s;
        }
        for (uint64_t i = 0; i < n; i++) {
            uint64_t off = 0, len = 0;
            if (rec)
                g->str_offs[g->str_len++] = c->pos;
            s = cur_str(c, &off, &len, "string array element");
            if (s != GQA_OK)
                return s;
        }
        return GQA_OK;
    }
    for (uint64_t i = 0; i < n; i++) { /* nested arrays */
        s = parse_array(g, c, depth + 1, NULL);
        if (s != GQA_OK)
            return s;
    }
    return GQA_OK;
}

static gqa_status parse_value(gqa_gguf *g, cursor *c, uint32_t type, int depth, gguf_kv *rec)
{
    uint64_t at = c->pos;
    if (type > GQA_GGUF_TYPE_FLOAT64)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: invalid value type %u at offset %llu", type,
                        (unsigned long long)(at - 4));
    if (rec)
        rec->val_off = at;
    if (type == GQA_GGUF_TYPE_ARRAY)
        return parse_array(g, c, depth, rec);
    if (type == GQA_GGUF_TYPE_STRING) {
        uint64_t off = 0, len = 0;
        return cur_str(c, &off, &len, "string value");
    }
    uint64_t n = gqa_gguf_value_fixed_size(type);
    gqa_status s = cur_need(c, n, gqa_gguf_value_type_name((int)type));
    if (s != GQA_OK)
        return s;
    if (type == GQA_GGUF_TYPE_BOOL && c->p[c->pos] > 1)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: bool value at offset %llu is %u (must be 0 or 1)",
                        (unsigned long long)at, c->p[c->pos]);
    c->pos += n;
    return GQA_OK;
}

/* ------------------------------------------------------------- name order -- */

/* qsort has no context argument; the parse of one file is single-threaded
 * but several files may be opened concurrently, so the context is
 * thread-local. */
static _Thread_local const gqa_gguf *sort_g;
static _Thread_local int sort_tensors;

static int cmp_by_name(const void *a, const void *b)
{
    int64_t ia = *(const int64_t *)a, ib = *(const int64_t *)b;
    int r = strcmp(gguf_entry_name(sort_g, sort_tensors, ia),
                   gguf_entry_name(sort_g, sort_tensors, ib));
    if (r)
        return r;
    return (ia > ib) - (ia < ib);
}

/* Sort indices 0..n-1 by name and reject duplicates. */
static gqa_status sort_names(gqa_gguf *g, int tensors, int64_t n, int64_t **out)
{
    int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF: out of memory");
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    sort_g = g;
    sort_tensors = tensors;
    qsort(idx, (size_t)n, sizeof *idx, cmp_by_name);
    *out = idx;
    for (int64_t i = 1; i < n; i++) {
        const char *a = gguf_entry_name(g, tensors, idx[i - 1]),
                   *b = gguf_entry_name(g, tensors, idx[i]);
        if (strcmp(a, b) == 0) {
            uint64_t o1 = tensors ? g->tensors[idx[i - 1]].info_off : g->kv[idx[i - 1]].key_off;
            uint64_t o2 = tensors ? g->tensors[idx[i]].info_off : g->kv[idx[i]].key_off;
            return gqa_fail(GQA_ERR_FORMAT, "GGUF: duplicate %s '%s' at offsets %llu and %llu",
                            tensors ? "tensor name" : "key", a, (unsigned long long)o1,
                            (unsigned long long)o2);
        }
    }
    return GQA_OK;
}

/* ------------------------------------------------------------------- parse -- */

static gqa_status parse_header(gqa_gguf *g, cursor *c, uint64_t *n_tensors, uint64_t *n_kv)
{
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        unsigned char m[4] = {0, 0, 0, 0};
        memcpy(m, g->base, g->size < 4 ? (size_t)g->size : 4);
        return gqa_fail(GQA_ERR_FORMAT,
                        "GGUF: bad magic at offset 0: %02x %02x %02x %02x (expected \"GGUF\"%s)",
                        m[0], m[1], m[2], m[3], g->size < 4 ? "; file shorter than 4 bytes" : "");
    }
    c->pos = 4;
    gqa_status s = cur_u32(c, &g->version, "version");
    if (s != GQA_OK)
        return s;
    if (g->version != 2 && g->version != 3) {
        const char *why = "";
        if (g->version == 1)
            why = " (GGUF v1 is obsolete)";
        else if (g->version == 0x02000000u || g->version == 0x03000000u)
            why = " (a big-endian file; only little-endian GGUF is read)";
        return gqa_fail(GQA_ERR_FORMAT,
                        "GGUF: unsupported version %u at offset 4%s; versions 2 and 3 are read",
                        g->version, why);
    }
    s = cur_u64(c, n_tensors, "tensor count");
    if (s == GQA_OK)
        s = cur_u64(c, n_kv, "metadata key count");
    if (s != GQA_OK)
        return s;
    /* Each entry takes at least a few bytes, which bounds both counts by the
     * file size before anything is allocated for them. */
    uint64_t left = cur_left(c);
    if (*n_kv > left / GGUF_MIN_KV_BYTES ||
        *n_tensors > (left - *n_kv * GGUF_MIN_KV_BYTES) / GGUF_MIN_TENSOR_BYTES)
        return gqa_fail(GQA_ERR_FORMAT,
                        "GGUF: header at offset 8 claims %llu tensors and %llu keys, more than "
                        "the %llu bytes after the header can hold",
                        (unsigned long long)*n_tensors, (unsigned long long)*n_kv,
                        (unsigned long long)left);
    return GQA_OK;
}

static gqa_status parse_kvs(gqa_gguf *g, cursor *c)
{
    for (int64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        uint64_t off = 0, len = 0;
        kv->key_off = c->pos;
        gqa_status s = cur_str(c, &off, &len, "metadata key");
        if (s == GQA_OK)
            s = store_name(g, off, len, kv->key_off, "metadata key", &kv->name);
        if (s == GQA_OK)
            s = cur_u32(c, &kv->type, "metadata value type");
        if (s == GQA_OK)
            s = parse_value(g, c, kv->type, 0, kv);
        if (s != GQA_OK)
            return s;
    }
    return GQA_OK;
}

/* general.alignment: a u32 power of two, default 32. */
static gqa_status read_alignment(gqa_gguf *g)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = gqa_gguf_find_sorted(g, 0, "general.alignment");
    if (i < 0)
        return GQA_OK;
    const gguf_kv *kv = &g->kv[i];
    if (kv->type != GQA_GGUF_TYPE_UINT32)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: general.alignment at offset %llu is %s, not u32",
                        (unsigned long long)kv->key_off, gqa_gguf_value_type_name((int)kv->type));
    const uint8_t *b = g->base + kv->val_off;
    uint32_t a = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (a == 0 || (a & (a - 1)) != 0)
        return gqa_fail(GQA_ERR_FORMAT,
                        "GGUF: general.alignment at offset %llu is %u, not a power of two",
                        (unsigned long long)kv->key_off, a);
    g->alignment = a;
    return GQA_OK;
}

static gqa_status parse_tensor_info(gqa_gguf *g, cursor *c, gguf_tensor *t)
{
    uint64_t off = 0, len = 0, at;
    uint32_t nd = 0;
    t->info_off = c->pos;
    gqa_status s = cur_str(c, &off, &len, "tensor name");
    if (s == GQA_OK)
        s = store_name(g, off, len, t->info_off, "tensor name", &t->name);
    at = c->pos;
    if (s == GQA_OK)
        s = cur_u32(c, &nd, "tensor n_dims");
    if (s != GQA_OK)
        return s;
    const char *name = g->names + t->name;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return gqa_fail(GQA_ERR_FORMAT,
                        "GGUF: tensor '%s': n_dims %u at offset %llu (must be 1..%d)", name, nd,
                        (unsigned long long)at, GGUF_MAX_DIMS);
    t->n_dims = (int32_t)nd;
    int64_t n_el = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        at = c->pos;
        if (d < (int)nd && (s = cur_u64(c, &v, "tensor dimension")) != GQA_OK)
            return s;
        if (v > (uint64_t)INT64_MAX)
            return gqa_fail(GQA_ERR_FORMAT,
                            "GGUF: tensor '%s': dimension %d at offset %llu is %llu (negative as "
                            "int64)",
                            name, d, (unsigned long long)at, (unsigned long long)v);
        t->dims[d] = (int64_t)v;
        if (__builtin_mul_overflow(n_el, t->dims[d], &n_el))
            return gqa_fail(GQA_ERR_FORMAT,
                            "GGUF: tensor '%s': element count overflows int64 at dimension %d "
                            "(offset %llu)",
                            name, d, (unsigned long long)at);
    }
    t->n_elements = n_el;
    s = cur_u32(c, &t->type, "tensor type");
    if (s == GQA_OK)
        s = cur_u64(c, &t->offset, "tensor data offset");
    if (s != GQA_OK)
        return s;
    const ggml_type_desc *td = gqa_gguf_type_desc(t->type);
    t->known = td != NULL;
    if (td) {
        if (t->dims[0] % td->block_elems != 0)
            return gqa_fail(GQA_ERR_FORMAT,
                            "GGUF: tensor '%s': row length %lld is not a multiple of the %s "
                            "block size %lld (info at offset %llu)",
                            name, (long long)t->dims[0], td->name, (long long)td->block_elems,
                            (unsigned long long)t->info_off);
        int64_t bytes;
        if (__builtin_mul_overflow(n_el / td->block_elems, td->block_bytes, &bytes))
            return gqa_fail(GQA_ERR_FORMAT,
                            "GGUF: tensor '%s': byte size overflows (info at offset %llu)", name,
                            (unsigned long long)t->info_off);
        t->n_bytes = (uint64_t)bytes;
    }
    return GQA_OK;
}

static int cmp_by_offset_ctx(const void *a, const void *b)
{
    const gguf_tensor *ta = &sort_g->tensors[*(const int64_t *)a];
    const gguf_tensor *tb = &sort_g->tensors[*(const int64_t *)b];
    if (ta->offset != tb->offset)
        return ta->offset < tb->offset ? -1 : 1;
    return (ta->n_bytes > tb->n_bytes) - (ta->n_bytes < tb->n_bytes);
}

/* Place the data section and check every tensor's bytes: aligned, inside the
 * file, and not overlapping its neighbour in offset order. Tensors of unknown
 * type have no known extent; only their start is checked. */
static gqa_status check_data(gqa_gguf *g, uint64_t info_end)
{
    uint64_t a = g->alignment;
    uint64_t pad = (a - info_end % a) % a;
    if (__builtin_add_overflow(info_end, pad, &g->data_off))
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: data section offset overflows");
    if (g->n_tensors == 0)
        return GQA_OK;
    if (g->data_off > g->size)
        return gqa_fail(GQA_ERR_FORMAT,
                        "GGUF: data section would start at offset %llu, past the end of the "
                        "file (%llu bytes)",
                        (unsigned long long)g->data_off, (unsigned long long)g->size);
    uint64_t data_size = g->size - g->data_off;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        const char *name = g->names + t->name;
        uint64_t rel = t->offset;
        if (rel % a != 0)
            return gqa_fail(GQA_ERR_FORMAT,
                            "GGUF: tensor '%s' (info at offset %llu): data offset %llu is not a "
                            "multiple of the alignment %llu",
                            name, (unsigned long long)t->info_off, (unsigned long long)rel,
                            (unsigned long long)a);
        if (rel > data_size || t->n_bytes > data_size - rel)
            return gqa_fail(GQA_ERR_FORMAT,
                            "GGUF: tensor '%s' (info at offset %llu): data offset %llu + %llu "
                            "bytes runs past the end of the file (data section: %llu bytes "
                            "from offset %llu)",
                            name, (unsigned long long)t->info_off, (unsigned long long)rel,
                            (unsigned long long)t->n_bytes, (unsigned long long)data_size,
                            (unsigned long long)g->data_off);
        t->offset = g->data_off + rel; /* from here on: absolute */
    }
    int64_t *idx = malloc((size_t)g->n_tensors * sizeof *idx);
    if (!idx)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF: out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++)
        idx[i] = i;
    sort_g = g;
    qsort(idx, (size_t)g->n_tensors, sizeof *idx, cmp_by_offset_ctx);
    gqa_status s = GQA_OK;
    for (int64_t i = 1; i < g->n_tensors && s == GQA_OK; i++) {
        const gguf_tensor *p = &g->tensors[idx[i - 1]], *t = &g->tensors[idx[i]];
        /* Zero-byte tensors occupy nothing and may share an offset. */
        if (p->n_bytes && t->n_bytes && p->offset + p->n_bytes > t->offset)
            s = gqa_fail(GQA_ERR_FORMAT,
                         "GGUF: tensors '%s' (offset %llu, %llu bytes) and '%s' (offset %llu) "
                         "overlap",
                         g->names + p->name, (unsigned long long)p->offset,
                         (unsigned long long)p->n_bytes, g->names + t->name,
                         (unsigned long long)t->offset);
    }
    free(idx);
    return s;
}

static gqa_status parse(gqa_gguf *g)
{
    cursor c = {g->base, g->size, 0};
    uint64_t n_tensors = 0, n_kv = 0;
    gqa_status s = parse_header(g, &c, &n_tensors, &n_kv);
    if (s != GQA_OK)
        return s;
    g->n_kv = (int64_t)n_kv; /* both bounded by the file size / 13 */
    g->n_tensors = (int64_t)n_tensors;
    g->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kv);
    g->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensors);
    if (!g->kv || !g->tensors)
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF: out of memory for %llu keys and %llu tensors",
                        (unsigned long long)n_kv, (unsigned long long)n_tensors);
    if ((s = parse_kvs(g, &c)) != GQA_OK)
        return s;
    if ((s = sort_names(g, 0, g->n_kv, &g->kv_sorted)) != GQA_OK)
        return s;
    if ((s = read_alignment(g)) != GQA_OK)
        return s;
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((s = parse_tensor_info(g, &c, &g->tensors[i])) != GQA_OK)
            return s;
    if ((s = sort_names(g, 1, g->n_tensors, &g->tensor_sorted)) != GQA_OK)
        return s;
    return check_data(g, c.pos);
}

/* -------------------------------------------------------------- open/close -- */

static gqa_status open_image(const void *data, size_t size, void *map, gqa_gguf **out)
{
    gqa_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        if (map)
            munmap(map, size);
        return gqa_fail(GQA_ERR_NO_MEMORY, "GGUF: out of memory");
    }
    g->base = data;
    g->size = size;
    g->map = map;
    g->map_size = size;
    gqa_status s = parse(g);
    if (s != GQA_OK) {
        gqa_gguf_close(g);
        return s;
    }
    *out = g;
    return GQA_OK;
}

gqa_status gqa_gguf_open_memory(const void *data, size_t size, gqa_gguf **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_open_memory: out is NULL");
    *out = NULL;
    if (!data && size)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_open_memory: data is NULL");
    static const uint8_t empty[1];
    return open_image(data ? data : empty, size, NULL, out);
}

gqa_status gqa_gguf_open(const char *path, gqa_gguf **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_open: out is NULL");
    *out = NULL;
    if (!path)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_open: path is NULL");
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return gqa_fail(GQA_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return gqa_fail(GQA_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gqa_fail(GQA_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return gqa_fail(GQA_ERR_IO, "'%s' is too large to map (%lld bytes)", path,
                        (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) { /* mmap cannot map 0 bytes; the parser reports the bad file */
        close(fd);
        return gqa_fail(GQA_ERR_FORMAT, "'%s': GGUF: empty file (no header at offset 0)", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping stays valid */
    if (map == MAP_FAILED)
        return gqa_fail(GQA_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    gqa_status s = open_image(map, size, map, out);
    if (s == GQA_ERR_FORMAT) { /* name the file in front of the parser's message */
        char msg[400];
        snprintf(msg, sizeof msg, "%s", gqa_last_error());
        gqa_fail(s, "'%s': %s", path, msg);
    }
    return s;
}

void gqa_gguf_close(gqa_gguf *g)
{
    if (!g)
        return;
    if (g->map)
        munmap(g->map, g->map_size);
    free(g->kv);
    free(g->tensors);
    free(g->kv_sorted);
    free(g->tensor_sorted);
    free(g->names);
    free(g->str_offs);
    free(g);
}
