/* gguf.c - a validating, memory-mapped GGUF (v2, v3) reader.
 *
 * The whole file is parsed and checked once, at open: afterwards the
 * accessors only index tables built here and never re-read an unchecked
 * length. Everything read from the file goes through the bounds-checked
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

#include "core/internal.h"
#include "gqa_model.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DIMS          4
/* Nested arrays are legal but rare; the limit keeps the recursive value
 * parser's stack small whatever the file says. */
#define GGUF_MAX_ARRAY_DEPTH 8
/* Smallest possible encodings, used to reject impossible counts before
 * allocating anything for them. */
#define GGUF_MIN_KV_BYTES     13u /* u64 key length + u32 type + 1-byte value */
#define GGUF_MIN_TENSOR_BYTES 32u /* u64 name length + u32 n_dims + 1 dim + u32 type + u64 offset  \
                                   */

typedef struct gguf_kv {
    uint64_t name;      /* offset into g->names */
    uint64_t key_off;   /* file offset of the key's length field (for messages) */
    uint32_t type;      /* gqa_gguf_type */
    uint32_t elem_type; /* arrays: element type */
    uint64_t n;         /* arrays: element count */
    uint64_t val_off;   /* file offset of the scalar value, or of the first array element */
    uint64_t str_first; /* string arrays: index into g->str_offs of element 0 */
} gguf_kv;

typedef struct gguf_tensor {
    uint64_t name;     /* offset into g->names */
    uint64_t info_off; /* file offset of the tensor info (for messages) */
    uint32_t type;
    int32_t n_dims;
    int64_t dims[GGUF_MAX_DIMS];
    int64_t n_elements;
    uint64_t n_bytes; /* 0 when the type is unknown */
    int known;
    uint64_t offset; /* absolute file offset of the data */
} gguf_tensor;

struct gqa_gguf {
    const uint8_t *base;
    uint64_t size;
    void *map; /* non-NULL when we own an mmap of map_size bytes */
    size_t map_size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_off;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    int64_t *kv_sorted;     /* key indices sorted by name */
    int64_t *tensor_sorted; /* tensor indices sorted by name */
    char *names;            /* all key and tensor names, NUL-terminated */
    uint64_t names_len, names_cap;
    uint64_t *str_offs; /* per string-array element: file offset of its length field */
    uint64_t str_len, str_cap;
};

/* ------------------------------------------------------------- type tables -- */

typedef struct ggml_type_desc {
    const char *name;
    int64_t block_elems;
    int64_t block_bytes;
} ggml_type_desc;

