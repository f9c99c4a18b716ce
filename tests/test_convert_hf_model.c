/* test_convert_hf_model.c - Hugging Face conversions of the real SmolLM2-135M
 * (H = 9, G0 = 3, head_dim 64; q4_1 weights, a q8_0 embedding table, f32
 * norms, tied classifier).
 *
 *   test_convert_hf_model WORK_DIR PYTHON CHECK_SCRIPT MODEL
 *
 * 1. GGUF -> HF (keep: quantised tensors as f16, norms f32; and mean to G = 1):
 *    check_convert_hf.py finds every HF tensor equal to gguf's dequantised
 *    tensor with Q/K rows un-permuted (and K/V pooled), and config.json right.
 * 2. GGUF -> HF (f32) -> GGUF (f32): the logits of a prompt equal the
 *    original's bitwise with the reference kernels (which dequantise and sum in
 *    double, so equal values give equal sums whatever their type); on the
 *    default kernels within float noise.
 * 3. GGUF -> HF (f32) -> GGUF (q4_1): every q4_1 tensor of the original comes
 *    back byte for byte (its blocks re-quantise to themselves).
 * 4. Pooling commutes with the RoPE permutation: GGUF -> HF (f32) -> HF mean
 *    to G = 1 -> GGUF gives the logits of GGUF -> GGUF mean to G = 1 (f32),
 *    bitwise with the reference kernels.
 * Without the model the test skips with a message, or fails when
 * GQA_REQUIRE_MODEL=1; GQA_MODEL_PATH overrides the path.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/conv_test_util.h"
#include "gqa.h"
#include "gqa_convert.h"
#include "gqa_model.h"
#include "test_util.h"

/* |a - b| <= ATOL + RTOL |b| between f32 and q4_1 weights of the same values
 * on the default kernels: their dot products sum in different orders and
 * precisions (the packed AVX-512 path quantises activations), measured
 * differences up to ~0.02 over 30 layers, as for the MHA twin in test_model. */
#define ATOL 0.05
#define RTOL 1e-4

static const char *work_dir;
static FILE *manifest;
static const int32_t prompt[] = {1, 504, 3458, 282, 4649, 314, 7042, 28, 284};
#define N_PROMPT ((int64_t)(sizeof prompt / sizeof prompt[0]))

static const char *wpath(const char *name)
{
    static char buf[16][4096];
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", work_dir, name);
    return buf[k];
}

static gqa_status convert(int kind, const char *in, const char *out, int32_t g,
                          gqa_convert_method m, gqa_convert_out_type t)
{
    static const char *const names[] = {"gguf", "hf", "gguf2hf", "hf2gguf"};
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = g, o.method = m, o.out_type = t;
    ct_remove(out);
    gqa_status s = kind == 0   ? gqa_convert_gguf(in, out, &o)
                   : kind == 1 ? gqa_convert_hf(in, out, &o)
                   : kind == 2 ? gqa_convert_gguf_to_hf(in, out, &o)
                               : gqa_convert_hf_to_gguf(in, out, &o);
    CHECK(s == GQA_OK, "%s %s -> %s (%d KV heads, %s, %s): %s", names[kind], in, out, (int)g,
          gqa_convert_method_name(m), gqa_convert_out_type_name(t), gqa_last_error());
    if (s == GQA_OK && kind == 2 && manifest)
        fprintf(manifest, "gguf2hf %s %s %d %s %s\n", in, out, (int)g, gqa_convert_method_name(m),
                gqa_convert_out_type_name(t));
    return s;
}

/* Logits of a and b: bitwise equal with the reference kernels, within
 * ATOL/RTOL on the default ones (skipped when `bitwise_only`). */
static void same_logits(const char *a, const char *b, const char *what, int bitwise_only)
{
    const char *saved = gqa_kernel_name();
    for (int pass = 0; pass < (bitwise_only ? 1 : 2); pass++) {
        if (pass == 0 && tu_select_kernel("ref") != 1)
            continue;
        if (pass == 1)
            gqa_set_kernel(saved);
        int32_t va = 0, vb = 0;
        float *la = ct_logits(a, prompt, N_PROMPT, &va), *lb = ct_logits(b, prompt, N_PROMPT, &vb);
        CHECK(la && lb && va == vb, "%s: both models run: %s", what, gqa_last_error());
        if (la && lb && va == vb && pass == 0) {
            CHECK(!memcmp(la, lb, (size_t)N_PROMPT * (size_t)va * sizeof *la),
                  "%s: logits bitwise equal (ref kernels)", what);
        } else if (la && lb && va == vb) {
            char label[256];
            snprintf(label, sizeof label, "%s (%s kernels)", what, saved);
            tu_check ck;
            tu_check_begin(&ck, label, ATOL, RTOL, 1, va);
            tu_check_range(&ck, lb, la, 0, N_PROMPT * va);
            tu_check_report(&ck);
            CHECK(tu_check_ok(&ck), "%s", label);
        }
        free(la), free(lb);
    }
    gqa_set_kernel(saved);
}

