/* engine.c - requests, admission against the KV budget, the prefix cache and
 * the statistics of the serving engine (engine.h). The scheduler loop and the
 * batched step are in step.c. */
#define _POSIX_C_SOURCE 200809L
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const double srv_latency_bounds[SRV_LATENCY_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                        5,    10,  20,   40,  80, 160};

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int srv_timed_wait(pthread_cond_t *c, pthread_mutex_t *m, double s)
{
    if (s <= 0)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const double t = (double)ts.tv_nsec * 1e-9 + s;
    const time_t whole = (time_t)t;
    ts.tv_sec += whole;
    ts.tv_nsec = (long)((t - (double)whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(c, m, &ts);
}

const char *srv_finish_name(srv_finish f)
{
    switch (f) {
    case SRV_FINISH_STOP: return "stop";
    case SRV_FINISH_LENGTH: return "length";
    case SRV_FINISH_CANCELLED: return "cancelled";
    case SRV_FINISH_TIMEOUT: return "timeout";
    case SRV_FINISH_SHUTDOWN: return "shutdown";
    case SRV_FINISH_ERROR: return "error";
    default: return "none";
    }
}

int64_t srv_engine_blocks_for(const srv_engine *e, int64_t n_tokens)
{
    const int64_t bt = e->cfg.block_tokens;
    return (n_tokens + bt - 1) / bt;
}

static void free_request(srv_request *r)
{
    if (!r)
        return;
    for (int32_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->stop);
    free(r->tokens);
    free(r->text);
    free(r->error);
    free(r->logits);
    gqa_sampler_free(r->smp);
    free(r);
}

/* Drop one reference (under e->mu). */
static void unref(srv_request *r)
{
    if (--r->refs == 0)
        free_request(r);
}

gqa_status srv_engine_create(const srv_engine_config *cfg, srv_engine **out)
{
    *out = NULL;
    if (!cfg || !cfg->model || !cfg->tok || cfg->n_ctx < 1 || cfg->max_queue < 0 ||
        cfg->prefill_chunk < SRV_ALIGN || cfg->prefix_cache < 0 || cfg->n_stop_ids < 0 ||
        cfg->n_stop_ids > 8)
        return GQA_ERR_INVALID_ARG;
    srv_engine *e = calloc(1, sizeof *e);
    if (!e)
        return GQA_ERR_NO_MEMORY;
    e->cfg = *cfg;
    if (e->cfg.block_tokens <= 0)
        e->cfg.block_tokens = 16;
    gqa_model_info_get(cfg->model, &e->info);
    gqa_kv_config kc;
    gqa_status st =
        gqa_model_kv_config(cfg->model, cfg->kv_type, e->cfg.block_tokens, cfg->kv_budget, &kc);
    if (st == GQA_OK)
        st = gqa_kv_cache_create(&kc, &e->cache);
    if (st == GQA_OK)
        st = gqa_kv_cache_stats(e->cache, &e->kvs);
    if (st != GQA_OK) {
        free(e);
        return st;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->out, NULL);
    e->st.blocks_total = e->kvs.blocks_total;
    e->st.block_tokens = e->cfg.block_tokens;
    e->st.block_bytes = e->kvs.block_bytes;
    *out = e;
    return GQA_OK;
}

gqa_status srv_engine_start(srv_engine *e)
{
    if (pthread_create(&e->thread, NULL, srv_scheduler_main, e) != 0)
        return GQA_ERR_NO_MEMORY;
    e->started = 1;
    return GQA_OK;
}

void srv_engine_shutdown(srv_engine *e, double grace_s)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->closing = 1;
    e->drain_deadline = srv_now() + (grace_s > 0 ? grace_s : 0);
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    if (e->started)
        pthread_join(e->thread, NULL);
    e->started = 0;
    /* without a scheduler (never started), end what is queued here */
    pthread_mutex_lock(&e->mu);
    srv_reap(e);
    srv_flush_prefix(e);
    pthread_mutex_unlock(&e->mu);
}

void srv_engine_free(srv_engine *e)
{
    if (!e)
        return;
    if (e->started)
        srv_engine_shutdown(e, 0);
    free(e->active);
    free(e->items);
    free(e->item_req);
    free(e->pc);
    gqa_kv_cache_free(e->cache);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->out);
    free(e);
}

/* ------------------------------------------------------------ prefix cache -- */

