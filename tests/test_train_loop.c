/* test_train_loop.c - training as a whole: the data loader and its split, the
 * learning-rate schedule, overfitting one tiny batch, bitwise determinism,
 * resume from a checkpoint == not stopping, and the checkpoint read by the
 * runtime (gqa_model_load + gqa_model_forward logits == the trainer's) with
 * its byte-level tokenizer.
 *
 * Tolerance of the runtime-vs-trainer logits: |a - b| <= 1e-4 + 1e-4 |b|
 * (the same f32 function; only summation orders differ: gqa_matmul vs
 * gqa_train_gemm, paged vs plain attention). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gqa_model.h"
#include "gqa_train.h"
#include "test_util.h"

static const gqa_train_config tiny = {.n_vocab = 257,
                                      .n_layers = 2,
                                      .n_embd = 32,
                                      .n_heads = 4,
                                      .n_kv_heads = 2,
                                      .head_dim = 8,
                                      .n_ff = 48,
                                      .n_ctx = 32,
                                      .rope_base = 10000.0f,
                                      .rms_eps = 1e-5f,
                                      .tied_output = 0};

/* A few KB of text with structure. */
static char *make_text(size_t *n)
{
    static const char *const w[] = {"the ",  "cat ", "sat ", "on ",  "a ",
                                    "mat. ", "and ", "dog ", "ran ", "far!\n"};
    size_t cap = 6000, len = 0;
    char *t = tu_xmalloc(cap + 16);
    tu_rng r;
    tu_rng_seed(&r, 3);
    while (len < cap) {
        const char *s = w[tu_rng_int(&r, 0, 9)];
        memcpy(t + len, s, strlen(s));
        len += strlen(s);
    }
    *n = len;
    return t;
}

static void test_data(const gqa_train_data *d, size_t n)
{
    CHECK(gqa_train_data_val_tokens(d) == (int64_t)(n / 10) &&
              gqa_train_data_train_tokens(d) == (int64_t)(n - n / 10),
          "split %lld / %lld of %zu", (long long)gqa_train_data_train_tokens(d),
          (long long)gqa_train_data_val_tokens(d), n);
    int32_t a[2 * 16], at[2 * 16], b[2 * 16], bt[2 * 16];
    gqa_train_data_batch(d, 9, 5, 1, 2, 16, a, at);
    gqa_train_data_batch(d, 9, 5, 1, 2, 16, b, bt);
    CHECK(!memcmp(a, b, sizeof a) && !memcmp(at, bt, sizeof at), "batches not reproducible");
    int shifted = 1;
    for (int i = 0; i < 2 * 16; i++)
        shifted &= i % 16 == 15 || at[i] == a[i + 1];
    CHECK(shifted, "targets are not the tokens shifted by one");
    gqa_train_data_batch(d, 9, 6, 1, 2, 16, b, bt);
    CHECK(memcmp(a, b, sizeof a) != 0, "another step gives the same windows");
    CHECK(gqa_train_data_val_windows(d, 16, 0) == (int64_t)((n / 10 - 1) / 16),
          "validation windows %lld", (long long)gqa_train_data_val_windows(d, 16, 0));
    CHECK(gqa_train_data_batch(d, 9, 0, 0, 1, (int32_t)n, a, at) == GQA_ERR_INVALID_ARG,
          "a window longer than the data must fail");
    gqa_train_data *bad;
    CHECK(gqa_train_data_from_memory("short", 5, &bad) == GQA_ERR_INVALID_ARG && !bad,
          "5 bytes of data must fail");
    CHECK(gqa_train_data_open("/nonexistent/x.txt", &bad) == GQA_ERR_IO, "missing file");
}

static void test_schedule(void)
{
    gqa_train_optim_config c;
    gqa_train_optim_config_default(&c);
    c.lr = 1e-3f;
    c.min_lr = 1e-4f;
    c.warmup_steps = 10;
    c.total_steps = 110;
    CHECK(fabsf(gqa_train_lr(&c, 0) - 1e-4f) < 1e-9f && fabsf(gqa_train_lr(&c, 9) - 1e-3f) < 1e-9f,
          "warmup: %g %g", (double)gqa_train_lr(&c, 0), (double)gqa_train_lr(&c, 9));
    CHECK(fabsf(gqa_train_lr(&c, 60) - 5.5e-4f) < 1e-8f, "cosine midpoint %g",
          (double)gqa_train_lr(&c, 60));
    CHECK(fabsf(gqa_train_lr(&c, 110) - 1e-4f) < 1e-9f && gqa_train_lr(&c, 500) == c.min_lr,
          "end of the schedule");
    c.min_lr = 2e-3f;
    gqa_train_model *m;
    gqa_train_model_create(&tiny, 1, &m);
    gqa_train_optim *o = (gqa_train_optim *)m;
    CHECK(gqa_train_optim_create(m, &c, &o) == GQA_ERR_INVALID_ARG && !o, "min_lr > lr");
    gqa_train_model_free(m);
}

