/* cmd_perplexity.c - `gqa perplexity`: how well a model predicts a text.
 *
 * The sliding-window method of Hugging Face's perplexity guide: the whole
 * text is tokenized once, windows of --ctx tokens start every --stride
 * tokens, and each window scores only the tokens no earlier window scored,
 * so every token but the first is scored exactly once (after the first
 * window with ctx - stride + 1 to ctx tokens of context). One difference: a
 * window's last logit row predicts the token after the window, and we score
 * it (the guide drops it), so --stride equal to --ctx loses no token either.
 * See docs/perplexity.md.
 *
 * Uses only the public API and session.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "cmd.h"
#include "session.h"

/* Rows of logits per forward call, the forward pass's own micro-batch: the
 * logits buffer holds at most this many rows whatever --ctx is, and longer
 * windows cost no more calls than the forward pass makes anyway. */
#define PPL_CHUNK 512

typedef struct ppl_options {
    const char *model, *text_path, *json_path, *dump_path;
    long n_ctx, stride; /* stride 0: n_ctx / 2 */
    long threads;       /* 0: library default */
    long max_tokens;    /* 0: the whole text */
    gqa_dtype kv_type;
    int quiet;
} ppl_options;

typedef struct ppl_result {
    int64_t n_tokens, n_windows, n_scored, n_evaluated;
    int64_t window; /* tokens per window: min(ctx, n_tokens) */
    double nll_sum; /* nats */
    double seconds;
} ppl_result;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gqa perplexity [-m MODEL] -f TEXT [options]\n"
            "\n"
            "Perplexity of the model on a text file: exp of the mean negative log-likelihood\n"
            "of every token but the first, over sliding windows of --ctx tokens that advance by\n"
            "--stride tokens (each window a fresh KV sequence; only tokens no earlier window\n"
            "scored are scored). The text is tokenized as plain text (no special tokens), with\n"
            "BOS first only if the model's tokenizer asks for it.\n"
            "\n"
            "  -m, --model FILE       GGUF model (default: SmolLM2-135M-Instruct from the set-up\n"
            "                         cache: $GQA_MODEL, else $GQA_MODEL_DIR or models/)\n"
            "  -f, --file TEXT        the text file\n"
            "  --ctx N                tokens per window (default 512, at least 2)\n"
            "  --stride S             tokens between window starts, 1..N (default N/2)\n"
            "  --threads N            worker threads (default: $GQA_THREADS or one per core)\n"
            "  --kv-type T            KV cache storage: f16 (default), q8_0, bf16, f32\n"
            "  --max-tokens N         use only the first N tokens of the text\n"
            "  --json FILE            also write the result as JSON\n"
            "  --dump-tokens FILE     write the token ids evaluated, one per line\n"
            "  --quiet                no progress bar (there is none when stderr is not a tty)\n");
}

