/* gqa_tokenizer.h - GPT-2 style byte-level BPE tokenizer (llama.cpp's "gpt2"
 * tokenizer model), built from plain arrays such as those stored in a GGUF
 * file's tokenizer.ggml.* metadata.
 *
 * Encoding, in order:
 *  1. Special tokens (see gqa_tokenize) are cut out of the text as whole tokens.
 *  2. The rest is split into pieces by the pre-tokenizer named in the config:
 *     a list of Unicode regexes (PCRE2, UTF + Unicode properties) applied one
 *     after another, each splitting every piece of the previous one into its
 *     matches and the text between them.
 *  3. Each piece's bytes are mapped to characters by the GPT-2 byte-to-unicode
 *     table (bytes 33..126, 161..172, 174..255 map to themselves, the other 68
 *     bytes to U+0100 + n in byte order), one symbol per byte, and adjacent
 *     symbols are merged by BPE: always the pair with the lowest merge rank,
 *     the leftmost one on ties, until no listed pair is left.
 * Decoding undoes the byte mapping, so decode(encode(text)) == text for any
 * byte string, valid UTF-8 or not, as long as every byte's character is in the
 * vocabulary. Some vocabularies lack a few: SmolLM2 has no token for the bytes
 * 0x04 0x06 0x13 0x14 0x16 0x1D (rare control characters), 0xF1 0xF2 (lead
 * bytes of the unassigned planes 4-11) and the bytes valid UTF-8 never holds
 * (0xC0 0xC1 0xF5-0xFF). Such a byte becomes the unknown token if unk_id names
 * a token of type UNKNOWN, and is otherwise dropped, as Hugging Face
 * tokenizers does (SmolLM2's unk_id is <|endoftext|>, a control token, so
 * using it would end the text in the model's eyes).
 *
 * Thread safety: a tokenizer is immutable after creation; any number of
 * threads may call the functions below on it at once.
 */
#ifndef GQA_TOKENIZER_H
#define GQA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Token types, as in GGUF tokenizer.ggml.token_type (llama.cpp's values). */
typedef enum gqa_token_type {
    GQA_TOKEN_TYPE_UNDEFINED = 0,
    GQA_TOKEN_TYPE_NORMAL = 1,
    GQA_TOKEN_TYPE_UNKNOWN = 2,
    GQA_TOKEN_TYPE_CONTROL = 3, /* <|im_start|>, <|endoftext|>, ... */
    GQA_TOKEN_TYPE_USER_DEFINED = 4,
    GQA_TOKEN_TYPE_UNUSED = 5,
    GQA_TOKEN_TYPE_BYTE = 6 /* SentencePiece-style "<0xHH>" */
} gqa_token_type;

/* A byte string that need not be NUL-terminated (GGUF strings are not).
 * data may be NULL only when len == 0. */
typedef struct gqa_tokenizer_string {
    const char *data;
    uint64_t len;
} gqa_tokenizer_string;

/* Everything the tokenizer is built from. All arrays are borrowed for the
 * duration of gqa_tokenizer_create only: the tokenizer keeps its own copies. */
typedef struct gqa_tokenizer_config {
    int32_t n_tokens;                   /* vocabulary size, >= 1 */
    const gqa_tokenizer_string *tokens; /* n_tokens: tokenizer.ggml.tokens, id = index.
                                         * Normal tokens are in the GPT-2 byte-mapped
                                         * form ("Ġworld"), special ones verbatim. */
    const int32_t *token_types;         /* n_tokens gqa_token_type values, or NULL (all normal) */
    int32_t n_merges;                   /* >= 0 */
    const gqa_tokenizer_string *merges; /* n_merges: "left right", rank = index (lower first) */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 for none, else 0..n_tokens-1 */
    gqa_tokenizer_string pre;               /* tokenizer.ggml.pre: "smollm", "gpt2", "default",
                                             * ... (see docs/tokenizer.md); len == 0 means
                                             * "default" (data may then be NULL) */
    int32_t add_bos;                        /* nonzero: the model wants BOS first
                                             * (tokenizer.ggml.add_bos_token); see
                                             * GQA_TOKENIZE_ADD_BOS */
} gqa_tokenizer_config;

typedef struct gqa_tokenizer gqa_tokenizer;