/* One tiny batch, learned by heart. */
static void test_overfit(void)
{
    gqa_set_num_threads(2);
    gqa_train_model *m;
    gqa_train_model_create(&tiny, 5, &m);
    gqa_train_optim_config c;
    gqa_train_optim_config_default(&c);
    c.lr = 1e-2f;
    c.min_lr = 1e-2f;
    c.weight_decay = 0.0f;
    c.total_steps = 300;
    gqa_train_optim *o;
    gqa_train_optim_create(m, &c, &o);
    const char *text = "Sphinx of black quartz, judge my vow!";
    int32_t tok[2 * 16], tgt[2 * 16];
    for (int i = 0; i < 32; i++) {
        tok[i] = (unsigned char)text[i];
        tgt[i] = (unsigned char)text[i + 1];
    }
    float loss = 0.0f, first = 0.0f;
    int step;
    for (step = 0; step < 300; step++) {
        gqa_train_model_zero_grad(m);
        gqa_train_model_forward(m, tok, tgt, 2, 16, &loss, NULL);
        if (step == 0)
            first = loss;
        if (loss < 0.05f)
            break;
        gqa_train_model_backward(m, 1.0f);
        gqa_train_optim_step(o, m, NULL, NULL);
    }
    printf("  overfit: loss %.4f -> %.4f in %d steps\n", (double)first, (double)loss, step);
    CHECK(loss < 0.05f && first > 5.0f, "overfitting: loss %.4f after %d steps (from %.4f)",
          (double)loss, step, (double)first);
    gqa_train_optim_free(o);
    gqa_train_model_free(m);
}

static gqa_train_optim_config sched(void)
{
    gqa_train_optim_config c;
    gqa_train_optim_config_default(&c);
    c.lr = 3e-3f;
    c.min_lr = 3e-4f;
    c.warmup_steps = 2;
    c.total_steps = 8;
    return c;
}

/* n steps from a fresh model (seed 21), losses out; the model is returned. */
static gqa_train_model *run(const gqa_train_data *d, int threads, int n, float *losses)
{
    gqa_set_num_threads(threads);
    gqa_train_model *m;
    gqa_train_model_create(&tiny, 21, &m);
    const gqa_train_optim_config c = sched();
    gqa_train_optim *o;
    gqa_train_optim_create(m, &c, &o);
    for (int s = 0; s < n; s++) {
        gqa_status st = gqa_train_step(m, o, d, 77, 3, 24, 2, &losses[s], NULL, NULL);
        CHECK(st == GQA_OK, "step %d: %s", s, gqa_last_error());
    }
    gqa_train_optim_free(o);
    return m;
}

