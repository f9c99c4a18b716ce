/* hf_internal.h - safetensors files and Hugging Face model directories:
 * reading and writing. Internal to libgqa (used by `gqa convert`); not
 * installed. See docs/safetensors.md.
 *
 * Conventions are those of the public headers: every function that can fail
 * returns a gqa_status and leaves a message in gqa_last_error(); nothing here
 * aborts, exits or prints. Handles are opaque, close/free accept NULL, and
 * everything an accessor returns is borrowed from the handle.
 *
 * Files are untrusted: a safetensors header is validated completely at open
 * (see safetensors.c for the list), so after a successful open no accessor
 * can read outside the file.
 */
#ifndef GQA_CONVERT_HF_INTERNAL_H
#define GQA_CONVERT_HF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"
#include "gqa_convert.h" /* gqa_progress_fn */

struct cJSON; /* <cJSON.h>; only pointers cross this header */

/* ------------------------------------------------------------- dtypes -- */
/* Every dtype the safetensors format (0.8) defines, named as in the header
 * JSON ("F32", "BF16", ...). All are parsed and size-checked; only F32, F16
 * and BF16 are "supported" in the sense that the converter computes on them.
 * A dtype string not in this list makes the file GQA_ERR_FORMAT (its byte
 * size, and so the whole layout, cannot be checked). */
typedef enum gqa_st_dtype {
    GQA_ST_BOOL = 0,
    GQA_ST_F4,      /* 4 bits: two per byte */
    GQA_ST_F6_E2M3, /* 6 bits */
    GQA_ST_F6_E3M2, /* 6 bits */
    GQA_ST_U8,
    GQA_ST_I8,
    GQA_ST_F8_E5M2,
    GQA_ST_F8_E4M3,
    GQA_ST_F8_E8M0,
    GQA_ST_F8_E4M3FNUZ,
    GQA_ST_F8_E5M2FNUZ,
    GQA_ST_I16,
    GQA_ST_U16,
    GQA_ST_F16,
    GQA_ST_BF16,
    GQA_ST_I32,
    GQA_ST_U32,
    GQA_ST_F32,
    GQA_ST_C64,
    GQA_ST_F64,
    GQA_ST_I64,
    GQA_ST_U64,
    GQA_ST_N_DTYPES
} gqa_st_dtype;

/* The dtype's name in the header ("F32"), or "unknown" for an invalid id. */
const char *gqa_st_dtype_name(int dtype);
/* Bits per element (4, 6, 8, 16, 32, 64), or 0 for an invalid id. */
int gqa_st_dtype_bits(int dtype);
/* 1 for F32, F16 and BF16, else 0. */
int gqa_st_dtype_supported(int dtype);
/* The ggml type id (gqa_ggml_type in gqa_model.h) of F32/F16/BF16 into *out:
 * 1 on success, 0 for any other dtype. */
int gqa_st_dtype_to_ggml(int dtype, uint32_t *out);
/* The inverse: the dtype of ggml type f32 (0), f16 (1) or bf16 (30) into *out
 * (may be NULL): 1 on success, 0 for any other type. */
int gqa_st_dtype_from_ggml(uint32_t ggml_type, int *out);
/* The dtype whose header name is `name` (exact, case-sensitive), or -1. */
int gqa_st_dtype_from_name(const char *name);

/* ------------------------------------------------------------ reading -- */
/* Highest rank accepted. The format allows any; a Llama checkpoint has 1 and
 * 2, conv weights 3-5. A higher rank is GQA_ERR_UNSUPPORTED. */
#define GQA_ST_MAX_DIMS 8
/* Largest header accepted, as in the reference implementation (100 MB). */
#define GQA_ST_MAX_HEADER 100000000u

