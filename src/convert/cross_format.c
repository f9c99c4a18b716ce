/* cross_format.c - the format-neutral half of GGUF <-> Hugging Face
 * conversion of Llama checkpoints (cross_format.h): the tensor names of both
 * formats, the RoPE row permutation, the plan and the tensor producer.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/cross_format.h"
#include "model/quant.h"

/* ------------------------------------------------------------- names -- */

enum { SEC_HEAD, SEC_LAYER, SEC_TAIL };

/* One Llama tensor in both formats. Per-layer names are the part after
 * "blk.N." (GGUF) and "model.layers.N." (HF), as llama.cpp's tensor map
 * (gguf-py/gguf/tensor_mapping.py) pairs them. */
typedef struct llama_slot {
    int section;
    const char *gguf, *hf;
    int need;    /* every Llama checkpoint has it */
    int n_dims;  /* 1 (norms, biases) or 2 */
    char role;   /* 'q', 'k', 'v': rows are heads; 'c': the classifier; else 0 */
    int kv_kind; /* GQA_CONV_*, or -1 */
} llama_slot;

static const llama_slot slots[] = {
    {SEC_HEAD, "token_embd.weight", "model.embed_tokens.weight", 1, 2, 0, -1},
    {SEC_LAYER, "attn_norm.weight", "input_layernorm.weight", 1, 1, 0, -1},
    {SEC_LAYER, "attn_q.weight", "self_attn.q_proj.weight", 1, 2, 'q', -1},
    {SEC_LAYER, "attn_k.weight", "self_attn.k_proj.weight", 1, 2, 'k', GQA_CONV_K_W},
    {SEC_LAYER, "attn_v.weight", "self_attn.v_proj.weight", 1, 2, 'v', GQA_CONV_V_W},
    {SEC_LAYER, "attn_output.weight", "self_attn.o_proj.weight", 1, 2, 0, -1},
    {SEC_LAYER, "attn_q.bias", "self_attn.q_proj.bias", 0, 1, 'q', -1},
    {SEC_LAYER, "attn_k.bias", "self_attn.k_proj.bias", 0, 1, 'k', GQA_CONV_K_B},
    {SEC_LAYER, "attn_v.bias", "self_attn.v_proj.bias", 0, 1, 'v', GQA_CONV_V_B},
    {SEC_LAYER, "attn_output.bias", "self_attn.o_proj.bias", 0, 1, 0, -1},
    {SEC_LAYER, "ffn_norm.weight", "post_attention_layernorm.weight", 1, 1, 0, -1},
    {SEC_LAYER, "ffn_gate.weight", "mlp.gate_proj.weight", 1, 2, 0, -1},
    {SEC_LAYER, "ffn_up.weight", "mlp.up_proj.weight", 1, 2, 0, -1},
    {SEC_LAYER, "ffn_down.weight", "mlp.down_proj.weight", 1, 2, 0, -1},
    {SEC_TAIL, "output_norm.weight", "model.norm.weight", 1, 1, 0, -1},
    {SEC_TAIL, "output.weight", "lm_head.weight", 0, 2, 'c', -1},
};
#define N_SLOTS       (sizeof slots / sizeof slots[0])
#define N_LAYER_SLOTS 13
#define N_OTHER_SLOTS 3
_Static_assert(N_SLOTS == N_LAYER_SLOTS + N_OTHER_SLOTS, "slot counts");

static void slot_name(const llama_slot *e, int hf, int32_t layer, char *dst)
{
    const char *n = hf ? e->hf : e->gguf;
    if (e->section != SEC_LAYER)
        snprintf(dst, GQA_XF_NAME, "%s", n);
    else
        snprintf(dst, GQA_XF_NAME, hf ? "model.layers.%d.%s" : "blk.%d.%s", (int)layer, n);
}

/* ------------------------------------------------------- permutation -- */

/* llama.cpp's convert_hf_to_gguf.py permutes the rows of Q and K within each
 * head so that ggml's RoPE, which rotates adjacent pairs (x[2i], x[2i+1]),
 * computes what HF's rotate_half does on (x[i], x[i + d/2]): GGUF row 2i + j
 * of a head holds HF row j*d/2 + i (i < d/2, j = 0, 1). This gives, for
 * output row r, the source row it comes from. */
static int64_t perm_src_row(int64_t r, int64_t d, int to_gguf)
{
    const int64_t base = r / d * d, k = r % d, half = d / 2;
    if (to_gguf) /* GGUF row k = 2i + j  <-  HF row j*half + i */
        return base + (k % 2) * half + k / 2;
    return base + 2 * (k % half) + k / half; /* HF row j*half + i  <-  GGUF row 2i + j */
}

/* --------------------------------------------------------------- plan -- */

