/* gguf_internal.h - the GGUF reader's private interface. Not installed.
 *
 * gguf_parse.c maps and validates a file once, at open, and builds the tables
 * below; gguf.c answers the public accessors from those tables alone. Every
 * offset stored here was bounds-checked at open, so the accessors may read
 * at it without checking again.
 */
#ifndef GQA_MODEL_GGUF_INTERNAL_H
#define GQA_MODEL_GGUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "gqa_model.h"

#define GGUF_MAX_DIMS 4

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

typedef struct ggml_type_desc {
    const char *name;
    int64_t block_elems;
    int64_t block_bytes;
} ggml_type_desc;

/* gguf.c: the ggml type with id t, or NULL when this build does not know it. */
const ggml_type_desc *gqa_gguf_type_desc(uint32_t t);

/* gguf.c: bytes of a fixed-size value type; 0 for string, array and invalid ids. */
uint64_t gqa_gguf_value_fixed_size(uint32_t t);

/* gguf.c: the index of the key (tensors == 0) or tensor (tensors != 0) named
 * `name`, by binary search of the sorted index; -1 if there is none. */
int64_t gqa_gguf_find_sorted(const gqa_gguf *g, int tensors, const char *name);

/* The name of key or tensor i. */
static inline const char *gguf_entry_name(const gqa_gguf *g, int tensors, int64_t i)
{
    return g->names + (tensors ? g->tensors[i].name : g->kv[i].name);
}

/* Little-endian loads; b needs no alignment. */
static inline uint32_t gguf_load_u32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t gguf_load_u64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

#endif