/* ggml's type_traits: elements per block and bytes per block. */
static const ggml_type_desc ggml_types[] = {
    [GQA_GGML_TYPE_F32] = {"f32", 1, 4},
    [GQA_GGML_TYPE_F16] = {"f16", 1, 2},
    [GQA_GGML_TYPE_Q4_0] = {"q4_0", 32, 18},
    [GQA_GGML_TYPE_Q4_1] = {"q4_1", 32, 20},
    [GQA_GGML_TYPE_Q5_0] = {"q5_0", 32, 22},
    [GQA_GGML_TYPE_Q5_1] = {"q5_1", 32, 24},
    [GQA_GGML_TYPE_Q8_0] = {"q8_0", 32, 34},
    [GQA_GGML_TYPE_Q8_1] = {"q8_1", 32, 36},
    [GQA_GGML_TYPE_Q2_K] = {"q2_k", 256, 84},
    [GQA_GGML_TYPE_Q3_K] = {"q3_k", 256, 110},
    [GQA_GGML_TYPE_Q4_K] = {"q4_k", 256, 144},
    [GQA_GGML_TYPE_Q5_K] = {"q5_k", 256, 176},
    [GQA_GGML_TYPE_Q6_K] = {"q6_k", 256, 210},
    [GQA_GGML_TYPE_Q8_K] = {"q8_k", 256, 292},
    [GQA_GGML_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [GQA_GGML_TYPE_IQ2_XS] = {"iq2_xs", 256, 74},
    [GQA_GGML_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [GQA_GGML_TYPE_IQ1_S] = {"iq1_s", 256, 50},
    [GQA_GGML_TYPE_IQ4_NL] = {"iq4_nl", 32, 18},
    [GQA_GGML_TYPE_IQ3_S] = {"iq3_s", 256, 110},
    [GQA_GGML_TYPE_IQ2_S] = {"iq2_s", 256, 82},
    [GQA_GGML_TYPE_IQ4_XS] = {"iq4_xs", 256, 136},
    [GQA_GGML_TYPE_I8] = {"i8", 1, 1},
    [GQA_GGML_TYPE_I16] = {"i16", 1, 2},
    [GQA_GGML_TYPE_I32] = {"i32", 1, 4},
    [GQA_GGML_TYPE_I64] = {"i64", 1, 8},
    [GQA_GGML_TYPE_F64] = {"f64", 1, 8},
    [GQA_GGML_TYPE_IQ1_M] = {"iq1_m", 256, 56},
    [GQA_GGML_TYPE_BF16] = {"bf16", 1, 2},
    [GQA_GGML_TYPE_TQ1_0] = {"tq1_0", 256, 54},
    [GQA_GGML_TYPE_TQ2_0] = {"tq2_0", 256, 66},
    [GQA_GGML_TYPE_MXFP4] = {"mxfp4", 32, 17},
};

static const ggml_type_desc *ggml_type_lookup(uint32_t t)
{
    if (t >= sizeof ggml_types / sizeof ggml_types[0] || ggml_types[t].name == NULL)
        return NULL;
    return &ggml_types[t];
}

const char *gqa_gguf_type_name(uint32_t ggml_type)
{
    const ggml_type_desc *d = ggml_type_lookup(ggml_type);
    return d ? d->name : "unknown";
}

int gqa_gguf_type_block(uint32_t ggml_type, int64_t *block_elems, int64_t *block_bytes)
{
    const ggml_type_desc *d = ggml_type_lookup(ggml_type);
    if (!d)
        return 0;
    if (block_elems)
        *block_elems = d->block_elems;
    if (block_bytes)
        *block_bytes = d->block_bytes;
    return 1;
}

static const char *const value_type_names[] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

const char *gqa_gguf_value_type_name(int value_type)
{
    if (value_type < 0 || value_type > GQA_GGUF_TYPE_FLOAT64)
        return "unknown";
    return value_type_names[value_type];
}

/* Bytes of a fixed-size value type; 0 for string, array and invalid ids. */
static uint64_t value_fixed_size(uint32_t t)
{
    switch (t) {
    case GQA_GGUF_TYPE_UINT8:
    case GQA_GGUF_TYPE_INT8:
    case GQA_GGUF_TYPE_BOOL: return 1;
    case GQA_GGUF_TYPE_UINT16:
    case GQA_GGUF_TYPE_INT16: return 2;
    case GQA_GGUF_TYPE_UINT32:
    case GQA_GGUF_TYPE_INT32:
    case GQA_GGUF_TYPE_FLOAT32: return 4;
    case GQA_GGUF_TYPE_UINT64:
    case GQA_GGUF_TYPE_INT64:
    case GQA_GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static int value_is_integer(uint32_t t)
{
    return t <= GQA_GGUF_TYPE_INT32 || t == GQA_GGUF_TYPE_UINT64 || t == GQA_GGUF_TYPE_INT64;
}

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

static uint64_t load_u64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static gqa_status cur_u64(cursor *c, uint64_t *v, const char *what)
{
    gqa_status s = cur_need(c, 8, what);
    if (s != GQA_OK)
        return s;
    *v = load_u64(c->p + c->pos);
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
    uint64_t min_elem = value_fixed_size(et);
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
    if (value_fixed_size(et)) {
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
    uint64_t n = value_fixed_size(type);
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

static const char *entry_name(const gqa_gguf *g, int tensors, int64_t i)
{
    return g->names + (tensors ? g->tensors[i].name : g->kv[i].name);
}

static int cmp_by_name(const void *a, const void *b)
{
    int64_t ia = *(const int64_t *)a, ib = *(const int64_t *)b;
    int r = strcmp(entry_name(sort_g, sort_tensors, ia), entry_name(sort_g, sort_tensors, ib));
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
        const char *a = entry_name(g, tensors, idx[i - 1]), *b = entry_name(g, tensors, idx[i]);
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

static int64_t find_sorted(const gqa_gguf *g, int tensors, const char *name)
{
    const int64_t *idx = tensors ? g->tensor_sorted : g->kv_sorted;
    int64_t lo = 0, hi = tensors ? g->n_tensors : g->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(entry_name(g, tensors, idx[mid]), name);
        if (r == 0)
            return idx[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
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
    int64_t i = find_sorted(g, 0, "general.alignment");
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
    const ggml_type_desc *td = ggml_type_lookup(t->type);
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

/* --------------------------------------------------------------- accessors -- */

uint32_t gqa_gguf_version(const gqa_gguf *g)
{
    return g ? g->version : 0;
}

uint32_t gqa_gguf_alignment(const gqa_gguf *g)
{
    return g ? g->alignment : 0;
}

uint64_t gqa_gguf_data_offset(const gqa_gguf *g)
{
    return g ? g->data_off : 0;
}

uint64_t gqa_gguf_file_size(const gqa_gguf *g)
{
    return g ? g->size : 0;
}

int64_t gqa_gguf_n_keys(const gqa_gguf *g)
{
    return g ? g->n_kv : 0;
}

int64_t gqa_gguf_find_key(const gqa_gguf *g, const char *key)
{
    return g && key ? find_sorted(g, 0, key) : -1;
}

const char *gqa_gguf_key_name(const gqa_gguf *g, int64_t i)
{
    return g && i >= 0 && i < g->n_kv ? g->names + g->kv[i].name : NULL;
}

int gqa_gguf_key_type(const gqa_gguf *g, int64_t i)
{
    return g && i >= 0 && i < g->n_kv ? (int)g->kv[i].type : -1;
}

static uint32_t load_u32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* An integer value of type t at b as sign + 64 bits: when *neg, the value is
 * (int64_t)*u (negative); otherwise it is *u. */
static void load_int(const uint8_t *b, uint32_t t, int *neg, uint64_t *u)
{
    int64_t v = 0;
    *neg = 0;
    switch (t) {
    case GQA_GGUF_TYPE_UINT8: *u = b[0]; return;
    case GQA_GGUF_TYPE_UINT16: *u = (uint64_t)b[0] | (uint64_t)b[1] << 8; return;
    case GQA_GGUF_TYPE_UINT32: *u = load_u32(b); return;
    case GQA_GGUF_TYPE_UINT64: *u = load_u64(b); return;
    case GQA_GGUF_TYPE_INT8: v = (int8_t)b[0]; break;
    case GQA_GGUF_TYPE_INT16: v = (int16_t)(uint16_t)((unsigned)b[0] | (unsigned)b[1] << 8); break;
    case GQA_GGUF_TYPE_INT32: v = (int32_t)load_u32(b); break;
    case GQA_GGUF_TYPE_INT64: v = (int64_t)load_u64(b); break;
    default: *u = 0; return;
    }
    *neg = v < 0;
    *u = (uint64_t)v;
}

static float load_f32(const uint8_t *b)
{
    uint32_t bits = load_u32(b);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* f32, or f64 that converts to float exactly (NaN stays NaN). */
static int load_float(const uint8_t *b, uint32_t t, float *out)
{
    if (t == GQA_GGUF_TYPE_FLOAT32) {
        *out = load_f32(b);
        return 1;
    }
    if (t != GQA_GGUF_TYPE_FLOAT64)
        return 0;
    uint64_t bits = load_u64(b);
    double d;
    memcpy(&d, &bits, sizeof d);
    float f = (float)d;
    if (d != d || (double)f == d) {
        *out = f;
        return 1;
    }
    return 0;
}

static const gguf_kv *key_lookup(const gqa_gguf *g, const char *key, const char *fn, gqa_status *s)
{
    if (!g || !key) {
        *s = gqa_fail(GQA_ERR_INVALID_ARG, "%s: %s is NULL", fn, g ? "key" : "handle");
        return NULL;
    }
    int64_t i = find_sorted(g, 0, key);
    if (i < 0) {
        *s = gqa_fail(GQA_ERR_FORMAT, "GGUF: key '%s' not found", key);
        return NULL;
    }
    *s = GQA_OK;
    return &g->kv[i];
}

static gqa_status wrong_type(const gguf_kv *kv, const gqa_gguf *g, const char *want)
{
    return gqa_fail(GQA_ERR_FORMAT, "GGUF: key '%s' (offset %llu) is %s, expected %s",
                    g->names + kv->name, (unsigned long long)kv->key_off,
                    gqa_gguf_value_type_name((int)kv->type), want);
}

static gqa_status no_fit(const gguf_kv *kv, const gqa_gguf *g, const char *want, int neg,
                         uint64_t u)
{
    if (neg)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: key '%s' value %lld does not fit %s",
                        g->names + kv->name, (long long)(int64_t)u, want);
    return gqa_fail(GQA_ERR_FORMAT, "GGUF: key '%s' value %llu does not fit %s",
                    g->names + kv->name, (unsigned long long)u, want);
}

/* Shared body of the integer getters: the value as sign + bits. */
static gqa_status get_int(const gqa_gguf *g, const char *key, const void *out, const char *fn,
                          const char *want, const gguf_kv **kvp, int *neg, uint64_t *u)
{
    gqa_status s;
    const gguf_kv *kv = key_lookup(g, key, fn, &s);
    if (!kv)
        return s;
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: out is NULL", fn);
    if (!value_is_integer(kv->type))
        return wrong_type(kv, g, want);
    load_int(g->base + kv->val_off, kv->type, neg, u);
    *kvp = kv;
    return GQA_OK;
}

gqa_status gqa_gguf_get_u32(const gqa_gguf *g, const char *key, uint32_t *out)
{
    const gguf_kv *kv = NULL;
    int neg = 0;
    uint64_t u = 0;
    gqa_status s = get_int(g, key, out, "gqa_gguf_get_u32", "u32", &kv, &neg, &u);
    if (s != GQA_OK)
        return s;
    if (neg || u > UINT32_MAX)
        return no_fit(kv, g, "u32", neg, u);
    *out = (uint32_t)u;
    return GQA_OK;
}

gqa_status gqa_gguf_get_i32(const gqa_gguf *g, const char *key, int32_t *out)
{
    const gguf_kv *kv = NULL;
    int neg = 0;
    uint64_t u = 0;
    gqa_status s = get_int(g, key, out, "gqa_gguf_get_i32", "i32", &kv, &neg, &u);
    if (s != GQA_OK)
        return s;
    if (neg ? (int64_t)u < INT32_MIN : u > INT32_MAX)
        return no_fit(kv, g, "i32", neg, u);
    *out = (int32_t)(int64_t)u;
    return GQA_OK;
}

gqa_status gqa_gguf_get_u64(const gqa_gguf *g, const char *key, uint64_t *out)
{
    const gguf_kv *kv = NULL;
    int neg = 0;
    uint64_t u = 0;
    gqa_status s = get_int(g, key, out, "gqa_gguf_get_u64", "u64", &kv, &neg, &u);
    if (s != GQA_OK)
        return s;
    if (neg)
        return no_fit(kv, g, "u64", neg, u);
    *out = u;
    return GQA_OK;
}

gqa_status gqa_gguf_get_f32(const gqa_gguf *g, const char *key, float *out)
{
    gqa_status s;
    const gguf_kv *kv = key_lookup(g, key, "gqa_gguf_get_f32", &s);
    if (!kv)
        return s;
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_get_f32: out is NULL");
    if (kv->type != GQA_GGUF_TYPE_FLOAT32 && kv->type != GQA_GGUF_TYPE_FLOAT64)
        return wrong_type(kv, g, "f32");
    if (!load_float(g->base + kv->val_off, kv->type, out))
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: key '%s' f64 value is not exactly an f32",
                        g->names + kv->name);
    return GQA_OK;
}

gqa_status gqa_gguf_get_bool(const gqa_gguf *g, const char *key, int *out)
{
    gqa_status s;
    const gguf_kv *kv = key_lookup(g, key, "gqa_gguf_get_bool", &s);
    if (!kv)
        return s;
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_get_bool: out is NULL");
    if (kv->type != GQA_GGUF_TYPE_BOOL)
        return wrong_type(kv, g, "bool");
    *out = g->base[kv->val_off]; /* validated 0 or 1 at open */
    return GQA_OK;
}

/* A string whose u64 length field sits at `off` (validated at open). */
static void load_str(const gqa_gguf *g, uint64_t off, const char **str, size_t *len)
{
    *len = (size_t)load_u64(g->base + off);
    *str = (const char *)(g->base + off + 8);
}

gqa_status gqa_gguf_get_str(const gqa_gguf *g, const char *key, const char **str, size_t *len)
{
    gqa_status s;
    const gguf_kv *kv = key_lookup(g, key, "gqa_gguf_get_str", &s);
    if (!kv)
        return s;
    if (!str || !len)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_get_str: str or len is NULL");
    if (kv->type != GQA_GGUF_TYPE_STRING)
        return wrong_type(kv, g, "string");
    load_str(g, kv->val_off, str, len);
    return GQA_OK;
}

gqa_status gqa_gguf_get_arr(const gqa_gguf *g, const char *key, gqa_gguf_type *elem_type,
                            uint64_t *n)
{
    gqa_status s;
    const gguf_kv *kv = key_lookup(g, key, "gqa_gguf_get_arr", &s);
    if (!kv)
        return s;
    if (kv->type != GQA_GGUF_TYPE_ARRAY)
        return wrong_type(kv, g, "array");
    if (elem_type)
        *elem_type = (gqa_gguf_type)kv->elem_type;
    if (n)
        *n = kv->n;
    return GQA_OK;
}

/* The array `key`, its elements first..first+count-1 checked to exist. */
static const gguf_kv *arr_range(const gqa_gguf *g, const char *key, uint64_t first, uint64_t count,
                                const char *fn, gqa_status *s)
{
    const gguf_kv *kv = key_lookup(g, key, fn, s);
    if (!kv)
        return NULL;
    if (kv->type != GQA_GGUF_TYPE_ARRAY) {
        *s = wrong_type(kv, g, "array");
        return NULL;
    }
    if (first > kv->n || count > kv->n - first) {
        *s = gqa_fail(GQA_ERR_INVALID_ARG,
                      "%s: elements %llu..+%llu out of range for '%s' (%llu elements)", fn,
                      (unsigned long long)first, (unsigned long long)count, key,
                      (unsigned long long)kv->n);
        return NULL;
    }
    return kv;
}

static gqa_status wrong_elem(const gqa_gguf *g, const gguf_kv *kv, const char *want)
{
    return gqa_fail(GQA_ERR_FORMAT, "GGUF: key '%s' is an array of %s, expected %s",
                    g->names + kv->name, gqa_gguf_value_type_name((int)kv->elem_type), want);
}

gqa_status gqa_gguf_arr_str(const gqa_gguf *g, const char *key, uint64_t i, const char **str,
                            size_t *len)
{
    gqa_status s;
    const gguf_kv *kv = arr_range(g, key, i, 1, "gqa_gguf_arr_str", &s);
    if (!kv)
        return s;
    if (!str || !len)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_arr_str: str or len is NULL");
    if (kv->elem_type != GQA_GGUF_TYPE_STRING)
        return wrong_elem(g, kv, "string");
    load_str(g, g->str_offs[kv->str_first + i], str, len);
    return GQA_OK;
}

gqa_status gqa_gguf_arr_i32(const gqa_gguf *g, const char *key, uint64_t first, uint64_t count,
                            int32_t *dst)
{
    gqa_status s;
    const gguf_kv *kv = arr_range(g, key, first, count, "gqa_gguf_arr_i32", &s);
    if (!kv)
        return s;
    if (!value_is_integer(kv->elem_type))
        return wrong_elem(g, kv, "integers");
    if (count && !dst)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_arr_i32: dst is NULL");
    uint64_t es = value_fixed_size(kv->elem_type);
    for (uint64_t i = 0; i < count; i++) {
        int neg;
        uint64_t u;
        load_int(g->base + kv->val_off + (first + i) * es, kv->elem_type, &neg, &u);
        if (neg ? (int64_t)u < INT32_MIN : u > INT32_MAX)
            return gqa_fail(GQA_ERR_FORMAT, "GGUF: key '%s' element %llu does not fit i32", key,
                            (unsigned long long)(first + i));
        dst[i] = (int32_t)(int64_t)u;
    }
    return GQA_OK;
}

gqa_status gqa_gguf_arr_f32(const gqa_gguf *g, const char *key, uint64_t first, uint64_t count,
                            float *dst)
{
    gqa_status s;
    const gguf_kv *kv = arr_range(g, key, first, count, "gqa_gguf_arr_f32", &s);
    if (!kv)
        return s;
    if (kv->elem_type != GQA_GGUF_TYPE_FLOAT32 && kv->elem_type != GQA_GGUF_TYPE_FLOAT64)
        return wrong_elem(g, kv, "f32");
    if (count && !dst)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_arr_f32: dst is NULL");
    uint64_t es = value_fixed_size(kv->elem_type);
    for (uint64_t i = 0; i < count; i++)
        if (!load_float(g->base + kv->val_off + (first + i) * es, kv->elem_type, &dst[i]))
            return gqa_fail(GQA_ERR_FORMAT, "GGUF: key '%s' element %llu is not exactly an f32",
                            key, (unsigned long long)(first + i));
    return GQA_OK;
}

int64_t gqa_gguf_n_tensors(const gqa_gguf *g)
{
    return g ? g->n_tensors : 0;
}

int64_t gqa_gguf_find_tensor(const gqa_gguf *g, const char *name)
{
    return g && name ? find_sorted(g, 1, name) : -1;
}

gqa_status gqa_gguf_tensor_at(const gqa_gguf *g, int64_t i, gqa_gguf_tensor_info *info)
{
    if (!g || !info)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_tensor_at: %s is NULL",
                        g ? "info" : "handle");
    if (i < 0 || i >= g->n_tensors)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_tensor_at: index %lld out of range 0..%lld",
                        (long long)i, (long long)g->n_tensors - 1);
    const gguf_tensor *t = &g->tensors[i];
    memset(info, 0, sizeof *info);
    info->name = g->names + t->name;
    info->ggml_type = t->type;
    info->n_dims = t->n_dims;
    memcpy(info->dims, t->dims, sizeof info->dims);
    info->n_elements = t->n_elements;
    info->offset = t->offset;
    if (!t->known)
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "GGUF: tensor '%s' has ggml type id %u, which this build does not know",
                        info->name, t->type);
    info->n_bytes = t->n_bytes;
    info->data = g->base + t->offset;
    return GQA_OK;
}

gqa_status gqa_gguf_tensor(const gqa_gguf *g, const char *name, gqa_gguf_tensor_info *info)
{
    if (!g || !name || !info)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_gguf_tensor: NULL argument");
    int64_t i = find_sorted(g, 1, name);
    if (i < 0)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: tensor '%s' not found", name);
    return gqa_gguf_tensor_at(g, i, info);
}
