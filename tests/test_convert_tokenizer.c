/* test_convert_tokenizer.c - the tokenizer between GGUF and Hugging Face
 * (src/convert/tokenizer_convert.c), on the real SmolLM2-135M.
 *
 *   test_convert_tokenizer WORK_DIR PYTHON CHECK_SCRIPT MODEL [GQA_TOOL]
 *
 * 1. GGUF -> HF -> GGUF: the round-tripped file's tokenizer encodes tricky
 *    strings (digits, emoji, CJK, spaces, special tokens) to the original's
 *    ids; with GQA_TOOL, `gqa run` prints the same greedy text for both.
 * 2. check_convert_tokenizer.py loads the HF tokenizer.json with the PyPI
 *    `tokenizers` package and finds the same ids.
 * 3. Bad tokenizer.json files (a non-BPE model, an id gap, an unknown
 *    pre-tokenizer) fail HF -> GGUF with a clear error.
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
#include "gqa_tokenizer.h"
#include "test_util.h"

static const char *work_dir;

static const char *const texts[] = {
    "The capital of France is",
    "  leading spaces and trailing   ",
    "Numbers: 2024, 3.14159, 1000000 and 007",
    "Emoji \xF0\x9F\x98\x80\xF0\x9F\x8E\x89 and \xE2\x9C\x93",
    "\xE4\xB8\xAD\xE6\x96\x87\xE6\xB5\x8B\xE8\xAF\x95 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
    "<|im_start|>user\nHello there!<|im_end|>\n<|im_start|>assistant\n",
    "don't won't it's I'll we've they're",
    "tabs\tand\nnewlines\n\n\nend",
    "caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 -- ~!@#$%^&*()",
};
#define N_TEXTS (sizeof texts / sizeof texts[0])

static const char *wpath(const char *name)
{
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", work_dir, name);
    return buf[k];
}

static gqa_status convert(int to_hf, const char *in, const char *out)
{
    gqa_convert_options o;
    gqa_convert_options_default(&o);
    o.kv_heads = 3;
    o.out_type = GQA_CONVERT_F16;
    ct_remove(out);
    return to_hf ? gqa_convert_gguf_to_hf(in, out, &o) : gqa_convert_hf_to_gguf(in, out, &o);
}

/* Encode texts[i] with the tokenizer of the GGUF file at path. */
static int64_t encode(const char *path, size_t i, int32_t *ids, int64_t cap)
{
    gqa_gguf *g = NULL;
    gqa_tokenizer *t = NULL;
    int64_t n = -1;
    gqa_status s = gqa_gguf_open(path, &g);
    if (s == GQA_OK)
        s = gqa_tokenizer_from_gguf(g, &t);
    if (s == GQA_OK)
        s = gqa_tokenize(t, texts[i], strlen(texts[i]), GQA_TOKENIZE_SPECIAL, ids, cap, &n);
    CHECK(s == GQA_OK, "tokenize %s with %s: %s", texts[i], path, gqa_last_error());
    gqa_tokenizer_free(t);
    gqa_gguf_close(g);
    return s == GQA_OK ? n : -1;
}

/* Same ids from both files; the expected ids go to the manifest for
 * check_convert_tokenizer.py ("ids...\ttext" per line, text JSON-free). */
static void same_ids(const char *a, const char *b, FILE *manifest)
{
    for (size_t i = 0; i < N_TEXTS; i++) {
        int32_t x[256], y[256];
        const int64_t nx = encode(a, i, x, 256), ny = encode(b, i, y, 256);
        CHECK(nx > 0 && nx == ny && !memcmp(x, y, (size_t)nx * sizeof *x),
              "text %zu: %lld ids from the original, %lld after the round trip", i, (long long)nx,
              (long long)ny);
        for (int64_t k = 0; manifest && k < nx; k++)
            fprintf(manifest, "%s%d", k ? " " : "", (int)x[k]);
        if (manifest)
            fprintf(manifest, "\n");
    }
}

/* `gqa run` greedy text of a model. */
static char *run_text(const char *tool, const char *model)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' run -m '%s' -p 'The capital of France is' -n 8 --temp 0 2>/dev/null", tool,
             model);
    FILE *p = popen(cmd, "r");
    char *out = calloc(1, 4096);
    if (p && out)
        fread(out, 1, 4095, p);
    CHECK(p && pclose(p) == 0, "run: %s", cmd);
    return out;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
}

/* Bad tokenizer.json files in the HF directory hf fail HF -> GGUF with the
 * status and a message naming the problem; the original comes back after. */