static void drop_entry(srv_engine *e, int32_t i)
{
    gqa_kv_seq_free(e->cache, e->pc[i].seq);
    e->pc_blocks -= srv_engine_blocks_for(e, e->pc[i].n);
    free(e->pc[i].tokens);
    e->pc[i] = e->pc[--e->n_pc];
}

static void evict_lru(srv_engine *e)
{
    int32_t lru = 0;
    for (int32_t i = 1; i < e->n_pc; i++)
        if (e->pc[i].used < e->pc[lru].used)
            lru = i;
    drop_entry(e, lru);
}

void srv_flush_prefix(srv_engine *e)
{
    while (e->n_pc > 0)
        drop_entry(e, e->n_pc - 1);
}

void srv_engine_flush_prefix_cache(srv_engine *e)
{
    pthread_mutex_lock(&e->mu);
    if (!e->started) {
        srv_flush_prefix(e);
    } else {
        e->flush_req = 1;
        pthread_cond_signal(&e->wake);
        const double end = srv_now() + 5.0;
        while (e->flush_req && srv_now() < end)
            srv_timed_wait(&e->out, &e->mu, 0.05);
    }
    pthread_mutex_unlock(&e->mu);
}

static int64_t common_prefix(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    const int64_t n = na < nb ? na : nb;
    int64_t i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Keep a finished request's sequence (its prompt's tokens) as a
 * prefix-cache entry, or free it. Entries that are a prefix of the new one
 * are dropped: the new one serves every request they would. */
static void keep_or_free(srv_engine *e, srv_request *r)
{
    /* only the prompt is kept: K/V computed by decode steps may differ in
     * the last bits from the same tokens computed as a prompt */
    const int64_t n = r->n_fed < r->n_prompt ? r->n_fed : r->n_prompt;
    if (e->cfg.prefix_cache <= 0 || e->closing || n < SRV_ALIGN ||
        gqa_kv_seq_truncate(e->cache, r->seq, n) != GQA_OK) {
        gqa_kv_seq_free(e->cache, r->seq);
        return;
    }
    int32_t *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) {
        gqa_kv_seq_free(e->cache, r->seq);
        return;
    }
    memcpy(copy, r->tokens, (size_t)n * sizeof *copy);
    for (int32_t i = e->n_pc - 1; i >= 0; i--)
        if (common_prefix(e->pc[i].tokens, e->pc[i].n, copy, n) == e->pc[i].n)
            drop_entry(e, i);
    if (e->n_pc >= e->cfg.prefix_cache)
        evict_lru(e);
    if (!e->pc) {
        e->pc = calloc((size_t)e->cfg.prefix_cache, sizeof *e->pc);
        if (!e->pc) {
            free(copy);
            gqa_kv_seq_free(e->cache, r->seq);
            return;
        }
    }
    e->pc[e->n_pc++] = (prefix_entry){.seq = r->seq, .tokens = copy, .n = n, .used = ++e->tick};
    e->pc_blocks += srv_engine_blocks_for(e, n);
}

/* ---------------------------------------------------------------- requests -- */

static void remove_active(srv_engine *e, srv_request *r)
{
    for (int32_t i = 0; i < e->n_active; i++)
        if (e->active[i] == r) {
            memmove(e->active + i, e->active + i + 1,
                    (size_t)(e->n_active - i - 1) * sizeof *e->active);
            e->n_active--;
            return;
        }
}

static void observe(int64_t *count, double *sum, double v)
{
    for (int i = 0; i < SRV_LATENCY_BUCKETS; i++)
        if (v <= srv_latency_bounds[i])
            count[i]++;
    count[SRV_LATENCY_BUCKETS]++;
    *sum += v;
}

void srv_finish_request(srv_engine *e, srv_request *r, srv_finish why, const char *msg)
{
    if (r->state == RQ_DONE)
        return;
    if (r->state == RQ_ACTIVE) {
        remove_active(e, r);
        e->reserved -= r->reserve;
        if (r->seq >= 0)
            keep_or_free(e, r);
        r->seq = -1;
        free(r->logits);
        r->logits = NULL;
        gqa_sampler_free(r->smp);
        r->smp = NULL;
    }
    r->state = RQ_DONE;
    r->finish = why;
    r->visible = r->len;
    if (msg && !r->error)
        r->error = strdup(msg);
    e->st.requests_total[why]++;
    observe(e->st.latency_count, &e->st.latency_sum, srv_now() - r->t_submit);
    pthread_cond_broadcast(&e->out);
    unref(r);
}

