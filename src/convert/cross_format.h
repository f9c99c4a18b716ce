/* cross_format.h - converting Llama checkpoints between GGUF and Hugging
 * Face safetensors (gguf_to_hf.c, hf_to_gguf.c), and the Hugging Face family
 * checks of convert_hf.c. Internal; not installed.
 *
 * A plan lists every tensor of the output in a canonical order (embeddings,
 * layer by layer, final norm, classifier), each with its source tensor, its
 * output name, shape and type, and what happens on the way: nothing (the
 * bytes are borrowed), a change of type, a change of KV heads (gqa_conv_kv,
 * the arithmetic every converter shares) and/or the RoPE row permutation of
 * Q and K. The plan is format-neutral: each direction supplies a lookup of
 * its source tensors and turns the plan into its writer's tensor list.
 */
#ifndef GQA_CONVERT_CROSS_FORMAT_H
#define GQA_CONVERT_CROSS_FORMAT_H

#include <stdint.h>

#include "convert/convert_internal.h"
#include "convert/hf_internal.h"

/* GQA_OK when the directory's config.json names a family gqa_convert_hf
 * accepts (llama_only: Llama itself); GQA_ERR_UNSUPPORTED naming it. */
gqa_status gqa_conv_hf_family(const gqa_hf_dir *d, int llama_only);
/* GQA_OK for KEEP/F32/F16/BF16; GQA_ERR_INVALID_ARG (not a safetensors dtype). */
gqa_status gqa_conv_hf_out_type(gqa_convert_out_type t);

#define GQA_XF_NAME 96 /* longest output tensor name, NUL included */

/* One source tensor, viewed as a matrix: rows x cols, row-major (cols
 * contiguous; GGUF dims {cols, rows}, HF shape [rows, cols]); a 1-D tensor
 * of n values is n rows of 1. */
typedef struct gqa_xf_src {
    const char *name; /* borrowed from the source */
    uint32_t type;    /* ggml type id (HF: F32 0, F16 1, BF16 30) */
    int32_t n_dims;   /* 1 or 2 */
    int64_t rows, cols;
    const void *data; /* borrowed, any alignment */
} gqa_xf_src;

/* Look the source tensor `name` up: *found = 0 (and GQA_OK) when absent; an
 * error for a tensor that exists but cannot be read (unknown type, rank > 2).
 * The lookup marks what it returns as used, for the caller's check that
 * nothing was left behind. */
typedef gqa_status (*gqa_xf_find_fn)(void *user, const char *name, gqa_xf_src *src, int *found);

typedef struct gqa_xf_tensor {
    char name[GQA_XF_NAME]; /* output name */
    int32_t n_dims;         /* as the source's */
    int64_t rows, cols;     /* output matrix (rows change for K/V) */
    uint32_t out_type;      /* ggml type id */
    gqa_xf_src src;
    int copy;           /* 1: the output bytes are src.data's */
    int is_kv;          /* kv.heads apply */
    gqa_conv_kv kv;     /* the source, heads and out_type, for the shared producers */
    int32_t perm_heads; /* > 0: the output rows are perm_heads heads whose rows move
                         * between HF and GGUF RoPE order */
    int to_gguf;        /* direction of that move */
} gqa_xf_tensor;

typedef struct gqa_xf_plan {
    int to_gguf;
    int32_t n_layers, h, g0, g; /* from the source's hyper-parameters; g wanted */
    int32_t head_dim;           /* K and V */
    int64_t n_src_tensors;      /* tensors in the source, to bound n_layers by */
    int tied;                   /* 1: no classifier tensor (tied to the embeddings) */
    int has_bias;               /* some attention bias is present */
    gqa_xf_tensor *t;           /* n entries, malloc'd */
    int64_t n;
} gqa_xf_plan;

/* Plan the output from the source. The caller sets to_gguf, n_layers, h, g0,
 * head_dim, n_src_tensors; the plan checks the heads for opts (gqa_conv_check_heads), the
 * presence and rank of every Llama tensor, the shapes of Q/K/V, and that each
 * tensor's type can be read and written (a q* out_type needs rows of whole
 * blocks). GQA_ERR_FORMAT naming a missing or misshapen tensor,
 * GQA_ERR_UNSUPPORTED, GQA_ERR_INVALID_ARG, GQA_ERR_NO_MEMORY. */
gqa_status gqa_xf_plan_make(gqa_xf_plan *p, const gqa_convert_options *opts, gqa_xf_find_fn find,
                            void *user);
void gqa_xf_plan_free(gqa_xf_plan *p);

/* The writers' fill callback for a planned tensor that is not a copy: user
 * is a const gqa_xf_tensor *. */
gqa_status gqa_xf_fill(void *user, void *dst, uint64_t n_bytes);

/* Bytes of the output tensor. */
uint64_t gqa_xf_bytes(const gqa_xf_tensor *t);

/* The shortest decimal that reads back as the float f, as a double (for
 * JSON: 1e-05, not 9.999999747378752e-06). */
double gqa_xf_float_decimal(float f);

#endif
