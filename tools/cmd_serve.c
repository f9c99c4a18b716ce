/* cmd_serve.c - `gqa serve`: an OpenAI-compatible HTTP server with
 * continuous batching over one paged KV cache (src/serve/). Options,
 * model loading, signals and shutdown live here. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "cmd.h"
#include "engine.h"
#include "http.h"
#include "session.h"

typedef struct serve_options {
    const char *model, *host, *api_key;
    long port, max_queue, threads, n_ctx, max_tokens, max_active, prefill_chunk, prefix_cache;
    long block_tokens, idle_timeout, max_connections;
    uint64_t kv_budget, max_body;
    double timeout, grace;
    gqa_dtype kv_type;
} serve_options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gqa serve [-m MODEL] [options]\n"
            "\n"
            "Serve the model over HTTP with the OpenAI API: POST /v1/completions and\n"
            "/v1/chat/completions (\"stream\": true for server-sent events), GET /v1/models,\n"
            "/health and /metrics (Prometheus). Requests share one KV budget; every step\n"
            "runs one batched forward pass over all active sequences. SIGINT or SIGTERM\n"
            "stops admitting, lets running requests finish (up to --shutdown-grace) and exits.\n"
            "\n"
            "  -m, --model FILE        GGUF model (default: SmolLM2-135M-Instruct, as gqa run)\n"
            "  --host ADDR             address to bind (default 127.0.0.1, loopback only)\n"
            "  --port N                TCP port; 0 picks a free one (default 8080). The\n"
            "                          first line on stdout says where it listens\n"
            "  --kv-budget SIZE        KV cache memory for all requests (default 2GiB)\n"
            "  --kv-type T             f16 (default), q8_0, bf16, f32\n"
            "  --block-tokens N        tokens per KV block (default 16)\n"
            "  --ctx N                 most tokens (prompt + reply) per request (default: the\n"
            "                          model's training context)\n"
            "  --max-tokens N          reply length when a request sets none (default 256)\n"
            "  --max-queue N           requests waiting for room; beyond: 429 (default 64)\n"
            "  --max-active N          requests generating at once; 0 = KV budget only (default)\n"
            "  --prefill-chunk N       prompt tokens per step, all requests together, 64..512\n"
            "                          (default 128; chunks are cut at multiples of 64)\n"
            "  --prefix-cache N        finished sequences kept to share prompt prefixes;\n"
            "                          0 = off (default 8)\n"
            "  --api-key KEY           require 'Authorization: Bearer KEY' (also $GQA_API_KEY)\n"
            "  --timeout SECONDS       per-request limit, queue time included (default 600)\n"
            "  --max-body SIZE         largest request body; beyond: 413 (default 1MiB)\n"
            "  --idle-timeout SECONDS  close idle connections (default 60)\n"
            "  --max-connections N     open connections at once (default 256)\n"
            "  --shutdown-grace SEC    time running requests get to finish on SIGINT/SIGTERM\n"
            "                          before they are cancelled (default 10)\n"
            "  --threads N             worker threads of the forward pass (default: all cores)\n"
            "  -h, --help              this help\n");
}

static void defaults(serve_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->kv_budget = 2ULL << 30;
    o->kv_type = GQA_F16;
    o->block_tokens = 16;
    o->max_tokens = 256;
    o->max_queue = 64;
    o->prefill_chunk = 128;
    o->prefix_cache = 8;
    o->timeout = 600;
    o->max_body = 1 << 20;
    o->idle_timeout = 60;
    o->max_connections = 256;
    o->grace = 10;
    const char *key = getenv("GQA_API_KEY");
    o->api_key = key && *key ? key : NULL;
}

/* One option at argv[*i]: 1 consumed, 0 unknown, -1 bad value. */
static int parse_option(serve_options *o, int argc, char **argv, int *i)
{
    static const struct {
        const char *name;
        long lo, hi;
        size_t off;
    } longs[] = {
        {"--port", 0, 65535, offsetof(serve_options, port)},
        {"--max-queue", 0, 1L << 20, offsetof(serve_options, max_queue)},
        {"--threads", 1, 1024, offsetof(serve_options, threads)},
        {"--ctx", 2, 1L << 24, offsetof(serve_options, n_ctx)},
        {"--max-tokens", 1, 1L << 24, offsetof(serve_options, max_tokens)},
        {"--max-active", 0, 1L << 20, offsetof(serve_options, max_active)},
        {"--prefill-chunk", 64, 512, offsetof(serve_options, prefill_chunk)},
        {"--prefix-cache", 0, 4096, offsetof(serve_options, prefix_cache)},
        {"--block-tokens", 1, 65536, offsetof(serve_options, block_tokens)},
        {"--idle-timeout", 1, 86400, offsetof(serve_options, idle_timeout)},
        {"--max-connections", 1, 65536, offsetof(serve_options, max_connections)},
    };
    const char *v;
    int r;
    for (size_t k = 0; k < sizeof longs / sizeof longs[0]; k++)
        if ((r = cli_option_value(argc, argv, i, longs[k].name, &v)))
            return r < 0 || cli_parse_long(longs[k].name, v, longs[k].lo, longs[k].hi,
                                           (long *)((char *)o + longs[k].off)) < 0
                       ? -1
                       : 1;
    if ((r = cli_option_value(argc, argv, i, "-m", &v)) ||
        (r = cli_option_value(argc, argv, i, "--model", &v)))
        return o->model = v, r;
    if ((r = cli_option_value(argc, argv, i, "--host", &v)))
        return o->host = v, r;
    if ((r = cli_option_value(argc, argv, i, "--api-key", &v)))
        return o->api_key = v, r;
    if ((r = cli_option_value(argc, argv, i, "--kv-budget", &v)))
        return r < 0 || cli_parse_size("--kv-budget", v, &o->kv_budget) < 0 ? -1 : 1;
    if ((r = cli_option_value(argc, argv, i, "--max-body", &v)))
        return r < 0 || cli_parse_size("--max-body", v, &o->max_body) < 0 ? -1 : 1;
    if ((r = cli_option_value(argc, argv, i, "--kv-type", &v)))
        return r < 0 || session_parse_kv_type(v, &o->kv_type) < 0 ? -1 : 1;
    if ((r = cli_option_value(argc, argv, i, "--timeout", &v)))
        return r < 0 || cli_parse_double("--timeout", v, 0.0, 1e7, &o->timeout) < 0 ? -1 : 1;
    if ((r = cli_option_value(argc, argv, i, "--shutdown-grace", &v)))
        return r < 0 || cli_parse_double("--shutdown-grace", v, 0.0, 1e5, &o->grace) < 0 ? -1 : 1;
    return 0;
}