/* End requests that were cancelled, timed out, or are cut by shutdown. */
void srv_reap(srv_engine *e)
{
    const double now = srv_now();
    srv_request **pp = &e->q_head;
    e->q_tail = NULL;
    while (*pp) {
        srv_request *r = *pp;
        srv_finish why = r->cancel                              ? SRV_FINISH_CANCELLED
                         : r->deadline > 0 && now > r->deadline ? SRV_FINISH_TIMEOUT
                         : e->closing                           ? SRV_FINISH_SHUTDOWN
                                                                : SRV_FINISH_NONE;
        if (why != SRV_FINISH_NONE) {
            *pp = r->next;
            e->n_queued--;
            e->n_fit_queued -= r->fit;
            e->queued_reserve -= r->reserve;
            srv_finish_request(e, r, why, NULL);
        } else {
            e->q_tail = r;
            pp = &r->next;
        }
    }
    for (int32_t i = e->n_active - 1; i >= 0; i--) {
        srv_request *r = e->active[i];
        srv_finish why = r->cancel                                ? SRV_FINISH_CANCELLED
                         : r->deadline > 0 && now > r->deadline   ? SRV_FINISH_TIMEOUT
                         : e->closing && now >= e->drain_deadline ? SRV_FINISH_SHUTDOWN
                                                                  : SRV_FINISH_NONE;
        if (why != SRV_FINISH_NONE)
            srv_finish_request(e, r, why, NULL);
    }
}

/* The longest prefix of r's prompt (less its last token) already in the
 * cache, in an active sequence or a prefix-cache entry: *seq and the length. */
static int64_t find_prefix(srv_engine *e, const srv_request *r, int32_t *seq, int32_t *entry)
{
    int64_t best = 0;
    *seq = -1;
    *entry = -1;
    for (int32_t i = 0; i < e->n_active; i++) {
        const srv_request *a = e->active[i];
        if (a == r || a->seq < 0)
            continue;
        const int64_t fed = a->n_fed < a->n_prompt ? a->n_fed : a->n_prompt;
        const int64_t l = common_prefix(a->tokens, fed, r->tokens, r->n_prompt - 1);
        if (l > best) {
            best = l;
            *seq = a->seq;
            *entry = -1;
        }
    }
    for (int32_t i = 0; i < e->n_pc; i++) {
        const int64_t l = common_prefix(e->pc[i].tokens, e->pc[i].n, r->tokens, r->n_prompt - 1);
        if (l > best) {
            best = l;
            *seq = e->pc[i].seq;
            *entry = i;
        }
    }
    return best;
}

/* Give an admitted request its sequence (a fork of a shared prefix when
 * there is one), sampler and logits. */
static gqa_status start_request(srv_engine *e, srv_request *r)
{
    int32_t parent, entry;
    int64_t l = find_prefix(e, r, &parent, &entry) / SRV_ALIGN * SRV_ALIGN;
    if (r->n_prompt - l == 1 && r->n_prompt % SRV_STEP_TOKENS != 1)
        l -= SRV_ALIGN; /* no lone last token (see prompt_chunk in step.c) */
    gqa_status st;
    if (l > 0) {
        st = gqa_kv_seq_fork(e->cache, parent, &r->seq);
        if (st == GQA_OK && (st = gqa_kv_seq_truncate(e->cache, r->seq, l)) != GQA_OK) {
            gqa_kv_seq_free(e->cache, r->seq);
            r->seq = -1;
        }
        if (st == GQA_OK && entry >= 0)
            e->pc[entry].used = ++e->tick;
    } else {
        st = gqa_kv_seq_create(e->cache, &r->seq);
    }
    if (st != GQA_OK) {
        r->seq = -1;
        return st;
    }
    r->n_fed = l;
    r->cached = l;
    e->st.cached_tokens_total += l;
    if ((st = gqa_sampler_create(&r->scfg, e->info.n_vocab, &r->smp)) != GQA_OK)
        return st;
    for (int64_t i = 0; i < r->n_prompt; i++)
        gqa_sampler_accept(r->smp, r->tokens[i]);
    r->logits = malloc((size_t)e->info.n_vocab * sizeof(float));
    return r->logits ? GQA_OK : GQA_ERR_NO_MEMORY;
}

