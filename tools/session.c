/* session.c - model + tokenizer + one cached sequence, and the generation
 * loop shared by `gqa run`, `gqa chat` and `gqa bench model`. */
#define _POSIX_C_SOURCE 200809L
#include "session.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "cmd.h"

#ifndef GQA_DEFAULT_MODEL_DIR
#define GQA_DEFAULT_MODEL_DIR "models"
#endif
#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

double session_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *session_model_path(const char *arg)
{
    static char buf[4096];
    if (arg)
        return arg;
    const char *env = getenv("GQA_MODEL");
    if (env && *env)
        return env;
    const char *dir = getenv("GQA_MODEL_DIR");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : GQA_DEFAULT_MODEL_DIR,
             DEFAULT_MODEL_FILE);
    return buf;
}

int session_parse_kv_type(const char *text, gqa_dtype *out)
{
    static const struct {
        const char *name;
        gqa_dtype t;
    } types[] = {{"f32", GQA_F32}, {"f16", GQA_F16}, {"bf16", GQA_BF16}, {"q8_0", GQA_Q8_0}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(text, types[i].name)) {
            *out = types[i].t;
            return 0;
        }
    cli_error("--kv-type: '%s' is not one of f32, f16, bf16, q8_0", text);
    return -1;
}

void session_close(session *s)
{
    gqa_kv_cache_free(s->cache);
    gqa_tokenizer_free(s->tok);
    gqa_model_free(s->model);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

int session_set_ctx(session *s, int64_t n_ctx)
{
    gqa_kv_cache_free(s->cache);
    s->cache = NULL;
    if (n_ctx <= 0)
        n_ctx = s->info.n_ctx_train > 0 ? s->info.n_ctx_train : 4096;
    s->n_ctx = n_ctx;
    gqa_kv_config cfg;
    const uint64_t bpt =
        gqa_kv_bytes_per_token(s->info.n_layers, s->info.n_kv_heads, s->info.head_dim, s->kv_type);
    const int32_t bt = 16;
    const uint64_t blocks = ((uint64_t)n_ctx + bt - 1) / bt;
    gqa_model_kv_config(s->model, s->kv_type, bt, blocks * bt * bpt, &cfg);
    gqa_status st = gqa_kv_cache_create(&cfg, &s->cache);
    if (st == GQA_OK)
        st = gqa_kv_seq_create(s->cache, &s->seq);
    return st == GQA_OK ? CLI_EXIT_OK : cli_fail(st, "KV cache");
}

int session_open(session *s, const char *path, gqa_dtype kv_type, int64_t n_ctx)
{
    memset(s, 0, sizeof *s);
    gqa_status st = gqa_model_load(path, &s->model);
    if (st != GQA_OK) {
        cli_error("cannot load the model: %s", gqa_last_error());
        if (st == GQA_ERR_IO && !getenv("GQA_MODEL") && strstr(path, DEFAULT_MODEL_FILE))
            fprintf(stderr, "gqa: hint: run 'bash scripts/fetch_model.sh' to fetch SmolLM2, "
                            "or pass -m MODEL.gguf\n");
        return CLI_EXIT_FAIL;
    }
    gqa_model_info_get(s->model, &s->info);
    st = gqa_tokenizer_from_gguf(gqa_model_gguf(s->model), &s->tok);
    if (st != GQA_OK) {
        cli_fail(st, "model tokenizer");
        session_close(s);
        return CLI_EXIT_FAIL;
    }
    s->n_stop = chat_stop_ids(s->tok, s->stop, (int)(sizeof s->stop / sizeof s->stop[0]));
    s->kv_type = kv_type;
    int rc = session_set_ctx(s, n_ctx);
    if (rc != CLI_EXIT_OK) {
        session_close(s);
        return rc;
    }
    s->logits = malloc((size_t)s->info.n_vocab * sizeof(float));
    if (!s->logits) {
        cli_error("out of memory");
        session_close(s);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int session_tokenize(session *s, const char *text, int special, int32_t **ids, int64_t *n)
{
    const size_t len = strlen(text);
    const int flags = special ? GQA_TOKENIZE_SPECIAL : 0;
    *ids = NULL;
    gqa_status st = gqa_tokenize(s->tok, text, len, flags, NULL, 0, n);
    if (st != GQA_OK && st != GQA_ERR_CAPACITY)
        return cli_fail(st, "tokenize");
    *ids = malloc((size_t)(*n > 0 ? *n : 1) * sizeof **ids);
    if (!*ids) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    st = gqa_tokenize(s->tok, text, len, flags, *ids, *n, n);
    if (st != GQA_OK) {
        free(*ids);
        *ids = NULL;
        return cli_fail(st, "tokenize");
    }
    return CLI_EXIT_OK;
}

/* Feed n tokens and leave the logits after the last one. */
static int forward(session *s, const int32_t *ids, int64_t n)
{
    const int64_t len = gqa_kv_seq_len(s->cache, s->seq);
    if (len + n > s->n_ctx) {
        cli_error("context full: %lld + %lld tokens exceed the context of %lld (raise --ctx)",
                  (long long)len, (long long)n, (long long)s->n_ctx);
        return CLI_EXIT_FAIL;
    }
    gqa_forward_item it = {.seq = s->seq, .tokens = ids, .n_tokens = n, .logits = s->logits};
    gqa_status st = gqa_model_forward(s->model, s->cache, &it, 1);
    return st == GQA_OK ? CLI_EXIT_OK : cli_fail(st, "forward pass");
}

int session_feed(session *s, const int32_t *ids, int64_t n)
{
    const double t0 = session_now();
    int rc = n > 0 ? forward(s, ids, n) : CLI_EXIT_OK;
    s->prompt_s = session_now() - t0;
    s->prompt_tokens = n;
    return rc;
}

static int is_stop(const session *s, int32_t id)
{
    for (int i = 0; i < s->n_stop; i++)
        if (s->stop[i] == id)
            return 1;
    return 0;
}

int session_generate(session *s, gqa_sampler *smp, int64_t max_tokens, FILE *out,
                     int32_t *last_stop)
{
    *last_stop = -1;
    s->gen_tokens = 0;
    s->gen_s = 0.0;
    char piece[256];
    for (int64_t i = 0; i < max_tokens; i++) {
        int32_t id;
        gqa_status st = gqa_sampler_sample(smp, s->logits, &id);
        if (st != GQA_OK)
            return cli_fail(st, "sample");
        if (is_stop(s, id)) {
            *last_stop = id;
            break;
        }
        gqa_sampler_accept(smp, id);
        if (out) {
            int64_t len;
            if (gqa_token_to_piece(s->tok, id, piece, (int64_t)sizeof piece, &len) == GQA_OK)
                fwrite(piece, 1, (size_t)len, out);
            fflush(out);
        }
        const double t0 = session_now();
        int rc = forward(s, &id, 1);
        s->gen_s += session_now() - t0;
        if (rc != CLI_EXIT_OK)
            return rc;
        s->gen_tokens++;
    }
    return CLI_EXIT_OK;
}

static void print_bytes(FILE *f, double b)
{
    if (b >= 1024.0 * 1024.0)
        fprintf(f, "%.2f MiB", b / (1024.0 * 1024.0));
    else
        fprintf(f, "%.1f KiB", b / 1024.0);
}

void session_report(const session *s, FILE *f)
{
    const int64_t len = gqa_kv_seq_len(s->cache, s->seq);
    const uint64_t bpt =
        gqa_kv_bytes_per_token(s->info.n_layers, s->info.n_kv_heads, s->info.head_dim, s->kv_type);
    const uint64_t mha =
        gqa_kv_bytes_per_token(s->info.n_layers, s->info.n_heads, s->info.head_dim, s->kv_type);
    fprintf(f,
            "\n\n[gqa] prompt: %lld tokens, %.1f tok/s | generation: %lld tokens, %.1f tok/s"
            " | %d threads, kernels %s\n",
            (long long)s->prompt_tokens,
            s->prompt_s > 0 ? (double)s->prompt_tokens / s->prompt_s : 0.0,
            (long long)s->gen_tokens, s->gen_s > 0 ? (double)s->gen_tokens / s->gen_s : 0.0,
            gqa_get_num_threads(), gqa_kernel_name());
    fprintf(f, "[gqa] KV cache (%s): %lld tokens x %llu B = ", gqa_dtype_name(s->kv_type),
            (long long)len, (unsigned long long)bpt);
    print_bytes(f, (double)len * (double)bpt);
    fprintf(f, " with G = %d KV heads; MHA (G = H = %d) would need ", s->info.n_kv_heads,
            s->info.n_heads);
    print_bytes(f, (double)len * (double)mha);
    fprintf(f, " (%.1fx more)\n", (double)mha / (double)bpt);
}

char *session_default_system(const session *s)
{
    return chat_default_system(gqa_model_gguf(s->model));
}

int session_has_chatml(const session *s)
{
    return chat_has_chatml(s->tok);
}

char *session_chatml_turn(const char *system, const char *user)
{
    chat_buf b = {0};
    if ((system && chat_add_turn(&b, "system", system)) || chat_add_turn(&b, "user", user) ||
        chat_add_reply_start(&b)) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

void gen_options_default(gen_options *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    gqa_sampler_config_default(&o->smp);
    o->kv_type = GQA_F16;
}

const char gen_options_help[] =
    "  -m, --model FILE       GGUF model (default: SmolLM2-135M-Instruct from the set-up\n"
    "                         cache: $GQA_MODEL, else $GQA_MODEL_DIR or models/)\n"
    "  -n, --n-predict N      tokens to generate (default 256)\n"
    "  --temp T               temperature; 0 = greedy (default 0.8)\n"
    "  --top-k K              keep the K most likely tokens; 0 = off (default 40)\n"
    "  --top-p P              nucleus sampling; 1 = off (default 0.95)\n"
    "  --min-p P              drop tokens below P x the top probability (default 0.05)\n"
    "  --repeat-penalty R     penalise recently seen tokens; 1 = off (default 1)\n"
    "  --seed S               random seed (default 0)\n"
    "  --threads N            worker threads (default: $GQA_THREADS or one per core)\n"
    "  --kv-type T            KV cache storage: f16 (default), q8_0, bf16, f32\n"
    "  --ctx N                context size in tokens (default: what the run needs, or the\n"
    "                         model's training context for chat)\n";

int gen_options_parse(gen_options *o, int argc, char **argv, int *i)
{
    const char *v;
    int r;
    double dv;
    long lv;
    if ((r = cli_option_value(argc, argv, i, "-m", &v)) ||
        (r = cli_option_value(argc, argv, i, "--model", &v))) {
        o->model = v;
        return r;
    }
    if ((r = cli_option_value(argc, argv, i, "-n", &v)) ||
        (r = cli_option_value(argc, argv, i, "--n-predict", &v)))
        return r < 0 ? r : cli_parse_long("-n", v, 0, 1L << 30, &o->n_predict) < 0 ? -1 : 1;
    if ((r = cli_option_value(argc, argv, i, "--temp", &v))) {
        if (r < 0 || cli_parse_double("--temp", v, 0.0, 100.0, &dv) < 0)
            return -1;
        o->smp.temperature = (float)dv;
        return 1;
    }
    if ((r = cli_option_value(argc, argv, i, "--top-k", &v))) {
        if (r < 0 || cli_parse_long("--top-k", v, 0, 1L << 30, &lv) < 0)
            return -1;
        o->smp.top_k = (int32_t)lv;
        return 1;
    }
    if ((r = cli_option_value(argc, argv, i, "--top-p", &v))) {
        if (r < 0 || cli_parse_double("--top-p", v, 1e-6, 1.0, &dv) < 0)
            return -1;
        o->smp.top_p = (float)dv;
        return 1;
    }
    if ((r = cli_option_value(argc, argv, i, "--min-p", &v))) {
        if (r < 0 || cli_parse_double("--min-p", v, 0.0, 1.0, &dv) < 0)
            return -1;
        o->smp.min_p = (float)dv;
        return 1;
    }
    if ((r = cli_option_value(argc, argv, i, "--repeat-penalty", &v))) {
        if (r < 0 || cli_parse_double("--repeat-penalty", v, 1e-3, 100.0, &dv) < 0)
            return -1;
        o->smp.repeat_penalty = (float)dv;
        return 1;
    }
    if ((r = cli_option_value(argc, argv, i, "--seed", &v))) {
        if (r < 0 || cli_parse_long("--seed", v, 0, 0x7fffffffL, &lv) < 0)
            return -1;
        o->smp.seed = (uint64_t)lv;
        return 1;
    }
    if ((r = cli_option_value(argc, argv, i, "--threads", &v)))
        return r < 0 ? r : cli_parse_long("--threads", v, 1, 1024, &o->threads) < 0 ? -1 : 1;
    if ((r = cli_option_value(argc, argv, i, "--kv-type", &v)))
        return r < 0 ? r : session_parse_kv_type(v, &o->kv_type) < 0 ? -1 : 1;
    if ((r = cli_option_value(argc, argv, i, "--ctx", &v)))
        return r < 0 ? r : cli_parse_long("--ctx", v, 1, 1L << 24, &o->n_ctx) < 0 ? -1 : 1;
    return 0;
}
