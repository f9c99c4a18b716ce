/* engine_internal.h - the engine's data, shared by engine.c (requests,
 * admission, prefix cache, statistics) and step.c (the scheduler loop and
 * one batched step). */
#ifndef GQA_SERVE_ENGINE_INTERNAL_H
#define GQA_SERVE_ENGINE_INTERNAL_H

#include <pthread.h>

#include "engine.h"

/* Bitwise reproducibility. gqa_model_forward computes a sequence's tokens
 * bitwise the same whatever else is in the batch (the attention plan splits
 * each sequence's keys by its own shape only), but the attention kernels
 * group a prompt's query rows in blocks of 64 (GQA_TILE_MAX_ROWS), counted
 * from the first token of the call, and a row's rounding depends on its
 * block. `gqa run` feeds a prompt in one call, which the forward pass cuts
 * every 512 tokens. So that the server gives the same bits, every prompt
 * chunk but the last is a multiple of SRV_ALIGN tokens, a shared prefix is
 * cut to a multiple of SRV_ALIGN, a step feeds at most SRV_STEP_TOKENS
 * tokens (the forward pass's micro-batch), so it never cuts a chunk itself,
 * and a prompt's last token is fed alone exactly when `gqa run` does so
 * (prompt_chunk in step.c).
 * 64 tokens hold 64 * H/G rows: a whole number of blocks for any H/G. */
#define SRV_ALIGN       64
#define SRV_STEP_TOKENS 512

typedef enum rq_state { RQ_QUEUED, RQ_ACTIVE, RQ_DONE } rq_state;

struct srv_request {
    srv_engine *e;
    int refs; /* the engine's and the client's; under e->mu */
    rq_state state;
    int cancel; /* set by the client */
    /* fixed at submission */
    int32_t *tokens; /* prompt, then the generated ids: n_prompt + max_tokens */
    int64_t n_prompt, max_tokens;
    gqa_sampler_config scfg;
    char **stop;
    int32_t n_stop;
    double t_submit, deadline; /* deadline 0: none */
    int64_t reserve;           /* KV blocks reserved while active */
    int fit;                   /* it fitted when submitted: not counted as waiting */
    /* owned by the scheduler thread */
    gqa_sampler *smp;
    float *logits;   /* n_vocab */
    int32_t seq;     /* -1: none */
    int64_t n_fed;   /* tokens in the cache */
    int64_t step_n;  /* tokens fed in the current step */
    int32_t sampled; /* token sampled in the current step, -1: none */
    /* shared, under e->mu */
    int64_t n_tokens; /* n_prompt + generated */
    int64_t cached;   /* prompt tokens taken from a shared prefix */
    char *text;
    size_t len, cap, visible, read;
    srv_finish finish;
    char *error;
    double t_first;
    srv_request *next; /* queue link */
};

typedef struct prefix_entry {
    int32_t seq;
    int32_t *tokens;
    int64_t n;
    uint64_t used; /* tick of the last use */
} prefix_entry;

#define RATE_RING 512

struct srv_engine {
    srv_engine_config cfg;
    gqa_model_info info;
    gqa_kv_cache *cache;
    gqa_kv_stats kvs; /* snapshot after the last step */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the scheduler waits on it */
    pthread_cond_t out;  /* readers wait on it */
    pthread_t thread;
    int started, closing, flush_req;
    double drain_deadline;
    srv_request *q_head, *q_tail;
    int64_t n_queued, queued_reserve;
    int64_t n_fit_queued; /* queued requests that fitted when submitted */
    srv_request **active;
    int32_t n_active, cap_active;
    int64_t reserved;
    prefix_entry *pc;
    int32_t n_pc;
    int64_t pc_blocks;
    uint64_t tick;
    gqa_forward_item *items; /* cap_active */
    srv_request **item_req;  /* cap_active */
    /* statistics */
    srv_stats st;
    struct {
        double t;
        int64_t prompt, gen;
    } ring[RATE_RING];
    int ring_pos;
};

double srv_now(void);
/* pthread_cond_timedwait for s seconds from now; nonzero on timeout (at
 * once for s <= 0). */
int srv_timed_wait(pthread_cond_t *c, pthread_mutex_t *m, double s);
/* Under e->mu, scheduler thread: */
void srv_finish_request(srv_engine *e, srv_request *r, srv_finish why, const char *msg);
void srv_reap(srv_engine *e);
void srv_admit(srv_engine *e);
void srv_flush_prefix(srv_engine *e);
void srv_apply_token(srv_engine *e, srv_request *r);
void srv_note_step(srv_engine *e, int64_t prompt, int64_t gen);
void *srv_scheduler_main(void *arg);

#endif
