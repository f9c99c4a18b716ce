/* gqa_convert.h - public API of libgqa's convert layer: writing GGUF files and
 * changing the number of KV heads of a checkpoint (MHA -> GQA -> MQA, and
 * back with `repeat`). See docs/conversion.md.
 *
 * Conventions are those of gqa.h: every function that can fail returns a
 * gqa_status and leaves a message in gqa_last_error(); the library never
 * aborts, exits or prints.
 */
#ifndef GQA_CONVERT_H
#define GQA_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"
#include "gqa_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Progress of a long write: `done_bytes` of `total_bytes` (the output file's
 * size) are written. Called on the writing thread, first with 0, last with
 * done == total, and in between every few MiB. */
typedef void (*gqa_progress_fn)(void *user, int64_t done_bytes, int64_t total_bytes);

/* ----------------------------------------------------------- GGUF writer -- */
/* Builds a GGUF v3 file (little-endian) in memory-light form: metadata is
 * held by the writer, tensor data is borrowed or produced on demand at write
 * time, one tensor at a time, so a file much larger than memory can be
 * written from a mapped source.
 *
 * Layout written: header, key/values in the order they were first set,
 * tensor infos in the order added, zero padding to the alignment, then each
 * tensor's data at an offset that is a multiple of the alignment, each
 * followed by zero padding to the alignment (as llama.cpp and gguf-py do).
 * The alignment is the u32 value of the key general.alignment when it is set
 * (a power of two), else 32.
 *
 * A writer is not thread-safe; distinct writers may be used concurrently. */
typedef struct gqa_gguf_writer gqa_gguf_writer;

/* Produce the n_bytes bytes of one tensor into dst (writer-owned, n_bytes
 * long, 64-byte aligned). Return GQA_OK, or an error status: the write then
 * fails with it and leaves no output behind. gqa_last_error() is cleared
 * before the call; a callback that leaves it empty gets a message naming the
 * tensor. */
typedef gqa_status (*gqa_gguf_fill_fn)(void *user, void *dst, uint64_t n_bytes);

/* Create an empty writer; *out is NULL on failure. Errors: GQA_ERR_INVALID_ARG
 * (out NULL), GQA_ERR_NO_MEMORY. */
gqa_status gqa_gguf_writer_create(gqa_gguf_writer **out);
void gqa_gguf_writer_free(gqa_gguf_writer *w); /* NULL is fine */

/* ---- metadata ----
 * Every setter adds the key at the end, or replaces the value (and type) of a
 * key of that name already set, in place, keeping the order. Values are
 * copied. Errors: GQA_ERR_INVALID_ARG (NULL or empty key, NULL value, a type
 * the setter does not take), GQA_ERR_NO_MEMORY. */

/* Copy key i of src (its name, type and value bytes, byte for byte; arrays and
 * nested arrays included). GQA_ERR_INVALID_ARG for i out of range. */
gqa_status gqa_gguf_writer_copy_key(gqa_gguf_writer *w, const gqa_gguf *src, int64_t i);
/* Copy every key of src, in src's order. */
gqa_status gqa_gguf_writer_copy_keys(gqa_gguf_writer *w, const gqa_gguf *src);
/* A scalar of any fixed-size type (u8 ... f64, bool): `value` points to one
 * value of that type in host representation (bool: one byte, 0 or 1). */
gqa_status gqa_gguf_writer_set_scalar(gqa_gguf_writer *w, const char *key, gqa_gguf_type type,
                                      const void *value);
gqa_status gqa_gguf_writer_set_u32(gqa_gguf_writer *w, const char *key, uint32_t v);
gqa_status gqa_gguf_writer_set_f32(gqa_gguf_writer *w, const char *key, float v);
gqa_status gqa_gguf_writer_set_bool(gqa_gguf_writer *w, const char *key, int v);
/* A string of len bytes (not NUL-terminated; may contain any bytes). */
gqa_status gqa_gguf_writer_set_str(gqa_gguf_writer *w, const char *key, const char *s, size_t len);
/* An array of n fixed-size elements of elem_type, host representation, packed
 * (e.g. int32_t[n] for GQA_GGUF_TYPE_INT32). elems may be NULL when n == 0. */
