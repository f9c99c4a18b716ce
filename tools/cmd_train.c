/* cmd_train.c - `gqa train` (pre-train a Llama-style model from scratch on a
 * text file, byte-level) and `gqa uptrain` (convert a model to fewer KV heads
 * and continue training it for a fraction of its original steps).
 * See docs/training.md. Uses only the public headers. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "gqa_convert.h"
#include "gqa_model.h"
#include "gqa_train.h"
#include "train_config.h"

typedef struct run_args {
    const char *cmd; /* "train" or "uptrain" */
    train_opts o;
    const char *config, *data, *out, *log, *resume, *name;
    /* uptrain */
    const char *from;
    long kv_heads, source_steps;
    double fraction;
    gqa_convert_method method;
    int quiet;
} run_args;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_eta(double s, char *buf, size_t cap)
{
    if (!(s >= 0.0) || s > 1e7)
        snprintf(buf, cap, "--");
    else if (s >= 3600.0)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600.0), (int)fmod(s / 60.0, 60.0));
    else
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60.0), (int)fmod(s, 60.0));
}

/* ------------------------------------------------------------ the loop -- */

/* What the loop writes into the checkpoint besides the weights. */
typedef struct lineage {
    int64_t steps0;       /* steps in the weights not counted by this optimizer (uptraining:
                           * the source's) */
    int64_t tokens0;      /* tokens in the weights when the loop starts */
    int64_t start;        /* the optimizer's step count when the loop starts */
    int64_t source_steps; /* gqa.train.source_steps to write */
} lineage;

static void fill_meta(const run_args *a, const lineage *ln, int64_t opt_steps, float val,
                      gqa_train_meta *meta)
{
    const int64_t per_step = a->o.batch * a->o.seq_len * a->o.accum;
    meta->steps = ln->steps0 + opt_steps;
    meta->tokens = ln->tokens0 + (opt_steps - ln->start) * per_step;
    meta->seed = (uint64_t)a->o.seed;
    meta->batch = (int32_t)a->o.batch;
    meta->seq_len = (int32_t)a->o.seq_len;
    meta->accum = (int32_t)a->o.accum;
    meta->source_steps = ln->source_steps;
    meta->val_loss = val;
}

static int save(const run_args *a, const lineage *ln, gqa_train_model *m, gqa_train_optim *opt,
                float val)
{
    gqa_train_meta meta;
    fill_meta(a, ln, gqa_train_optim_steps(opt), val, &meta);
    gqa_status s = gqa_train_save(m, opt, &meta, a->name, a->out);
    if (s != GQA_OK) {
        char what[300];
        snprintf(what, sizeof what, "%s: writing %s", a->cmd, a->out);
        return cli_fail(s, what);
    }
    return CLI_EXIT_OK;
}

static int validate(const run_args *a, gqa_train_model *m, const gqa_train_data *d, float *val)
{
    gqa_status s =
        gqa_train_eval(m, d, (int32_t)a->o.batch, (int32_t)a->o.seq_len, a->o.eval_windows, val);
    if (s != GQA_OK) {
        char what[64];
        snprintf(what, sizeof what, "%s: validation", a->cmd);
        return cli_fail(s, what);
    }
    return CLI_EXIT_OK;
}

static void log_row(FILE *f, int64_t step, int64_t tokens, float lr, float loss, float val,
                    double tps)
{
    if (!f)
        return;
    fprintf(f, "%lld,%lld,%.6g,", (long long)step, (long long)tokens, (double)lr);
    if (isnan(loss))
        fputc(',', f);
    else
        fprintf(f, "%.6f,", (double)loss);
    if (!isnan(val))
        fprintf(f, "%.6f", (double)val);
    fprintf(f, ",%.1f\n", tps);
    fflush(f);
}

