/* api.c - OpenAI request parsing and response JSON for `gqa serve`. */
#define _POSIX_C_SOURCE 200809L
#include "api.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

int api_fail(api_error *err, int status, const char *type, const char *param, const char *code,
             const char *fmt, ...)
{
    err->status = status;
    err->type = type;
    err->param = param;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(err, param, ...)                                                                       \
    api_fail((err), 400, "invalid_request_error", (param), NULL, __VA_ARGS__)

char *api_error_json(const api_error *err)
{
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", err->message);
    cJSON_AddStringToObject(e, "type", err->type ? err->type : "invalid_request_error");
    if (err->param)
        cJSON_AddStringToObject(e, "param", err->param);
    else
        cJSON_AddNullToObject(e, "param");
    if (err->code)
        cJSON_AddStringToObject(e, "code", err->code);
    else
        cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

void api_request_free(api_request *req)
{
    free(req->prompt_text);
    free(req->prompt_ids);
    for (int32_t i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    memset(req, 0, sizeof *req);
}

/* An optional number field in lo..hi: 0 (absent or null: *out unchanged),
 * 1 read, -1 error. */
static int get_number(const cJSON *root, const char *name, double lo, double hi, double *out,
                      api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return BAD(err, name, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return BAD(err, name, "'%s' = %g is out of range: expected %g to %g", name, v->valuedouble,
                   lo, hi);
    *out = v->valuedouble;
    return 1;
}

/* An optional integer field in lo..hi, as get_number. */
static int get_int(const cJSON *root, const char *name, double lo, double hi, int64_t *out,
                   api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return BAD(err, name, "'%s' must be an integer", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return BAD(err, name, "'%s' = %.0f is out of range: expected %.0f to %.0f", name,
                   v->valuedouble, lo, hi);
    *out = (int64_t)v->valuedouble;
    return 1;
}

static int get_bool(const cJSON *root, const char *name, int *out, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return BAD(err, name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

static int parse_stop(const cJSON *root, api_request *req, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v)) {
        if (v->valuestring[0] && !(req->stop[req->n_stop++] = strdup(v->valuestring)))
            return api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        return 0;
    }
    if (!cJSON_IsArray(v))
        return BAD(err, "stop", "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(v) > 4)
        return BAD(err, "stop", "'stop' has %d strings; at most 4 are allowed",
                   cJSON_GetArraySize(v));
    const cJSON *s;
    cJSON_ArrayForEach(s, v)
    {
        if (!cJSON_IsString(s))
            return BAD(err, "stop", "'stop' must be a string or an array of strings");
        if (s->valuestring[0] && !(req->stop[req->n_stop++] = strdup(s->valuestring)))
            return api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    }
    return 0;
}

/* Sampling and length fields common to both endpoints. */
static int parse_common(const cJSON *root, api_request *req, api_error *err)
{
    gqa_sampler_config *s = &req->sampler;
    gqa_sampler_config_default(s);
    /* OpenAI's defaults: temperature 1, top_p 1, no top-k or min-p */
    s->temperature = 1.0f;
    s->top_p = 1.0f;
    s->top_k = 0;
    s->min_p = 0.0f;
    s->repeat_last_n = -1;
    double d;
    int64_t i;
    int r;
    if ((r = get_number(root, "temperature", 0.0, 2.0, &d, err)) < 0)
        return -1;
    if (r)
        s->temperature = (float)d;
    if ((r = get_number(root, "top_p", 0.0, 1.0, &d, err)) < 0)
        return -1;
    if (r && d <= 0.0)
        return BAD(err, "top_p", "'top_p' must be above 0");
    if (r)
        s->top_p = (float)d;
    if ((r = get_number(root, "min_p", 0.0, 1.0, &d, err)) < 0)
        return -1;
    if (r)
        s->min_p = (float)d;
    if ((r = get_int(root, "top_k", 0, 1 << 30, &i, err)) < 0)
        return -1;
    if (r)
        s->top_k = (int32_t)i;
    if ((r = get_number(root, "presence_penalty", -2.0, 2.0, &d, err)) < 0)
        return -1;
    if (r)
        s->presence_penalty = (float)d;
    if ((r = get_number(root, "frequency_penalty", -2.0, 2.0, &d, err)) < 0)
        return -1;
    if (r)
        s->frequency_penalty = (float)d;
    if ((r = get_number(root, "repeat_penalty", 1e-3, 100.0, &d, err)) < 0)
        return -1;
    if (r)
        s->repeat_penalty = (float)d;
    if ((r = get_int(root, "seed", -9.2e18, 9.2e18, &i, err)) < 0)
        return -1;
    if (r) {
        s->seed = (uint64_t)i;
        req->seed_given = 1;
    }
    int64_t n = 1;
    if (get_int(root, "n", 1, 128, &n, err) < 0)
        return -1;
    if (n != 1)
        return BAD(err, "n", "'n' = %lld is not supported: this server returns 1 choice",
                   (long long)n);
    if ((r = get_int(root, "max_tokens", 1, 1 << 30, &req->max_tokens, err)) < 0)
        return -1;
    if (!r && get_int(root, "max_completion_tokens", 1, 1 << 30, &req->max_tokens, err) < 0)
        return -1;
    if (get_bool(root, "stream", &req->stream, err) < 0)
        return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return BAD(err, "stream_options", "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &req->include_usage, err) < 0)
            return -1;
    }
    int lp = 0;
    if (get_bool(root, "logprobs", &lp, err) < 0)
        return -1;
    const cJSON *lpv = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (lp || (lpv && cJSON_IsNumber(lpv)))
        return BAD(err, "logprobs", "'logprobs' is not supported");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsString(model) && !cJSON_IsNull(model))
        return BAD(err, "model", "'model' must be a string");
    return parse_stop(root, req, err);
}

/* "prompt": a string, an array of one string, an array of token ids, or an
 * array holding one array of token ids. */
static int parse_prompt(const cJSON *root, api_request *req, api_error *err)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p)
        return BAD(err, "prompt", "you must provide a 'prompt'");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 &&
        (cJSON_IsString(p->child) || cJSON_IsArray(p->child)))
        p = p->child;
    if (cJSON_IsString(p)) {
        if (!p->valuestring[0])
            return BAD(err, "prompt", "'prompt' is empty");
        req->prompt_text = strdup(p->valuestring);
        return req->prompt_text ? 0 : api_fail(err, 500, "server_error", NULL, NULL, "no memory");
    }
    if (!cJSON_IsArray(p))
        return BAD(err, "prompt", "'prompt' must be a string or an array of token ids");
    const int n = cJSON_GetArraySize(p);
    if (n == 0)
        return BAD(err, "prompt", "'prompt' is empty");
    req->prompt_ids = malloc((size_t)n * sizeof *req->prompt_ids);
    if (!req->prompt_ids)
        return api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, p)
    {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble > 2147483647.0)
            return BAD(err, "prompt",
                       "'prompt' must be a string or an array of token ids (one prompt: "
                       "this server returns 1 choice)");
        req->prompt_ids[req->n_prompt_ids++] = (int32_t)t->valuedouble;
    }
    return 0;
}

