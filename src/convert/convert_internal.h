/* convert_internal.h - the convert layer's private interface: the K/V head
 * arithmetic and the K/V tensor producer shared by every checkpoint format
 * (GGUF: convert.c; Hugging Face safetensors: convert_hf.c; between them:
 * cross_format.c), and the row encoders the writers use. Not installed.
 *
 * A K or V projection is viewed as G heads, each a block of `head_elems`
 * contiguous values: a weight of G*d rows x cols (row-major, rows grouped by
 * head, as both GGUF and HF store it) has head_elems = d * cols; its bias has
 * head_elems = d. Whatever order the rows have *inside* a head (GGUF permutes
 * K rows for RoPE, HF does not) is preserved, because heads move only whole.
 */
#ifndef GQA_CONVERT_INTERNAL_H
#define GQA_CONVERT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "gqa_convert.h"

/* Check that going from g0 to g KV heads with h query heads works for
 * `method`: MEAN/FIRST/RANDOM need 1 <= g and g0 % g == 0; REPEAT needs
 * g % g0 == 0 and h % g == 0. GQA_ERR_INVALID_ARG with a message naming the
 * numbers otherwise. */
gqa_status gqa_conv_check_heads(int32_t h, int32_t g0, int32_t g, gqa_convert_method method);

/* Old heads that new head j (0 <= j < g) is made from: *first .. *first +
 * *count - 1 (REPEAT and FIRST: one head; MEAN: the group of g0/g; RANDOM: the
 * group, although its values do not depend on them). */
void gqa_conv_members(int32_t g0, int32_t g, gqa_convert_method method, int32_t j, int32_t *first,
                      int32_t *count);

/* One K/V tensor's change of heads. */
typedef struct gqa_conv_heads {
    gqa_convert_method method;
    int32_t g0, g;      /* old and new head counts (checked) */
    int64_t head_elems; /* values per head */
    double rms;         /* RANDOM: the scale, gqa_conv_rms of the old tensor */
    uint64_t seed;      /* RANDOM: this tensor's stream, gqa_conv_stream */
} gqa_conv_heads;

/* New head j as head_elems floats at dst, from the old tensor src (g0 heads
 * of f32). MEAN sums the members in double in head order and rounds once;
 * RANDOM draws head j's values from its own stream (seed, j), so any head can
 * be made alone and the result does not depend on the order heads are made. */
void gqa_conv_head_f32(const gqa_conv_heads *c, const float *src, int32_t j, float *dst);

/* All g new heads at dst (g * head_elems floats): gqa_conv_head_f32 for each. */
void gqa_conv_heads_f32(const gqa_conv_heads *c, const float *src, float *dst);

/* Root mean square of n floats, accumulated in double (0 for n == 0). */
double gqa_conv_rms(const float *x, int64_t n);

/* A stream seed for one tensor: the user's seed mixed with two small ids
 * (layer, and which tensor: K weight, V weight, K bias, V bias). */
uint64_t gqa_conv_stream(uint64_t seed, uint64_t a, uint64_t b);

/* Which K/V tensor of a layer: part of its RANDOM stream (gqa_conv_stream's
 * second id), the same in every format, so a seed means the same draws. */
enum { GQA_CONV_K_W = 0, GQA_CONV_V_W, GQA_CONV_K_B, GQA_CONV_V_B, GQA_CONV_N_KIND };

/* One K/V tensor of any checkpoint format given new heads: the source is
 * g0 heads of heads.head_elems values of ggml type in_type (f32/f16/bf16 for
 * safetensors, whose encodings are GGUF's), the result g heads of out_type. */
typedef struct gqa_conv_kv {
    const char *name;     /* the input tensor's name, for messages (borrowed) */
    const void *data;     /* the old tensor's bytes, any alignment (borrowed) */
    uint32_t in_type;     /* ggml type id of data */
    gqa_conv_heads heads; /* g0 -> g heads; rms is computed by the calls below */
    uint32_t out_type;    /* ggml type id of the result, gqa_conv_writable */
} gqa_conv_kv;

/* The old head whose bytes new head j can be copied from, or -1 when it must
 * be computed (see kv_tensor.c for when a copy is exact). */
int32_t gqa_conv_kv_copy_source(const gqa_conv_kv *t, int32_t j);
/* GQA_ERR_UNSUPPORTED naming the tensor when some head must be computed and
 * in_type cannot be dequantised. */
gqa_status gqa_conv_kv_check(const gqa_conv_kv *t);
/* All g new heads as f32 at dst (g * head_elems floats), computed from the
 * dequantised old tensor (never copied bytes). GQA_ERR_UNSUPPORTED for a type
 * that cannot be dequantised, GQA_ERR_NO_MEMORY. */
