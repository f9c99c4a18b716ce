/* gqa_train.h - public API of libgqa's training layer: a trainable
 * Llama-style model (f32 master weights) with forward and backward passes,
 * AdamW, a byte-level data loader and GGUF checkpoints that the runtime
 * (gqa_model_load) reads. See docs/training.md.
 *
 * Conventions are those of gqa.h: every function that can fail returns a
 * gqa_status and leaves a message in gqa_last_error(); the library never
 * aborts, exits or prints. Every computation is bitwise deterministic for a
 * given seed and thread count (gqa_set_num_threads).
 */
#ifndef GQA_TRAIN_H
#define GQA_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- model -- */
/* The function is exactly the runtime's (src/model/forward.c) for the GGUF
 * file gqa_train_save writes: token embedding -> n_layers x [RMSNorm ->
 * Q/K/V -> RoPE on adjacent pairs (2i, 2i+1) of every head, theta_i =
 * rope_base^(-2i/head_dim) -> causal GQA attention -> output projection ->
 * residual -> RMSNorm -> SwiGLU (down(SiLU(gate x) * up x)) -> residual] ->
 * RMSNorm -> classifier (token_embd when tied_output). */
typedef struct gqa_train_config {
    int32_t n_vocab;     /* >= 1 (byte-level data needs >= 256) */
    int32_t n_layers;    /* >= 1 */
    int32_t n_embd;      /* E >= 1 */
    int32_t n_heads;     /* H >= 1 */
    int32_t n_kv_heads;  /* G, divides H */
    int32_t head_dim;    /* d, even, 2..256 */
    int32_t n_ff;        /* F >= 1 */
    int32_t n_ctx;       /* longest sequence trained on (positions 0..n_ctx-1) */
    float rope_base;     /* > 1, e.g. 10000 */
    float rms_eps;       /* >= 0, e.g. 1e-5 */
    int32_t tied_output; /* nonzero: the classifier is token_embd (no output.weight) */
} gqa_train_config;

typedef struct gqa_train_model gqa_train_model;

/* One parameter tensor, as it appears in the GGUF file. data and grad are
 * borrowed from the model: dims[0] x dims[1] floats (dims[0] the row length;
 * a 1-D tensor has n_dims 1 and dims[1] 1). decay: whether AdamW applies
 * weight decay to it (2-D projection matrices yes; norms and the embedding
 * table no). */
typedef struct gqa_train_tensor {
    const char *name;
    int32_t n_dims;
    int64_t dims[2];
    float *data;
    float *grad;
    int32_t decay;
} gqa_train_tensor;

/* A new model with weights drawn from N(0, 0.02^2) (the output projections
 * attn_output and ffn_down scaled by 1/sqrt(2 n_layers)), norms 1, from a
 * splitmix64 stream per tensor seeded by `seed`: the same seed gives the same
 * weights bitwise on any machine. Errors: GQA_ERR_INVALID_ARG (a config
 * field out of range, named), GQA_ERR_NO_MEMORY. */
gqa_status gqa_train_model_create(const gqa_train_config *cfg, uint64_t seed,
                                  gqa_train_model **out);
/* A trainable copy of the Llama GGUF model at `path` (any weight type the
 * runtime reads, dequantised to f32). n_ctx is llama.context_length (256 when
 * absent). Errors: those of gqa_model_load, GQA_ERR_UNSUPPORTED for partial
 * RoPE (rope.dimension_count != head_dim), GQA_ERR_NO_MEMORY. */
gqa_status gqa_train_model_from_gguf(const char *path, gqa_train_model **out);
void gqa_train_model_free(gqa_train_model *m); /* NULL is fine */

const gqa_train_config *gqa_train_model_config(const gqa_train_model *m);
int32_t gqa_train_model_n_tensors(const gqa_train_model *m);
/* Tensor i (0..n_tensors-1) into *t. GQA_ERR_INVALID_ARG for i out of range. */
gqa_status gqa_train_model_tensor(const gqa_train_model *m, int32_t i, gqa_train_tensor *t);
/* All parameters / gradients as one flat array of n_params floats (the
 * tensors in tensor order, each starting at a multiple of 16 floats; the
 * padding between them is always zero). Borrowed. */
int64_t gqa_train_model_n_params(const gqa_train_model *m);
float *gqa_train_model_params(gqa_train_model *m);
float *gqa_train_model_grads(gqa_train_model *m);

