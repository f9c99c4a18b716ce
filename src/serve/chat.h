/* chat.h - the ChatML conversation format and the stop tokens of a chat
 * model: what `gqa run --chatml`, `gqa chat` and `gqa serve` share.
 * Uses only the public headers. */
#ifndef GQA_SERVE_CHAT_H
#define GQA_SERVE_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "gqa_model.h"
#include "gqa_tokenizer.h"

/* The ids that end a reply: EOS, <|im_end|>, <|endoftext|> (those the
 * vocabulary has, without repeats), at most `cap`. Returns the count. */
int chat_stop_ids(const gqa_tokenizer *tok, int32_t *ids, int cap);

/* 1 if the vocabulary has <|im_start|> and <|im_end|>. */
int chat_has_chatml(const gqa_tokenizer *tok);

/* The system prompt the file's chat template inserts when a conversation has
 * none (the literal text between "<|im_start|>system\n" and "<|im_end|>"), or
 * NULL when there is none or it is not literal text. malloc'd. */
char *chat_default_system(const gqa_gguf *g);

/* A growable string. */
typedef struct chat_buf {
    char *s;
    size_t len, cap;
} chat_buf;

/* Append n bytes; -1 when out of memory (the buffer is then unchanged). */
int chat_buf_add(chat_buf *b, const char *text, size_t n);

/* Append "<|im_start|>{role}\n{content}<|im_end|>\n". -1 when out of memory. */
int chat_add_turn(chat_buf *b, const char *role, const char *content);

/* Append "<|im_start|>assistant\n", the opening of the reply. */
int chat_add_reply_start(chat_buf *b);

#endif
