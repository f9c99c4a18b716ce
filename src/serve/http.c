/* http.c - libmicrohttpd glue of `gqa serve` (http.h). */
#define _POSIX_C_SOURCE 200809L
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api.h"
#include "chat.h"

struct srv_http {
    struct MHD_Daemon *d;
    srv_engine *e;
    srv_http_config cfg;
    pthread_mutex_t mu;
    unsigned long long next_id;
    int open_streams; /* stream responses MHD has not freed yet (under mu) */
};

typedef enum route {
    ROUTE_NONE,
    ROUTE_COMPLETIONS,
    ROUTE_CHAT,
    ROUTE_MODELS,
    ROUTE_HEALTH,
    ROUTE_METRICS
} route;

/* Per HTTP request: the route and the body read so far. */
typedef struct conn_ctx {
    route rt;
    char *body;
    size_t len;
    int too_large;
} conn_ctx;

/* A streaming response in progress. */
typedef struct stream_ctx {
    srv_http *h;
    srv_request *r;
    api_reply reply;
    char id[64];
    int include_usage, started, done;
    MHD_socket fd;
    char *out; /* SSE bytes not yet handed to MHD */
    size_t out_len, out_cap, out_off;
    char *text; /* read buffer */
    size_t text_len;
} stream_ctx;

static route route_of(const char *url)
{
    static const struct {
        const char *path;
        route rt;
    } routes[] = {{"/v1/completions", ROUTE_COMPLETIONS},
                  {"/v1/chat/completions", ROUTE_CHAT},
                  {"/v1/models", ROUTE_MODELS},
                  {"/health", ROUTE_HEALTH},
                  {"/metrics", ROUTE_METRICS}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].path))
            return routes[i].rt;
    return ROUTE_NONE;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *text, int retry_after, const char *allow)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *json)
{
    if (!json)
        return MHD_NO;
    enum MHD_Result ret = send_text(c, status, "application/json", json, 0, NULL);
    free(json);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const api_error *err, const char *allow)
{
    char *json = api_error_json(err);
    if (!json)
        return MHD_NO;
    enum MHD_Result ret = send_text(c, (unsigned)err->status, "application/json", json,
                                    err->status == 429 || err->status == 503, allow);
    free(json);
    return ret;
}

static enum MHD_Result fail(struct MHD_Connection *c, int status, const char *type,
                            const char *param, const char *code, const char *msg)
{
    api_error err;
    api_fail(&err, status, type, param, code, "%s", msg);
    return send_error(c, &err, NULL);
}

/* 1 when the peer has closed its end of the connection. */
static int client_gone(MHD_socket fd)
{
    char b;
    const ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static MHD_socket conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : MHD_INVALID_SOCKET;
}

static int authorized(const srv_http *h, struct MHD_Connection *c)
{
    if (!h->cfg.api_key)
        return 1;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!v || strncmp(v, "Bearer ", 7) != 0)
        return 0;
    v += 7;
    const size_t n = strlen(h->cfg.api_key);
    if (strlen(v) != n)
        return 0;
    unsigned char diff = 0; /* constant time in the key's length */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(v[i] ^ h->cfg.api_key[i]);
    return diff == 0;
}

static void new_id(srv_http *h, const char *prefix, char *out, size_t n)
{
    pthread_mutex_lock(&h->mu);
    const unsigned long long id = ++h->next_id;
    pthread_mutex_unlock(&h->mu);
    snprintf(out, n, "%s-%llx%06llx", prefix, (unsigned long long)time(NULL), id);
}

static enum MHD_Result get_models(srv_http *h, struct MHD_Connection *c)
{
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\",\"created\":"
             "%lld,\"owned_by\":\"gqa\"}]}",
             h->cfg.model_name, (long long)time(NULL));
    return send_text(c, MHD_HTTP_OK, "application/json", buf, 0, NULL);
}

static enum MHD_Result get_metrics(srv_http *h, struct MHD_Connection *c)
{
    srv_stats st;
    srv_engine_stats(h->e, &st);
    char *text = srv_metrics_text(&st, h->cfg.model_name);
    if (!text)
        return MHD_NO;
    enum MHD_Result ret = send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4", text, 0, NULL);
    free(text);
    return ret;
}

/* Tokenize the prompt and fill the engine's parameters. Returns 0, or -1
 * with *err. *ids is malloc'd (the caller frees it). */
