/* test_convert_hf.c - gqa_convert_hf, gqa_convert_gguf_to_hf and
 * gqa_convert_hf_to_gguf on small synthetic models (the convert_hf_data
 * fixture, tests/convert/make_convert_hf.py, and the GGUF files of
 * make_convert_gguf.py).
 *
 *   test_convert_hf HF_DATA GGUF_DATA WORK_DIR PYTHON CHECK_SCRIPT
 *
 * 1. HF -> HF: every method and output type on F32 (one file), F16 (two
 *    shards, MHA by default), BF16 (G0 = 2) and Qwen2 (biases); each output
 *    opens in the project's reader with the new head count, and
 *    check_convert_hf.py (safetensors + NumPy) checks it against
 *    hand-computed heads, byte-identical other tensors, config and files.
 * 2. Round trips: repeat then mean gives the same directory back byte for
 *    byte (f32, f16 sharded, bf16); random is deterministic per seed;
 *    progress is monotonic and ends at the bytes written.
 * 3. Between formats: HF -> GGUF (loads with gqa_model_load), GGUF -> HF
 *    (quantised K/V included), HF -> GGUF -> HF gives the same tensors, and
 *    GGUF -> HF -> GGUF gives the original's logits bitwise (reference
 *    kernels: the same values in another type compute the same sums); all
 *    checked by check_convert_hf.py too.
 * 4. Bad inputs: the right status and words, no OUT and no temporary left.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/conv_test_util.h"
#include "convert/hf_internal.h" /* src/: the project's own HF reader */
#include "gqa.h"
#include "gqa_convert.h"
#include "gqa_model.h"
#include "test_util.h"

static const char *hf_dir, *gguf_dir, *work_dir;
static FILE *manifest; /* cases for check_convert_hf.py */

/* Paths in rotating buffers: a result stays valid for the next 15 calls. */
static const char *path_in(const char *dir, const char *name)
{
    static char buf[16][4096];
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}
#define HF(name)   path_in(hf_dir, name)
#define GGUF(name) path_in(gguf_dir, name)
#define OUT(name)  path_in(work_dir, name)

typedef enum dir_kind { HF_TO_HF, GGUF_TO_HF, HF_TO_GGUF } dir_kind;

static gqa_status convert_opts(dir_kind k, const char *in, const char *out,
                               const gqa_convert_options *o)
{
    switch (k) {
    case HF_TO_HF: return gqa_convert_hf(in, out, o);
    case GGUF_TO_HF: return gqa_convert_gguf_to_hf(in, out, o);
    default: return gqa_convert_hf_to_gguf(in, out, o);
    }
}

/* Convert and, when it worked, add the case to the manifest. */
static gqa_status convert(dir_kind k, const char *in, const char *out, int32_t g,
                          gqa_convert_method m, gqa_convert_out_type t)
{
    static const char *const kind_name[] = {"hf", "gguf2hf", "hf2gguf"};
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = g, o.method = m, o.out_type = t, o.seed = 7;
    ct_remove(out);
    gqa_status s = convert_opts(k, in, out, &o);
    CHECK(s == GQA_OK, "%s %s -> %s, %d KV heads by %s (%s): %s", kind_name[k], in, out, (int)g,
          gqa_convert_method_name(m), gqa_convert_out_type_name(t), gqa_last_error());
    if (s == GQA_OK && manifest)
        fprintf(manifest, "%s %s %s %d %s %s\n", kind_name[k], in, out, (int)g,
                gqa_convert_method_name(m), gqa_convert_out_type_name(t));
    return s;
}

/* ------------------------------------------------------------ HF -> HF -- */