static int is_float(uint32_t t)
{
    return t == GQA_GGML_TYPE_F32 || t == GQA_GGML_TYPE_F16 || t == GQA_GGML_TYPE_BF16;
}

/* Every tensor is re-encoded in the type asked for; KEEP keeps float types
 * and makes quantised ones f16. GGUF gets 1-D tensors in f32, as llama.cpp's
 * converter writes them (norms are applied in f32 everywhere). */
static uint32_t out_type_of(int to_gguf, gqa_convert_out_type t, uint32_t in, int32_t n_dims)
{
    if (to_gguf && n_dims == 1)
        return GQA_GGML_TYPE_F32;
    if (t == GQA_CONVERT_KEEP)
        return is_float(in) ? in : GQA_GGML_TYPE_F16;
    return gqa_conv_out_type(t, in, n_dims);
}

/* Rows of Q/K/V: whole heads, the number the hyper-parameters say. */
static gqa_status check_rows(const gqa_xf_plan *p, const llama_slot *e, const gqa_xf_src *src)
{
    const int32_t heads = e->role == 'q' ? p->h : p->g0;
    const int64_t rows = (int64_t)heads * p->head_dim;
    if (src->rows != rows)
        return gqa_fail(GQA_ERR_FORMAT, "tensor %s has %lld rows, expected %lld (%d heads of %d)",
                        src->name, (long long)src->rows, (long long)rows, (int)heads,
                        (int)p->head_dim);
    if ((e->role == 'q' || e->role == 'k') && p->head_dim % 2 != 0)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "head dimension %d is odd: RoPE needs pairs",
                        (int)p->head_dim);
    return GQA_OK;
}

/* What happens to the tensor on the way: heads, permutation, types. */
static gqa_status plan_transform(gqa_xf_plan *p, const gqa_convert_options *o, const llama_slot *e,
                                 int32_t layer, gqa_xf_tensor *t)
{
    const gqa_xf_src *src = &t->src;
    t->out_type = out_type_of(p->to_gguf, o->out_type, src->type, src->n_dims);
    t->is_kv = e->kv_kind >= 0;
    t->rows = t->is_kv ? (int64_t)o->kv_heads * p->head_dim : src->rows;
    t->cols = src->cols;
    t->perm_heads = e->role == 'q' ? p->h : e->role == 'k' ? o->kv_heads : 0;
    t->copy = !t->is_kv && !t->perm_heads && t->out_type == src->type;
    gqa_conv_kv *kv = &t->kv;
    kv->name = src->name, kv->data = src->data, kv->in_type = src->type;
    kv->out_type = t->out_type;
    kv->heads.method = o->method;
    kv->heads.g0 = p->g0;
    kv->heads.g = o->kv_heads;
    kv->heads.head_elems = p->head_dim * src->cols;
    kv->heads.seed =
        gqa_conv_stream(o->seed, (uint64_t)layer, (uint64_t)(t->is_kv ? e->kv_kind : 0));
    int64_t be, bb;
    gqa_gguf_type_block(t->out_type, &be, &bb);
    if (t->cols % be != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "tensor %s: rows of %lld values cannot be stored as %s (blocks of %lld)",
                        src->name, (long long)t->cols, gqa_gguf_type_name(t->out_type),
                        (long long)be);
    if (t->is_kv && !t->perm_heads)
        return gqa_conv_kv_check(kv); /* gqa_conv_kv_fill may copy blocks */
    if (!t->copy && !gqa_quant_supported(src->type))
        return gqa_fail(GQA_ERR_UNSUPPORTED,
                        "tensor %s has type %s, which cannot be dequantised (f32, f16, bf16, "
                        "q8_0, q4_0, q4_1 can)",
                        src->name, gqa_gguf_type_name(src->type));
    return GQA_OK;
}

static gqa_status plan_slot(gqa_xf_plan *p, const gqa_convert_options *o, const llama_slot *e,
                            int32_t layer, gqa_xf_find_fn find, void *user)
{
    char src_name[GQA_XF_NAME];
    slot_name(e, p->to_gguf, layer, src_name);
    gqa_xf_tensor *t = &p->t[p->n];
    int found = 0;
    gqa_status s = find(user, src_name, &t->src, &found);
    if (s != GQA_OK)
        return s;
    if (!found) {
        if (e->role == 'c')
            p->tied = 1;
        return e->need ? gqa_fail(GQA_ERR_FORMAT, "the model lacks the tensor %s", src_name)
                       : GQA_OK;
    }
    if (t->src.n_dims != e->n_dims)
        return gqa_fail(GQA_ERR_FORMAT, "tensor %s has %d dimensions, expected %d", src_name,
                        (int)t->src.n_dims, e->n_dims);
    if (e->role == 'q' || e->role == 'k' || e->role == 'v')
        if ((s = check_rows(p, e, &t->src)) != GQA_OK)
            return s;
    if (strstr(e->gguf, ".bias"))
        p->has_bias = 1;
    slot_name(e, !p->to_gguf, layer, t->name);
    t->n_dims = t->src.n_dims;
    t->to_gguf = p->to_gguf;
    if ((s = plan_transform(p, o, e, layer, t)) != GQA_OK)
        return s;
    p->n++;
    return GQA_OK;
}

