/* gqa_model.h - public API of libgqa's model layer: reading model files.
 *
 * This header grows with the model layer (weights, forward pass, tokenizer,
 * sampler). It starts with the GGUF reader.
 *
 * Conventions are those of gqa.h: every function that can fail returns a
 * gqa_status and leaves a message in gqa_last_error(); the library never
 * aborts, exits or prints.
 */
#ifndef GQA_MODEL_H
#define GQA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"
#include "gqa_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ GGUF -- */
/* A read-only view of a GGUF file (versions 2 and 3, little-endian).
 *
 * gqa_gguf_open memory-maps the file and validates all of it before returning:
 * the header, every metadata key and value (arrays and nested arrays
 * included), every tensor description, the alignment, and that each tensor's
 * bytes lie inside the file without overlapping another's. After a
 * successful open no accessor can read outside the file. A malformed file
 * gives GQA_ERR_FORMAT, with the problem and its byte offset in
 * gqa_last_error(). See docs/gguf.md for the full list of checks.
 *
 * Ownership: the handle owns the mapping. Every pointer an accessor returns
 * (key and tensor names, string values, tensor data) is borrowed from the
 * handle and valid until gqa_gguf_close. Strings read from metadata values
 * are NOT NUL-terminated (pointer + length, bytes as in the file); key names
 * and tensor names ARE NUL-terminated copies.
 *
 * Thread safety: a handle is immutable after open; any number of threads may
 * call the accessors on it concurrently.
 *
 * Lookup by name is exact and case-sensitive. A key or tensor that is not
 * there is GQA_ERR_FORMAT for the getters (a model file lacking something it
 * needs is malformed); use gqa_gguf_find_key / gqa_gguf_find_tensor to probe
 * for optional entries without an error. */

typedef struct gqa_gguf gqa_gguf;

/* Metadata value types, numbered as in the GGUF specification. */
typedef enum gqa_gguf_type {
    GQA_GGUF_TYPE_UINT8 = 0,
    GQA_GGUF_TYPE_INT8 = 1,
    GQA_GGUF_TYPE_UINT16 = 2,
    GQA_GGUF_TYPE_INT16 = 3,
    GQA_GGUF_TYPE_UINT32 = 4,
    GQA_GGUF_TYPE_INT32 = 5,
    GQA_GGUF_TYPE_FLOAT32 = 6,
    GQA_GGUF_TYPE_BOOL = 7,
    GQA_GGUF_TYPE_STRING = 8,
    GQA_GGUF_TYPE_ARRAY = 9,
    GQA_GGUF_TYPE_UINT64 = 10,
    GQA_GGUF_TYPE_INT64 = 11,
    GQA_GGUF_TYPE_FLOAT64 = 12
} gqa_gguf_type;

/* Tensor element types, numbered as ggml numbers them (the ids stored in the
 * file). Ids absent here (4, 5, 31-33, 36-38 were retired by ggml) and ids
 * beyond the last are "unknown": such tensors are still listed, but their
 * byte size cannot be known, so their data is not available. */
typedef enum gqa_ggml_type {
    GQA_GGML_TYPE_F32 = 0,
    GQA_GGML_TYPE_F16 = 1,
    GQA_GGML_TYPE_Q4_0 = 2,
    GQA_GGML_TYPE_Q4_1 = 3,
    GQA_GGML_TYPE_Q5_0 = 6,
    GQA_GGML_TYPE_Q5_1 = 7,
    GQA_GGML_TYPE_Q8_0 = 8,
    GQA_GGML_TYPE_Q8_1 = 9,
    GQA_GGML_TYPE_Q2_K = 10,
    GQA_GGML_TYPE_Q3_K = 11,
    GQA_GGML_TYPE_Q4_K = 12,
    GQA_GGML_TYPE_Q5_K = 13,
    GQA_GGML_TYPE_Q6_K = 14,
    GQA_GGML_TYPE_Q8_K = 15,
    GQA_GGML_TYPE_IQ2_XXS = 16,
    GQA_GGML_TYPE_IQ2_XS = 17,
    GQA_GGML_TYPE_IQ3_XXS = 18,
    GQA_GGML_TYPE_IQ1_S = 19,
    GQA_GGML_TYPE_IQ4_NL = 20,
    GQA_GGML_TYPE_IQ3_S = 21,
    GQA_GGML_TYPE_IQ2_S = 22,
    GQA_GGML_TYPE_IQ4_XS = 23,
    GQA_GGML_TYPE_I8 = 24,
    GQA_GGML_TYPE_I16 = 25,
    GQA_GGML_TYPE_I32 = 26,
    GQA_GGML_TYPE_I64 = 27,
    GQA_GGML_TYPE_F64 = 28,
    GQA_GGML_TYPE_IQ1_M = 29,
    GQA_GGML_TYPE_BF16 = 30,
    GQA_GGML_TYPE_TQ1_0 = 34,
    GQA_GGML_TYPE_TQ2_0 = 35,
    GQA_GGML_TYPE_MXFP4 = 39
} gqa_ggml_type;