static void test_determinism_resume(const gqa_train_data *d, const char *dir)
{
    float a[8], b[8], c[8];
    gqa_train_model *ma = run(d, 2, 8, a);
    gqa_train_model *mb = run(d, 2, 8, b);
    const size_t bytes = (size_t)gqa_train_model_n_params(ma) * sizeof(float);
    CHECK(!memcmp(a, b, sizeof a) &&
              !memcmp(gqa_train_model_params(ma), gqa_train_model_params(mb), bytes),
          "two runs at 2 threads differ");
    gqa_train_model_free(mb);
    /* Not promised in general (gqa_attention may split long key ranges by thread
     * count), but at these short sequences nothing splits: 1 and 2 threads agree. */
    mb = run(d, 1, 8, c);
    CHECK(!memcmp(a, c, sizeof a), "1 and 2 threads give different losses");
    printf("  8 steps: loss %.4f -> %.4f\n", (double)a[0], (double)a[7]);
    CHECK(a[7] < a[0] - 0.5f, "training does not lower the loss: %.4f -> %.4f", (double)a[0],
          (double)a[7]);
    gqa_train_model_free(mb);

    /* 4 steps, save, load, 4 more == 8 in a row, bitwise */
    gqa_set_num_threads(2);
    char path[512];
    snprintf(path, sizeof path, "%s/resume.gguf", dir);
    gqa_train_model *m;
    gqa_train_model_create(&tiny, 21, &m);
    const gqa_train_optim_config cfg = sched();
    gqa_train_optim *o;
    gqa_train_optim_create(m, &cfg, &o);
    float r[8];
    for (int s = 0; s < 4; s++)
        gqa_train_step(m, o, d, 77, 3, 24, 2, &r[s], NULL, NULL);
    const gqa_train_meta meta = {.steps = 4,
                                 .tokens = 4 * 3 * 24 * 2,
                                 .seed = 77,
                                 .batch = 3,
                                 .seq_len = 24,
                                 .accum = 2,
                                 .val_loss = NAN};
    gqa_status st = gqa_train_save(m, o, &meta, "resume-test", path);
    CHECK(st == GQA_OK, "save: %s", gqa_last_error());
    gqa_train_optim_free(o);
    gqa_train_model_free(m);
    gqa_train_meta back;
    st = gqa_train_load(path, &m, &o, &back);
    CHECK(st == GQA_OK, "load: %s", gqa_last_error());
    if (st != GQA_OK)
        return;
    CHECK(back.steps == 4 && back.seed == 77 && back.batch == 3 && back.seq_len == 24 &&
              back.accum == 2 && isnan(back.val_loss) && gqa_train_optim_steps(o) == 4,
          "meta read back wrong");
    for (int s = 4; s < 8; s++)
        gqa_train_step(m, o, d, 77, 3, 24, 2, &r[s], NULL, NULL);
    CHECK(!memcmp(a, r, sizeof a) &&
              !memcmp(gqa_train_model_params(ma), gqa_train_model_params(m), bytes),
          "resumed run differs: step 5 loss %.9g vs %.9g", (double)r[4], (double)a[4]);
    gqa_train_optim_free(o);
    gqa_train_model_free(m);
    gqa_train_model_free(ma);
    char opt[600];
    gqa_train_opt_path(path, opt, sizeof opt);
    CHECK(strstr(opt, "resume.opt.gguf") != NULL, "sidecar path %s", opt);
    remove(opt);
    CHECK(gqa_train_load(path, &m, &o, NULL) == GQA_ERR_IO && !m && !o,
          "a missing sidecar must fail with an I/O error");
}

/* The checkpoint's tokenizer: text -> its bytes, <|endoftext|> -> 256. */
static void check_byte_tokenizer(const gqa_model *rt)
{
    gqa_tokenizer *tk;
    gqa_status st = gqa_tokenizer_from_gguf(gqa_model_gguf(rt), &tk);
    CHECK(st == GQA_OK, "tokenizer: %s", gqa_last_error());
    if (st == GQA_OK) {
        const char *s = "caf\xc3\xa9 \t\n<|endoftext|>";
        int32_t ids[64];
        int64_t n = 0;
        gqa_tokenize(tk, s, strlen(s), 0, ids, 64, &n);
        int same = n == (int64_t)strlen(s);
        for (int64_t i = 0; same && i < n; i++)
            same = ids[i] == (unsigned char)s[i];
        CHECK(same, "byte tokenizer: %lld ids for %zu bytes", (long long)n, strlen(s));
        gqa_tokenize(tk, "<|endoftext|>", 13, GQA_TOKENIZE_SPECIAL, ids, 64, &n);
        CHECK(n == 1 && ids[0] == 256, "<|endoftext|> is not id 256");
        gqa_tokenizer_free(tk);
    }
}

