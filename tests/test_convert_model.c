/* test_convert_model.c - gqa_convert_gguf on the real SmolLM2-135M (H = 9,
 * G0 = 3, head_dim 64, K/V in q4_1).
 *
 *   test_convert_model WORK_DIR PYTHON CHECK_SCRIPT MODEL
 *
 * 1. repeat to G = 9 (MHA): q4_1 blocks are copied, the model loads, and its
 *    logits for a prompt equal the original's (f32 KV cache) within float
 *    noise - the first proof that the conversion keeps the function.
 * 2. mean back to G = 3: the original file, byte for byte.
 * 3. repeat to 9 as f32, then mean back to 3: as f32, the original K/V values
 *    exactly; as q4_1 (dequantise, average, requantise), the original blocks
 *    byte for byte. The latter holds for this file because its blocks come
 *    from ggml's reference q4_1 quantiser, whose output re-quantises to itself;
 *    blocks from an importance-matrix quantiser need not (docs/conversion.md).
 * 4. mean, first and random to G = 1 (MQA) load and give finite logits.
 * 5. check_convert.py (PyPI gguf + NumPy) agrees with repeat-9, mean-1 and
 *    the q4_1 round trip byte for byte.
 * Without the model the test skips with a message, or fails when
 * GQA_REQUIRE_MODEL=1; GQA_MODEL_PATH overrides the path.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/conv_test_util.h"
#include "gqa.h"
#include "gqa_convert.h"
#include "gqa_model.h"
#include "gqa_tokenizer.h"
#include "test_util.h"

/* |a - b| <= atol + RTOL |b| on logits (|logit| up to ~40). The repeated
 * model reads bitwise the same K/V values as the original; only the grouping
 * changes, and with it the order of some f32 sums in attention. On the f32
 * weight path that is float noise (atol 1e-3). The packed path (avx512)
 * quantises activations to int16 per 32-block, so that noise can flip a
 * rounding and grow through 30 layers: measured 0.013, as for the MHA twin in
 * test_model (0.02), hence atol 0.05 there. */
#define ATOL_F32    1e-3
#define ATOL_PACKED 0.05
#define RTOL        1e-4

static const char *work_dir;
static char paths[8][4096];

static const char *wpath(int k, const char *name)
{
    snprintf(paths[k], sizeof paths[k], "%s/%s", work_dir, name);
    return paths[k];
}

static gqa_status convert(const char *in, const char *out, int32_t g, gqa_convert_method m,
                          gqa_convert_out_type t)
{
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = g, o.method = m, o.out_type = t, o.seed = 1;
    gqa_status s = gqa_convert_gguf(in, out, &o);
    CHECK(s == GQA_OK, "convert to %d by %s (%s): %s", (int)g, gqa_convert_method_name(m),
          gqa_convert_out_type_name(t), gqa_last_error());
    return s;
}

/* All-position logits of `ids` with the model at `path` (f32 KV cache). */
static float *logits(const char *path, const int32_t *ids, int64_t n, int32_t *g_out,
                     int32_t *vocab)
{
    gqa_model *m = NULL;
    gqa_kv_cache *c = NULL;
    gqa_model_info in;
    gqa_kv_config cfg;
    int32_t seq;
    float *lg = NULL;
    if (gqa_model_load(path, &m) == GQA_OK && gqa_model_info_get(m, &in) == GQA_OK &&
        gqa_model_kv_config(m, GQA_F32, 16, 64ull << 20, &cfg) == GQA_OK &&
        gqa_kv_cache_create(&cfg, &c) == GQA_OK && gqa_kv_seq_create(c, &seq) == GQA_OK) {
        lg = tu_xmalloc((size_t)n * (size_t)in.n_vocab * sizeof *lg);
        gqa_forward_item it = {
            .seq = seq, .tokens = ids, .n_tokens = n, .logits = lg, .all_logits = 1};
        if (gqa_model_forward(m, c, &it, 1) != GQA_OK)
            free(lg), lg = NULL;
        *g_out = in.n_kv_heads, *vocab = in.n_vocab;
    }
    CHECK(lg != NULL, "load and run %s: %s", path, gqa_last_error());
    gqa_kv_cache_free(c);
    gqa_model_free(m);
    return lg;
}