/* Description of one tensor. All pointers are borrowed from the handle. */
typedef struct gqa_gguf_tensor_info {
    const char *name;   /* NUL-terminated */
    uint32_t ggml_type; /* a gqa_ggml_type value, or an unknown id */
    int32_t n_dims;     /* 1..4 */
    int64_t dims[4];    /* ggml order: dims[0] is the innermost (contiguous)
                         * dimension, i.e. the row length; dims past n_dims are 1 */
    int64_t n_elements; /* product of dims */
    uint64_t n_bytes;   /* bytes of the data; 0 for an unknown type */
    uint64_t offset;    /* absolute byte offset of the data in the file */
    const void *data;   /* n_bytes bytes in the mapping (read-only; aligned to
                         * the file's alignment when the mapping is page aligned);
                         * NULL for an unknown type */
} gqa_gguf_tensor_info;

/* Open and validate the GGUF file at `path`; *out receives the handle (free
 * it with gqa_gguf_close). *out is NULL on failure.
 * Errors: GQA_ERR_INVALID_ARG (NULL argument), GQA_ERR_IO (cannot open, stat
 * or map the file, or it is not a regular file; the message names the path
 * and the system's reason), GQA_ERR_FORMAT (malformed file: what is wrong
 * and at which byte offset), GQA_ERR_NO_MEMORY.
 * The file must not be truncated by anyone while it is mapped. */
gqa_status gqa_gguf_open(const char *path, gqa_gguf **out);

/* The same for a GGUF image already in memory: `size` bytes at `data`,
 * borrowed (not copied) - the caller keeps them alive and unchanged until
 * gqa_gguf_close. `data` needs no particular alignment. Tensor data pointers
 * then point into `data`. Same errors as gqa_gguf_open except GQA_ERR_IO. */
gqa_status gqa_gguf_open_memory(const void *data, size_t size, gqa_gguf **out);

/* Unmap and free. NULL is fine. */
void gqa_gguf_close(gqa_gguf *g);

/* File facts: GGUF version (2 or 3), tensor data alignment in bytes
 * (general.alignment, default 32), absolute offset of the data section,
 * and the file size. */
uint32_t gqa_gguf_version(const gqa_gguf *g);
uint32_t gqa_gguf_alignment(const gqa_gguf *g);
uint64_t gqa_gguf_data_offset(const gqa_gguf *g);
uint64_t gqa_gguf_file_size(const gqa_gguf *g);

/* ---- metadata ---- */

/* Number of metadata keys, in file order 0..n-1. */
int64_t gqa_gguf_n_keys(const gqa_gguf *g);
/* Index of `key`, or -1 if absent (no error is recorded for absence). */
int64_t gqa_gguf_find_key(const gqa_gguf *g, const char *key);
/* Name of key i (NUL-terminated, borrowed), or NULL for i out of range. */
const char *gqa_gguf_key_name(const gqa_gguf *g, int64_t i);
/* Value type of key i, or -1 for i out of range. */
int gqa_gguf_key_type(const gqa_gguf *g, int64_t i);

/* Typed getters. Integer getters accept any integer-typed value (u8 ... i64)
 * whose value fits the requested type exactly; bool is not an integer here.
 * gqa_gguf_get_f32 accepts f32, and f64 when the value converts exactly.
 * Errors: GQA_ERR_INVALID_ARG (NULL argument), GQA_ERR_FORMAT (key absent,
 * wrong type, or a value that does not fit; the message names the key). */