static void progress(const run_args *a, int tty, int64_t step, int64_t total, float loss, float val,
                     double tps, double eta)
{
    char e[32], v[32] = "";
    fmt_eta(eta, e, sizeof e);
    if (!isnan(val))
        snprintf(v, sizeof v, "  val %.4f", (double)val);
    if (tty) { /* one line rewritten in place; validation lines stay */
        fprintf(stderr, "\r%s %lld/%lld  loss %.4f%s  %.0f tok/s  ETA %s \033[K", a->cmd,
                (long long)step, (long long)total, (double)loss, v, tps, e);
        if (!isnan(val) || step == total)
            fputc('\n', stderr);
    } else if (!isnan(val) || step == total) {
        fprintf(stderr, "%s %lld/%lld  loss %.4f%s  %.0f tok/s  ETA %s\n", a->cmd, (long long)step,
                (long long)total, (double)loss, v, tps, e);
    }
}

/* Train from the optimizer's current step to a->o.steps, validating, logging
 * and saving on the way; saves the final checkpoint. */
static int train_loop(const run_args *a, const lineage *ln, gqa_train_model *m,
                      gqa_train_optim *opt, const gqa_train_data *d)
{
    const train_opts *o = &a->o;
    const int64_t start = gqa_train_optim_steps(opt), total = o->steps;
    const int64_t per_step = o->batch * o->seq_len * o->accum;
    const int tty = !a->quiet && isatty(STDERR_FILENO);
    FILE *log = NULL;
    if (a->log) {
        log = fopen(a->log, start > 0 ? "a" : "w");
        if (!log) {
            cli_error("%s: cannot write the log '%s'", a->cmd, a->log);
            return CLI_EXIT_FAIL;
        }
        if (start == 0)
            fprintf(log, "step,tokens,lr,train_loss,val_loss,tok_per_s\n");
    }
    int rc = CLI_EXIT_OK;
    float val = NAN, loss = NAN;
    if (o->eval_every > 0 && start == 0) { /* where the curve starts */
        rc = validate(a, m, d, &val);
        log_row(log, 0, ln->tokens0, 0.0f, NAN, val, 0.0);
        if (rc == CLI_EXIT_OK && !a->quiet)
            fprintf(stderr, "%s 0/%lld  val %.4f\n", a->cmd, (long long)total, (double)val);
    }
    const double t0 = now_s();
    for (int64_t step = start; rc == CLI_EXIT_OK && step < total; step++) {
        const double ts = now_s();
        float lr = 0.0f;
        gqa_status s = gqa_train_step(m, opt, d, (uint64_t)o->seed, (int32_t)o->batch,
                                      (int32_t)o->seq_len, (int32_t)o->accum, &loss, NULL, &lr);
        if (s != GQA_OK) {
            char what[64];
            snprintf(what, sizeof what, "%s: step %lld", a->cmd, (long long)step + 1);
            rc = cli_fail(s, what);
            break;
        }
        if (!isfinite(loss)) {
            cli_error("%s: the loss is %g at step %lld (try a lower --lr)", a->cmd, (double)loss,
                      (long long)step + 1);
            rc = CLI_EXIT_FAIL;
            break;
        }
        const double now = now_s(), tps = (double)per_step / (now - ts);
        const double eta = (now - t0) / (double)(step + 1 - start) * (double)(total - step - 1);
        const int64_t done = step + 1;
        val = NAN;
        if ((o->eval_every > 0 && done % o->eval_every == 0) || done == total)
            rc = validate(a, m, d, &val);
        log_row(log, done, ln->tokens0 + (done - start) * per_step, lr, loss, val, tps);
        if (!a->quiet)
            progress(a, tty, done, total, loss, val, tps, eta);
        if (rc == CLI_EXIT_OK && o->save_every > 0 && done % o->save_every == 0 && done < total)
            rc = save(a, ln, m, opt, val);
    }
    if (log)
        fclose(log);
    if (rc == CLI_EXIT_OK)
        rc = save(a, ln, m, opt, val);
    if (rc == CLI_EXIT_OK && !a->quiet)
        fprintf(stderr, "%s: wrote %s (%lld steps, validation loss %.4f) in %.1f s\n", a->cmd,
                a->out, (long long)(ln->steps0 + total), (double)val, now_s() - t0);
    return rc;
}