/* Forward over B sequences of T tokens each (positions 0..T-1 of each):
 * tokens: B x T ids in 0..n_vocab-1; targets: NULL, or B x T ids (the token
 * each position should predict). With targets, *loss (may be NULL then)
 * receives the mean cross-entropy over the B*T positions (natural log).
 * logits: NULL, or B x T x n_vocab floats, written. Keeps what
 * gqa_train_model_backward needs (activation buffers grow to the largest
 * B*T seen and are then reused). T <= n_ctx.
 * Errors: GQA_ERR_INVALID_ARG (NULL pointers, B or T < 1, T > n_ctx, an id
 * out of range - named), GQA_ERR_NO_MEMORY, and gqa_attention's. */
gqa_status gqa_train_model_forward(gqa_train_model *m, const int32_t *tokens,
                                   const int32_t *targets, int32_t B, int32_t T, float *loss,
                                   float *logits);
/* Backward of the last forward (which must have had targets): ADDS the
 * gradient of scale * loss to every parameter's gradient (so micro-batches
 * accumulate; use scale = 1 / n_micro). Errors: GQA_ERR_INVALID_ARG (no
 * forward with targets before), GQA_ERR_NO_MEMORY, gqa_attention_backward's. */
gqa_status gqa_train_model_backward(gqa_train_model *m, float scale);
void gqa_train_model_zero_grad(gqa_train_model *m);

/* ------------------------------------------------------------ optimiser -- */
/* AdamW with decoupled weight decay (Loshchilov & Hutter):
 *   g = grad * min(1, clip / ||grad||)          (global L2 norm; clip 0: off)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr_t * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p)
 * where wd applies only to tensors with decay set. lr_t: linear warmup from
 * lr / warmup to lr over the first `warmup_steps` steps, then cosine decay to
 * min_lr at total_steps (min_lr after). */
typedef struct gqa_train_optim_config {
    float lr, min_lr; /* peak and final learning rate */
    float beta1, beta2, eps;
    float weight_decay;
    float clip;           /* max global gradient norm; 0: no clipping */
    int64_t warmup_steps; /* >= 0 */
    int64_t total_steps;  /* >= 1: the length of the schedule */
} gqa_train_optim_config;

/* lr 3e-4, min_lr 3e-5, betas 0.9 / 0.95, eps 1e-8, weight decay 0.1,
 * clip 1, warmup 0, total_steps 1. */
void gqa_train_optim_config_default(gqa_train_optim_config *c);
/* The learning rate of step `step` (0-based) under c. */
float gqa_train_lr(const gqa_train_optim_config *c, int64_t step);

typedef struct gqa_train_optim gqa_train_optim;
/* Moments sized for m, zeroed, at step 0. GQA_ERR_INVALID_ARG for a config
 * out of range (named), GQA_ERR_NO_MEMORY. */
gqa_status gqa_train_optim_create(const gqa_train_model *m, const gqa_train_optim_config *c,
                                  gqa_train_optim **out);
void gqa_train_optim_free(gqa_train_optim *o); /* NULL is fine */
/* One update of m's parameters from its gradients (left as they are: zero
 * them before the next accumulation). grad_norm / lr (each may be NULL)
 * receive the global norm before clipping and the learning rate used.
 * GQA_ERR_INVALID_ARG when m is not the size o was made for. */
gqa_status gqa_train_optim_step(gqa_train_optim *o, gqa_train_model *m, float *grad_norm,
                                float *lr);
int64_t gqa_train_optim_steps(const gqa_train_optim *o); /* updates done */
const gqa_train_optim_config *gqa_train_optim_get_config(const gqa_train_optim *o);
/* Change the schedule / hyper-parameters (a resumed run keeps the moments). */
gqa_status gqa_train_optim_set_config(gqa_train_optim *o, const gqa_train_optim_config *c);

/* ----------------------------------------------------------------- data -- */
/* A text corpus as byte tokens (id = byte value, vocabulary 256). Fixed
 * split: the first n - n/10 bytes are training data, the last n/10 bytes
 * (10%) validation, whatever the seed. */
typedef struct gqa_train_data gqa_train_data;

/* Read the whole file. Errors: GQA_ERR_IO (named), GQA_ERR_INVALID_ARG
 * (fewer than 20 bytes), GQA_ERR_NO_MEMORY. */
gqa_status gqa_train_data_open(const char *path, gqa_train_data **out);
/* The same from n bytes in memory (copied). */
gqa_status gqa_train_data_from_memory(const void *bytes, size_t n, gqa_train_data **out);
void gqa_train_data_free(gqa_train_data *d); /* NULL is fine */
int64_t gqa_train_data_train_tokens(const gqa_train_data *d);
int64_t gqa_train_data_val_tokens(const gqa_train_data *d);

