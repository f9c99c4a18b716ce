/* session.h - what `gqa run`, `gqa chat` and `gqa bench model` share: a
 * loaded model with its tokenizer, one sequence in a paged KV cache, and the
 * generation loop that streams text and counts time and KV bytes.
 * Uses only the public headers. */
#ifndef GQA_TOOLS_SESSION_H
#define GQA_TOOLS_SESSION_H

#include <stdio.h>

#include "gqa.h"
#include "gqa_model.h"
#include "gqa_sampler.h"
#include "gqa_tokenizer.h"

typedef struct session {
    gqa_model *model;
    gqa_model_info info;
    gqa_tokenizer *tok;
    gqa_kv_cache *cache;
    gqa_dtype kv_type;
    int32_t seq;
    int64_t n_ctx;   /* tokens the cache was sized for */
    float *logits;   /* n_vocab: after the last token fed */
    int32_t stop[4]; /* ids that end a reply (EOS, <|im_end|>, <|endoftext|>) */
    int n_stop;
    /* timing of the last feed / generate calls */
    double prompt_s, gen_s;
    int64_t prompt_tokens, gen_tokens;
} session;

/* The model path to use: `arg` if given, else $GQA_MODEL, else the set-up
 * cache (GQA_MODEL_DIR or the build's default models/ folder). */
const char *session_model_path(const char *arg);

/* Load the model and tokenizer, create a cache for n_ctx tokens (0: the
 * model's training context) of kv_type and one sequence. Prints one error
 * line and returns CLI_EXIT_FAIL on failure (the session is then freed). */
int session_open(session *s, const char *path, gqa_dtype kv_type, int64_t n_ctx);
void session_close(session *s);
/* (Re)create the cache, empty, for n_ctx tokens (0: the training context). */
int session_set_ctx(session *s, int64_t n_ctx);

/* Parse "f32", "f16", "bf16" or "q8_0". -1 with an error if not. */
int session_parse_kv_type(const char *text, gqa_dtype *out);

/* Tokenize text (special tokens matched when `special`); *ids is malloc'd. */
int session_tokenize(session *s, const char *text, int special, int32_t **ids, int64_t *n);

/* Feed tokens (one prompt batch), leaving the logits after the last one. */
int session_feed(session *s, const int32_t *ids, int64_t n);

/* Generate up to max_tokens tokens: sample from the current logits, stream
 * each piece to `out` (may be NULL), feed it, stop at a stop token (which is
 * not printed and not fed). *last_stop receives the stop token or -1. */
int session_generate(session *s, gqa_sampler *smp, int64_t max_tokens, FILE *out,
                     int32_t *last_stop);

/* Print the speed and KV-memory report of the last run to f. */
void session_report(const session *s, FILE *f);

/* Monotonic seconds. */
double session_now(void);

#endif

/* ChatML (the template of SmolLM2 and many others). */
/* The system prompt the file's chat template inserts when a conversation has
 * none (the literal text between "<|im_start|>system\n" and "<|im_end|>"), or
 * NULL. malloc'd. */
char *session_default_system(const session *s);
/* 1 if the vocabulary has <|im_start|> and <|im_end|>. */
int session_has_chatml(const session *s);
/* "<|im_start|>system\n{system}<|im_end|>\n" (when system is not NULL), then
 * "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"; malloc'd. */
char *session_chatml_turn(const char *system, const char *user);

/* Options `gqa run` and `gqa chat` share. */
typedef struct gen_options {
    const char *model;      /* -m, or NULL for the default */
    long n_predict;         /* -n: tokens to generate (per reply) */
    gqa_sampler_config smp; /* --temp --top-k --top-p --min-p --repeat-penalty --seed */
    long threads;           /* --threads, 0: library default */
    gqa_dtype kv_type;      /* --kv-type */
    long n_ctx;             /* --ctx, 0: automatic */
} gen_options;

/* Defaults: 256 tokens, the sampler's defaults, f16 KV. */
void gen_options_default(gen_options *o);
/* Parse argv[*i] if it is one of the shared options (advancing *i past a
 * value): 1 consumed, 0 not a shared option, -1 bad value (error printed). */
int gen_options_parse(gen_options *o, int argc, char **argv, int *i);
/* Help lines for the shared options. */
extern const char gen_options_help[];
