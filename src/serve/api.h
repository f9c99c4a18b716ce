/* api.h - the OpenAI API of `gqa serve` without HTTP: parsing and checking
 * /v1/completions and /v1/chat/completions bodies, and writing responses,
 * stream chunks and error objects as JSON. */
#ifndef GQA_SERVE_API_H
#define GQA_SERVE_API_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* An error for the client: HTTP status and the OpenAI error object
 * {"error": {"message", "type", "param", "code"}}. */
typedef struct api_error {
    int status;
    const char *type;  /* "invalid_request_error", ... */
    const char *param; /* the offending field, or NULL */
    const char *code;  /* NULL or e.g. "context_length_exceeded" */
    char message[320];
} api_error;

/* A parsed request. */
typedef struct api_request {
    int chat;            /* /v1/chat/completions */
    int stream;          /* "stream": true */
    int include_usage;   /* "stream_options": {"include_usage": true} */
    char *prompt_text;   /* the prompt as text (chat: rendered as ChatML), or NULL */
    int32_t *prompt_ids; /* the prompt given as token ids, or NULL */
    int64_t n_prompt_ids;
    int64_t max_tokens; /* 0: not given */
    gqa_sampler_config sampler;
    int seed_given;
    char *stop[4];
    int32_t n_stop;
} api_request;

/* Parse and check a request body. `chat` selects the endpoint;
 * default_system (may be NULL) is put first in a conversation without a
 * system message. Returns 0, or -1 with *err filled (status 400). */
int api_parse(const char *body, size_t len, int chat, const char *default_system, api_request *req,
              api_error *err);
void api_request_free(api_request *req);

/* Fill *err; returns -1 (for `return api_fail(...)`). */
int api_fail(api_error *err, int status, const char *type, const char *param, const char *code,
             const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* {"error": {...}} as a malloc'd string. */
char *api_error_json(const api_error *err);

/* What a response needs besides the text. */
typedef struct api_reply {
    const char *id;    /* "cmpl-..." / "chatcmpl-..." */
    long long created; /* Unix time */
    const char *model;
    int chat;
} api_reply;

/* The whole (non-stream) response; malloc'd. */
char *api_response_json(const api_reply *a, const char *text, const srv_progress *pr);
/* One SSE event "data: {chunk}\n\n": text (may be NULL) or, with
 * finish != NONE, the last chunk with its finish_reason; first adds the
 * chat role. malloc'd. */
char *api_stream_chunk(const api_reply *a, const char *text, int first, srv_finish finish);
/* The usage chunk (choices: []), as an SSE event; malloc'd. */
char *api_stream_usage(const api_reply *a, const srv_progress *pr);
/* finish_reason text of a completed request ("stop" / "length"). */
const char *api_finish_reason(srv_finish f);

#endif
