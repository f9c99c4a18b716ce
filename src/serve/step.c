/* step.c - the scheduler thread of the serving engine: each step ends
 * finished requests, admits queued ones, and runs ONE gqa_model_forward over
 * every active sequence - a decode token for each sequence that is
 * generating and prompt chunks (prefill_chunk tokens per step in all, oldest
 * request first) for those still reading their prompt - then samples the
 * next token of every sequence whose logits it computed. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "engine_internal.h"

/* Bytes at the end of text[0..len) that could be the start of stop string
 * s: the longest proper prefix of s that text ends with. */
static size_t stop_overlap(const char *text, size_t len, const char *s)
{
    size_t k = strlen(s);
    if (k > 0)
        k--;
    if (k > len)
        k = len;
    for (; k > 0; k--)
        if (memcmp(text + len - k, s, k) == 0)
            return k;
    return 0;
}

/* Bytes of an incomplete UTF-8 character at the end of text[0..len). */
static size_t utf8_tail(const unsigned char *t, size_t len)
{
    size_t cont = 0;
    while (cont < len && cont < 3 && (t[len - 1 - cont] & 0xC0) == 0x80)
        cont++;
    if (cont == len)
        return 0;
    const unsigned char lead = t[len - 1 - cont];
    const size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return need > cont + 1 ? cont + 1 : 0;
}

/* How much of the text a reader may see now. */
static void update_visible(srv_request *r)
{
    size_t keep = r->len - utf8_tail((const unsigned char *)r->text, r->len);
    for (int32_t i = 0; i < r->n_stop; i++) {
        const size_t o = stop_overlap(r->text, r->len, r->stop[i]);
        if (r->len - o < keep)
            keep = r->len - o;
    }
    if (keep > r->visible)
        r->visible = keep;
}

static int append_text(srv_request *r, const char *p, size_t n)
{
    chat_buf b = {r->text, r->len, r->cap};
    if (chat_buf_add(&b, p, n) != 0)
        return -1;
    r->text = b.s;
    r->len = b.len;
    r->cap = b.cap;
    return 0;
}

/* The first stop string in the text that may include bytes from `from` on:
 * its offset, or -1. */
static int64_t find_stop(const srv_request *r, size_t from)
{
    int64_t best = -1;
    for (int32_t i = 0; i < r->n_stop; i++) {
        const size_t k = strlen(r->stop[i]);
        if (k == 0 || k > r->len)
            continue;
        size_t start = from >= k - 1 ? from - (k - 1) : 0;
        for (size_t j = start; j + k <= r->len; j++)
            if (memcmp(r->text + j, r->stop[i], k) == 0) {
                if (best < 0 || (int64_t)j < best)
                    best = (int64_t)j;
                break;
            }
    }
    return best;
}

static int is_stop_id(const srv_engine *e, int32_t id)
{
    for (int32_t i = 0; i < e->cfg.n_stop_ids; i++)
        if (e->cfg.stop_ids[i] == id)
            return 1;
    return 0;
}

/* Take the token sampled in this step (under e->mu): end the request on a
 * stop token, else record it, append its text and check the stop strings
 * and max_tokens. */
void srv_apply_token(srv_engine *e, srv_request *r)
{
    const int32_t id = r->sampled;
    r->sampled = -1;
    if (r->n_tokens == r->n_prompt) {
        r->t_first = srv_now();
        double v = r->t_first - r->t_submit;
        for (int i = 0; i < SRV_LATENCY_BUCKETS; i++)
            if (v <= srv_latency_bounds[i])
                e->st.ttft_count[i]++;
        e->st.ttft_count[SRV_LATENCY_BUCKETS]++;
        e->st.ttft_sum += v;
    }
    if (is_stop_id(e, id)) {
        srv_finish_request(e, r, SRV_FINISH_STOP, NULL);
        return;
    }
    gqa_sampler_accept(r->smp, id);
    r->tokens[r->n_tokens++] = id;
    char piece[256];
    int64_t n = 0;
    if (gqa_token_to_piece(e->cfg.tok, id, piece, (int64_t)sizeof piece, &n) != GQA_OK)
        n = 0;
    const size_t from = r->len;
    if (append_text(r, piece, (size_t)n) < 0) {
        srv_finish_request(e, r, SRV_FINISH_ERROR, "out of memory");
        return;
    }
    const int64_t at = find_stop(r, from);
    if (at >= 0) {
        r->len = (size_t)at;
        r->text[r->len] = '\0';
        srv_finish_request(e, r, SRV_FINISH_STOP, NULL);
    } else if (r->n_tokens - r->n_prompt >= r->max_tokens) {
        srv_finish_request(e, r, SRV_FINISH_LENGTH, NULL);
    } else {
        update_visible(r);
    }
}

