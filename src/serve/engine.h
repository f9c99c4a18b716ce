/* engine.h - the scheduler of `gqa serve`, without HTTP: a request queue,
 * admission against the KV budget, prompt-prefix sharing through forks of the
 * paged KV cache, and one batched forward pass per step over every active
 * sequence (continuous batching).
 *
 * Threads: one scheduler thread (srv_engine_start) owns the KV cache, the
 * samplers and the forward pass. Any other thread may submit, read, cancel
 * and release requests and read the statistics; those calls take the
 * engine's lock for a short time and never wait for a forward pass.
 *
 * Admission (see docs/serving.md): a request is admitted when the KV blocks
 * it can ever need, ceil((prompt + max_tokens) / block_tokens), fit next to
 * the blocks reserved by the active requests and those held by the prefix
 * cache; prefix-cache entries are evicted (least recently used first) to make
 * room. Requests are admitted in arrival order (no overtaking). A request
 * that does not fit when it arrives (next to the active and already queued
 * reservations) waits in the queue; when max_queue requests are already
 * waiting like that it is refused (SRV_SUBMIT_BUSY, HTTP 429 + Retry-After).
 * Because every active request holds a worst-case reservation, a forward
 * pass never runs out of blocks and no request is ever preempted; the price
 * is that a request reserves max_tokens it may not use (the default
 * max_tokens of the server bounds it).
 *
 * Prefix sharing: at admission the longest common token prefix with the
 * prompt of an active sequence or of a prefix-cache entry (the prompt of a
 * finished request, kept while blocks allow) is found, cut to a multiple of
 * 64 tokens and at most prompt - 1 tokens (the last prompt token is always
 * computed, for the first logits); the new sequence is a fork of that
 * sequence truncated to that length.
 *
 * Greedy results do not depend on batching: a request's tokens are bitwise
 * those of `gqa run` on the same prompt, whatever it is batched with, how its
 * prompt is chunked and whether its prefix is shared (engine_internal.h says
 * how). */
#ifndef GQA_SERVE_ENGINE_H
#define GQA_SERVE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"
#include "gqa_model.h"
#include "gqa_sampler.h"
#include "gqa_tokenizer.h"

typedef struct srv_engine srv_engine;
typedef struct srv_request srv_request;

typedef struct srv_engine_config {
    const gqa_model *model;   /* borrowed; outlives the engine */
    const gqa_tokenizer *tok; /* borrowed; outlives the engine */
    gqa_dtype kv_type;        /* f16, bf16, f32 or q8_0 */
    uint64_t kv_budget;       /* bytes of KV blocks */
    int32_t block_tokens;     /* 0: 16 */
    int64_t n_ctx;            /* most tokens (prompt + reply) of one request */
    int32_t max_queue;        /* requests waiting for admission, >= 0 */
    int32_t max_active;       /* 0: no limit other than the KV budget */
    int32_t prefill_chunk;    /* prompt tokens per step, all sequences together */
    int32_t prefix_cache;     /* finished sequences kept for prefix sharing; 0: off */
    int32_t stop_ids[8];      /* tokens that end a reply (not emitted) */
    int32_t n_stop_ids;
} srv_engine_config;

typedef struct srv_request_params {
    const int32_t *prompt; /* n_prompt >= 1 token ids (copied) */
    int64_t n_prompt;
    int64_t max_tokens; /* >= 1 */
    gqa_sampler_config sampler;
    const char *const *stop; /* n_stop strings that end the reply (copied) */
    int32_t n_stop;
    double timeout_s; /* from submission to the end; 0: none */
} srv_request_params;

typedef enum srv_submit {
    SRV_SUBMIT_OK = 0,
    SRV_SUBMIT_BUSY,      /* no room and the queue is full: retry later (429) */
    SRV_SUBMIT_TOO_LARGE, /* more tokens than the context or the whole budget (400) */
    SRV_SUBMIT_CLOSED,    /* the engine is shutting down (503) */
    SRV_SUBMIT_INVALID,   /* bad parameters, e.g. sampler settings (400) */
    SRV_SUBMIT_NO_MEMORY  /* (500) */
} srv_submit;