/* A message's content: a string, or an array of {"type": "text", "text"}. */
static int add_content(chat_buf *b, const cJSON *c, api_error *err)
{
    if (cJSON_IsString(c))
        return chat_buf_add(b, c->valuestring, strlen(c->valuestring));
    if (!cJSON_IsArray(c))
        return BAD(err, "messages", "a message's 'content' must be a string or an array of parts");
    const cJSON *part;
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text))
            return BAD(err, "messages", "only text content parts are supported");
        if (chat_buf_add(b, text->valuestring, strlen(text->valuestring)))
            return -1;
    }
    return 0;
}

static int valid_role(const char *r)
{
    return !strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant") ||
           !strcmp(r, "developer");
}

/* "messages" rendered as ChatML, ending with the opening of the reply. */
static int parse_messages(const cJSON *root, const char *default_system, api_request *req,
                          api_error *err)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!m)
        return BAD(err, "messages", "you must provide 'messages'");
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) == 0)
        return BAD(err, "messages", "'messages' must be a non-empty array");
    chat_buf b = {0}, content = {0};
    int rc = 0;
    const cJSON *msg;
    int first = 1;
    cJSON_ArrayForEach(msg, m)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role) || !valid_role(role->valuestring)) {
            rc = BAD(err, "messages",
                     "each message needs a 'role' of system, developer, user or assistant");
            break;
        }
        if (!c) {
            rc = BAD(err, "messages", "each message needs a 'content'");
            break;
        }
        const char *r = !strcmp(role->valuestring, "developer") ? "system" : role->valuestring;
        if (first && strcmp(r, "system") && default_system &&
            chat_add_turn(&b, "system", default_system)) {
            rc = -2;
            break;
        }
        first = 0;
        content.len = 0;
        if (chat_buf_add(&content, "", 0) || (rc = add_content(&content, c, err)) != 0 ||
            chat_add_turn(&b, r, content.s)) {
            rc = rc ? rc : -2;
            break;
        }
    }
    free(content.s);
    if (rc == 0 && chat_add_reply_start(&b))
        rc = -2;
    if (rc == -2)
        rc = api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    if (rc != 0) {
        free(b.s);
        return rc;
    }
    req->prompt_text = b.s;
    return 0;
}