static int grow_active(srv_engine *e)
{
    if (e->n_active < e->cap_active)
        return 0;
    const int32_t cap = e->cap_active ? 2 * e->cap_active : 16;
    srv_request **a = realloc(e->active, (size_t)cap * sizeof *a);
    if (a)
        e->active = a;
    gqa_forward_item *it = realloc(e->items, (size_t)cap * sizeof *it);
    if (it)
        e->items = it;
    srv_request **ir = realloc(e->item_req, (size_t)cap * sizeof *ir);
    if (ir)
        e->item_req = ir;
    if (!a || !it || !ir)
        return -1;
    e->cap_active = cap;
    return 0;
}

/* Admit queued requests in arrival order while their reservations fit,
 * evicting prefix-cache entries (least recently used first) for room. */
void srv_admit(srv_engine *e)
{
    const int64_t total = e->kvs.blocks_total;
    while (e->q_head && !e->closing) {
        srv_request *r = e->q_head;
        if (e->cfg.max_active > 0 && e->n_active >= e->cfg.max_active)
            return;
        while (e->n_pc > 0 && e->reserved + e->pc_blocks + r->reserve > total)
            evict_lru(e);
        if (e->reserved + e->pc_blocks + r->reserve > total || grow_active(e) < 0)
            return;
        e->q_head = r->next;
        if (!e->q_head)
            e->q_tail = NULL;
        e->n_queued--;
        e->n_fit_queued -= r->fit;
        e->queued_reserve -= r->reserve;
        r->next = NULL;
        r->state = RQ_ACTIVE;
        e->reserved += r->reserve;
        e->active[e->n_active++] = r;
        if (e->n_active > e->st.max_active_seen)
            e->st.max_active_seen = e->n_active;
        gqa_status st = start_request(e, r);
        if (st != GQA_OK)
            srv_finish_request(e, r, SRV_FINISH_ERROR, gqa_last_error());
    }
}

static srv_request *new_request(srv_engine *e, const srv_request_params *p)
{
    srv_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->e = e;
    r->seq = -1;
    r->sampled = -1;
    r->tokens = malloc((size_t)(p->n_prompt + p->max_tokens) * sizeof *r->tokens);
    r->stop = p->n_stop > 0 ? calloc((size_t)p->n_stop, sizeof *r->stop) : NULL;
    if (!r->tokens || (p->n_stop > 0 && !r->stop)) {
        free_request(r);
        return NULL;
    }
    for (int32_t i = 0; i < p->n_stop; i++) {
        if (!(r->stop[i] = strdup(p->stop[i]))) {
            r->n_stop = i;
            free_request(r);
            return NULL;
        }
        r->n_stop = i + 1;
    }
    memcpy(r->tokens, p->prompt, (size_t)p->n_prompt * sizeof *r->tokens);
    r->n_prompt = r->n_tokens = p->n_prompt;
    r->max_tokens = p->max_tokens;
    r->scfg = p->sampler;
    r->t_submit = srv_now();
    r->deadline = p->timeout_s > 0 ? r->t_submit + p->timeout_s : 0;
    r->reserve = srv_engine_blocks_for(e, p->n_prompt + p->max_tokens);
    r->refs = 2;
    return r;
}

static int valid_sampler(const gqa_sampler_config *c, int32_t n_vocab)
{
    gqa_sampler *s = NULL;
    gqa_status st = gqa_sampler_create(c, n_vocab, &s);
    gqa_sampler_free(s);
    return st == GQA_OK;
}

srv_submit srv_engine_submit(srv_engine *e, const srv_request_params *p, srv_request **out)
{
    *out = NULL;
    if (!p || !p->prompt || p->n_prompt < 1 || p->max_tokens < 1 || p->n_stop < 0)
        return SRV_SUBMIT_INVALID;
    for (int64_t i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= e->info.n_vocab)
            return SRV_SUBMIT_INVALID;
    if (!valid_sampler(&p->sampler, e->info.n_vocab))
        return SRV_SUBMIT_INVALID;
    const int64_t need = srv_engine_blocks_for(e, p->n_prompt + p->max_tokens);
    pthread_mutex_lock(&e->mu);
    srv_submit res = SRV_SUBMIT_OK;
    int fits = 0;
    if (e->closing)
        res = SRV_SUBMIT_CLOSED;
    else if (p->n_prompt + p->max_tokens > e->cfg.n_ctx || need > e->kvs.blocks_total)
        res = SRV_SUBMIT_TOO_LARGE;
    else {
        fits = e->reserved + e->queued_reserve + need <= e->kvs.blocks_total &&
               (e->cfg.max_active <= 0 || e->n_active + e->n_queued < e->cfg.max_active);
        /* the queue is what waits for room: requests that fitted when
         * they came are about to be admitted and do not count */
        if (!fits && e->n_queued - e->n_fit_queued >= e->cfg.max_queue)
            res = SRV_SUBMIT_BUSY;
    }
    if (res == SRV_SUBMIT_OK) {
        srv_request *r = new_request(e, p);
        if (!r) {
            res = SRV_SUBMIT_NO_MEMORY;
        } else {
            if (e->q_tail)
                e->q_tail->next = r;
            else
                e->q_head = r;
            e->q_tail = r;
            r->fit = fits;
            e->n_queued++;
            e->n_fit_queued += fits;
            e->queued_reserve += r->reserve;
            *out = r;
            pthread_cond_signal(&e->wake);
        }
    } else if (res == SRV_SUBMIT_BUSY) {
        e->st.rejected_busy++;
    } else if (res == SRV_SUBMIT_TOO_LARGE) {
        e->st.rejected_too_large++;
    }
    pthread_mutex_unlock(&e->mu);
    return res;
}