typedef enum srv_finish {
    SRV_FINISH_NONE = 0, /* still running */
    SRV_FINISH_STOP,     /* a stop token or stop string */
    SRV_FINISH_LENGTH,   /* max_tokens reached */
    SRV_FINISH_CANCELLED,
    SRV_FINISH_TIMEOUT,
    SRV_FINISH_SHUTDOWN,
    SRV_FINISH_ERROR
} srv_finish;

/* What srv_request_read returns. */
typedef struct srv_progress {
    srv_finish finish; /* SRV_FINISH_NONE while running */
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    const char *error; /* a message for SRV_FINISH_ERROR (static or engine-owned) */
} srv_progress;

/* Statistics for /metrics (a snapshot taken after each step). */
#define SRV_LATENCY_BUCKETS 12
extern const double srv_latency_bounds[SRV_LATENCY_BUCKETS]; /* seconds, ascending */

typedef struct srv_stats {
    int64_t blocks_total, blocks_used, blocks_reserved, block_tokens;
    uint64_t block_bytes;
    int64_t prefix_entries, prefix_blocks;
    int64_t active, queued, max_active_seen;
    int64_t prompt_tokens_total, cached_tokens_total, gen_tokens_total, steps_total;
    double prompt_tps, gen_tps;                   /* over the last few seconds */
    int64_t requests_total[SRV_FINISH_ERROR + 1]; /* by finish reason */
    int64_t rejected_busy, rejected_too_large;
    int64_t latency_count[SRV_LATENCY_BUCKETS + 1]; /* cumulative; last: +Inf */
    double latency_sum;
    int64_t ttft_count[SRV_LATENCY_BUCKETS + 1];
    double ttft_sum;
} srv_stats;

const char *srv_finish_name(srv_finish f); /* "stop", "length", ... */

/* Create the engine and its KV cache (no thread yet). GQA_ERR_* from the
 * cache, GQA_ERR_INVALID_ARG for a bad config. */
gqa_status srv_engine_create(const srv_engine_config *cfg, srv_engine **out);
/* Start the scheduler thread. */
gqa_status srv_engine_start(srv_engine *e);
/* Stop admitting (submit answers SRV_SUBMIT_CLOSED), end queued requests
 * with SRV_FINISH_SHUTDOWN, let active ones run for up to grace_s seconds,
 * then end the rest with SRV_FINISH_SHUTDOWN, and join the thread. */
void srv_engine_shutdown(srv_engine *e, double grace_s);
/* Free the engine (after shutdown; requests not yet released are freed
 * when released). NULL is fine. */
void srv_engine_free(srv_engine *e);

/* Blocks the engine reserves for a request of n tokens. */
int64_t srv_engine_blocks_for(const srv_engine *e, int64_t n_tokens);
void srv_engine_stats(srv_engine *e, srv_stats *st);
/* Drop every prefix-cache entry (done by the scheduler at its next step;
 * waits up to 5 s for it). */
void srv_engine_flush_prefix_cache(srv_engine *e);

/* Queue a request; on SRV_SUBMIT_OK *out is a handle the caller must
 * release with srv_request_release (which also cancels it if running). */
srv_submit srv_engine_submit(srv_engine *e, const srv_request_params *p, srv_request **out);

/* Wait up to wait_s seconds for text not yet read or the end; append the new
 * text to *buf (malloc'd, grown as needed, NUL-terminated; *len its length)
 * and fill *pr. Returns 0, or -1 when out of memory. Text that might still
 * turn out to be the start of a stop string, or an incomplete UTF-8
 * character, is held back until it is known. */
int srv_request_read(srv_request *r, double wait_s, char **buf, size_t *len, srv_progress *pr);
/* Ask the scheduler to end the request (SRV_FINISH_CANCELLED); its KV
 * blocks are freed at the next step. */
void srv_request_cancel(srv_request *r);
void srv_request_release(srv_request *r); /* NULL is fine */
/* The tokens generated so far (copied into ids, at most cap); the count. */
int64_t srv_request_tokens(srv_request *r, int32_t *ids, int64_t cap);

#endif