static void test_hf_cases(void)
{
    static const struct {
        const char *in;
        int32_t g;
        gqa_convert_method m;
        gqa_convert_out_type t;
    } cases[] = {
        {"llama_f32", 2, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP},
        {"llama_f32", 1, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP},
        {"llama_f32", 2, GQA_CONVERT_FIRST, GQA_CONVERT_KEEP},
        {"llama_f32", 2, GQA_CONVERT_RANDOM, GQA_CONVERT_KEEP},
        {"llama_f32", 2, GQA_CONVERT_MEAN, GQA_CONVERT_F16},
        {"llama_f32", 1, GQA_CONVERT_FIRST, GQA_CONVERT_BF16},
        {"llama_f16", 2, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP},
        {"llama_f16", 1, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP},
        {"llama_f16", 1, GQA_CONVERT_RANDOM, GQA_CONVERT_KEEP},
        {"llama_f16", 2, GQA_CONVERT_MEAN, GQA_CONVERT_F32},
        {"llama_bf16", 4, GQA_CONVERT_REPEAT, GQA_CONVERT_KEEP},
        {"llama_bf16", 1, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP},
        {"llama_bf16", 1, GQA_CONVERT_FIRST, GQA_CONVERT_F16},
        {"qwen2_bf16", 2, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP},
        {"qwen2_bf16", 1, GQA_CONVERT_FIRST, GQA_CONVERT_F32},
        {"qwen2_bf16", 2, GQA_CONVERT_RANDOM, GQA_CONVERT_KEEP},
        {"rope_scaled", 2, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP},
        {"extra_tensor", 1, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "hf_%s_%d_%s_%s", cases[i].in, (int)cases[i].g,
                 gqa_convert_method_name(cases[i].m), gqa_convert_out_type_name(cases[i].t));
        const char *out = OUT(name);
        if (convert(HF_TO_HF, HF(cases[i].in), out, cases[i].g, cases[i].m, cases[i].t) != GQA_OK)
            continue;
        gqa_hf_dir *d = NULL;
        CHECK(gqa_hf_open(out, &d) == GQA_OK && gqa_hf_config_get(d)->n_kv_heads == cases[i].g,
              "%s opens in the project's reader with %d KV heads: %s", name, (int)cases[i].g,
              gqa_last_error());
        gqa_hf_close(d);
    }
}

/* repeat then mean: the directory back byte for byte (its K/V are copies).
 * The trip starts from a converted directory, whose config.json is printed
 * as ours are: f32 and f16 (G0 = H) go down to G = 1 first, bf16 (G0 = 2)
 * through an identity conversion - which must give the reference writer's
 * model.safetensors back byte for byte. */
static void test_round_trips(void)
{
    static const char *const ins[] = {"llama_f32", "llama_f16", "llama_bf16"};
    for (int i = 0; i < 3; i++) {
        const char *base = OUT("rt_base"), *up = OUT("rt_up"), *down = OUT("rt_down");
        const int32_t g = i == 2 ? 2 : 1, h = 4;
        if (convert(HF_TO_HF, HF(ins[i]), base, g, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP))
            continue;
        CHECK(convert(HF_TO_HF, base, up, h, GQA_CONVERT_REPEAT, GQA_CONVERT_KEEP) == GQA_OK &&
                  convert(HF_TO_HF, up, down, g, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP) == GQA_OK &&
                  ct_same_dir(base, down),
              "%s: repeat to %d then mean to %d gives every file back byte for byte", ins[i],
              (int)h, (int)g);
        if (i == 2) {
            char a[4200], b[4200];
            snprintf(a, sizeof a, "%s/model.safetensors", HF(ins[i]));
            snprintf(b, sizeof b, "%s/model.safetensors", base);
            CHECK(ct_same_file(a, b), "an identity conversion gives the input's weights file "
                                      "back byte for byte");
        }
        ct_remove(base), ct_remove(up), ct_remove(down);
    }
}

static void test_random_seed(void)
{
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = 2, o.method = GQA_CONVERT_RANDOM, o.seed = 11;
    const char *a = OUT("rnd_a"), *b = OUT("rnd_b"), *c = OUT("rnd_c");
    ct_remove(a), ct_remove(b), ct_remove(c);
    gqa_status s1 = gqa_convert_hf(HF("llama_f32"), a, &o),
               s2 = gqa_convert_hf(HF("llama_f32"), b, &o);
    o.seed = 12;
    gqa_status s3 = gqa_convert_hf(HF("llama_f32"), c, &o);
    CHECK(s1 == GQA_OK && s2 == GQA_OK && s3 == GQA_OK && ct_same_dir(a, b) && !ct_same_dir(a, c),
          "random: the same seed gives the same directory, another seed another one");
    ct_remove(a), ct_remove(b), ct_remove(c);
}