/* Every tensor of type `type` in a has the same bytes in b. */
static int same_tensors_of_type(const char *a_path, const char *b_path, uint32_t type, int *n)
{
    gqa_gguf *a = NULL, *b = NULL;
    int same = gqa_gguf_open(a_path, &a) == GQA_OK && gqa_gguf_open(b_path, &b) == GQA_OK;
    *n = 0;
    for (int64_t i = 0; same && i < gqa_gguf_n_tensors(a); i++) {
        gqa_gguf_tensor_info ta, tb;
        if (gqa_gguf_tensor_at(a, i, &ta) != GQA_OK || ta.ggml_type != type)
            continue;
        same = gqa_gguf_tensor(b, ta.name, &tb) == GQA_OK && tb.ggml_type == type &&
               tb.n_bytes == ta.n_bytes && !memcmp(ta.data, tb.data, ta.n_bytes);
        *n += same;
    }
    gqa_gguf_close(a);
    gqa_gguf_close(b);
    return same;
}

static void test_model(const char *model)
{
    const gqa_convert_method MEAN = GQA_CONVERT_MEAN;
    convert(2, model, wpath("hf_keep"), 3, MEAN, GQA_CONVERT_KEEP);
    convert(2, model, wpath("hf_mqa"), 1, MEAN, GQA_CONVERT_KEEP);
    const char *hf = wpath("hf_f32"), *back = wpath("back_f32.gguf"), *q41 = wpath("back_q41.gguf");
    if (convert(2, model, hf, 3, MEAN, GQA_CONVERT_F32) != GQA_OK)
        return;
    if (convert(3, hf, back, 3, MEAN, GQA_CONVERT_KEEP) == GQA_OK)
        same_logits(model, back, "GGUF -> HF -> GGUF (f32) vs the original (q4_1)", 0);
    int n = 0;
    CHECK(convert(3, hf, q41, 3, MEAN, GQA_CONVERT_Q4_1) == GQA_OK &&
              same_tensors_of_type(model, q41, GQA_GGML_TYPE_Q4_1, &n) && n == 210,
          "GGUF -> HF (f32) -> GGUF (q4_1): the %d q4_1 tensors of the original back byte for "
          "byte (210 expected)",
          n);
    const char *hf1 = wpath("hf_f32_mqa"), *via_hf = wpath("mqa_via_hf.gguf");
    const char *direct = wpath("mqa_direct.gguf");
    if (convert(1, hf, hf1, 1, MEAN, GQA_CONVERT_KEEP) == GQA_OK &&
        convert(3, hf1, via_hf, 1, MEAN, GQA_CONVERT_KEEP) == GQA_OK &&
        convert(0, model, direct, 1, MEAN, GQA_CONVERT_F32) == GQA_OK)
        same_logits(direct, via_hf, "mean to G = 1 in HF order == in GGUF (RoPE) order", 1);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        printf("usage: test_convert_hf_model WORK_DIR PYTHON CHECK_SCRIPT MODEL\n");
        return 2;
    }
    work_dir = argv[1];
    const char *model;
    const int have = tu_model_path(argv[4], &model);
    if (have <= 0)
        return have < 0 ? 1 : 0;
    mkdir(work_dir, 0777);
    char list[4096], cmd[16384];
    snprintf(list, sizeof list, "%s/manifest.txt", work_dir);
    manifest = fopen(list, "w");
    CHECK(manifest != NULL, "create %s", list);
    test_model(model);
    if (manifest)
        fclose(manifest);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", argv[2], argv[3], list);
    fflush(stdout);
    CHECK(manifest && system(cmd) == 0, "check_convert_hf.py agrees: %s", cmd);
    static const char *const outputs[] = {"hf_keep",         "hf_mqa",         "hf_f32",
                                          "back_f32.gguf",   "back_q41.gguf",  "hf_f32_mqa",
                                          "mqa_via_hf.gguf", "mqa_direct.gguf"};
    for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++) /* ~100-550 MB each */
        ct_remove(wpath(outputs[i]));
    return tu_summary();
}