gqa_status gqa_gguf_writer_set_arr(gqa_gguf_writer *w, const char *key, gqa_gguf_type elem_type,
                                   const void *elems, uint64_t n);
/* An array of n strings: strs[i] of lens[i] bytes, or NUL-terminated when
 * lens is NULL. */
gqa_status gqa_gguf_writer_set_arr_str(gqa_gguf_writer *w, const char *key, const char *const *strs,
                                       const size_t *lens, uint64_t n);

/* ---- tensors ----
 * dims in ggml order (dims[0] = row length, contiguous), n_dims 1..4, each
 * dim >= 1; dims[0] a multiple of the type's block size. The data size is
 * computed from the type and dims (gqa_gguf_type_block).
 * Errors: GQA_ERR_INVALID_ARG (NULL name, a name of 64 bytes or more - llama.cpp
 * rejects those -, a name already added, bad dims, a row length that is not
 * whole blocks, a size that overflows), GQA_ERR_UNSUPPORTED (ggml type id
 * unknown to this build), GQA_ERR_NO_MEMORY. */

/* `data`: the tensor's bytes, borrowed until gqa_gguf_writer_write returns
 * (typically a gqa_gguf_tensor_info's data in a mapped source file). */
gqa_status gqa_gguf_writer_add_tensor(gqa_gguf_writer *w, const char *name, uint32_t ggml_type,
                                      int32_t n_dims, const int64_t *dims, const void *data);
/* The same with the bytes produced by fill(user, ...) during the write;
 * `user` is borrowed until the write returns. */
gqa_status gqa_gguf_writer_add_tensor_fill(gqa_gguf_writer *w, const char *name, uint32_t ggml_type,
                                           int32_t n_dims, const int64_t *dims,
                                           gqa_gguf_fill_fn fill, void *user);

/* Write the file at `path`, atomically: everything goes to a new file
 * PATH.tmp-XXXXXX in the same directory, which is fsynced and then renamed
 * over PATH; PATH is never seen half-written. On any failure the temporary
 * file is removed and an existing PATH is left as it was. progress may be
 * NULL. The writer can be written again afterwards.
 * Errors: GQA_ERR_INVALID_ARG (NULL writer or path, general.alignment not a
 * u32 power of two), GQA_ERR_IO (cannot create, write - disk full included -,
 * sync or rename; the message names PATH and the system's reason),
 * GQA_ERR_NO_MEMORY, or the status of a fill callback. */
gqa_status gqa_gguf_writer_write(gqa_gguf_writer *w, const char *path, gqa_progress_fn progress,
                                 void *progress_user);

/* ------------------------------------------------------------ conversion -- */
/* How the new KV heads are made from the old ones. With G0 KV heads in the
 * file and G wanted, heads are grouped contiguously, as gqa_attention groups
 * query heads: new head j is made from old heads j*(G0/G) .. (j+1)*(G0/G) - 1
 * (G divides G0), or, for REPEAT, is a copy of old head j / (G/G0). */
typedef enum gqa_convert_method {
    GQA_CONVERT_MEAN = 0, /* average of the group's K (and V) rows, in double */
    GQA_CONVERT_FIRST,    /* the group's first head */
    GQA_CONVERT_RANDOM,   /* fresh N(0, s^2) values, s = RMS of the layer's original
                           * tensor; seeded, deterministic */
    GQA_CONVERT_REPEAT    /* GQA -> more KV heads (G a multiple of G0 dividing H):
                           * each old head copied to its G/G0 new slots */
} gqa_convert_method;

/* Element type of the converted K/V tensors (every other tensor is copied as
 * it is). KEEP: the input's type when it can be written (f32, f16, bf16,
 * q8_0, q4_0, q4_1), else f16; with FIRST or REPEAT, or MEAN over byte-identical
 * heads, a KEEP tensor's blocks are copied as they are, whatever the type.
 * 1-D tensors (biases) are never block-quantised: a q* choice writes them f32. */
typedef enum gqa_convert_out_type {
    GQA_CONVERT_KEEP = 0,
    GQA_CONVERT_F32,
    GQA_CONVERT_F16,
    GQA_CONVERT_BF16,
    GQA_CONVERT_Q8_0,
    GQA_CONVERT_Q4_0,
    GQA_CONVERT_Q4_1
} gqa_convert_out_type;