gqa_status gqa_gguf_get_u32(const gqa_gguf *g, const char *key, uint32_t *out);
gqa_status gqa_gguf_get_i32(const gqa_gguf *g, const char *key, int32_t *out);
gqa_status gqa_gguf_get_u64(const gqa_gguf *g, const char *key, uint64_t *out);
gqa_status gqa_gguf_get_f32(const gqa_gguf *g, const char *key, float *out);
gqa_status gqa_gguf_get_bool(const gqa_gguf *g, const char *key, int *out);
/* String value: *str points into the file (NOT NUL-terminated), *len bytes. */
gqa_status gqa_gguf_get_str(const gqa_gguf *g, const char *key, const char **str, size_t *len);

/* Array value: element type and count. Nested arrays report
 * GQA_GGUF_TYPE_ARRAY; they are validated but have no element getters.
 * elem_type or n may be NULL. Errors as for the typed getters. */
gqa_status gqa_gguf_get_arr(const gqa_gguf *g, const char *key, gqa_gguf_type *elem_type,
                            uint64_t *n);
/* Element i (0 <= i < n) of a string array: pointer into the file, NOT
 * NUL-terminated, *len bytes. O(1). */
gqa_status gqa_gguf_arr_str(const gqa_gguf *g, const char *key, uint64_t i, const char **str,
                            size_t *len);
/* Copy elements first .. first+count-1 of an integer array into dst
 * (count int32_t). Each element must fit int32_t exactly (so u8, i8, u16,
 * i16, i32 arrays always work). count == 0 is a no-op (dst may be NULL). */
gqa_status gqa_gguf_arr_i32(const gqa_gguf *g, const char *key, uint64_t first, uint64_t count,
                            int32_t *dst);
/* The same for an f32 array (or an f64 array whose elements convert exactly). */
gqa_status gqa_gguf_arr_f32(const gqa_gguf *g, const char *key, uint64_t first, uint64_t count,
                            float *dst);

/* ---- tensors ---- */

/* Number of tensors, in file order 0..n-1. */
int64_t gqa_gguf_n_tensors(const gqa_gguf *g);
/* Index of tensor `name`, or -1 if absent (no error is recorded). */
int64_t gqa_gguf_find_tensor(const gqa_gguf *g, const char *name);
/* Describe tensor i / the tensor named `name` into *info.
 * GQA_ERR_UNSUPPORTED when its ggml type id is unknown to this build (the
 * message names the id; *info is still filled, with data NULL, n_bytes 0).
 * GQA_ERR_INVALID_ARG for NULL arguments or i out of range, GQA_ERR_FORMAT
 * when no tensor has that name. */
gqa_status gqa_gguf_tensor_at(const gqa_gguf *g, int64_t i, gqa_gguf_tensor_info *info);
gqa_status gqa_gguf_tensor(const gqa_gguf *g, const char *name, gqa_gguf_tensor_info *info);

/* ---- type facts ---- */

/* Lower-case name of a ggml type id ("f32", "q4_1", "q6_k", ...), or
 * "unknown". Never NULL. */
const char *gqa_gguf_type_name(uint32_t ggml_type);
/* Lower-case name of a metadata value type ("u32", "string", "array", ...),
 * or "unknown". Never NULL. */
const char *gqa_gguf_value_type_name(int value_type);
/* Block layout of a ggml type: elements per block and bytes per block.
 * Returns 1 and fills the outputs (either may be NULL) for a known type,
 * 0 for an unknown one. */
int gqa_gguf_type_block(uint32_t ggml_type, int64_t *block_elems, int64_t *block_bytes);

/* --------------------------------------------------------------- weights -- */
/* Weight types and the matrix-vector product of the forward pass. Supported
 * ggml types (GGML block layouts, see docs/weights.md):
 *   f32, f16, bf16      block of 1 element (4, 2, 2 bytes)
 *   q8_0                block of 32: f16 d, int8 q[32]          w = q * d
 *   q4_0                block of 32: f16 d, u8 qs[16]           w = (nib - 8) * d
 *   q4_1                block of 32: f16 d, f16 m, u8 qs[16]    w = nib * d + m
 * where element i < 16 of a q4 block is the low nibble of qs[i] and element
 * i >= 16 the high nibble of qs[i - 16]. Other types give GQA_ERR_UNSUPPORTED
 * with the type named in gqa_last_error(). */