gqa_status gqa_conv_kv_f32(const gqa_conv_kv *t, float *dst);
/* The writers' fill callback (gqa_gguf_fill_fn / gqa_st_fill_fn): user is a
 * const gqa_conv_kv *; writes the g heads in out_type, n_bytes in all. */
gqa_status gqa_conv_kv_fill(void *user, void *dst, uint64_t n_bytes);

/* ggml types the encoder writes: f32, f16, bf16, q8_0, q4_0, q4_1. */
int gqa_conv_writable(uint32_t ggml_type);

/* The ggml type a converted tensor is written in (see gqa_convert_out_type):
 * KEEP gives in_type when writable, else f16; n_dims == 1 turns a q* type
 * into f32. */
uint32_t gqa_conv_out_type(gqa_convert_out_type t, uint32_t in_type, int32_t n_dims);

/* Encode n floats (a multiple of the type's block size) as `ggml_type` at
 * dst (any alignment; little-endian). The q* quantisers follow ggml's
 * reference rules bit for bit (quantize_row_q8_0_ref, _q4_0_ref, _q4_1_ref:
 * the f32 scale's inverse rounds the quants, the f16-rounded scale is
 * stored). Errors: GQA_ERR_UNSUPPORTED (type not writable),
 * GQA_ERR_INVALID_ARG (a non-finite value in a q* block - the caller names
 * the tensor). */
gqa_status gqa_conv_encode(uint32_t ggml_type, const float *src, int64_t n, void *dst);

/* ------------------------------------------------- shared by converters -- */
/* Checks every gqa_convert_* makes first: non-NULL, non-empty paths, method
 * and out_type in range. `fn` names the API call in the message.
 * GQA_ERR_INVALID_ARG. */
gqa_status gqa_conv_check_options(const char *fn, const char *in, const char *out,
                                  const gqa_convert_options *o);
/* An output file: not the input (same path, or the same file by device and
 * inode) and not a directory. GQA_ERR_INVALID_ARG. */
gqa_status gqa_conv_check_out_file(const char *in, const char *out);

/* The attention shape of a "llama" GGUF file (convert.c). */
typedef struct gqa_conv_gguf_shape {
    int32_t n_layers, h, g0; /* block_count, head_count, head_count_kv (default h) */
    int32_t dk, dv;          /* key_length (default n_embd / h), value_length (default dk) */
} gqa_conv_gguf_shape;

/* general.architecture must be "llama" (GQA_ERR_UNSUPPORTED naming it);
 * then the keys above, each a positive integer of at most 2^24
 * (GQA_ERR_FORMAT, GQA_ERR_UNSUPPORTED for a per-layer array). */
gqa_status gqa_conv_gguf_read_shape(const gqa_gguf *g, gqa_conv_gguf_shape *m);
/* One such integer key; `dflt` when absent and dflt > 0, else required. */
gqa_status gqa_conv_gguf_int(const gqa_gguf *g, const char *key, int32_t dflt, int32_t *out);

/* ------------------------------------------------------ atomic output -- */
/* A file written under a temporary name next to its final path and renamed
 * over it only when complete and synced, so a reader never sees it half
 * written and a failure (disk full included) leaves no trace: every writer
 * of the convert layer (GGUF, safetensors) writes through one.
 *
 * gqa_afile_open creates PATH.tmp-XXXXXX (mode 0666 less the umask) in the
 * directory of `path`; `total` is the size the caller will write, for
 * progress reports (progress may be NULL). Writes are buffered. Any failing
 * call leaves the file failed: later writes return the same status, and the
 * caller must still end with gqa_afile_commit or gqa_afile_abort. Commit
 * flushes, fsyncs, closes, renames over `path` and fsyncs the directory;
 * abort (or a failed commit) removes the temporary file. Both free f.
 * Errors: GQA_ERR_IO naming `path` (and the temporary name) with the system's
 * reason, GQA_ERR_NO_MEMORY, GQA_ERR_INVALID_ARG (NULL). */
typedef struct gqa_afile gqa_afile;

gqa_status gqa_afile_open(const char *path, uint64_t total, gqa_progress_fn progress,
                          void *progress_user, gqa_afile **out);
gqa_status gqa_afile_write(gqa_afile *f, const void *p, uint64_t n);
/* Zeros up to the next multiple of `align` (a power of two) of the position. */
gqa_status gqa_afile_pad(gqa_afile *f, uint64_t align);
/* Bytes written so far. */
uint64_t gqa_afile_pos(const gqa_afile *f);
gqa_status gqa_afile_commit(gqa_afile *f);
void gqa_afile_abort(gqa_afile *f); /* NULL is fine */

#endif
