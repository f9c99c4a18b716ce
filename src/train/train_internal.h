/* train_internal.h - the trainable model's layout, shared by the training
 * layer's files (internal; not installed). */
#ifndef GQA_TRAIN_INTERNAL_H
#define GQA_TRAIN_INTERNAL_H

#include <stdint.h>

#include "gqa_train.h"

/* One parameter tensor: name as in GGUF, ggml-order dims, offset in the flat
 * parameter (and gradient) array. */
typedef struct train_tensor {
    char name[64];
    int32_t n_dims;
    int64_t dims[2];
    int64_t off, n;
    int32_t decay;
} train_tensor;

/* Pointers to one layer's tensors (into params or into grads). */
typedef struct train_layer {
    float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *wg, *wu, *wd;
} train_layer;

struct gqa_train_model {
    gqa_train_config cfg;
    int32_t n_tensors;
    train_tensor *tensors;
    int64_t n_params;
    float *params, *grads;            /* n_params each, 64-byte aligned */
    train_layer *P, *G;               /* n_layers: parameters, gradients */
    float *tok_embd, *out_norm, *out; /* out == tok_embd when tied */
    float *g_tok_embd, *g_out_norm, *g_out;

    /* activations of the last forward, for up to cap_rows = B*T rows */
    int64_t cap_rows;
    float *acts;        /* see model.c: layer blocks, then the head, then scratch */
    int32_t *tok, *tgt; /* cap_rows each: copies of the last batch */
    float *rope;        /* rope_T x head_dim: cos/sin table */
    int64_t rope_T;
    int32_t B, T;
    int ready; /* a forward with targets is waiting for its backward */
};

/* Find tensor `name`: its index, or -1. */
int32_t gqa_train_find_tensor(const gqa_train_model *m, const char *name);

/* The optimiser's first (which 0) or second (1) moments: n_params floats in
 * the model's layout; and its step counter (checkpoint.c reads and restores
 * them). */
float *gqa_train_optim_moment(gqa_train_optim *o, int which);
void gqa_train_optim_set_step(gqa_train_optim *o, int64_t step);

#endif