typedef struct progress_log {
    int64_t calls, last, total;
    int monotonic, first_zero;
} progress_log;

static void on_progress(void *user, int64_t done, int64_t total)
{
    progress_log *p = user;
    if (p->calls++ == 0)
        p->first_zero = done == 0;
    p->monotonic &= done >= p->last && (p->total == 0 || total == p->total);
    p->last = done, p->total = total;
}

static void test_progress(void)
{
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    progress_log p = {0, 0, 0, 1, 0};
    o.kv_heads = 1, o.progress = on_progress, o.progress_user = &p;
    const char *out = OUT("progress");
    ct_remove(out);
    gqa_status s = gqa_convert_hf(HF("llama_f16"), out, &o);
    int64_t bytes = 0;
    static const char *const shards[] = {"model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors"};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        char shard[4200];
        snprintf(shard, sizeof shard, "%s/%s", out, shards[i]);
        if (stat(shard, &st) == 0)
            bytes += st.st_size;
    }
    CHECK(s == GQA_OK && p.calls >= 2 && p.first_zero && p.monotonic && p.last == p.total &&
              p.total == bytes,
          "progress over two shards: %lld calls from 0, monotonic, ends at %lld of %lld (files: "
          "%lld bytes)",
          (long long)p.calls, (long long)p.last, (long long)p.total, (long long)bytes);
    ct_remove(out);
}

/* ------------------------------------------------------ between formats -- */

static void test_cross_cases(void)
{
    const char *g1 = OUT("x_f32.gguf"), *g2 = OUT("x_bf16_q8.gguf"), *g3 = OUT("x_f16.gguf");
    if (convert(HF_TO_GGUF, HF("llama_f32"), g1, 2, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP) == GQA_OK) {
        gqa_model *m = NULL;
        CHECK(gqa_model_load(g1, &m) == GQA_OK, "HF -> GGUF output loads: %s", gqa_last_error());
        gqa_model_free(m);
    }
    convert(HF_TO_GGUF, HF("llama_bf16"), g2, 1, GQA_CONVERT_MEAN, GQA_CONVERT_Q8_0);
    convert(HF_TO_GGUF, HF("llama_f16"), g3, 4, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP);
    convert(HF_TO_GGUF, HF("llama_f32"), OUT("x_q4_1.gguf"), 4, GQA_CONVERT_FIRST,
            GQA_CONVERT_Q4_1);
    convert(GGUF_TO_HF, GGUF("mha.gguf"), OUT("x_mha_hf"), 2, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP);
    convert(GGUF_TO_HF, GGUF("mha.gguf"), OUT("x_mha_hf_f32"), 4, GQA_CONVERT_MEAN,
            GQA_CONVERT_F32);
    convert(GGUF_TO_HF, GGUF("gqa.gguf"), OUT("x_gqa_hf"), 4, GQA_CONVERT_REPEAT, GQA_CONVERT_BF16);
    convert(GGUF_TO_HF, g1, OUT("x_f32_hf"), 1, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP);
    /* HF -> GGUF -> HF: the same tensors (f16 all the way: GGUF holds the norms in f32) */
    const char *back = OUT("x_f16_back");
    if (convert(GGUF_TO_HF, g3, back, 4, GQA_CONVERT_MEAN, GQA_CONVERT_F16) == GQA_OK && manifest)
        fprintf(manifest, "same %s %s\n", HF("llama_f16"), back);
}