static void bad_inputs(const char *hf)
{
    static const struct {
        const char *json, *needle;
        gqa_status want;
    } bad[] = {
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "WordPiece", GQA_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"c\": 2}, \"merges\": []},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         "no token has id 1", GQA_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
         " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}}}",
         "\\w+", GQA_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         "merge 0", GQA_ERR_FORMAT},
    };
    char tj[4096], saved[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", hf);
    snprintf(saved, sizeof saved, "%s/tokenizer.json.orig", hf);
    CHECK(rename(tj, saved) == 0, "rename %s", tj);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(tj, bad[i].json);
        const gqa_status s = convert(0, hf, wpath("bad.gguf"));
        CHECK(s == bad[i].want && strstr(gqa_last_error(), bad[i].needle),
              "bad tokenizer.json %zu: status %d, message: %s", i, (int)s, gqa_last_error());
    }
    CHECK(rename(saved, tj) == 0, "restore %s", tj);
    ct_remove(wpath("bad.gguf"));
}

/* A copy of model whose tokenizer.ggml.pre is `pre`: GGUF -> HF refuses it
 * (the runtime does not know that pre-tokenizer's regexes). */
static void bad_pre(const char *model, const char *pre)
{
    gqa_gguf *g = NULL;
    gqa_gguf_writer *w = NULL;
    const char *path = wpath("bad_pre.gguf");
    gqa_status s = gqa_gguf_open(model, &g);
    if (s == GQA_OK)
        s = gqa_gguf_writer_create(&w);
    for (int64_t i = 0; s == GQA_OK && i < gqa_gguf_n_keys(g); i++)
        if (strcmp(gqa_gguf_key_name(g, i), "tokenizer.ggml.pre") != 0)
            s = gqa_gguf_writer_copy_key(w, g, i);
    if (s == GQA_OK)
        s = gqa_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, strlen(pre));
    for (int64_t i = 0; s == GQA_OK && i < gqa_gguf_n_tensors(g); i++) {
        gqa_gguf_tensor_info t;
        if ((s = gqa_gguf_tensor_at(g, i, &t)) == GQA_OK)
            s = gqa_gguf_writer_add_tensor(w, t.name, t.ggml_type, t.n_dims, t.dims, t.data);
    }
    if (s == GQA_OK)
        s = gqa_gguf_writer_write(w, path, NULL, NULL);
    CHECK(s == GQA_OK, "write %s: %s", path, gqa_last_error());
    gqa_gguf_writer_free(w);
    gqa_gguf_close(g);
    if (s != GQA_OK)
        return;
    s = convert(1, path, wpath("bad_pre_hf"));
    CHECK(s == GQA_ERR_UNSUPPORTED && strstr(gqa_last_error(), pre),
          "GGUF with pre \"%s\" -> HF: status %d, %s", pre, (int)s, gqa_last_error());
    ct_remove(path);
    ct_remove(wpath("bad_pre_hf"));
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        printf("usage: test_convert_tokenizer WORK_DIR PYTHON CHECK_SCRIPT MODEL [GQA_TOOL]\n");
        return 2;
    }
    work_dir = argv[1];
    const char *model;
    const int have = tu_model_path(argv[4], &model);
    if (have <= 0)
        return have < 0 ? 1 : 0;
    mkdir(work_dir, 0777);
    const char *hf = wpath("hf"), *rt = wpath("roundtrip.gguf");
    gqa_status s = convert(1, model, hf);
    CHECK(s == GQA_OK, "GGUF -> HF: %s", gqa_last_error());
    if (s == GQA_OK)
        CHECK((s = convert(0, hf, rt)) == GQA_OK, "HF -> GGUF: %s", gqa_last_error());
    if (s != GQA_OK)
        return tu_summary();
    char list[4096], cmd[16384];
    snprintf(list, sizeof list, "%s/ids.txt", work_dir);
    FILE *manifest = fopen(list, "w");
    CHECK(manifest != NULL, "create %s", list);
    same_ids(model, rt, manifest);
    if (manifest)
        fclose(manifest);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s/tokenizer.json' '%s'", argv[2], argv[3], hf, list);
    fflush(stdout);
    CHECK(manifest && system(cmd) == 0, "check_convert_tokenizer.py agrees: %s", cmd);
    if (argc > 5) {
        char *a = run_text(argv[5], model), *b = run_text(argv[5], rt);
        CHECK(a && b && strlen(a) > 24 && !strcmp(a, b), "gqa run: \"%s\" vs \"%s\"", a ? a : "",
              b ? b : "");
        free(a);
        free(b);
    }
    bad_inputs(hf);
    bad_pre(model, "llama-bpe");
    ct_remove(hf);
    ct_remove(rt);
    return tu_summary();
}