typedef struct gqa_convert_options {
    int32_t kv_heads;              /* G, the number of KV heads wanted (>= 1) */
    gqa_convert_method method;     /* default MEAN */
    uint64_t seed;                 /* RANDOM only */
    gqa_convert_out_type out_type; /* default KEEP */
    gqa_progress_fn progress;      /* NULL: none */
    void *progress_user;
} gqa_convert_options;

/* Defaults: kv_heads 0 (must be set), MEAN, seed 0, KEEP, no progress. */
void gqa_convert_options_default(gqa_convert_options *o);

/* Lower-case names ("mean", "first", "random", "repeat"; "keep", "f32", ...),
 * "unknown" for a value out of range. Never NULL. */
const char *gqa_convert_method_name(gqa_convert_method m);
const char *gqa_convert_out_type_name(gqa_convert_out_type t);

/* Convert the Llama-family GGUF file `in` to opts->kv_heads KV heads and write
 * it to `out` (atomically, as gqa_gguf_writer_write). Only the tensors
 * blk.N.attn_k.weight / attn_v.weight (and attn_k.bias / attn_v.bias when
 * present) change, as whole heads of head_dim rows - which keeps the RoPE row
 * permutation GGUF applies inside each K head valid; {arch}.attention.
 * head_count_kv is set to the new G (added when the file lacks it). Every other
 * tensor and key is copied byte for byte, in the same order (general.file_type
 * included, even when the K/V type changes: it describes the bulk of the file).
 * Errors: GQA_ERR_INVALID_ARG (NULL argument, kv_heads that does not fit the
 * method - G must divide G0 for MEAN/FIRST/RANDOM, be a multiple of G0 dividing
 * H for REPEAT -, an enum out of range, out naming the input file or a
 * directory, an out_type that cannot hold the rows), GQA_ERR_UNSUPPORTED
 * (general.architecture other than "llama", named; a tensor type that cannot
 * be dequantised for MEAN/RANDOM or is unknown to this build), GQA_ERR_FORMAT
 * (a malformed file; a missing or misshapen K/V tensor or hyper-parameter,
 * named), GQA_ERR_IO, GQA_ERR_NO_MEMORY. On failure no `out` is created and an
 * existing one is left as it was. */
gqa_status gqa_convert_gguf(const char *in, const char *out, const gqa_convert_options *opts);

/* The same for the Hugging Face model directory `in_dir` (config.json plus
 * model.safetensors, or shards listed by model.safetensors.index.json),
 * written as the new directory `out_dir`.
 * Accepted models: config.json's model_type "llama", "mistral" or "qwen2", or
 * architectures[0] LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM -
 * the families whose attention is q_proj/k_proj/v_proj/o_proj Linear layers
 * with heads as contiguous blocks of head_dim rows. Only
 * model.layers.N.self_attn.k_proj.weight / v_proj.weight ([G0*head_dim,
 * hidden], row-major, no RoPE permutation in HF checkpoints) and k_proj.bias /
 * v_proj.bias when present (Qwen2) change, by the same head arithmetic as
 * gqa_convert_gguf. Tensors must be F32, F16 or BF16; opts->out_type KEEP
 * keeps each K/V tensor's dtype, F32/F16/BF16 choose one (Q8_0/Q4_0/Q4_1 are
 * not safetensors dtypes: GQA_ERR_INVALID_ARG). Every other tensor is copied
 * byte for byte, each in the shard it was in (same shard files, index.json
 * rebuilt); config.json gets num_key_value_heads = G, every other key kept;
 * every other regular file (tokenizer, generation config, ...) is copied.
 * out_dir must not exist, or be an empty directory; it appears complete or
 * not at all (built under a temporary name, then renamed).
 * Errors: GQA_ERR_INVALID_ARG (as gqa_convert_gguf; out_dir existing and not
 * empty, or the input), GQA_ERR_UNSUPPORTED (another model family, named; a
 * K/V tensor that is not F32/F16/BF16; a fused qkv_proj), GQA_ERR_FORMAT (a
 * malformed directory; a missing or misshapen K/V tensor, named), GQA_ERR_IO,
 * GQA_ERR_NO_MEMORY. On failure nothing is left at out_dir. */