/* ------------------------------------------------------- command lines -- */

static void usage(FILE *f, int up)
{
    if (!up) {
        fprintf(f,
                "usage: gqa train --data TEXT --steps N --out MODEL.gguf [options]\n"
                "\n"
                "Pre-train a Llama-style model (byte-level tokens: the 256 bytes and\n"
                "<|endoftext|>) on a text file: the first 90%% of its bytes train, the last 10%%\n"
                "validate. The checkpoint is a GGUF file gqa run / perplexity / convert read;\n"
                "the optimizer state goes to MODEL.opt.gguf beside it.\n"
                "\n"
                "  --config C           a preset or a JSON file (default tiny); presets:\n");
        train_list_presets(f);
        fprintf(f, "  --resume CKPT        continue CKPT (its model, optimizer and run options)\n"
                   "                       up to --steps in all\n");
    } else {
        fprintf(f, "usage: gqa uptrain --from MODEL --kv-heads G --data TEXT --out OUT.gguf "
                   "[options]\n"
                   "\n"
                   "Convert MODEL to G KV heads (as gqa convert) and continue training it for\n"
                   "--fraction of the steps MODEL was trained for (its gqa.train.steps, or\n"
                   "--source-steps). Batch, sequence length and accumulation default to MODEL's,\n"
                   "the optimizer settings (lr, min lr, weight decay, clip, betas) to those in\n"
                   "MODEL's optimizer file (MODEL.opt.gguf) when it is there; the moments start\n"
                   "from zero and the warmup + cosine schedule spans the uptraining steps.\n"
                   "\n"
                   "  --method M           mean (default), first or random\n"
                   "  --fraction X         share of the source's steps, 0 < X <= 10 (0.05)\n"
                   "  --source-steps N     the source's training steps when it does not say\n"
                   "  --steps N            train exactly N steps instead\n");
    }
    fprintf(f, "  --data TEXT          the text file\n"
               "  --steps N            optimizer steps in all\n"
               "  --out FILE           the checkpoint to write\n"
               "  --log CSV            write step,tokens,lr,train_loss,val_loss,tok_per_s\n"
               "  --name NAME          general.name of the checkpoint\n"
               "  --quiet              no progress output\n");
    train_opts_usage(f);
}