static int make_params(srv_http *h, const api_request *q, int32_t **ids, srv_request_params *p,
                       api_error *err)
{
    int64_t n = q->n_prompt_ids;
    *ids = NULL;
    if (q->prompt_text) {
        const size_t len = strlen(q->prompt_text);
        gqa_status st =
            gqa_tokenize(h->cfg.tok, q->prompt_text, len, GQA_TOKENIZE_SPECIAL, NULL, 0, &n);
        if ((st != GQA_OK && st != GQA_ERR_CAPACITY) ||
            !(*ids = malloc((size_t)(n > 0 ? n : 1) * sizeof **ids)) ||
            gqa_tokenize(h->cfg.tok, q->prompt_text, len, GQA_TOKENIZE_SPECIAL, *ids, n, &n) !=
                GQA_OK)
            return api_fail(err, 400, "invalid_request_error", "prompt", NULL,
                            "the prompt cannot be tokenized");
    } else {
        if (!(*ids = malloc((size_t)n * sizeof **ids)))
            return api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(*ids, q->prompt_ids, (size_t)n * sizeof **ids);
    }
    if (n < 1)
        return api_fail(err, 400, "invalid_request_error", "prompt", NULL,
                        "the prompt is empty after tokenization");
    int64_t max_tokens = q->max_tokens;
    if (max_tokens == 0) {
        max_tokens = h->cfg.n_ctx - n;
        if (max_tokens > h->cfg.default_max_tokens)
            max_tokens = h->cfg.default_max_tokens;
    }
    if (max_tokens < 1 || n + max_tokens > h->cfg.n_ctx)
        return api_fail(err, 400, "invalid_request_error", q->chat ? "messages" : "prompt",
                        "context_length_exceeded",
                        "this model's context is %lld tokens; the request asks for %lld "
                        "(%lld in the prompt, %lld to generate)",
                        (long long)h->cfg.n_ctx, (long long)(n + max_tokens), (long long)n,
                        (long long)max_tokens);
    memset(p, 0, sizeof *p);
    p->prompt = *ids;
    p->n_prompt = n;
    p->max_tokens = max_tokens;
    p->sampler = q->sampler;
    if (!q->seed_given) {
        pthread_mutex_lock(&h->mu);
        p->sampler.seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL + ++h->next_id;
        pthread_mutex_unlock(&h->mu);
    }
    p->stop = (const char *const *)q->stop;
    p->n_stop = q->n_stop;
    p->timeout_s = h->cfg.request_timeout;
    return 0;
}

/* The error of a request the engine did not finish normally. */
static void finish_error(srv_finish f, const char *msg, api_error *err)
{
    if (f == SRV_FINISH_TIMEOUT)
        api_fail(err, 504, "timeout_error", NULL, "timeout",
                 "the request ran past the server's time limit");
    else if (f == SRV_FINISH_SHUTDOWN)
        api_fail(err, 503, "server_error", NULL, "shutting_down", "the server is shutting down");
    else if (f == SRV_FINISH_CANCELLED)
        api_fail(err, 500, "server_error", NULL, NULL, "the request was cancelled");
    else
        api_fail(err, 500, "server_error", NULL, NULL, "generation failed: %s",
                 msg ? msg : "unknown error");
}

static void submit_error(srv_submit s, api_error *err)
{
    switch (s) {
    case SRV_SUBMIT_BUSY:
        api_fail(err, 429, "rate_limit_error", NULL, "server_busy",
                 "the server is at capacity (KV cache and queue full); retry later");
        break;
    case SRV_SUBMIT_TOO_LARGE:
        api_fail(err, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                 "prompt + max_tokens need more KV cache than the server has in all");
        break;
    case SRV_SUBMIT_CLOSED:
        api_fail(err, 503, "server_error", NULL, "shutting_down", "the server is shutting down");
        break;
    case SRV_SUBMIT_INVALID:
        api_fail(err, 400, "invalid_request_error", NULL, NULL,
                 "invalid parameters (token ids or sampling settings)");
        break;
    default: api_fail(err, 500, "server_error", NULL, NULL, "out of memory"); break;
    }
}

/* Wait for the whole reply and answer it (the client's disconnection
 * cancels the request). */
static enum MHD_Result reply_whole(srv_http *h, struct MHD_Connection *c, srv_request *r,
                                   const api_reply *a)
{
    const MHD_socket fd = conn_fd(c);
    char *text = NULL;
    size_t len = 0;
    srv_progress pr;
    for (;;) {
        if (srv_request_read(r, 0.25, &text, &len, &pr) < 0) {
            srv_request_release(r);
            free(text);
            return fail(c, 500, "server_error", NULL, NULL, "out of memory");
        }
        if (pr.finish != SRV_FINISH_NONE)
            break;
        if (fd != MHD_INVALID_SOCKET && client_gone(fd)) {
            srv_request_release(r);
            free(text);
            return MHD_NO; /* closes the connection */
        }
    }
    srv_request_release(r);
    enum MHD_Result ret;
    if (pr.finish == SRV_FINISH_STOP || pr.finish == SRV_FINISH_LENGTH) {
        ret = send_json(c, MHD_HTTP_OK, api_response_json(a, text ? text : "", &pr));
    } else {
        api_error err;
        finish_error(pr.finish, pr.error, &err);
        ret = send_error(c, &err, NULL);
    }
    free(text);
    (void)h;
    return ret;
}