static int64_t prompt(const char *model, int32_t *ids, int64_t cap)
{
    gqa_gguf *g = NULL;
    gqa_tokenizer *tok = NULL;
    int64_t n = 0;
    static const char text[] = "The capital of France is Paris, and the capital of Italy is";
    if (gqa_gguf_open(model, &g) != GQA_OK || gqa_tokenizer_from_gguf(g, &tok) != GQA_OK ||
        gqa_tokenize(tok, text, strlen(text), 0, ids, cap, &n) != GQA_OK)
        n = 0;
    CHECK(n > 4, "tokenize the prompt: %s", gqa_last_error());
    gqa_tokenizer_free(tok);
    gqa_gguf_close(g);
    return n;
}

/* The K/V tensors of every layer have the same bytes (or, f32-vs-any, the
 * same values) in both files. */
static int kv_same(const char *a_path, const char *b_path, int values)
{
    gqa_gguf *a = NULL, *b = NULL;
    int same = gqa_gguf_open(a_path, &a) == GQA_OK && gqa_gguf_open(b_path, &b) == GQA_OK;
    for (int64_t i = 0; same && i < gqa_gguf_n_tensors(a); i++) {
        gqa_gguf_tensor_info ta, tb;
        gqa_gguf_tensor_at(a, i, &ta);
        if (!strstr(ta.name, ".attn_k.") && !strstr(ta.name, ".attn_v."))
            continue;
        if (!values) {
            same = gqa_gguf_tensor(b, ta.name, &tb) == GQA_OK && ta.n_bytes == tb.n_bytes &&
                   ta.ggml_type == tb.ggml_type && !memcmp(ta.data, tb.data, ta.n_bytes);
            continue;
        }
        float *x = ct_tensor_f32(a, ta.name, &ta), *y = ct_tensor_f32(b, ta.name, &tb);
        same = x && y && ta.n_elements == tb.n_elements &&
               !memcmp(x, y, (size_t)ta.n_elements * sizeof *x);
        free(x), free(y);
    }
    gqa_gguf_close(a);
    gqa_gguf_close(b);
    return same;
}

/* Original and repeated logits on one kernel set. */
static void compare_logits(const char *model, const char *rep, const int32_t *ids, int64_t n,
                           const char *set, double atol)
{
    int32_t g0 = 0, g = 0, v0 = 0, v = 0;
    float *ref = logits(model, ids, n, &g0, &v0), *lg = logits(rep, ids, n, &g, &v);
    CHECK(g0 == 3 && g == 9, "G = %d, repeated G = %d", (int)g0, (int)g);
    if (ref && lg && v == v0) {
        char what[128];
        snprintf(what, sizeof what, "logits: repeat-to-9 (MHA) == original (G = 3), f32 KV, %s",
                 set);
        tu_check ck;
        tu_check_begin(&ck, what, atol, RTOL, 1, v0);
        tu_check_range(&ck, lg, ref, 0, n * v0);
        tu_check_report(&ck);
        CHECK(tu_check_ok(&ck), "the MHA model computes the original's function (%s)", set);
    }
    free(ref), free(lg);
}

static void test_repeat(const char *model, const int32_t *ids, int64_t n)
{
    const char *rep = wpath(0, "rep9.gguf");
    if (convert(model, rep, 9, GQA_CONVERT_REPEAT, GQA_CONVERT_KEEP) != GQA_OK)
        return;
    /* both weight paths, as test_model does: packed where the CPU has it,
     * and the f32 GGUF-layout one (a kernel set without a packed kernel) */
    static const char *const sets[] = {"avx512", "avx2", "neon", "scalar"};
    const char *saved = gqa_kernel_name();
    int ran_f32 = 0;
    for (size_t i = 0; i < sizeof sets / sizeof sets[0] && !ran_f32; i++) {
        const int packed = !strcmp(sets[i], "avx512");
        if (tu_select_kernel(sets[i]) != 1)
            continue;
        compare_logits(model, rep, ids, n, sets[i], packed ? ATOL_PACKED : ATOL_F32);
        ran_f32 = !packed;
    }
    gqa_set_kernel(saved);
    CHECK(ran_f32, "the f32 weight path ran");
    CHECK(convert(rep, wpath(1, "back3.gguf"), 3, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP) == GQA_OK &&
              ct_same_file(model, wpath(1, "back3.gguf")),
          "repeat then mean (keep) gives the original file back byte for byte");
    unlink(wpath(1, "back3.gguf"));
}