/* argv[*i] as a command option; 1 parsed, 0 not one, -1 bad. */
static int parse_one(int argc, char **argv, int *i, run_args *a)
{
    const char *v;
    int r;
    const struct {
        const char *name;
        const char **dst;
    } strs[] = {{"--config", &a->config}, {"--data", &a->data},     {"--out", &a->out},
                {"--log", &a->log},       {"--resume", &a->resume}, {"--name", &a->name},
                {"--from", &a->from}};
    for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
        if ((r = cli_option_value(argc, argv, i, strs[k].name, &v))) {
            *strs[k].dst = v;
            return r;
        }
    char opt[64];
    if ((r = cli_option_value(argc, argv, i, "--steps", &v))) {
        snprintf(opt, sizeof opt, "%s --steps", a->cmd);
        return r < 0 || cli_parse_long(opt, v, 1, 1L << 40, &a->o.steps) < 0 ? -1 : 1;
    }
    if ((r = cli_option_value(argc, argv, i, "--kv-heads", &v)))
        return r < 0 || cli_parse_long("uptrain --kv-heads", v, 1, 1024, &a->kv_heads) < 0 ? -1 : 1;
    if ((r = cli_option_value(argc, argv, i, "--source-steps", &v)))
        return r < 0 || cli_parse_long("uptrain --source-steps", v, 1, 1L << 40, &a->source_steps) <
                            0
                   ? -1
                   : 1;
    if ((r = cli_option_value(argc, argv, i, "--fraction", &v)))
        return r < 0 || cli_parse_double("uptrain --fraction", v, 1e-9, 10.0, &a->fraction) < 0 ? -1
                                                                                                : 1;
    if ((r = cli_option_value(argc, argv, i, "--method", &v))) {
        if (r < 0)
            return -1;
        if (!strcmp(v, "mean"))
            a->method = GQA_CONVERT_MEAN;
        else if (!strcmp(v, "first"))
            a->method = GQA_CONVERT_FIRST;
        else if (!strcmp(v, "random"))
            a->method = GQA_CONVERT_RANDOM;
        else {
            cli_error("uptrain: --method '%s' is not mean, first or random", v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(argv[*i], "--quiet") || !strcmp(argv[*i], "-q")) {
        a->quiet = 1;
        return 1;
    }
    return train_opts_parse(argc, argv, i, a->cmd, &a->o);
}

/* 0 parsed, 1 help printed, -1 error printed. Two passes: --config first
 * (its values are the defaults), then everything else over them. */
static int parse(int argc, char **argv, run_args *a, int up)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout, up);
            return 1;
        }
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = cli_option_value(argc, argv, &i, "--config", &v);
        if (r < 0)
            return -1;
        if (r > 0)
            a->config = v;
    }
    if (up && a->config) {
        cli_error("uptrain: --config does not apply (the model comes from --from)");
        return -1;
    }
    for (int i = 1; !up && a->config && i < argc; i++)
        if (!strcmp(argv[i], "--resume") || !strncmp(argv[i], "--resume=", 9)) {
            cli_error("train: --config does not apply with --resume (the model and its run "
                      "options come from the checkpoint)");
            return -1;
        }
    if (train_opts_load(a->config ? a->config : (up ? "exp" : "tiny"), &a->o) < 0)
        return -1;
    if (up || a->config == NULL) {
        a->o.batch = -1; /* from the source / checkpoint / preset, resolved later */
        a->o.seq_len = -1;
        a->o.accum = -1;
    }
    if (up) { /* from the source's optimizer sidecar when it has one */
        a->o.opt.lr = a->o.opt.weight_decay = a->o.opt.clip = -1.0f;
        a->o.opt.beta1 = a->o.opt.beta2 = -1.0f;
    }
    for (int i = 1; i < argc; i++) {
        const int r = parse_one(argc, argv, &i, a);
        if (r < 0)
            return -1;
        if (r == 0) {
            cli_error("%s: unknown option '%s' (try 'gqa %s --help')", a->cmd, argv[i], a->cmd);
            return -1;
        }
    }
    const char *need = !a->data ? "--data TEXT" : !a->out ? "--out FILE" : NULL;
    if (!need && up && !a->from)
        need = "--from MODEL";
    if (!need && up && a->kv_heads <= 0)
        need = "--kv-heads G";
    if (!need && !up && a->o.steps < 0)
        need = "--steps N";
    if (need) {
        cli_error("%s: missing %s (try 'gqa %s --help')", a->cmd, need, a->cmd);
        return -1;
    }
    return 0;
}

/* Defaults that depend on the model, the source or the step count; checks. */
static int resolve(run_args *a, const gqa_train_config *mc, const gqa_train_meta *src,
                   const train_opts *preset)
{
    train_opts *o = &a->o;
    if (o->batch < 0)
        o->batch = src && src->batch > 0 ? src->batch : preset->batch;
    if (o->seq_len < 0)
        o->seq_len = src && src->seq_len > 0 ? src->seq_len : preset->seq_len;
    if (o->accum < 0)
        o->accum = src && src->accum > 0 ? src->accum : 1;
    if (o->seq_len > mc->n_ctx)
        o->seq_len = mc->n_ctx;
    if (o->seed < 0)
        o->seed = 1;
    if (o->opt.min_lr < 0.0f)
        o->opt.min_lr = o->opt.lr / 10.0f;
    if (o->opt.min_lr > o->opt.lr) {
        cli_error("%s: --min-lr %g is above --lr %g", a->cmd, (double)o->opt.min_lr,
                  (double)o->opt.lr);
        return -1;
    }
    if (o->warmup < 0)
        o->warmup = o->steps / 20;
    if (o->eval_every < 0)
        o->eval_every = o->steps >= 10 ? o->steps / 10 : 1;
    o->opt.warmup_steps = o->warmup;
    o->opt.total_steps = o->schedule_steps > 0 ? o->schedule_steps : o->steps;
    if (mc->n_vocab < 256) {
        cli_error("%s: the vocabulary has %d tokens; byte-level data needs at least 256", a->cmd,
                  (int)mc->n_vocab);
        return -1;
    }
    if (o->batch < 1 || o->seq_len < 1) {
        cli_error("%s: batch %ld and sequence length %ld must be >= 1", a->cmd, o->batch,
                  o->seq_len);
        return -1;
    }
    return 0;
}