/* y = W x for a row-major matrix W of `rows` rows of `cols` elements:
 * w:  rows x (cols / B) blocks of `ggml_type` (B = its block size; cols must
 *     be a multiple of B), rows densely packed - exactly the bytes of a GGUF
 *     tensor with dims[0] = cols, dims[1] = rows. Borrowed (typically the
 *     mapped file). q* types need no alignment; f32 rows must be 4-byte and
 *     f16/bf16 rows 2-byte aligned.
 * x:  cols floats (may be NULL when cols == 0).
 * y:  rows floats, written; must not overlap w or x.
 * Rows are dequantised in registers by the active kernel set (gqa_kernel_name;
 * "ref" accumulates in double) and accumulated in f32, spread over
 * gqa_get_num_threads() threads by rows; no allocation. Each row is computed
 * by one thread, so results are bitwise identical at any thread count.
 * Errors: GQA_ERR_INVALID_ARG (NULL pointer, rows or cols < 0, cols not a
 * multiple of the block, misaligned f32/f16/bf16 weights, a byte size that
 * overflows), GQA_ERR_UNSUPPORTED (ggml_type not in the list above). */
gqa_status gqa_matvec(uint32_t ggml_type, const void *w, int64_t rows, int64_t cols,
                      const float *x, float *y);

/* Dequantise n elements (a multiple of the type's block size) of
 * `ggml_type` at src into dst (n floats) with the reference dequantiser -
 * e.g. one token's row of an embedding table. Same alignment rule and errors
 * as gqa_matvec; n == 0 is a no-op (pointers may then be NULL). */
gqa_status gqa_dequantize_row(uint32_t ggml_type, const void *src, int64_t n, float *dst);

/* y = W x for n vectors at once (a batch of tokens):
 * x:  n x cols floats (row t is token t's input), y: n x rows floats
 * (row t receives W x_t); other arguments and errors as gqa_matvec, n >= 0.
 * Threads split the rows; each thread streams its rows' weights once for all
 * n vectors, so the weights are read from memory once per call, not n times.
 * Each y[t][r] is computed exactly as gqa_matvec would compute it. */
gqa_status gqa_matmul(uint32_t ggml_type, const void *w, int64_t rows, int64_t cols, int64_t n,
                      const float *x, float *y);

/* ------------------------------------------------------------- tokenizer -- */
/* Build the tokenizer a GGUF file describes (tokenizer.ggml.model "gpt2":
 * tokens, token_type, merges, bos/eos/unknown/padding ids, pre,
 * add_bos_token). GQA_ERR_UNSUPPORTED for another tokenizer model (named),
 * GQA_ERR_FORMAT for missing or malformed keys, and gqa_tokenizer_create's
 * errors. The tokenizer keeps its own copies: it may outlive the file. */
gqa_status gqa_tokenizer_from_gguf(const gqa_gguf *g, gqa_tokenizer **out);

/* ----------------------------------------------------------------- model -- */
/* A Llama-family decoder (general.architecture "llama") read from a GGUF file.
 * All hyper-parameters come from the file's metadata. Weights stay in the
 * memory-mapped file (borrowed, never copied) except the small norm vectors.
 *
 * Thread safety: a model is immutable after loading; any number of threads
 * may run gqa_model_forward on it at once with different KV caches (each call
 * uses the calling thread's own scratch and gqa_get_num_threads() threads). */
typedef struct gqa_model gqa_model;