/* One tensor of an open file. All pointers are borrowed from the handle. */
typedef struct gqa_st_tensor {
    const char *name; /* NUL-terminated, valid UTF-8 */
    gqa_st_dtype dtype;
    int32_t n_dims;                 /* 0 (a scalar) .. GQA_ST_MAX_DIMS */
    int64_t shape[GQA_ST_MAX_DIMS]; /* row-major: shape[0] is the outermost
                                     * dimension, shape[n_dims-1] the contiguous one
                                     * (a Linear weight [out][in] is {out, in});
                                     * entries past n_dims are 1 */
    int64_t n_elements;             /* product of shape (1 for a scalar; may be 0) */
    uint64_t n_bytes;               /* n_elements * bits / 8 */
    uint64_t offset;                /* data_offsets[0]: relative to the data section */
    const void *data;               /* n_bytes bytes in the mapping, read-only. The
                                     * data section starts 8-byte aligned in files we
                                     * write (and in most others) but the format does
                                     * not require it: check before casting. Never
                                     * NULL, even for 0 bytes. */
} gqa_st_tensor;

typedef struct gqa_st_file gqa_st_file;

/* Open and validate the safetensors file at `path` (memory-mapped; the file
 * must not be truncated while open). *out is NULL on failure.
 * Errors: GQA_ERR_INVALID_ARG (NULL argument), GQA_ERR_IO (cannot open, stat
 * or map it, not a regular file: the path and the system's reason),
 * GQA_ERR_FORMAT (malformed: the path, the problem, the tensor involved),
 * GQA_ERR_UNSUPPORTED (rank above GQA_ST_MAX_DIMS), GQA_ERR_NO_MEMORY. */
gqa_status gqa_st_open(const char *path, gqa_st_file **out);
/* The same for `size` bytes at `data`, borrowed until gqa_st_close (any
 * alignment). Same errors except GQA_ERR_IO. */
gqa_status gqa_st_open_memory(const void *data, size_t size, gqa_st_file **out);
void gqa_st_close(gqa_st_file *f); /* NULL is fine */

/* Tensors in data order (ascending data_offsets), 0..n-1. */
int64_t gqa_st_n_tensors(const gqa_st_file *f);
/* Tensor i, or NULL when i is out of range. */
const gqa_st_tensor *gqa_st_tensor_at(const gqa_st_file *f, int64_t i);
/* Index of the tensor named `name`, or -1 (no error recorded). O(log n). */
int64_t gqa_st_find(const gqa_st_file *f, const char *name);
/* Absolute file offset of the data section (8 + header length); file size. */
uint64_t gqa_st_data_offset(const gqa_st_file *f);
uint64_t gqa_st_file_size(const gqa_st_file *f);

/* "__metadata__": a string -> string map, in header order. Keys and values
 * are NUL-terminated and borrowed; out-of-range i gives NULL. */
int64_t gqa_st_n_meta(const gqa_st_file *f);
const char *gqa_st_meta_key(const gqa_st_file *f, int64_t i);
const char *gqa_st_meta_value(const gqa_st_file *f, int64_t i);
/* The value of `key`, or NULL when absent. */
const char *gqa_st_meta_get(const gqa_st_file *f, const char *key);

/* ------------------------------------------------------------ writing -- */
/* Produce the n_bytes bytes of one tensor into dst (writer-owned, n_bytes
 * long, 64-byte aligned). The same signature as gqa_gguf_fill_fn, so one
 * producer serves both writers. Return GQA_OK, or a status with gqa_fail's
 * message: the write then fails with it and leaves no output behind. */
typedef gqa_status (*gqa_st_fill_fn)(void *user, void *dst, uint64_t n_bytes);

/* One tensor to write. */
typedef struct gqa_st_out_tensor {
    const char *name;               /* NUL-terminated UTF-8, unique, not "__metadata__" */
    int32_t dtype;                  /* a gqa_st_dtype */
    int32_t n_dims;                 /* 0 .. GQA_ST_MAX_DIMS */
    int64_t shape[GQA_ST_MAX_DIMS]; /* row-major, each >= 0 */
    const void *data;               /* exactly product(shape) * bits / 8 bytes, borrowed
                                     * until the write returns (typically a tensor of a
                                     * mapped source file); or NULL, and then: */
    gqa_st_fill_fn fill;            /* produces the bytes at write time, one tensor at a
                                     * time, so a caller never holds all of them */
    void *fill_user;                /* passed to fill, borrowed until the write returns */
} gqa_st_out_tensor;