/* Append an SSE event (malloc'd, taken) to the bytes waiting for MHD. */
static int push(stream_ctx *s, char *event)
{
    if (!event)
        return -1;
    chat_buf b = {s->out, s->out_len, s->out_cap};
    const int rc = chat_buf_add(&b, event, strlen(event));
    free(event);
    s->out = b.s;
    s->out_len = b.len;
    s->out_cap = b.cap;
    return rc;
}

/* Turn what the request has produced into SSE events. -1: end with error. */
static int stream_fill(stream_ctx *s)
{
    srv_progress pr;
    s->text_len = 0;
    if (s->text)
        s->text[0] = '\0';
    if (!s->started) {
        s->started = 1;
        if (s->reply.chat)
            return push(s, api_stream_chunk(&s->reply, "", 1, SRV_FINISH_NONE));
    }
    if (srv_request_read(s->r, 0.25, &s->text, &s->text_len, &pr) < 0)
        return -1;
    if (s->text_len > 0 && push(s, api_stream_chunk(&s->reply, s->text, 0, SRV_FINISH_NONE)))
        return -1;
    if (pr.finish == SRV_FINISH_STOP || pr.finish == SRV_FINISH_LENGTH) {
        if (push(s, api_stream_chunk(&s->reply, NULL, 0, pr.finish)) ||
            (s->include_usage && push(s, api_stream_usage(&s->reply, &pr))))
            return -1;
    } else if (pr.finish != SRV_FINISH_NONE) {
        api_error err;
        finish_error(pr.finish, pr.error, &err);
        char *json = api_error_json(&err);
        const size_t n = json ? strlen(json) + 9 : 0;
        char *ev = json ? malloc(n) : NULL;
        if (ev)
            snprintf(ev, n, "data: %s\n\n", json);
        free(json);
        if (push(s, ev))
            return -1;
    }
    if (pr.finish != SRV_FINISH_NONE) {
        s->done = 1;
        return push(s, strdup("data: [DONE]\n\n"));
    }
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_ctx *s = cls;
    (void)pos;
    while (s->out_off == s->out_len) {
        s->out_off = s->out_len = 0;
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (stream_fill(s) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->out_len == 0 && s->fd != MHD_INVALID_SOCKET && client_gone(s->fd))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = s->out_len - s->out_off;
    if (n > max)
        n = max;
    memcpy(buf, s->out + s->out_off, n);
    s->out_off += n;
    return (ssize_t)n;
}

/* MHD calls this when the response is done or the client went away: the
 * request is released (cancelled if still running), freeing its blocks. */
static void stream_free(void *cls)
{
    stream_ctx *s = cls;
    pthread_mutex_lock(&s->h->mu);
    s->h->open_streams--;
    pthread_mutex_unlock(&s->h->mu);
    srv_request_release(s->r);
    free(s->out);
    free(s->text);
    free(s);
}

static enum MHD_Result reply_stream(srv_http *h, struct MHD_Connection *c, srv_request *r,
                                    const api_reply *a, int include_usage)
{
    stream_ctx *s = calloc(1, sizeof *s);
    if (!s) {
        srv_request_release(r);
        return fail(c, 500, "server_error", NULL, NULL, "out of memory");
    }
    s->h = h;
    s->r = r;
    s->reply = *a;
    snprintf(s->id, sizeof s->id, "%s", a->id);
    s->reply.id = s->id;
    s->include_usage = include_usage;
    s->fd = conn_fd(c);
    pthread_mutex_lock(&h->mu);
    h->open_streams++;
    pthread_mutex_unlock(&h->mu);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result post_generate(srv_http *h, struct MHD_Connection *c, conn_ctx *cc)
{
    api_request q;
    api_error err;
    const int chat = cc->rt == ROUTE_CHAT;
    if (api_parse(cc->body ? cc->body : "", cc->len, chat, h->cfg.default_system, &q, &err))
        return send_error(c, &err, NULL);
    int32_t *ids = NULL;
    srv_request_params p;
    srv_request *r = NULL;
    int rc = make_params(h, &q, &ids, &p, &err);
    if (rc == 0) {
        srv_submit s = srv_engine_submit(h->e, &p, &r);
        if (s != SRV_SUBMIT_OK) {
            submit_error(s, &err);
            rc = -1;
        }
    }
    free(ids);
    const int stream = q.stream, usage = q.include_usage;
    api_request_free(&q);
    if (rc != 0)
        return send_error(c, &err, NULL);
    char id[64];
    new_id(h, chat ? "chatcmpl" : "cmpl", id, sizeof id);
    const api_reply a = {
        .id = id, .created = (long long)time(NULL), .model = h->cfg.model_name, .chat = chat};
    return stream ? reply_stream(h, c, r, &a, usage) : reply_whole(h, c, r, &a);
}

/* First call of a request: route, method, authentication, declared size. */
static enum MHD_Result check_request(srv_http *h, struct MHD_Connection *c, conn_ctx *cc,
                                     const char *method)
{
    const int post = cc->rt == ROUTE_COMPLETIONS || cc->rt == ROUTE_CHAT;
    if (cc->rt == ROUTE_NONE)
        return fail(c, 404, "invalid_request_error", NULL, "not_found", "unknown route");
    const int ok =
        post ? !strcmp(method, "POST") : !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!ok) {
        api_error err;
        api_fail(&err, 405, "invalid_request_error", NULL, "method_not_allowed",
                 "method %s is not allowed here (use %s)", method, post ? "POST" : "GET");
        return send_error(c, &err, post ? "POST" : "GET, HEAD");
    }
    if ((post || cc->rt == ROUTE_MODELS) && !authorized(h, c))
        return fail(c, 401, "invalid_request_error", NULL, "invalid_api_key",
                    "missing or wrong API key (Authorization: Bearer KEY)");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > h->cfg.max_body)
        return fail(c, 413, "invalid_request_error", NULL, "request_too_large",
                    "the request body is larger than the server's limit");
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    srv_http *h = cls;
    conn_ctx *cc = *con_cls;
    (void)version;
    if (!cc) {
        if (!(cc = calloc(1, sizeof *cc)))
            return MHD_NO;
        *con_cls = cc;
        cc->rt = route_of(url);
        return check_request(h, c, cc, method);
    }
    if (*upload_data_size > 0) {
        const size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cc->too_large || cc->len + n > h->cfg.max_body) {
            cc->too_large = 1;
            return MHD_YES;
        }
        char *b = realloc(cc->body, cc->len + n + 1);
        if (!b)
            return MHD_NO;
        memcpy(b + cc->len, upload_data, n);
        cc->len += n;
        b[cc->len] = '\0';
        cc->body = b;
        return MHD_YES;
    }
    if (cc->too_large)
        return fail(c, 413, "invalid_request_error", NULL, "request_too_large",
                    "the request body is larger than the server's limit");
    switch (cc->rt) {
    case ROUTE_MODELS: return get_models(h, c);
    case ROUTE_METRICS: return get_metrics(h, c);
    case ROUTE_HEALTH:
        return send_text(c, MHD_HTTP_OK, "application/json", "{\"status\":\"ok\"}", 0, NULL);
    default: return post_generate(h, c, cc);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    conn_ctx *cc = *con_cls;
    if (cc) {
        free(cc->body);
        free(cc);
        *con_cls = NULL;
    }
}

