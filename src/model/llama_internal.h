/* llama_internal.h - the loaded Llama-family model, shared by llama.c
 * (loading, checks, MHA expansion) and forward.c (the forward pass). */
#ifndef GQA_MODEL_LLAMA_INTERNAL_H
#define GQA_MODEL_LLAMA_INTERNAL_H

#include <stdint.h>

#include "gqa_model.h"
#include "model/packed.h"

/* A weight matrix: rows x cols elements of a ggml type, rows densely packed
 * (the bytes of a GGUF tensor with dims[0] = cols, dims[1] = rows). */
typedef struct llama_weight {
    uint32_t type;
    const void *data; /* borrowed from the mapping, or owned by the model */
    int64_t rows, cols;
    packed_weight packed; /* the same weights in the packed layout (packed.data
                           * in the model's packed_mem), or packed.data NULL */
} llama_weight;

typedef struct llama_layer {
    const float *attn_norm; /* n_embd, in the model's norms */
    const float *ffn_norm;  /* n_embd, in the model's norms */
    llama_weight wq;        /* H*d x n_embd (rows permuted by the GGUF converter
                             * for adjacent-pair RoPE, see forward.c) */
    llama_weight wk, wv;    /* G*d x n_embd */
    llama_weight wo;        /* n_embd x H*d */
    llama_weight w_gate;    /* n_ff x n_embd */
    llama_weight w_up;      /* n_ff x n_embd */
    llama_weight w_down;    /* n_embd x n_ff */
} llama_layer;

struct gqa_model {
    gqa_model_info info;
    const gqa_gguf *gguf; /* the file (owned when owns_gguf) */
    int owns_gguf;
    llama_layer *layers;       /* n_layers */
    llama_weight tok_embd;     /* n_vocab x n_embd */
    llama_weight output;       /* n_vocab x n_embd (= tok_embd when tied) */
    const float *out_norm;     /* n_embd, in norms */
    float *norms;              /* (2 n_layers + 1) x n_embd floats, owned: every
                                * norm weight as f32 (layer il's attention norm
                                * at row 2 il, its MLP norm at 2 il + 1, the
                                * final norm last) */
    float *rope_inv_freq;      /* n_rot / 2: base^(-2i/n_rot), owned */
    void *owned;               /* expanded K/V weights of an MHA twin, or NULL */
    unsigned char *packed_mem; /* every packed weight, owned (NULL when the
                                * kernel set has no packed kernel at load) */
};

/* One RMSNorm row of the forward pass: out = x / rms(x) * w over E floats
 * (sum of squares in double); returns 1 / rms(x). The trainer
 * (src/train/ops.c) uses this very function, so both compute the same. */
float gqa_llama_rms_norm_row(const float *x, const float *w, int64_t E, float eps, float *out);

#endif