/* The checkpoint through the runtime: same logits, tokenizer of bytes. */
static void test_runtime(const char *dir, int tied)
{
    gqa_set_num_threads(2);
    gqa_train_config cfg = tiny;
    cfg.tied_output = tied;
    cfg.n_kv_heads = tied ? 1 : 2;
    gqa_train_model *m;
    gqa_train_model_create(&cfg, 8, &m);
    /* norms away from 1 so that they matter */
    for (int32_t i = 0; i < gqa_train_model_n_tensors(m); i++) {
        gqa_train_tensor t;
        gqa_train_model_tensor(m, i, &t);
        for (int64_t j = 0; t.n_dims == 1 && j < t.dims[0]; j++)
            t.data[j] = 0.5f + (float)(j % 7) * 0.2f;
    }
    const char *text = "In the beginning God created the heaven.";
    enum { T = 29 };
    int32_t tok[T];
    for (int i = 0; i < T; i++)
        tok[i] = (unsigned char)text[i];
    static float lt[T * 257], lr[T * 257];
    gqa_train_model_forward(m, tok, NULL, 1, T, NULL, lt);
    char path[512];
    snprintf(path, sizeof path, "%s/runtime%d.gguf", dir, tied);
    const gqa_train_meta meta = {.steps = 12, .tokens = 345, .seed = 1, .val_loss = 2.5f};
    CHECK(gqa_train_save(m, NULL, &meta, NULL, path) == GQA_OK, "save: %s", gqa_last_error());
    gqa_model *rt;
    gqa_status st = gqa_model_load(path, &rt);
    CHECK(st == GQA_OK, "gqa_model_load: %s", gqa_last_error());
    if (st != GQA_OK)
        return;
    gqa_kv_config kc;
    gqa_model_kv_config(rt, GQA_F32, 16, 1u << 20, &kc);
    gqa_kv_cache *cache;
    gqa_kv_cache_create(&kc, &cache);
    int32_t seq;
    gqa_kv_seq_create(cache, &seq);
    gqa_forward_item it = {.seq = seq, .tokens = tok, .n_tokens = T, .logits = lr, .all_logits = 1};
    st = gqa_model_forward(rt, cache, &it, 1);
    CHECK(st == GQA_OK, "gqa_model_forward: %s", gqa_last_error());
    double emax = 0.0;
    int bad = 0;
    for (int i = 0; i < T * 257; i++) {
        const double e = fabs((double)lt[i] - (double)lr[i]);
        emax = fmax(emax, e);
        bad += !(e <= 1e-4 + 1e-4 * fabs((double)lr[i]));
    }
    printf("  runtime vs trainer logits (%s): max err %.3g\n", tied ? "tied, G 1" : "untied, G 2",
           emax);
    CHECK(bad == 0, "%d logits differ from the runtime's (max err %.3g)", bad, emax);
    check_byte_tokenizer(rt);
    gqa_kv_cache_free(cache);
    gqa_model_free(rt);
    /* and back into the trainer: the same weights bitwise, meta intact */
    gqa_train_model *m2;
    gqa_train_meta back;
    st = gqa_train_load(path, &m2, NULL, &back);
    CHECK(st == GQA_OK && back.steps == 12 && back.tokens == 345 && back.val_loss == 2.5f,
          "reload: %s", gqa_last_error());
    if (st == GQA_OK) {
        CHECK(gqa_train_model_n_params(m2) == gqa_train_model_n_params(m) &&
                  !memcmp(gqa_train_model_params(m2), gqa_train_model_params(m),
                          (size_t)gqa_train_model_n_params(m) * sizeof(float)) &&
                  gqa_train_model_config(m2)->tied_output == tied,
              "reloaded weights differ");
        gqa_train_model_free(m2);
    }
    gqa_train_model_free(m);
}

int main(int argc, char **argv)
{
    /* the work directory: argv[1] (CTest gives one in the build tree) */
    const char *dir = argc > 1 ? argv[1] : ".";
    mkdir(dir, 0777);
    size_t n;
    char *text = make_text(&n);
    gqa_train_data *d;
    gqa_status st = gqa_train_data_from_memory(text, n, &d);
    CHECK(st == GQA_OK, "data: %s", gqa_last_error());
    if (st != GQA_OK)
        return tu_summary();
    test_data(d, n);
    test_schedule();
    test_overfit();
    test_determinism_resume(d, dir);
    test_runtime(dir, 0);
    test_runtime(dir, 1);
    float vl;
    gqa_train_model *m;
    gqa_train_model_create(&tiny, 2, &m);
    st = gqa_train_eval(m, d, 4, 16, 0, &vl);
    CHECK(st == GQA_OK && fabsf(vl - logf(257.0f)) < 0.1f,
          "validation loss of a fresh model %.4f (expected about ln 257)", (double)vl);
    CHECK(gqa_train_model_backward(m, 1.0f) == GQA_ERR_INVALID_ARG,
          "no backward after an evaluation");
    gqa_train_model_free(m);
    gqa_train_data_free(d);
    free(text);
    return tu_summary();
}