/* GGUF -> HF (f32) -> GGUF computes what the original computes. */
static void test_cross_logits(void)
{
    const char *hf = OUT("xl_hf"), *back = OUT("xl_back.gguf");
    if (convert(GGUF_TO_HF, GGUF("mha.gguf"), hf, 4, GQA_CONVERT_MEAN, GQA_CONVERT_F32) ||
        convert(HF_TO_GGUF, hf, back, 4, GQA_CONVERT_MEAN, GQA_CONVERT_KEEP))
        return;
    static const int32_t ids[] = {1, 5, 9, 2, 14, 3, 7};
    const char *saved = gqa_kernel_name();
    if (tu_select_kernel("ref") == 1) {
        int32_t v0 = 0, v1 = 0;
        float *a = ct_logits(GGUF("mha.gguf"), ids, 7, &v0), *b = ct_logits(back, ids, 7, &v1);
        CHECK(a && b && v0 == v1 && !memcmp(a, b, (size_t)7 * (size_t)v0 * sizeof *a),
              "GGUF -> HF -> GGUF: logits bitwise equal to the original's (ref kernels): %s",
              gqa_last_error());
        free(a), free(b);
    }
    gqa_set_kernel(saved);
}

/* ------------------------------------------------------------ bad input -- */

/* A conversion that must fail with `want` and words `needle`, leaving no
 * `out` and no temporary file in the work directory. */
static void expect_error(dir_kind k, const char *in, const char *out, int32_t g,
                         gqa_convert_method m, gqa_convert_out_type t, gqa_status want,
                         const char *needle, const char *what)
{
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = g, o.method = m, o.out_type = t;
    const int existed = ct_exists(out);
    gqa_status s = convert_opts(k, in, out, &o);
    const char *msg = gqa_last_error();
    CHECK(s == want && strstr(msg, needle) && (existed || !ct_exists(out)) &&
              ct_leftovers(work_dir) == 0,
          "%s: got %s \"%s\", want %s naming \"%s\", and nothing left behind", what,
          gqa_status_string(s), msg, gqa_status_string(want), needle);
}

