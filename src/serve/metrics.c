/* metrics.c - the engine's statistics in the Prometheus text format
 * (version 0.0.4) for GET /metrics. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "http.h"

typedef struct out {
    char *s;
    size_t len, cap;
    int failed;
} out;

static void put(out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(o->s ? o->s + o->len : NULL, o->s ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if (o->s && o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(o->s, cap);
        if (!s) {
            o->failed = 1;
            return;
        }
        o->s = s;
        o->cap = cap;
    }
}

static void metric(out *o, const char *name, const char *type, const char *help, double v)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void histogram(out *o, const char *name, const char *help, const int64_t *count, double sum)
{
    put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < SRV_LATENCY_BUCKETS; i++)
        put(o, "%s_bucket{le=\"%g\"} %lld\n", name, srv_latency_bounds[i], (long long)count[i]);
    put(o, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.17g\n%s_count %lld\n", name,
        (long long)count[SRV_LATENCY_BUCKETS], name, sum, name,
        (long long)count[SRV_LATENCY_BUCKETS]);
}

char *srv_metrics_text(const srv_stats *st, const char *model_name)
{
    out o = {0};
    put(&o,
        "# HELP gqa_model_info The model this server runs.\n# TYPE gqa_model_info gauge\n"
        "gqa_model_info{model=\"%s\"} 1\n",
        model_name);
    metric(&o, "gqa_kv_blocks_total", "gauge", "KV cache blocks in the budget.",
           (double)st->blocks_total);
    metric(&o, "gqa_kv_blocks_used", "gauge",
           "KV cache blocks holding tokens (requests and the prefix cache).",
           (double)st->blocks_used);
    metric(&o, "gqa_kv_blocks_reserved", "gauge",
           "KV blocks reserved by active requests (prompt + max_tokens each).",
           (double)st->blocks_reserved);
    metric(&o, "gqa_kv_block_tokens", "gauge", "Tokens per KV block.", (double)st->block_tokens);
    metric(&o, "gqa_kv_block_bytes", "gauge", "Bytes per KV block.", (double)st->block_bytes);
    metric(&o, "gqa_prefix_cache_entries", "gauge",
           "Finished sequences kept for prompt-prefix sharing.", (double)st->prefix_entries);
    metric(&o, "gqa_prefix_cache_blocks", "gauge",
           "KV blocks the prefix cache's sequences span (shared blocks counted in each).",
           (double)st->prefix_blocks);
    metric(&o, "gqa_sequences_active", "gauge", "Requests being generated.", (double)st->active);
    metric(&o, "gqa_sequences_queued", "gauge", "Requests waiting for admission.",
           (double)st->queued);
    metric(&o, "gqa_sequences_active_max", "gauge", "Most requests active at once so far.",
           (double)st->max_active_seen);
    metric(&o, "gqa_prompt_tokens_total", "counter", "Prompt tokens computed.",
           (double)st->prompt_tokens_total);
    metric(&o, "gqa_prompt_tokens_cached_total", "counter",
           "Prompt tokens taken from a shared prefix instead of computed.",
           (double)st->cached_tokens_total);
    metric(&o, "gqa_generation_tokens_total", "counter", "Tokens generated.",
           (double)st->gen_tokens_total);
    metric(&o, "gqa_prompt_tokens_per_second", "gauge",
           "Prompt tokens computed per second over the last 10 s.", st->prompt_tps);
    metric(&o, "gqa_generation_tokens_per_second", "gauge",
           "Tokens generated per second over the last 10 s.", st->gen_tps);
    metric(&o, "gqa_steps_total", "counter", "Batched forward passes.", (double)st->steps_total);
    put(&o, "# HELP gqa_requests_total Requests ended, by reason.\n"
            "# TYPE gqa_requests_total counter\n");
    for (int f = SRV_FINISH_STOP; f <= SRV_FINISH_ERROR; f++)
        put(&o, "gqa_requests_total{reason=\"%s\"} %lld\n", srv_finish_name((srv_finish)f),
            (long long)st->requests_total[f]);
    put(&o,
        "# HELP gqa_requests_rejected_total Requests refused at submission.\n"
        "# TYPE gqa_requests_rejected_total counter\n"
        "gqa_requests_rejected_total{reason=\"busy\"} %lld\n"
        "gqa_requests_rejected_total{reason=\"too_large\"} %lld\n",
        (long long)st->rejected_busy, (long long)st->rejected_too_large);
    histogram(&o, "gqa_request_duration_seconds", "Time from submission to the end of a request.",
              st->latency_count, st->latency_sum);
    histogram(&o, "gqa_time_to_first_token_seconds",
              "Time from submission to the first generated token.", st->ttft_count, st->ttft_sum);
    if (o.failed) {
        free(o.s);
        return NULL;
    }
    return o.s;
}