gqa_status gqa_xf_plan_make(gqa_xf_plan *p, const gqa_convert_options *o, gqa_xf_find_fn find,
                            void *user)
{
    p->t = NULL, p->n = 0, p->tied = 0, p->has_bias = 0, p->g = o->kv_heads;
    gqa_status s = gqa_conv_check_heads(p->h, p->g0, o->kv_heads, o->method);
    if (s != GQA_OK)
        return s;
    /* every layer needs its own tensors: a count beyond that is a lie, refused
     * before sizing anything by it */
    if (p->n_layers < 1 || p->n_layers > p->n_src_tensors / 2)
        return gqa_fail(GQA_ERR_FORMAT, "the model declares %d layers but has only %lld tensors",
                        (int)p->n_layers, (long long)p->n_src_tensors);
    p->t = calloc((size_t)p->n_layers * N_LAYER_SLOTS + N_OTHER_SLOTS, sizeof *p->t);
    if (!p->t)
        return gqa_fail(GQA_ERR_NO_MEMORY, "convert: out of memory");
    for (int sec = SEC_HEAD; sec <= SEC_TAIL; sec++) {
        const int32_t n_layers = sec == SEC_LAYER ? p->n_layers : 1;
        for (int32_t l = 0; l < n_layers; l++)
            for (size_t k = 0; k < N_SLOTS; k++)
                if (slots[k].section == sec &&
                    (s = plan_slot(p, o, &slots[k], l, find, user)) != GQA_OK)
                    return s;
    }
    return GQA_OK;
}

void gqa_xf_plan_free(gqa_xf_plan *p)
{
    if (p) {
        free(p->t);
        p->t = NULL, p->n = 0;
    }
}

/* --------------------------------------------------------------- fill -- */

uint64_t gqa_xf_bytes(const gqa_xf_tensor *t)
{
    int64_t be = 1, bb = 0;
    gqa_gguf_type_block(t->out_type, &be, &bb);
    return (uint64_t)t->rows * (uint64_t)(t->cols / be * bb);
}

static gqa_status encode_rows(const gqa_xf_tensor *t, const float *x, unsigned char *dst)
{
    int64_t be, bb;
    gqa_gguf_type_block(t->out_type, &be, &bb);
    const size_t row_bytes = (size_t)(t->cols / be * bb);
    gqa_status s = GQA_OK;
    if (!t->perm_heads)
        return gqa_conv_encode(t->out_type, x, t->rows * t->cols, dst);
    const int64_t d = t->rows / t->perm_heads;
    for (int64_t r = 0; s == GQA_OK && r < t->rows; r++) {
        const int64_t from = perm_src_row(r, d, t->to_gguf);
        s = gqa_conv_encode(t->out_type, x + (size_t)from * (size_t)t->cols, t->cols,
                            dst + (size_t)r * row_bytes);
    }
    return s;
}

gqa_status gqa_xf_fill(void *user, void *dst, uint64_t n_bytes)
{
    const gqa_xf_tensor *t = user;
    if (t->is_kv && !t->perm_heads)
        return gqa_conv_kv_fill((void *)&t->kv, dst, n_bytes);
    if (gqa_xf_bytes(t) != n_bytes)
        return gqa_fail(GQA_ERR_INVALID_ARG, "tensor %s: %llu bytes asked, %llu computed", t->name,
                        (unsigned long long)n_bytes, (unsigned long long)gqa_xf_bytes(t));
    const int64_t n = t->rows * t->cols;
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    if (!x)
        return gqa_fail(GQA_ERR_NO_MEMORY, "tensor %s: out of memory", t->name);
    gqa_status s = GQA_OK;
    if (t->is_kv)
        s = gqa_conv_kv_f32(&t->kv, x);
    else
        gqa_dequant_row_ref(t->src.type, t->src.data, n, x);
    if (s == GQA_OK && (s = encode_rows(t, x, dst)) != GQA_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", gqa_last_error());
        s = gqa_fail(s, "tensor %s: %s", t->name, msg);
    }
    free(x);
    return s;
}

double gqa_xf_float_decimal(float f)
{
    char buf[40];
    for (int prec = 1; prec <= 9; prec++) { /* 9 significant digits always read back */
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f)
            break;
    }
    return strtod(buf, NULL);
}
