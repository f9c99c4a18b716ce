/* http.h - the HTTP front of `gqa serve` on libmicrohttpd: routes, bearer
 * authentication, body limits, streaming (server-sent events) and the
 * mapping of engine results to HTTP statuses. One thread per connection:
 * a handler may wait for its request while the scheduler runs. */
#ifndef GQA_SERVE_HTTP_H
#define GQA_SERVE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef struct srv_http_config {
    const char *host;           /* numeric IPv4 or IPv6 address to bind */
    int port;                   /* 0: any free port */
    const char *api_key;        /* NULL: no authentication */
    size_t max_body;            /* bytes; larger bodies get 413 */
    double request_timeout;     /* seconds per request; 0: none */
    unsigned idle_timeout;      /* seconds a connection may stay idle */
    unsigned max_connections;   /* open connections at once */
    int64_t default_max_tokens; /* when a request gives none */
    int64_t n_ctx;              /* tokens per request (prompt + reply) */
    const char *model_name;     /* the id /v1/models lists and responses name */
    const char *default_system; /* for conversations without one; may be NULL */
    const gqa_tokenizer *tok;
} srv_http_config;

typedef struct srv_http srv_http;

/* Start serving. *port receives the bound port. Returns 0, or -1 with a
 * message in err. The strings in cfg are borrowed until srv_http_stop. */
int srv_http_start(const srv_http_config *cfg, srv_engine *e, srv_http **out, int *port, char *err,
                   size_t err_len);
/* Close the listening socket and every connection, waiting for their
 * handlers; free. NULL is fine. */
void srv_http_stop(srv_http *h);

/* Prometheus text exposition of the engine's statistics; malloc'd. */
char *srv_metrics_text(const srv_stats *st, const char *model_name);

#endif