/* Write a safetensors file at `path`: the header lists "__metadata__" (when
 * n_meta > 0: meta_keys[i] -> meta_values[i], unique keys) and then the
 * tensors in data order. Data order is the given order, stably sorted by
 * element size, largest first (as the reference writer does), so that with
 * the data section 8-byte aligned (the header is padded with spaces) every
 * tensor starts aligned to its element size; data_offsets are contiguous.
 * Written atomically through gqa_afile (convert_internal.h): a temporary
 * file next to `path`, fsync'ed and renamed over it; on any error the
 * temporary file is removed and `path` is untouched. progress (may be NULL)
 * sees the bytes of the file.
 * Errors: GQA_ERR_INVALID_ARG (NULL pointers, bad dtype, rank or shape, a
 * duplicate or reserved name, invalid UTF-8, a size that overflows, neither
 * data nor fill), GQA_ERR_IO (the path and the system's reason, e.g. "No
 * space left on device"), GQA_ERR_NO_MEMORY, or a fill callback's status. */
gqa_status gqa_st_write(const char *path, const gqa_st_out_tensor *tensors, int64_t n_tensors,
                        const char *const *meta_keys, const char *const *meta_values,
                        int64_t n_meta, gqa_progress_fn progress, void *progress_user);

/* The data size of one tensor to write (product(shape) * bits / 8), after
 * the checks gqa_st_write makes of it (name, dtype, rank, shape, overflow).
 * GQA_ERR_INVALID_ARG naming the problem. */
gqa_status gqa_st_out_bytes(const gqa_st_out_tensor *t, uint64_t *bytes);

/* The size in bytes gqa_st_write would give the file (header included), for
 * progress totals over several files. Same argument checks and errors. */
gqa_status gqa_st_write_size(const gqa_st_out_tensor *tensors, int64_t n_tensors,
                             const char *const *meta_keys, const char *const *meta_values,
                             int64_t n_meta, uint64_t *size);

/* ------------------------------------------- Hugging Face directories -- */
/* A model directory: config.json, and the weights in model.safetensors or in
 * shards listed by model.safetensors.index.json ("weight_map": tensor ->
 * shard file name). If both exist the index wins (as in transformers). */

typedef struct gqa_hf_config {
    char architecture[128]; /* architectures[0], or "" (truncated if longer) */
    char model_type[64];    /* model_type, or "" */
    int32_t n_heads;        /* num_attention_heads (required) */
    int32_t n_kv_heads;     /* num_key_value_heads; default n_heads */
    int32_t hidden_size;    /* hidden_size (required) */
    int32_t head_dim;       /* head_dim; default hidden_size / n_heads */
    int32_t n_layers;       /* num_hidden_layers (required) */
    int32_t has_n_kv_heads; /* 1 when config.json says num_key_value_heads */
    int32_t has_head_dim;   /* 1 when config.json says head_dim */
} gqa_hf_config;

typedef struct gqa_hf_dir gqa_hf_dir;

/* Open the directory at `path`: parse config.json, open and validate every
 * shard (each once), check that the index and the shards agree (every
 * tensor in the weight_map is in its shard, every shard tensor is in the
 * weight_map, no name in two shards). *out is NULL on failure.
 * Errors: GQA_ERR_INVALID_ARG, GQA_ERR_IO (a missing config.json or weights
 * file, named), GQA_ERR_FORMAT (malformed JSON or safetensors, a required
 * key missing or out of range, H % G != 0, an index naming a file outside
 * the directory), GQA_ERR_UNSUPPORTED, GQA_ERR_NO_MEMORY. */
gqa_status gqa_hf_open(const char *path, gqa_hf_dir **out);
void gqa_hf_close(gqa_hf_dir *d); /* NULL is fine */

const gqa_hf_config *gqa_hf_config_get(const gqa_hf_dir *d);
/* The parsed config.json (a cJSON object, borrowed, read-only), for keys
 * gqa_hf_config does not carry (rms_norm_eps, rope_theta, ...). */