/* Prompt tokens a request feeds in this step, at most `budget`. Chunks
 * start at multiples of SRV_ALIGN. A prompt's last token is fed alone only
 * where `gqa run`'s forward pass does so too (a prompt of 512 k + 1 tokens):
 * a single query may have its keys split over threads, a query among several
 * never (src/attn/plan.c), and the bits differ. */
static int64_t prompt_chunk(const srv_request *r, int64_t budget)
{
    const int64_t rest = r->n_prompt - r->n_fed;
    const int alone_last = r->n_prompt % SRV_STEP_TOKENS == 1;
    const int64_t upto = alone_last && rest > 1 ? rest - 1 : rest;
    if (upto <= budget)
        return upto;
    int64_t k = budget / SRV_ALIGN * SRV_ALIGN;
    if (!alone_last && rest - k == 1)
        k -= SRV_ALIGN;
    return k > 0 ? k : 0;
}

/* The items of one step (under e->mu): every active request feeds the
 * tokens it knows and has not fed, prompt tokens limited to prefill_chunk
 * per step in all. Logits are asked for when the item feeds the last known
 * token. Returns the item count; *n_prompt, *n_gen count the tokens. */
static int32_t plan_step(srv_engine *e, int64_t *n_prompt, int64_t *n_gen)
{
    int64_t n_decode = 0;
    for (int32_t i = 0; i < e->n_active; i++)
        n_decode += e->active[i]->n_fed >= e->active[i]->n_prompt;
    /* at most SRV_STEP_TOKENS in all, so that the forward pass does not cut
     * a prompt chunk at an unaligned place */
    int64_t budget = e->cfg.prefill_chunk;
    if (budget > SRV_STEP_TOKENS - n_decode)
        budget = SRV_STEP_TOKENS - n_decode > 0 ? SRV_STEP_TOKENS - n_decode : 0;
    int32_t n = 0;
    *n_prompt = *n_gen = 0;
    for (int32_t i = 0; i < e->n_active; i++) {
        srv_request *r = e->active[i];
        int64_t k = r->n_tokens - r->n_fed;
        if (r->n_fed < r->n_prompt) {
            k = prompt_chunk(r, budget);
            budget -= k;
            *n_prompt += k;
        } else {
            *n_gen += k;
        }
        r->step_n = k;
        if (k <= 0)
            continue;
        e->items[n] = (gqa_forward_item){.seq = r->seq,
                                         .tokens = r->tokens + r->n_fed,
                                         .n_tokens = k,
                                         .logits = r->n_fed + k == r->n_tokens ? r->logits : NULL};
        e->item_req[n++] = r;
    }
    return n;
}

/* Run the planned step without the lock (the scheduler thread owns the
 * cache, the samplers and the logits), then sample. */
static gqa_status run_step(srv_engine *e, int32_t n)
{
    gqa_status st = gqa_model_forward(e->cfg.model, e->cache, e->items, n);
    if (st != GQA_OK)
        return st;
    for (int32_t i = 0; i < n; i++) {
        srv_request *r = e->item_req[i];
        r->n_fed += r->step_n;
        if (e->items[i].logits) {
            st = gqa_sampler_sample(r->smp, r->logits, &r->sampled);
            if (st != GQA_OK)
                return st;
        }
    }
    return GQA_OK; /* e->kvs is refreshed under the lock, for readers */
}

void *srv_scheduler_main(void *arg)
{
    srv_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        srv_reap(e);
        if (e->flush_req) {
            srv_flush_prefix(e);
            e->flush_req = 0;
        }
        srv_admit(e);
        gqa_kv_cache_stats(e->cache, &e->kvs);
        pthread_cond_broadcast(&e->out);
        if (e->n_active == 0) {
            if (e->closing && !e->q_head)
                break;
            srv_timed_wait(&e->wake, &e->mu, 0.1);
            continue;
        }
        int64_t n_prompt, n_gen;
        const int32_t n = plan_step(e, &n_prompt, &n_gen);
        pthread_mutex_unlock(&e->mu);
        gqa_status st = run_step(e, n);
        const char *msg = st == GQA_OK ? NULL : gqa_last_error();
        pthread_mutex_lock(&e->mu);
        if (st != GQA_OK) {
            /* a failed step may have left any of its sequences changed:
             * end them all */
            for (int32_t i = 0; i < n; i++)
                srv_finish_request(e, e->item_req[i], SRV_FINISH_ERROR, msg);
            continue;
        }
        srv_note_step(e, n_prompt, n_gen);
        for (int32_t i = 0; i < n; i++)
            if (e->item_req[i]->sampled >= 0)
                srv_apply_token(e, e->item_req[i]);
    }
    srv_flush_prefix(e);
    gqa_kv_cache_stats(e->cache, &e->kvs);
    pthread_cond_broadcast(&e->out);
    pthread_mutex_unlock(&e->mu);
    gqa_workspace_release();
    return NULL;
}