/* Training micro-batch `micro` of optimiser step `step`: B windows of T + 1
 * consecutive training bytes, each starting at a position drawn from
 * splitmix64(seed, step, micro, row) - a pure function of those, so a
 * resumed run reads the same windows. tokens, targets: B x T (targets are
 * tokens shifted by one). GQA_ERR_INVALID_ARG when T + 1 exceeds the
 * training bytes. */
gqa_status gqa_train_data_batch(const gqa_train_data *d, uint64_t seed, int64_t step, int32_t micro,
                                int32_t B, int32_t T, int32_t *tokens, int32_t *targets);
/* Validation windows of length T: consecutive, non-overlapping windows of
 * T + 1 bytes from the start of the validation bytes (at most max_windows;
 * max_windows 0: all). Returns how many (0 when T + 1 exceeds them). */
int64_t gqa_train_data_val_windows(const gqa_train_data *d, int32_t T, int64_t max_windows);
/* The mean loss of m over those windows, B at a time. */
gqa_status gqa_train_eval(gqa_train_model *m, const gqa_train_data *d, int32_t B, int32_t T,
                          int64_t max_windows, float *loss);

/* One optimiser step: zero the gradients, run `accum` micro-batches of B x T
 * (gqa_train_data_batch for step gqa_train_optim_steps(o) under `seed`)
 * forward and backward with scale 1/accum, then gqa_train_optim_step.
 * loss (may be NULL): the mean training loss of the micro-batches;
 * grad_norm, lr as gqa_train_optim_step. */
gqa_status gqa_train_step(gqa_train_model *m, gqa_train_optim *o, const gqa_train_data *d,
                          uint64_t seed, int32_t B, int32_t T, int32_t accum, float *loss,
                          float *grad_norm, float *lr);

/* ----------------------------------------------------------- checkpoints -- */
/* A checkpoint is a GGUF file the runtime loads (general.architecture
 * "llama", the llama.* hyper-parameters, f32 tensors with the llama.cpp
 * names, and a byte-level "gpt2" tokenizer with no merges: ids 0..255 are the
 * bytes in GPT-2's byte-to-unicode spelling, ids from 256 up are control
 * tokens "<|endoftext|>", "<|special_1|>", ...; BOS = EOS = 256 when the
 * vocabulary has it) plus the gqa.train.* keys of gqa_train_meta. The
 * optimiser state (moments, step, schedule) goes to a sidecar file,
 * gqa_train_opt_path(path): the model file stays a plain model that
 * gqa convert can change without carrying stale moments. */
typedef struct gqa_train_meta {
    int64_t steps;        /* gqa.train.steps: optimiser steps in these weights, in total */
    int64_t tokens;       /* gqa.train.tokens: training tokens seen, in total */
    uint64_t seed;        /* gqa.train.seed */
    int32_t batch;        /* gqa.train.batch (sequences per micro-batch) */
    int32_t seq_len;      /* gqa.train.seq_len */
    int32_t accum;        /* gqa.train.accum (micro-batches per step) */
    int64_t source_steps; /* gqa.train.source_steps: steps of the model this one was
                           * uptrained from (0: trained from scratch) */
    float val_loss;       /* gqa.train.val_loss (NaN: not measured) */
} gqa_train_meta;

/* "X.opt.gguf" for "X.gguf", else path + ".opt.gguf", into buf (cap bytes).
 * GQA_ERR_INVALID_ARG if it does not fit. */
gqa_status gqa_train_opt_path(const char *path, char *buf, size_t cap);
/* Write m (and, when o is not NULL, o to the sidecar) atomically.
 * name: general.name (NULL: "gqa-train"). Errors: those of
 * gqa_gguf_writer_write, GQA_ERR_INVALID_ARG. */
gqa_status gqa_train_save(const gqa_train_model *m, const gqa_train_optim *o,
                          const gqa_train_meta *meta, const char *name, const char *path);
/* Read a checkpoint: the model (as gqa_train_model_from_gguf), the meta keys
 * (absent ones 0, val_loss NaN) when meta is not NULL, and, when o is not
 * NULL, the optimiser from the sidecar (GQA_ERR_IO when it is missing,
 * GQA_ERR_FORMAT when its tensors do not fit the model). */
gqa_status gqa_train_load(const char *path, gqa_train_model **m, gqa_train_optim **o,
                          gqa_train_meta *meta);

#ifdef __cplusplus
}
#endif

#endif /* GQA_TRAIN_H */