int srv_request_read(srv_request *r, double wait_s, char **buf, size_t *len, srv_progress *pr)
{
    srv_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    if (r->read >= r->visible && r->finish == SRV_FINISH_NONE && wait_s > 0) {
        const double end = srv_now() + wait_s;
        while (r->read >= r->visible && r->finish == SRV_FINISH_NONE)
            if (srv_timed_wait(&e->out, &e->mu, end - srv_now()) != 0)
                break;
    }
    int rc = 0;
    const size_t n = r->visible - r->read;
    if (n > 0) {
        char *b = realloc(*buf, *len + n + 1);
        if (b) {
            memcpy(b + *len, r->text + r->read, n);
            *len += n;
            b[*len] = '\0';
            *buf = b;
            r->read = r->visible;
        } else {
            rc = -1;
        }
    }
    pr->finish = r->read == r->len ? r->finish : SRV_FINISH_NONE;
    pr->prompt_tokens = r->n_prompt;
    pr->completion_tokens = r->n_tokens - r->n_prompt;
    pr->cached_tokens = r->cached;
    pr->error = r->error;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void srv_request_cancel(srv_request *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->e->mu);
    r->cancel = 1;
    pthread_cond_signal(&r->e->wake);
    pthread_mutex_unlock(&r->e->mu);
}

void srv_request_release(srv_request *r)
{
    if (!r)
        return;
    srv_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    r->cancel = 1;
    pthread_cond_signal(&e->wake);
    unref(r);
    pthread_mutex_unlock(&e->mu);
}

int64_t srv_request_tokens(srv_request *r, int32_t *ids, int64_t cap)
{
    pthread_mutex_lock(&r->e->mu);
    int64_t n = r->n_tokens - r->n_prompt;
    if (n > cap)
        n = cap;
    memcpy(ids, r->tokens + r->n_prompt, (size_t)(n > 0 ? n : 0) * sizeof *ids);
    pthread_mutex_unlock(&r->e->mu);
    return n;
}

void srv_note_step(srv_engine *e, int64_t prompt, int64_t gen)
{
    e->ring[e->ring_pos].t = srv_now();
    e->ring[e->ring_pos].prompt = prompt;
    e->ring[e->ring_pos].gen = gen;
    e->ring_pos = (e->ring_pos + 1) % RATE_RING;
    e->st.prompt_tokens_total += prompt;
    e->st.gen_tokens_total += gen;
    e->st.steps_total++;
}

void srv_engine_stats(srv_engine *e, srv_stats *st)
{
    pthread_mutex_lock(&e->mu);
    *st = e->st;
    st->blocks_used = e->kvs.blocks_used;
    st->blocks_reserved = e->reserved;
    st->prefix_entries = e->n_pc;
    st->prefix_blocks = e->pc_blocks;
    st->active = e->n_active;
    st->queued = e->n_queued;
    /* tokens/s over the steps of the last 10 seconds */
    const double now = srv_now(), window = 10.0;
    int64_t p = 0, g = 0;
    for (int i = 0; i < RATE_RING; i++)
        if (e->ring[i].t > 0 && now - e->ring[i].t <= window) {
            p += e->ring[i].prompt;
            g += e->ring[i].gen;
        }
    st->prompt_tps = (double)p / window;
    st->gen_tps = (double)g / window;
    pthread_mutex_unlock(&e->mu);
}