static int open_data(const run_args *a, gqa_train_data **d)
{
    gqa_status s = gqa_train_data_open(a->data, d);
    if (s != GQA_OK) {
        char what[64];
        snprintf(what, sizeof what, "%s: --data", a->cmd);
        return cli_fail(s, what);
    }
    if (gqa_train_data_val_windows(*d, (int32_t)a->o.seq_len, 0) < 1 ||
        gqa_train_data_train_tokens(*d) <= a->o.seq_len) {
        cli_error("%s: %s is too small for sequences of %ld tokens (its last 10%% must hold one "
                  "window of %ld bytes)",
                  a->cmd, a->data, a->o.seq_len, a->o.seq_len + 1);
        gqa_train_data_free(*d);
        *d = NULL;
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static void summary(const run_args *a, const gqa_train_model *m, int64_t start)
{
    if (a->quiet)
        return;
    const gqa_train_config *c = gqa_train_model_config(m);
    fprintf(stderr,
            "%s: %d layers, width %d, H %d, G %d, d %d, ff %d, vocab %d, %lld params; "
            "batch %ld x %ld tokens x %ld, lr %g, steps %lld..%ld, %d threads\n",
            a->cmd, (int)c->n_layers, (int)c->n_embd, (int)c->n_heads, (int)c->n_kv_heads,
            (int)c->head_dim, (int)c->n_ff, (int)c->n_vocab, (long long)gqa_train_model_n_params(m),
            a->o.batch, a->o.seq_len, a->o.accum, (double)a->o.opt.lr, (long long)start, a->o.steps,
            gqa_get_num_threads());
}

int cmd_train(int argc, char **argv)
{
    run_args a;
    memset(&a, 0, sizeof a);
    a.cmd = "train";
    const int p = parse(argc, argv, &a, 0);
    if (p != 0)
        return p > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    train_opts preset;
    train_opts_load(a.config ? a.config : "tiny", &preset);
    if (a.o.threads > 0)
        gqa_set_num_threads((int)a.o.threads);
    gqa_train_model *m = NULL;
    gqa_train_optim *opt = NULL;
    gqa_train_meta meta;
    memset(&meta, 0, sizeof meta);
    gqa_status s;
    if (a.resume) {
        if ((s = gqa_train_load(a.resume, &m, &opt, &meta)) != GQA_OK)
            return cli_fail(s, "train: --resume");
        if (a.o.seed < 0)
            a.o.seed = (long long)meta.seed;
    }
    if (resolve(&a, m ? gqa_train_model_config(m) : &a.o.model, a.resume ? &meta : NULL, &preset) <
        0) {
        gqa_train_optim_free(opt);
        gqa_train_model_free(m);
        return CLI_EXIT_USAGE;
    }
    if (!m && (s = gqa_train_model_create(&a.o.model, (uint64_t)a.o.seed, &m)) != GQA_OK)
        return cli_fail(s, "train: model");
    if (opt) { /* the checkpoint's hyper-parameters; --steps moves the end */
        gqa_train_optim_config c = *gqa_train_optim_get_config(opt);
        c.total_steps = a.o.opt.total_steps;
        s = gqa_train_optim_set_config(opt, &c);
        if (s == GQA_OK && gqa_train_optim_steps(opt) >= a.o.steps) {
            cli_error("train: %s has %lld steps already; ask for more with --steps", a.resume,
                      (long long)gqa_train_optim_steps(opt));
            gqa_train_optim_free(opt);
            gqa_train_model_free(m);
            return CLI_EXIT_USAGE;
        }
    } else {
        s = gqa_train_optim_create(m, &a.o.opt, &opt);
    }
    gqa_train_data *d = NULL;
    int rc = s != GQA_OK ? cli_fail(s, "train: optimizer") : open_data(&a, &d);
    if (rc == CLI_EXIT_OK) {
        /* resumed: the checkpoint's totals go on from where they were */
        const int64_t at = gqa_train_optim_steps(opt);
        const lineage ln = {a.resume ? meta.steps - at : 0, a.resume ? meta.tokens : 0, at,
                            meta.source_steps};
        summary(&a, m, gqa_train_optim_steps(opt));
        rc = train_loop(&a, &ln, m, opt, d);
    }
    gqa_train_data_free(d);
    gqa_train_optim_free(opt);
    gqa_train_model_free(m);
    return rc;
}

/* The trainer's data are bytes: a source must be a byte-level model (a
 * gpt2-style tokenizer without merges, as gqa train writes), or its ids would
 * mean something else. */
static int check_byte_level(const char *path)
{
    gqa_gguf *g;
    gqa_status s = gqa_gguf_open(path, &g);
    if (s != GQA_OK)
        return cli_fail(s, "uptrain: --from");
    uint64_t merges = 1;
    if (gqa_gguf_find_key(g, "tokenizer.ggml.merges") >= 0)
        gqa_gguf_get_arr(g, "tokenizer.ggml.merges", NULL, &merges);
    gqa_gguf_close(g);
    if (merges != 0) {
        cli_error("uptrain: %s is not a byte-level model (its tokenizer has merges); uptrain "
                  "continues training on bytes, so it takes models made by gqa train",
                  path);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* Convert a->from to a->kv_heads KV heads into a temporary file next to
 * a->out and load it for training (with the source's metadata in *src). */
static int convert_source(const run_args *a, gqa_train_model **m, gqa_train_meta *src)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.convert-%ld.gguf", a->out, (long)getpid());
    gqa_convert_options co;
    gqa_convert_options_default(&co);
    co.kv_heads = (int32_t)a->kv_heads;
    co.method = a->method;
    co.seed = (uint64_t)(a->o.seed >= 0 ? a->o.seed : 1);
    co.out_type = GQA_CONVERT_F32;
    const int rc = check_byte_level(a->from);
    if (rc != CLI_EXIT_OK)
        return rc;
    gqa_status s = gqa_convert_gguf(a->from, tmp, &co);
    if (s != GQA_OK)
        return cli_fail(s, "uptrain: converting --from");
    s = gqa_train_load(tmp, m, NULL, src);
    remove(tmp);
    return s == GQA_OK ? CLI_EXIT_OK : cli_fail(s, "uptrain: loading the converted model");
}

/* Optimizer hyper-parameters not given on the command line: the source's
 * (its X.opt.gguf, as the GQA paper uptrains with the pre-training
 * hyper-parameters), else the exp preset's. */
static void inherit_optim(const run_args *a, train_opts *o, const train_opts *preset)
{
    gqa_train_optim_config src = preset->opt;
    char path[4096];
    gqa_gguf *g = NULL;
    int from_source = gqa_train_opt_path(a->from, path, sizeof path) == GQA_OK &&
                      access(path, R_OK) == 0 && gqa_gguf_open(path, &g) == GQA_OK;
    float *dst[] = {&src.lr, &src.min_lr, &src.weight_decay, &src.clip, &src.beta1, &src.beta2};
    const char *key[] = {"gqa.opt.lr",   "gqa.opt.min_lr", "gqa.opt.weight_decay",
                         "gqa.opt.clip", "gqa.opt.beta1",  "gqa.opt.beta2"};
    for (size_t i = 0; from_source && i < sizeof dst / sizeof dst[0]; i++)
        from_source = gqa_gguf_get_f32(g, key[i], dst[i]) == GQA_OK;
    gqa_gguf_close(g);
    if (!from_source)
        src = preset->opt;
    const int lr_given = o->opt.lr >= 0.0f;
    if (!lr_given) {
        o->opt.lr = src.lr;
        /* keep the source's min/peak ratio unless --min-lr says otherwise */
        if (o->opt.min_lr < 0.0f && src.min_lr >= 0.0f && src.lr > 0.0f)
            o->opt.min_lr = src.min_lr;
    }
    if (o->opt.weight_decay < 0.0f)
        o->opt.weight_decay = src.weight_decay;
    if (o->opt.clip < 0.0f)
        o->opt.clip = src.clip;
    if (o->opt.beta1 < 0.0f)
        o->opt.beta1 = src.beta1;
    if (o->opt.beta2 < 0.0f)
        o->opt.beta2 = src.beta2;
    if (!a->quiet)
        fprintf(stderr,
                "uptrain: optimizer settings %s (lr %g, min lr %g, weight decay %g, "
                "clip %g)\n",
                from_source ? "from the source's sidecar" : "of the exp preset", (double)o->opt.lr,
                (double)(o->opt.min_lr < 0.0f ? o->opt.lr / 10.0f : o->opt.min_lr),
                (double)o->opt.weight_decay, (double)o->opt.clip);
}

int cmd_uptrain(int argc, char **argv)
{
    run_args a;
    memset(&a, 0, sizeof a);
    a.cmd = "uptrain";
    a.fraction = 0.05;
    a.method = GQA_CONVERT_MEAN;
    const int p = parse(argc, argv, &a, 1);
    if (p != 0)
        return p > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    train_opts preset;
    train_opts_load("exp", &preset);
    if (a.o.threads > 0)
        gqa_set_num_threads((int)a.o.threads);
    gqa_train_model *m = NULL;
    gqa_train_meta src;
    int rc = convert_source(&a, &m, &src);
    if (rc != CLI_EXIT_OK)
        return rc;
    const int64_t source_steps = a.source_steps > 0 ? a.source_steps : src.steps;
    const int steps_given = a.o.steps > 0;
    if (a.o.steps < 0) {
        if (source_steps <= 0) {
            cli_error("uptrain: %s does not say how many steps it was trained for "
                      "(gqa.train.steps); give --source-steps N or --steps N",
                      a.from);
            gqa_train_model_free(m);
            return CLI_EXIT_USAGE;
        }
        a.o.steps = (long)ceil(a.fraction * (double)source_steps);
        a.o.steps = a.o.steps < 1 ? 1 : a.o.steps;
    }
    if (a.o.seed < 0) /* other windows than the source's first steps */
        a.o.seed = (long long)src.seed + 1;
    gqa_train_optim *opt = NULL;
    gqa_train_data *d = NULL;
    inherit_optim(&a, &a.o, &preset);
    if (resolve(&a, gqa_train_model_config(m), &src, &preset) < 0)
        rc = CLI_EXIT_USAGE;
    gqa_status s = GQA_OK;
    if (rc == CLI_EXIT_OK && (s = gqa_train_optim_create(m, &a.o.opt, &opt)) != GQA_OK)
        rc = cli_fail(s, "uptrain: optimizer");
    if (rc == CLI_EXIT_OK)
        rc = open_data(&a, &d);
    if (rc == CLI_EXIT_OK) {
        const lineage ln = {source_steps, src.tokens, 0, source_steps};
        if (!a.quiet && steps_given)
            fprintf(stderr, "uptrain: %s -> %ld KV heads (%s), %ld steps (--steps)\n", a.from,
                    a.kv_heads, gqa_convert_method_name(a.method), a.o.steps);
        else if (!a.quiet)
            fprintf(stderr, "uptrain: %s -> %ld KV heads (%s), %ld steps = %g x %lld\n", a.from,
                    a.kv_heads, gqa_convert_method_name(a.method), a.o.steps, a.fraction,
                    (long long)source_steps);
        summary(&a, m, 0);
        rc = train_loop(&a, &ln, m, opt, d);
    }
    gqa_train_data_free(d);
    gqa_train_optim_free(opt);
    gqa_train_model_free(m);
    return rc;
}