typedef struct gqa_model_info {
    int32_t n_layers;     /* {arch}.block_count */
    int32_t n_embd;       /* {arch}.embedding_length */
    int32_t n_heads;      /* H: {arch}.attention.head_count */
    int32_t n_kv_heads;   /* G: {arch}.attention.head_count_kv (default H) */
    int32_t head_dim;     /* d: {arch}.attention.key_length, default n_embd / H */
    int32_t n_rot;        /* {arch}.rope.dimension_count, default d: the first
                           * n_rot dims of each head are rotated */
    int32_t n_ff;         /* {arch}.feed_forward_length */
    int32_t n_vocab;      /* rows of token_embd.weight */
    int32_t n_ctx_train;  /* {arch}.context_length (0 if absent) */
    float   rope_base;    /* {arch}.rope.freq_base, default 10000 */
    float   rms_eps;      /* {arch}.attention.layer_norm_rms_epsilon */
    int32_t tied_output;  /* 1: no output.weight, the classifier is token_embd */
    uint64_t n_params;    /* elements of all weight tensors */
    uint64_t weight_bytes;/* their bytes in the file */
    char    name[128];    /* general.name (truncated), or "" */
} gqa_model_info;

/* Load the model in the GGUF file at `path`; *out receives it (free with
 * gqa_model_free). Checks the architecture, every hyper-parameter and every
 * tensor's presence, type and shape before returning.
 * Errors: GQA_ERR_INVALID_ARG, GQA_ERR_IO (the file), GQA_ERR_FORMAT (a
 * malformed file, a missing key or tensor, a tensor of the wrong shape: named
 * in the message), GQA_ERR_UNSUPPORTED (another architecture, a weight type
 * gqa_matvec does not handle, RoPE scaling), GQA_ERR_NO_MEMORY. */
gqa_status gqa_model_load(const char *path, gqa_model **out);

/* The same for an open GGUF handle, borrowed: it must outlive the model. */
gqa_status gqa_model_load_gguf(const gqa_gguf *g, gqa_model **out);

/* The MHA twin of a GQA model: a new model computing the same function with
 * G = H, each KV head's K and V projection rows repeated for the H/G query
 * heads that share it (copied into memory the new model owns; the rest is
 * borrowed from `src`, which must outlive it). Used to show that the grouped
 * path equals the expanded one, and to measure what MHA would cost. */
gqa_status gqa_model_expand_kv(const gqa_model *src, gqa_model **out);

void gqa_model_free(gqa_model *m); /* NULL is fine */
gqa_status gqa_model_info_get(const gqa_model *m, gqa_model_info *info);
/* The file the model reads from (borrowed). */
const gqa_gguf *gqa_model_gguf(const gqa_model *m);

/* A KV cache configuration that fits the model: n_layers, G, d from the
 * model, the given dtype and block_tokens (0: 16) and budget_bytes. */
gqa_status gqa_model_kv_config(const gqa_model *m, gqa_dtype dtype, int32_t block_tokens,
                               uint64_t budget_bytes, gqa_kv_config *cfg);

/* One sequence's part of a forward call: its n_tokens new tokens are appended
 * to sequence `seq` of the cache (at positions len .. len + n_tokens - 1). */
typedef struct gqa_forward_item {
    int32_t        seq;
    const int32_t *tokens;     /* n_tokens ids in 0..n_vocab-1 */
    int64_t        n_tokens;   /* >= 1 */
    float         *logits;     /* NULL (none wanted), or n_vocab floats: the
                                * logits after the item's last token, or with
                                * all_logits n_tokens x n_vocab floats, one row
                                * per token */
    int32_t        all_logits;
} gqa_forward_item;

/* Run the model over every item's new tokens and append their K/V to the
 * cache (created with a gqa_model_kv_config of this model). Tokens of all
 * items go through each weight matrix together (a prompt is one batch;
 * decode steps of many sequences are one batch), in chunks of at most 512
 * tokens; attention reads each sequence's keys through its block table.
 * Errors: GQA_ERR_INVALID_ARG (NULL pointers, a token id out of range, the
 * same sequence twice, a cache whose shape does not fit the model),
 * GQA_ERR_CAPACITY (the cache has no room: every item's sequence is then
 * truncated back to its length before the call), GQA_ERR_NO_MEMORY. */
gqa_status gqa_model_forward(const gqa_model *m, gqa_kv_cache *cache,
                             const gqa_forward_item *items, int32_t n_items);

#ifdef __cplusplus
}
#endif

#endif /* GQA_MODEL_H */