int api_parse(const char *body, size_t len, int chat, const char *default_system, api_request *req,
              api_error *err)
{
    memset(req, 0, sizeof *req);
    req->chat = chat;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return BAD(err, NULL, "the request body is not valid JSON");
    int rc;
    if (!cJSON_IsObject(root))
        rc = BAD(err, NULL, "the request body must be a JSON object");
    else
        rc = parse_common(root, req, err);
    if (rc == 0)
        rc = chat ? parse_messages(root, default_system, req, err) : parse_prompt(root, req, err);
    cJSON_Delete(root);
    if (rc != 0)
        api_request_free(req);
    return rc;
}

const char *api_finish_reason(srv_finish f)
{
    return f == SRV_FINISH_LENGTH ? "length" : "stop";
}

static cJSON *envelope(const api_reply *a, const char *object)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", a->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)a->created);
    cJSON_AddStringToObject(root, "model", a->model);
    cJSON_AddStringToObject(root, "system_fingerprint", "gqa");
    return root;
}

static void add_usage(cJSON *root, const srv_progress *pr)
{
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)pr->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)pr->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(pr->prompt_tokens + pr->completion_tokens));
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", (double)pr->cached_tokens);
}

/* The reply's one choice, index 0, in a new "choices" array of root. */
static cJSON *add_choice(cJSON *root)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), c);
    cJSON_AddNumberToObject(c, "index", 0);
    return c;
}

char *api_response_json(const api_reply *a, const char *text, const srv_progress *pr)
{
    cJSON *root = envelope(a, a->chat ? "chat.completion" : "text_completion");
    cJSON *c = add_choice(root);
    if (a->chat) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text ? text : "");
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
    }
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", api_finish_reason(pr->finish));
    add_usage(root, pr);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static char *sse(cJSON *root)
{
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json)
        return NULL;
    const size_t n = strlen(json) + 9;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "data: %s\n\n", json);
    free(json);
    return out;
}

char *api_stream_chunk(const api_reply *a, const char *text, int first, srv_finish finish)
{
    cJSON *root = envelope(a, a->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *c = add_choice(root);
    if (a->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first)
            cJSON_AddStringToObject(d, "role", "assistant");
        if (text)
            cJSON_AddStringToObject(d, "content", text);
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
    }
    cJSON_AddNullToObject(c, "logprobs");
    if (finish != SRV_FINISH_NONE)
        cJSON_AddStringToObject(c, "finish_reason", api_finish_reason(finish));
    else
        cJSON_AddNullToObject(c, "finish_reason");
    return sse(root);
}

char *api_stream_usage(const api_reply *a, const srv_progress *pr)
{
    cJSON *root = envelope(a, a->chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(root, "choices");
    add_usage(root, pr);
    return sse(root);
}