gqa_status gqa_convert_hf(const char *in_dir, const char *out_dir, const gqa_convert_options *opts);

/* Cross-format conversion of Llama models ("llama" GGUF files; HF model_type
 * "llama" / LlamaForCausalLM), changing the KV heads on the way as above
 * (kv_heads = the current count changes only the format).
 * Tensors are renamed (token_embd <-> model.embed_tokens, blk.N.attn_q <->
 * model.layers.N.self_attn.q_proj, attn_k/v/output <-> k/v/o_proj, ffn_gate/
 * up/down <-> mlp.gate/up/down_proj, attn_norm <-> input_layernorm, ffn_norm
 * <-> post_attention_layernorm, output_norm <-> model.norm, output <->
 * lm_head, absent when tied to the embeddings), and the rows of Q and K (and
 * their biases) are moved within each head between HF's order and the RoPE
 * order of llama.cpp's GGUF files (GGUF row 2i+j of a head is HF row
 * j*head_dim/2 + i). Any other tensor is GQA_ERR_UNSUPPORTED, named (a
 * rotary_emb.inv_freq buffer is dropped); RoPE scaling likewise.
 * opts->out_type is the type of every written tensor: KEEP keeps f32/f16/bf16
 * and writes quantised GGUF tensors as f16; a tensor whose type changes is
 * dequantised and re-encoded; one whose bytes need not change is copied. */

/* GGUF file `in` -> Hugging Face directory `out_dir` (model.safetensors with
 * __metadata__ {"format": "pt"}, and config.json built from the llama.*
 * keys: architectures, model_type, hidden_size, intermediate_size,
 * num_attention_heads, num_key_value_heads, num_hidden_layers, head_dim,
 * rms_norm_eps, rope_theta, max_position_embeddings (when the file has
 * llama.context_length), vocab_size, tie_word_embeddings, hidden_act,
 * attention_bias, torch_dtype, bos/eos_token_id (when present)), and,
 * when the file has tokenizer.ggml.tokens, tokenizer.json,
 * tokenizer_config.json and special_tokens_map.json (byte-level BPE only:
 * another tokenizer.ggml.model or an unknown pre-tokenizer is
 * GQA_ERR_UNSUPPORTED; docs/conversion.md). out_type F32/F16/BF16 or KEEP (q*:
 * GQA_ERR_INVALID_ARG). Quantised input types must be dequantisable (f16,
 * bf16, q8_0, q4_0, q4_1; else GQA_ERR_UNSUPPORTED). Errors as
 * gqa_convert_gguf and gqa_convert_hf. */
gqa_status gqa_convert_gguf_to_hf(const char *in, const char *out_dir,
                                  const gqa_convert_options *opts);

/* Hugging Face directory `in_dir` -> GGUF file `out` (written as
 * gqa_convert_gguf writes, replacing an existing file atomically), with
 * general.architecture "llama", general.name (the directory's name),
 * general.file_type, and the llama.* hyper-parameters gqa_model_load reads
 * (block_count, context_length from max_position_embeddings, embedding_length,
 * feed_forward_length, attention.head_count/_kv, attention.key_length/
 * value_length when config.json says head_dim, rope.dimension_count,
 * rope.freq_base (rope_theta, default 10000), attention.
 * layer_norm_rms_epsilon (rms_norm_eps, default 1e-6), vocab_size). 1-D
 * tensors (norms, biases) are written f32, as llama.cpp does; out_type may be
 * any type (q8_0/q4_0/q4_1 quantise every 2-D tensor). The directory's
 * tokenizer.json (when present) becomes the tokenizer.ggml.* keys, with
 * tokenizer_config.json's special tokens, add_bos_token and chat_template;
 * a tokenizer.json that is not byte-level BPE, or whose pre-tokenizer matches
 * no name the runtime knows, is GQA_ERR_UNSUPPORTED, token id gaps
 * GQA_ERR_FORMAT. Without tokenizer.json no tokenizer keys are written.
 * Errors as gqa_convert_gguf and gqa_convert_hf. */
gqa_status gqa_convert_hf_to_gguf(const char *in_dir, const char *out,
                                  const gqa_convert_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* GQA_CONVERT_H */