static void test_errors(void)
{
    const gqa_convert_method MEAN = GQA_CONVERT_MEAN;
    const gqa_convert_out_type KEEP = GQA_CONVERT_KEEP;
    const char *e = OUT("err_out");
    ct_remove(e);
    expect_error(HF_TO_HF, HF("gpt2"), e, 2, MEAN, KEEP, GQA_ERR_UNSUPPORTED, "GPT2LMHeadModel",
                 "a non-Llama config");
    expect_error(HF_TO_HF, HF("missing_k"), e, 2, MEAN, KEEP, GQA_ERR_FORMAT,
                 "model.layers.1.self_attn.k_proj.weight", "a missing k_proj");
    expect_error(HF_TO_HF, HF("llama_f32"), e, 3, MEAN, KEEP, GQA_ERR_INVALID_ARG,
                 "divide the model's 4 KV heads", "G not dividing G0");
    expect_error(HF_TO_HF, HF("llama_bf16"), e, 3, GQA_CONVERT_REPEAT, KEEP, GQA_ERR_INVALID_ARG,
                 "multiple", "repeat to a non-multiple");
    expect_error(HF_TO_HF, HF("llama_f32"), e, 2, MEAN, GQA_CONVERT_Q8_0, GQA_ERR_INVALID_ARG,
                 "q8_0", "--out-type q8_0 for a Hugging Face output");
    expect_error(HF_TO_HF, HF("k_i32"), e, 2, MEAN, KEEP, GQA_ERR_UNSUPPORTED, "I32",
                 "an I32 k_proj");
    expect_error(HF_TO_HF, HF("llama_f32"), HF("llama_f32"), 2, MEAN, KEEP, GQA_ERR_INVALID_ARG,
                 "input", "OUT == IN");
    /* an existing OUT: a non-empty directory, or a file, is left as it was */
    const char *full = OUT("err_full"), *file = OUT("err_file");
    ct_remove(full), ct_remove(file);
    char kept[4200];
    snprintf(kept, sizeof kept, "%s/keep.txt", full);
    mkdir(full, 0777);
    ct_write_file(kept, "x", 1);
    ct_write_file(file, "y", 1);
    expect_error(HF_TO_HF, HF("llama_f32"), full, 2, MEAN, KEEP, GQA_ERR_INVALID_ARG, "not empty",
                 "OUT a non-empty directory");
    expect_error(HF_TO_HF, HF("llama_f32"), file, 2, MEAN, KEEP, GQA_ERR_INVALID_ARG,
                 "already exists", "OUT a file");
    CHECK(ct_exists(kept) && ct_exists(file), "an existing OUT is untouched");
    ct_remove(full), ct_remove(file);
    /* between formats */
    const char *eg = OUT("err.gguf");
    expect_error(HF_TO_GGUF, HF("qwen2_bf16"), eg, 2, MEAN, KEEP, GQA_ERR_UNSUPPORTED, "qwen2",
                 "HF -> GGUF of a Qwen2 model");
    expect_error(HF_TO_GGUF, HF("rope_scaled"), eg, 2, MEAN, KEEP, GQA_ERR_UNSUPPORTED,
                 "rope_scaling", "HF -> GGUF with RoPE scaling");
    expect_error(HF_TO_GGUF, HF("extra_tensor"), eg, 2, MEAN, KEEP, GQA_ERR_UNSUPPORTED,
                 "self_attn.foo.weight", "HF -> GGUF with an unknown tensor");
    expect_error(HF_TO_GGUF, HF("missing_k"), eg, 2, MEAN, KEEP, GQA_ERR_FORMAT,
                 "model.layers.1.self_attn.k_proj.weight", "HF -> GGUF lacking a tensor");
    expect_error(HF_TO_GGUF, HF("llama_f32"), HF("llama_f32"), 2, MEAN, KEEP, GQA_ERR_INVALID_ARG,
                 "input", "HF -> GGUF onto the input");
    expect_error(HF_TO_GGUF, HF("llama_f32"), HF("llama_f16"), 2, MEAN, KEEP, GQA_ERR_INVALID_ARG,
                 "is a directory", "HF -> GGUF onto a directory");
    expect_error(GGUF_TO_HF, GGUF("mha.gguf"), e, 2, MEAN, GQA_CONVERT_Q4_0, GQA_ERR_INVALID_ARG,
                 "q4_0", "GGUF -> HF with --out-type q4_0");
    expect_error(GGUF_TO_HF, GGUF("gpt2.gguf"), e, 2, MEAN, KEEP, GQA_ERR_UNSUPPORTED, "gpt2",
                 "GGUF -> HF of a gpt2 file");
    expect_error(GGUF_TO_HF, GGUF("missing_k.gguf"), e, 2, MEAN, KEEP, GQA_ERR_FORMAT,
                 "blk.1.attn_k.weight", "GGUF -> HF lacking a tensor");
    expect_error(GGUF_TO_HF, GGUF("mha.gguf"), e, 3, MEAN, KEEP, GQA_ERR_INVALID_ARG, "divide",
                 "GGUF -> HF, G not dividing");
    expect_error(GGUF_TO_HF, HF("q6k.gguf"), e, 4, MEAN, KEEP, GQA_ERR_UNSUPPORTED,
                 "blk.0.attn_q.weight has type q6_k, which cannot be dequantised",
                 "GGUF -> HF of a q6_k tensor");
    expect_error(GGUF_TO_HF, GGUF("q6k.gguf"), e, 1, MEAN, KEEP, GQA_ERR_FORMAT,
                 "llama.feed_forward_length", "GGUF -> HF lacking a hyper-parameter");
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        printf("usage: test_convert_hf HF_DATA GGUF_DATA WORK_DIR PYTHON CHECK_SCRIPT\n");
        return 2;
    }
    hf_dir = argv[1], gguf_dir = argv[2], work_dir = argv[3];
    mkdir(work_dir, 0777);
    char list[4096], cmd[16384];
    snprintf(list, sizeof list, "%s/manifest.txt", work_dir);
    manifest = fopen(list, "w");
    CHECK(manifest != NULL, "create %s", list);
    test_hf_cases();
    test_cross_cases();
    if (manifest)
        fclose(manifest);
    manifest = NULL;
    test_round_trips();
    test_random_seed();
    test_progress();
    test_cross_logits();
    test_errors();
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", argv[4], argv[5], list);
    fflush(stdout);
    CHECK(system(cmd) == 0, "check_convert_hf.py agrees: %s", cmd);
    return tu_summary();
}