/* Build a tokenizer; *out receives it (free with gqa_tokenizer_free).
 * Errors: GQA_ERR_INVALID_ARG (NULL pointers, n_tokens < 1, an id out of
 * range, a token type outside 0..6, a string longer than 2^31-1 bytes),
 * GQA_ERR_UNSUPPORTED (a pre-tokenizer name this build does not know, named
 * in the message; PCRE2 without Unicode support), GQA_ERR_FORMAT (a merge
 * that is not "left right", or whose left, right or joined string is not a
 * token; the message names the merge's index), GQA_ERR_NO_MEMORY.
 * Duplicate token strings: the lowest id wins for lookups. Duplicate merges:
 * the lowest rank wins. */
gqa_status gqa_tokenizer_create(const gqa_tokenizer_config *cfg, gqa_tokenizer **out);
void gqa_tokenizer_free(gqa_tokenizer *tok); /* NULL is fine */

/* Vocabulary size (n_tokens of the config). */
int32_t gqa_tokenizer_n_tokens(const gqa_tokenizer *tok);
/* Special ids from the config, -1 for none. */
int32_t gqa_tokenizer_bos(const gqa_tokenizer *tok);
int32_t gqa_tokenizer_eos(const gqa_tokenizer *tok);
/* The config's add_bos flag. */
int gqa_tokenizer_add_bos(const gqa_tokenizer *tok);
/* The gqa_token_type of id, or -1 for an id out of range. */
int32_t gqa_tokenizer_token_type(const gqa_tokenizer *tok, int32_t id);
/* The id whose stored string is exactly text[0..len) (as in the config, so
 * "<|im_end|>" or "Ġworld"), or -1 if there is none. */
int32_t gqa_tokenizer_find(const gqa_tokenizer *tok, const char *text, size_t len);

/* Flags of gqa_tokenize. */
enum {
    /* Match control and unknown-type tokens (<|im_start|>, <|endoftext|>) as
     * whole tokens in the text. Without it they are encoded as plain text.
     * User-defined tokens are always matched (as llama.cpp does). Matching is
     * leftmost-longest. */
    GQA_TOKENIZE_SPECIAL = 1,
    /* Prepend the BOS token if the config's add_bos is set (and bos_id >= 0). */
    GQA_TOKENIZE_ADD_BOS = 2
};

/* Encode text[0..len) (any bytes; NULL allowed when len == 0).
 * ids: room for cap token ids (NULL allowed when cap == 0). *n receives the
 * number of ids the whole text needs; when that exceeds cap the first cap
 * ids are written and GQA_ERR_CAPACITY is returned, so a call with cap == 0
 * sizes the buffer. flags: GQA_TOKENIZE_* or 0.
 * Errors: GQA_ERR_INVALID_ARG (NULL pointers, cap < 0, unknown flags),
 * GQA_ERR_CAPACITY, GQA_ERR_NO_MEMORY,
 * GQA_ERR_UNSUPPORTED (the regex engine gave up, e.g. a match limit).
 * Allocates scratch memory for the call (freed before it returns). */
gqa_status gqa_tokenize(const gqa_tokenizer *tok, const char *text, size_t len, int flags,
                        int32_t *ids, int64_t cap, int64_t *n);

/* The bytes token id stands for: for normal tokens the stored string with the
 * GPT-2 byte mapping undone (" world" for "Ġworld"); control, user-defined
 * and unknown tokens verbatim ("<|im_end|>"); byte tokens "<0xHH>" as the
 * byte. A piece need not be valid UTF-8 on its own (a multi-byte character
 * may span tokens), so stream by bytes. buf: room for cap bytes, not
 * NUL-terminated (NULL allowed when cap == 0); *len receives the piece's
 * length, and GQA_ERR_CAPACITY (nothing written) when it exceeds cap.
 * GQA_ERR_INVALID_ARG for an id out of range or NULL pointers. */
gqa_status gqa_token_to_piece(const gqa_tokenizer *tok, int32_t id, char *buf, int64_t cap,
                              int64_t *len);

/* The concatenated pieces of ids[0..n_ids) into buf (cap bytes, not
 * NUL-terminated); *len receives the total length; GQA_ERR_CAPACITY (the
 * first cap bytes written) when it exceeds cap. GQA_ERR_INVALID_ARG for an
 * id out of range (named with its index), NULL pointers, n_ids or cap < 0. */
gqa_status gqa_detokenize(const gqa_tokenizer *tok, const int32_t *ids, int64_t n_ids, char *buf,
                          int64_t cap, int64_t *len);

#ifdef __cplusplus
}
#endif

#endif /* GQA_TOKENIZER_H */
