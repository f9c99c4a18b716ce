/* gguf.c - the GGUF reader's accessors: keys, typed getters, arrays, tensors,
 * and the ggml and GGUF type tables.
 *
 * Every table read here was built and bounds-checked once, at open, by
 * gguf_parse.c (see gguf_internal.h), so no accessor re-reads an unchecked
 * length. Values are loaded byte by byte, so neither the mapping nor a
 * caller's buffer needs any alignment.
 */
#include <string.h>

#include "model/gguf_internal.h"

/* ------------------------------------------------------------- type tables -- */

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

const ggml_type_desc *gqa_gguf_type_desc(uint32_t t)
{
    if (t >= sizeof ggml_types / sizeof ggml_types[0] || ggml_types[t].name == NULL)
        return NULL;
    return &ggml_types[t];
}

const char *gqa_gguf_type_name(uint32_t ggml_type)
{
    const ggml_type_desc *d = gqa_gguf_type_desc(ggml_type);
    return d ? d->name : "unknown";
}

int gqa_gguf_type_block(uint32_t ggml_type, int64_t *block_elems, int64_t *block_bytes)
{
    const ggml_type_desc *d = gqa_gguf_type_desc(ggml_type);
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
uint64_t gqa_gguf_value_fixed_size(uint32_t t)
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

/* ------------------------------------------------------------------ lookup -- */

int64_t gqa_gguf_find_sorted(const gqa_gguf *g, int tensors, const char *name)
{
    const int64_t *idx = tensors ? g->tensor_sorted : g->kv_sorted;
    int64_t lo = 0, hi = tensors ? g->n_tensors : g->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(gguf_entry_name(g, tensors, idx[mid]), name);
        if (r == 0)
            return idx[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
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
    return g && key ? gqa_gguf_find_sorted(g, 0, key) : -1;
}

const char *gqa_gguf_key_name(const gqa_gguf *g, int64_t i)
{
    return g && i >= 0 && i < g->n_kv ? g->names + g->kv[i].name : NULL;
}

int gqa_gguf_key_type(const gqa_gguf *g, int64_t i)
{
    return g && i >= 0 && i < g->n_kv ? (int)g->kv[i].type : -1;
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
    case GQA_GGUF_TYPE_UINT32: *u = gguf_load_u32(b); return;
    case GQA_GGUF_TYPE_UINT64: *u = gguf_load_u64(b); return;
    case GQA_GGUF_TYPE_INT8: v = (int8_t)b[0]; break;
    case GQA_GGUF_TYPE_INT16: v = (int16_t)(uint16_t)((unsigned)b[0] | (unsigned)b[1] << 8); break;
    case GQA_GGUF_TYPE_INT32: v = (int32_t)gguf_load_u32(b); break;
    case GQA_GGUF_TYPE_INT64: v = (int64_t)gguf_load_u64(b); break;
    default: *u = 0; return;
    }
    *neg = v < 0;
    *u = (uint64_t)v;
}

static float load_f32(const uint8_t *b)
{
    uint32_t bits = gguf_load_u32(b);
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
    uint64_t bits = gguf_load_u64(b);
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
    int64_t i = gqa_gguf_find_sorted(g, 0, key);
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
    *len = (size_t)gguf_load_u64(g->base + off);
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
    uint64_t es = gqa_gguf_value_fixed_size(kv->elem_type);
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
    uint64_t es = gqa_gguf_value_fixed_size(kv->elem_type);
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
    return g && name ? gqa_gguf_find_sorted(g, 1, name) : -1;
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
    int64_t i = gqa_gguf_find_sorted(g, 1, name);
    if (i < 0)
        return gqa_fail(GQA_ERR_FORMAT, "GGUF: tensor '%s' not found", name);
    return gqa_gguf_tensor_at(g, i, info);
}
