/* chat.c - ChatML turns, the default system prompt of a chat template and
 * the stop tokens of a chat model. */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

static void add_id(int32_t *ids, int *n, int cap, int32_t id)
{
    if (id < 0 || *n >= cap)
        return;
    for (int i = 0; i < *n; i++)
        if (ids[i] == id)
            return;
    ids[(*n)++] = id;
}

int chat_stop_ids(const gqa_tokenizer *tok, int32_t *ids, int cap)
{
    int n = 0;
    add_id(ids, &n, cap, gqa_tokenizer_eos(tok));
    add_id(ids, &n, cap, gqa_tokenizer_find(tok, "<|im_end|>", 10));
    add_id(ids, &n, cap, gqa_tokenizer_find(tok, "<|endoftext|>", 13));
    return n;
}

int chat_has_chatml(const gqa_tokenizer *tok)
{
    return gqa_tokenizer_find(tok, "<|im_start|>", 12) >= 0 &&
           gqa_tokenizer_find(tok, "<|im_end|>", 10) >= 0;
}

char *chat_default_system(const gqa_gguf *g)
{
    const char *tpl;
    size_t len;
    if (gqa_gguf_find_key(g, "tokenizer.chat_template") < 0 ||
        gqa_gguf_get_str(g, "tokenizer.chat_template", &tpl, &len) != GQA_OK)
        return NULL;
    static const char open[] = "<|im_start|>system\n", close[] = "<|im_end|>";
    const size_t ol = sizeof open - 1, cl = sizeof close - 1;
    for (size_t i = 0; i + ol <= len; i++) {
        if (memcmp(tpl + i, open, ol) != 0)
            continue;
        const size_t b = i + ol;
        for (size_t e = b; e + cl <= len; e++) {
            if (tpl[e] == '{' || tpl[e] == '\'' || tpl[e] == '"')
                return NULL; /* not literal text: a template expression */
            if (memcmp(tpl + e, close, cl) == 0) {
                char *out = malloc(e - b + 1);
                if (out) {
                    memcpy(out, tpl + b, e - b);
                    out[e - b] = '\0';
                }
                return out;
            }
        }
        return NULL;
    }
    return NULL;
}

int chat_buf_add(chat_buf *b, const char *text, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s)
            return -1;
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

static int add_str(chat_buf *b, const char *s)
{
    return chat_buf_add(b, s, strlen(s));
}

int chat_add_turn(chat_buf *b, const char *role, const char *content)
{
    const size_t len0 = b->len;
    if (add_str(b, "<|im_start|>") || add_str(b, role) || add_str(b, "\n") || add_str(b, content) ||
        add_str(b, "<|im_end|>\n")) {
        b->len = len0;
        if (b->s)
            b->s[len0] = '\0';
        return -1;
    }
    return 0;
}

int chat_add_reply_start(chat_buf *b)
{
    return add_str(b, "<|im_start|>assistant\n");
}