static void test_round_trip_f32(const char *model)
{
    const char *rep = wpath(2, "rep9_f32.gguf");
    if (convert(model, rep, 9, GQA_CONVERT_REPEAT, GQA_CONVERT_F32) != GQA_OK)
        return;
    const char *f32 = wpath(3, "back3_f32.gguf"), *q41 = wpath(4, "back3_q4_1.gguf");
    CHECK(convert(rep, f32, 3, GQA_CONVERT_MEAN, GQA_CONVERT_F32) == GQA_OK &&
              kv_same(model, f32, 1),
          "repeat (f32) then mean (f32): the original K/V values exactly");
    CHECK(convert(rep, q41, 3, GQA_CONVERT_MEAN, GQA_CONVERT_Q4_1) == GQA_OK &&
              kv_same(model, q41, 0),
          "repeat (f32) then mean (q4_1, requantised): the original q4_1 blocks byte for byte");
    unlink(f32);
}

static void test_mqa(const char *model, const int32_t *ids, int64_t n)
{
    static const gqa_convert_method ms[] = {GQA_CONVERT_MEAN, GQA_CONVERT_FIRST,
                                            GQA_CONVERT_RANDOM};
    static const char *const names[] = {"mean1.gguf", "first1.gguf", "random1.gguf"};
    for (int k = 0; k < 3; k++) {
        const char *out = wpath(5 + k, names[k]);
        if (convert(model, out, 1, ms[k], GQA_CONVERT_KEEP) != GQA_OK)
            continue;
        int32_t g = 0, v = 0;
        float *lg = logits(out, ids, n, &g, &v);
        int finite = lg != NULL;
        for (int64_t i = 0; lg && i < n * v; i++)
            finite &= isfinite(lg[i]) != 0;
        CHECK(finite && g == 1, "%s to G = 1: loads, 1 KV head, finite logits",
              gqa_convert_method_name(ms[k]));
        free(lg);
        if (k > 0)
            unlink(out);
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        printf("usage: test_convert_model WORK_DIR PYTHON CHECK_SCRIPT MODEL\n");
        return 2;
    }
    work_dir = argv[1];
    const char *model;
    const int have = tu_model_path(argv[4], &model);
    if (have <= 0)
        return have < 0 ? 1 : 0;
    mkdir(work_dir, 0777);
    int32_t ids[64];
    const int64_t n = prompt(model, ids, 64);
    if (n <= 0)
        return tu_summary();
    printf("model: %s, %lld prompt tokens\n", model, (long long)n);
    test_repeat(model, ids, n);
    test_round_trip_f32(model);
    test_mqa(model, ids, n);

    char list[4096], cmd[16384];
    snprintf(list, sizeof list, "%s/manifest.txt", work_dir);
    FILE *f = fopen(list, "w");
    if (f) {
        fprintf(f, "%s %s 9 repeat keep\n", model, wpath(0, "rep9.gguf"));
        fprintf(f, "%s %s 1 mean keep\n", model, wpath(5, "mean1.gguf"));
        fprintf(f, "%s %s 3 mean q4_1\n", wpath(2, "rep9_f32.gguf"), wpath(4, "back3_q4_1.gguf"));
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", argv[2], argv[3], list);
    fflush(stdout);
    CHECK(f && system(cmd) == 0, "check_convert.py agrees: %s", cmd);
    for (int k = 0; k < 8; k++) /* the outputs are ~100-200 MB each */
        unlink(paths[k]);
    return tu_summary();
}