int srv_http_start(const srv_http_config *cfg, srv_engine *e, srv_http **out, int *port, char *err,
                   size_t err_len)
{
    *out = NULL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
    if (strchr(cfg->host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)cfg->port);
        flags |= MHD_USE_IPv6;
        if (inet_pton(AF_INET6, cfg->host, &a->sin6_addr) != 1) {
            snprintf(err, err_len, "--host '%s' is not a numeric IPv6 address", cfg->host);
            return -1;
        }
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET, cfg->host, &a->sin_addr) != 1) {
            snprintf(err, err_len, "--host '%s' is not a numeric IPv4 address", cfg->host);
            return -1;
        }
    }
    srv_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    h->e = e;
    h->cfg = *cfg;
    pthread_mutex_init(&h->mu, NULL);
    h->d =
        MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, h,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, h, MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout,
                         MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, err_len, "cannot listen on %s port %d (in use, or not an address here?)",
                 cfg->host, cfg->port);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : cfg->port;
    *out = h;
    return 0;
}

void srv_http_stop(srv_http *h)
{
    if (!h)
        return;
    /* The engine has ended every request; give MHD a moment (bounded) to send
     * the streams' last chunks ("data: [DONE]" and the chunked terminator)
     * before the daemon closes their connections. */
    const struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 300; i++) {
        pthread_mutex_lock(&h->mu);
        const int open = h->open_streams;
        pthread_mutex_unlock(&h->mu);
        if (open <= 0)
            break;
        nanosleep(&tick, NULL);
    }
    MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