/* 0: parsed, 1: help printed, -1: bad command line (error printed). */
static int parse(int argc, char **argv, ppl_options *o)
{
    memset(o, 0, sizeof *o);
    o->n_ctx = 512;
    o->kv_type = GQA_F16;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_option_value(argc, argv, &i, "-m", &v)) ||
            (r = cli_option_value(argc, argv, &i, "--model", &v))) {
            if (r < 0)
                return -1;
            o->model = v;
        } else if ((r = cli_option_value(argc, argv, &i, "-f", &v)) ||
                   (r = cli_option_value(argc, argv, &i, "--file", &v))) {
            if (r < 0)
                return -1;
            o->text_path = v;
        } else if ((r = cli_option_value(argc, argv, &i, "--ctx", &v))) {
            if (r < 0 || cli_parse_long("--ctx", v, 2, 1L << 20, &o->n_ctx) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--stride", &v))) {
            if (r < 0 || cli_parse_long("--stride", v, 1, 1L << 20, &o->stride) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--threads", &v))) {
            if (r < 0 || cli_parse_long("--threads", v, 1, 1024, &o->threads) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--kv-type", &v))) {
            if (r < 0 || session_parse_kv_type(v, &o->kv_type) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--max-tokens", &v))) {
            if (r < 0 || cli_parse_long("--max-tokens", v, 2, 1L << 40, &o->max_tokens) < 0)
                return -1;
        } else if ((r = cli_option_value(argc, argv, &i, "--json", &v))) {
            if (r < 0)
                return -1;
            o->json_path = v;
        } else if ((r = cli_option_value(argc, argv, &i, "--dump-tokens", &v))) {
            if (r < 0)
                return -1;
            o->dump_path = v;
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            o->quiet = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 1;
        } else {
            cli_error("perplexity: unknown option '%s' (try 'gqa perplexity --help')", argv[i]);
            return -1;
        }
    }
    if (!o->text_path) {
        cli_error("perplexity: missing -f TEXT (try 'gqa perplexity --help')");
        return -1;
    }
    if (o->stride == 0)
        o->stride = o->n_ctx / 2;
    if (o->stride > o->n_ctx) {
        cli_error("perplexity: --stride %ld is larger than --ctx %ld (tokens between two "
                  "windows would never be scored)",
                  o->stride, o->n_ctx);
        return -1;
    }
    return 0;
}

/* The whole file into a malloc'd buffer (any bytes; NUL-terminated for
 * convenience, *len excludes it). */
static int read_text(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("perplexity: cannot open '%s': %s", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n - 1, f);
        if (ferror(f) || n < cap - 1)
            break;
        char *nb = cap <= SIZE_MAX / 2 ? realloc(b, cap * 2) : NULL;
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    const int err = ferror(f);
    fclose(f);
    if (!b || err) {
        free(b);
        if (err)
            cli_error("perplexity: cannot read '%s'", path);
        else
            cli_error("perplexity: out of memory reading '%s'", path);
        return CLI_EXIT_FAIL;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return CLI_EXIT_OK;
}

/* Plain-text tokens of text[0..len), BOS first when the tokenizer says so. */
static int tokenize_text(const gqa_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                         int64_t *n)
{
    const int flags = GQA_TOKENIZE_ADD_BOS; /* a no-op unless add_bos_token is set */
    *ids = NULL;
    gqa_status st = gqa_tokenize(tok, text, len, flags, NULL, 0, n);
    if (st != GQA_OK && st != GQA_ERR_CAPACITY)
        return cli_fail(st, "perplexity: tokenize");
    *ids = malloc((size_t)(*n > 0 ? *n : 1) * sizeof **ids);
    if (!*ids) {
        cli_error("perplexity: out of memory for %lld tokens", (long long)*n);
        return CLI_EXIT_FAIL;
    }
    st = gqa_tokenize(tok, text, len, flags, *ids, *n, n);
    if (st != GQA_OK) {
        free(*ids);
        *ids = NULL;
        return cli_fail(st, "perplexity: tokenize");
    }
    return CLI_EXIT_OK;
}

/* -log softmax(x)[target] over n logits, in double. Subtracting the maximum
 * first keeps every exp() in (0, 1], so the sum cannot overflow and the
 * largest term is exactly 1 (no underflow to log(0)). NAN for a non-finite
 * logit. */
static double row_nll(const float *x, int32_t n, int32_t target)
{
    double mx = (double)x[0];
    for (int32_t i = 1; i < n; i++)
        mx = (double)x[i] > mx ? (double)x[i] : mx;
    if (!isfinite(mx))
        return NAN;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        sum += exp((double)x[i] - mx);
    return log(sum) - ((double)x[target] - mx);
}

/* The windows: window w starts at b = w * stride and holds min(ctx, n - b)
 * tokens; its rows predict tokens b + 1 .. b + ctx, so the first window
 * whose rows reach token n - 1 is the last. */
static int64_t count_windows(int64_t n, int64_t ctx, int64_t stride)
{
    int64_t w = 1;
    for (int64_t b = 0; b + ctx < n - 1; b += stride)
        w++;
    return w;
}

static void format_duration(double s, char *out, size_t size)
{
    const long t = s < 0 ? 0 : (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, size, "%ld:%02ld", t / 60, t % 60);
}

static void progress(int64_t done, int64_t total, double elapsed)
{
    enum { WIDTH = 30 };
    char bar[WIDTH + 1], eta[32];
    const int fill = (int)(WIDTH * done / (total > 0 ? total : 1));
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = '\0';
    format_duration(done > 0 ? elapsed / (double)done * (double)(total - done) : 0.0, eta,
                    sizeof eta);
    fprintf(stderr, "\rperplexity [%s] %lld/%lld windows, ETA %s ", bar, (long long)done,
            (long long)total, done > 0 ? eta : "?");
    fflush(stderr);
}

/* Feed ids[b .. e) into an empty sequence and add the NLL of every target
 * t in (last, e] (t < n) to r: the row of token t - 1 predicts token t.
 * Tokens whose row is not needed (b .. last - 1) are fed without logits,
 * which skips the classifier for them. */
static int score_window(session *s, const int32_t *ids, int64_t n, int64_t b, int64_t e,
                        int64_t last, float *logits, double *nll, ppl_result *r)
{
    const int32_t V = s->info.n_vocab;
    gqa_status st = gqa_kv_seq_truncate(s->cache, s->seq, 0);
    if (st != GQA_OK)
        return cli_fail(st, "perplexity: KV cache");
    int64_t p = b;
    if (last > b) { /* the prefix: context only */
        gqa_forward_item it = {.seq = s->seq, .tokens = ids + b, .n_tokens = last - b};
        if ((st = gqa_model_forward(s->model, s->cache, &it, 1)) != GQA_OK)
            return cli_fail(st, "perplexity: forward pass");
        p = last;
    }
    while (p < e) {
        const int64_t m = e - p < PPL_CHUNK ? e - p : PPL_CHUNK;
        gqa_forward_item it = {
            .seq = s->seq, .tokens = ids + p, .n_tokens = m, .logits = logits, .all_logits = 1};
        if ((st = gqa_model_forward(s->model, s->cache, &it, 1)) != GQA_OK)
            return cli_fail(st, "perplexity: forward pass");
        /* rows in parallel (a 49152-way log-sum-exp costs a tenth of a token's
         * forward pass), summed in order so any thread count gives the same sum */
        const int64_t rows = p + m < n ? m : n - 1 - p;
#pragma omp parallel for schedule(static) num_threads(gqa_get_num_threads())
        for (int64_t i = 0; i < rows; i++)
            nll[i] = row_nll(logits + (size_t)i * (size_t)V, V, ids[p + i + 1]);
        for (int64_t i = 0; i < rows; i++) {
            if (!isfinite(nll[i])) {
                cli_error("perplexity: non-finite logits predicting token %lld",
                          (long long)(p + i + 1));
                return CLI_EXIT_FAIL;
            }
            r->nll_sum += nll[i];
            r->n_scored++;
        }
        p += m;
    }
    r->n_evaluated += e - b;
    return CLI_EXIT_OK;
}

static int run_windows(session *s, const int32_t *ids, int64_t n, const ppl_options *o, int show,
                       ppl_result *r)
{
    const int64_t ctx = o->n_ctx < n ? o->n_ctx : n;
    r->window = ctx;
    r->n_windows = count_windows(n, ctx, o->stride);
    const int64_t rows = ctx < PPL_CHUNK ? ctx : PPL_CHUNK;
    float *logits = malloc((size_t)rows * (size_t)s->info.n_vocab * sizeof *logits);
    double *nll = malloc((size_t)rows * sizeof *nll);
    if (!logits || !nll) {
        free(logits);
        free(nll);
        cli_error("perplexity: out of memory for %lld x %d logits", (long long)rows,
                  (int)s->info.n_vocab);
        return CLI_EXIT_FAIL;
    }
    int rc = CLI_EXIT_OK;
    const double t0 = session_now();
    int64_t last = 0; /* the last token scored so far (token 0 never is) */
    if (show)
        progress(0, r->n_windows, 0.0);
    for (int64_t w = 0, b = 0; rc == CLI_EXIT_OK && w < r->n_windows; w++, b += o->stride) {
        const int64_t e = b + ctx < n ? b + ctx : n;
        rc = score_window(s, ids, n, b, e, last, logits, nll, r);
        last = e < n ? e : n - 1;
        if (show)
            progress(w + 1, r->n_windows, session_now() - t0);
    }
    r->seconds = session_now() - t0;
    if (show)
        fputs("\r\033[K", stderr);
    free(logits);
    free(nll);
    return rc;
}

static int write_tokens(const char *path, const int32_t *ids, int64_t n)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error("perplexity: cannot write '%s': %s", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "%d\n", (int)ids[i]);
    if (fclose(f) != 0) {
        cli_error("perplexity: cannot write '%s'", path);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static int write_json(FILE *f, const ppl_options *o, const session *s, const ppl_result *r,
                      int add_bos)
{
    const double mean = r->nll_sum / (double)r->n_scored;
    cJSON *root = cJSON_CreateObject();
    if (root) {
        cJSON_AddStringToObject(root, "model", session_model_path(o->model));
        cJSON_AddStringToObject(root, "model_name", s->info.name);
        cJSON_AddStringToObject(root, "text", o->text_path);
        cJSON_AddNumberToObject(root, "n_tokens", (double)r->n_tokens);
        cJSON_AddBoolToObject(root, "bos", add_bos);
        cJSON_AddNumberToObject(root, "ctx", (double)o->n_ctx);
        cJSON_AddNumberToObject(root, "stride", (double)o->stride);
        cJSON_AddNumberToObject(root, "windows", (double)r->n_windows);
        cJSON_AddNumberToObject(root, "scored_tokens", (double)r->n_scored);
        cJSON_AddNumberToObject(root, "evaluated_tokens", (double)r->n_evaluated);
        cJSON_AddNumberToObject(root, "mean_nll", mean);
        cJSON_AddNumberToObject(root, "ppl", exp(mean));
        cJSON_AddNumberToObject(root, "seconds", r->seconds);
        cJSON_AddNumberToObject(root, "scored_tok_s", (double)r->n_scored / r->seconds);
        cJSON_AddNumberToObject(root, "evaluated_tok_s", (double)r->n_evaluated / r->seconds);
        cJSON_AddNumberToObject(root, "threads", gqa_get_num_threads());
        cJSON_AddStringToObject(root, "kernel", gqa_kernel_name());
        cJSON_AddStringToObject(root, "kv_type", gqa_dtype_name(o->kv_type));
    }
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    int rc = CLI_EXIT_OK;
    if (!text) {
        cli_error("perplexity: out of memory writing '%s'", o->json_path);
        rc = CLI_EXIT_FAIL;
    } else if (fprintf(f, "%s\n", text) < 0) {
        cli_error("perplexity: cannot write '%s'", o->json_path);
        rc = CLI_EXIT_FAIL;
    }
    free(text);
    if (fclose(f) != 0 && rc == CLI_EXIT_OK) {
        cli_error("perplexity: cannot write '%s'", o->json_path);
        rc = CLI_EXIT_FAIL;
    }
    if (rc != CLI_EXIT_OK)
        remove(o->json_path);
    return rc;
}

static void print_result(const ppl_options *o, const ppl_result *r)
{
    const double mean = r->nll_sum / (double)r->n_scored;
    printf("ppl %.6f | %lld scored tokens | mean NLL %.6f nats\n", exp(mean),
           (long long)r->n_scored, mean);
    printf("%lld tokens, ctx %lld, stride %ld, %lld windows | %.2f s: %.1f tok/s scored, "
           "%.1f tok/s evaluated | %d threads, kernels %s, KV %s\n",
           (long long)r->n_tokens, (long long)r->window, o->stride, (long long)r->n_windows,
           r->seconds, (double)r->n_scored / r->seconds, (double)r->n_evaluated / r->seconds,
           gqa_get_num_threads(), gqa_kernel_name(), gqa_dtype_name(o->kv_type));
    fflush(stdout);
}

int cmd_perplexity(int argc, char **argv)
{
    ppl_options o;
    const int pr = parse(argc, argv, &o);
    if (pr != 0)
        return pr > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (o.threads > 0)
        gqa_set_num_threads((int)o.threads);

    char *text;
    size_t len;
    int rc = read_text(o.text_path, &text, &len);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (len == 0) {
        cli_error("perplexity: '%s' is empty", o.text_path);
        free(text);
        return CLI_EXIT_FAIL;
    }
    FILE *jf = NULL; /* opened now so that a bad path fails before the run */
    if (o.json_path && !(jf = fopen(o.json_path, "w"))) {
        cli_error("perplexity: cannot write '%s': %s", o.json_path, strerror(errno));
        free(text);
        return CLI_EXIT_FAIL;
    }

    session s;
    /* a 1-token cache for now; sized for the window once the text's length is known */
    rc = session_open(&s, session_model_path(o.model), o.kv_type, 1);
    if (rc != CLI_EXIT_OK) {
        free(text);
        if (jf) {
            fclose(jf);
            remove(o.json_path);
        }
        return rc;
    }
    int32_t *ids = NULL;
    ppl_result r;
    memset(&r, 0, sizeof r);
    rc = tokenize_text(s.tok, text, len, &ids, &r.n_tokens);
    free(text);
    if (rc == CLI_EXIT_OK && o.max_tokens > 0 && r.n_tokens > o.max_tokens)
        r.n_tokens = o.max_tokens;
    if (rc == CLI_EXIT_OK && r.n_tokens < 2) {
        cli_error("perplexity: '%s' has %lld token(s); at least 2 are needed", o.text_path,
                  (long long)r.n_tokens);
        rc = CLI_EXIT_FAIL;
    }
    const int add_bos = gqa_tokenizer_add_bos(s.tok) && gqa_tokenizer_bos(s.tok) >= 0;
    if (rc == CLI_EXIT_OK && o.dump_path)
        rc = write_tokens(o.dump_path, ids, r.n_tokens);
    if (rc == CLI_EXIT_OK)
        rc = session_set_ctx(&s, o.n_ctx < r.n_tokens ? o.n_ctx : r.n_tokens);
    if (rc == CLI_EXIT_OK && s.info.n_ctx_train > 0 && s.n_ctx > s.info.n_ctx_train)
        fprintf(stderr, "gqa: warning: --ctx %lld exceeds the model's training context (%d)\n",
                (long long)s.n_ctx, (int)s.info.n_ctx_train);
    const int show = !o.quiet && isatty(STDERR_FILENO);
    if (rc == CLI_EXIT_OK)
        rc = run_windows(&s, ids, r.n_tokens, &o, show, &r);
    if (rc == CLI_EXIT_OK)
        print_result(&o, &r);
    if (jf) {
        if (rc == CLI_EXIT_OK) {
            rc = write_json(jf, &o, &s, &r, add_bos);
        } else {
            fclose(jf);
            remove(o.json_path);
        }
    }
    free(ids);
    session_close(&s);
    return rc;
}