/* The model's id for /v1/models: the file name without directory and .gguf. */
static void model_name(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, n, "%s", base);
    const size_t len = strlen(out);
    if (len > 5 && !strcmp(out + len - 5, ".gguf"))
        out[len - 5] = '\0';
}

/* Serve until SIGINT or SIGTERM. */
static int serve(const serve_options *o, gqa_model *model, const gqa_tokenizer *tok,
                 const sigset_t *sigs)
{
    gqa_model_info info;
    gqa_model_info_get(model, &info);
    srv_engine_config ec = {.model = model,
                            .tok = tok,
                            .kv_type = o->kv_type,
                            .kv_budget = o->kv_budget,
                            .block_tokens = (int32_t)o->block_tokens,
                            .n_ctx = o->n_ctx > 0           ? o->n_ctx
                                     : info.n_ctx_train > 0 ? info.n_ctx_train
                                                            : 4096,
                            .max_queue = (int32_t)o->max_queue,
                            .max_active = (int32_t)o->max_active,
                            .prefill_chunk = (int32_t)o->prefill_chunk,
                            .prefix_cache = (int32_t)o->prefix_cache};
    ec.n_stop_ids = chat_stop_ids(tok, ec.stop_ids, 8);
    srv_engine *e = NULL;
    gqa_status st = srv_engine_create(&ec, &e);
    if (st != GQA_OK)
        return cli_fail(st, "KV cache for --kv-budget");
    char name[256];
    model_name(gqa_model_gguf(model) ? o->model : "model", name, sizeof name);
    char *sys = chat_has_chatml(tok) ? chat_default_system(gqa_model_gguf(model)) : NULL;
    srv_http_config hc = {.host = o->host,
                          .port = (int)o->port,
                          .api_key = o->api_key,
                          .max_body = (size_t)o->max_body,
                          .request_timeout = o->timeout,
                          .idle_timeout = (unsigned)o->idle_timeout,
                          .max_connections = (unsigned)o->max_connections,
                          .default_max_tokens = o->max_tokens,
                          .n_ctx = ec.n_ctx,
                          .model_name = name,
                          .default_system = sys,
                          .tok = tok};
    srv_http *h = NULL;
    char err[256];
    int port = 0, rc = CLI_EXIT_OK;
    if ((st = srv_engine_start(e)) != GQA_OK) {
        rc = cli_fail(st, "scheduler thread");
    } else if (srv_http_start(&hc, e, &h, &port, err, sizeof err) != 0) {
        cli_error("serve: %s", err);
        rc = CLI_EXIT_FAIL;
    } else {
        srv_stats s;
        srv_engine_stats(e, &s);
        printf("gqa serve: listening on http://%s%s%s:%d (model %s, G = %d, KV %s %lld blocks x "
               "%lld tokens = %lld tokens, %d threads)\n",
               strchr(o->host, ':') ? "[" : "", o->host, strchr(o->host, ':') ? "]" : "", port,
               name, (int)info.n_kv_heads, gqa_dtype_name(o->kv_type), (long long)s.blocks_total,
               (long long)s.block_tokens, (long long)(s.blocks_total * s.block_tokens),
               gqa_get_num_threads());
        fflush(stdout);
        int sig = 0;
        sigwait(sigs, &sig);
        fprintf(stderr, "gqa serve: %s: finishing running requests (up to %.0f s), then exiting\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", o->grace);
    }
    srv_engine_shutdown(e, o->grace);
    srv_http_stop(h);
    srv_engine_free(e);
    free(sys);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    serve_options o;
    defaults(&o);
    for (int i = 1; i < argc; i++) {
        const int r = parse_option(&o, argc, argv, &i);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        cli_error("serve: unknown argument '%s' (see gqa serve --help)", argv[i]);
        return CLI_EXIT_USAGE;
    }
    o.model = session_model_path(o.model);
    if (o.threads > 0)
        gqa_set_num_threads((int)o.threads);
    /* the signals are taken by sigwait in this thread; every other thread
     * (scheduler, HTTP) inherits the mask and never sees them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    gqa_model *model = NULL;
    gqa_tokenizer *tok = NULL;
    gqa_status st = gqa_model_load(o.model, &model);
    if (st != GQA_OK) {
        cli_error("cannot load the model %s: %s", o.model, gqa_last_error());
        return CLI_EXIT_FAIL;
    }
    st = gqa_tokenizer_from_gguf(gqa_model_gguf(model), &tok);
    int rc = st == GQA_OK ? serve(&o, model, tok, &sigs) : cli_fail(st, "model tokenizer");
    gqa_tokenizer_free(tok);
    gqa_model_free(model);
    gqa_workspace_release();
    return rc;
}