const struct cJSON *gqa_hf_config_json(const gqa_hf_dir *d);
/* Number value of a top-level config key: 1 and *out when present and a
 * number, else 0 (no error recorded). */
int gqa_hf_config_number(const gqa_hf_dir *d, const char *key, double *out);
/* The directory path as given (borrowed). */
const char *gqa_hf_path(const gqa_hf_dir *d);

/* Weight files: 1 when the directory is sharded (index.json), and the shard
 * files in the order of first appearance in the weight_map (model.safetensors
 * alone when not sharded). */
int gqa_hf_sharded(const gqa_hf_dir *d);
int32_t gqa_hf_n_shards(const gqa_hf_dir *d);
const char *gqa_hf_shard_name(const gqa_hf_dir *d, int32_t s); /* NULL if out of range */
const gqa_st_file *gqa_hf_shard(const gqa_hf_dir *d, int32_t s);

/* Tensors across shards: shard by shard, each in data order. */
int64_t gqa_hf_n_tensors(const gqa_hf_dir *d);
const gqa_st_tensor *gqa_hf_tensor_at(const gqa_hf_dir *d, int64_t i); /* NULL if out of range */
int32_t gqa_hf_tensor_shard(const gqa_hf_dir *d, int64_t i);           /* -1 if out of range */
/* Index of the tensor named `name` across all shards, or -1 (no error). */
int64_t gqa_hf_find(const gqa_hf_dir *d, const char *name);
/* The tensor named `name`; GQA_ERR_FORMAT naming it (and the directory) when
 * absent: a model lacking a tensor it needs is malformed. */
gqa_status gqa_hf_tensor(const gqa_hf_dir *d, const char *name, const gqa_st_tensor **out);

/* Write the model directory `out_path` from the open directory `src`:
 * - the weights are `tensors` (typically src's tensors, some replaced),
 *   with src's layout: one model.safetensors, or the same shard files, each
 *   tensor in the shard its name has in src (a name src lacks goes to the
 *   last shard; a shard left without tensors is not written), each shard
 *   keeping its __metadata__; a sharded directory
 *   gets src's index.json with "weight_map" rebuilt and metadata.total_size
 *   (sum of tensor bytes) updated, every other key kept;
 * - config.json is src's with num_key_value_heads set to n_kv_heads (> 0; a
 *   key that was absent is appended), every other key kept in order;
 * - every other regular file of src (tokenizer files, generation_config.json,
 *   ...) is copied byte for byte, except other weight files (*.safetensors,
 *   *.bin, *.pth, *.pt, *.ckpt, *.h5, *.msgpack, *.gguf, *.onnx and
 *   *.index.json: stale copies of the weights); symlinks are followed (a
 *   dangling one is GQA_ERR_IO), subdirectories are skipped.
 * All of it is written into a temporary directory next to out_path, fsync'ed
 * and renamed to out_path at the end; on any error the temporary directory is
 * removed. out_path must not exist, or be an empty directory. progress (may
 * be NULL) sees the bytes of all weight files together.
 * Errors: GQA_ERR_INVALID_ARG (NULL, n_kv_heads <= 0, bad tensors as for
 * gqa_st_write, out_path existing and not empty, or being src), GQA_ERR_IO
 * (named path and reason), GQA_ERR_NO_MEMORY, a fill callback's status. */
gqa_status gqa_hf_write(const gqa_hf_dir *src, const char *out_path,
                        const gqa_st_out_tensor *tensors, int64_t n_tensors, int32_t n_kv_heads,
                        gqa_progress_fn progress, void *progress_user);

/* Write a new model directory with no source (e.g. from a GGUF file):
 * config.json from `config` (a cJSON object, printed with cJSON_Print) and a
 * single model.safetensors with __metadata__ {"format": "pt"}. Same
 * temporary-directory discipline and errors as gqa_hf_write. Tokenizer files
 * are the caller's business (write them into out_path afterwards). */
gqa_status gqa_hf_write_new(const char *out_path, const struct cJSON *config,
                            const gqa_st_out_tensor *tensors, int64_t n_tensors,
                            gqa_progress_fn progress, void *progress_user);

#endif
