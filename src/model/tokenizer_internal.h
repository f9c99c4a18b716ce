/* tokenizer_internal.h - the BPE tokenizer's private interface. Not installed.
 *
 * tokenizer.c creates and frees the tokenizer and owns the vocabulary, the
 * special tokens and decoding; tokenizer_encode.c owns the pre-tokenizer's
 * regexes, the merge table and encoding. Both see the whole type below.
 */
#ifndef GQA_MODEL_TOKENIZER_INTERNAL_H
#define GQA_MODEL_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/internal.h"
#include "gqa_tokenizer.h"

#define TOK_MAX_REGEX 4

/* ------------------------------------------------------------ the type -- */

typedef struct merge_slot {
    uint64_t key; /* (left << 32) | right; MERGE_EMPTY when free */
    int32_t rank;
    int32_t result; /* id of left + right */
} merge_slot;
#define MERGE_EMPTY UINT64_MAX

typedef struct special_ref {
    int32_t id;
    int32_t len;
    int32_t first; /* first byte */
} special_ref;

struct gqa_tokenizer {
    int32_t n_tokens;
    int32_t bos, eos, unk, pad;
    int add_bos;
    int32_t *types;     /* n_tokens */
    char *text;         /* stored strings, concatenated */
    int64_t *text_off;  /* n_tokens + 1 offsets into text */
    char *piece;        /* decoded bytes of each token, concatenated */
    int64_t *piece_off; /* n_tokens + 1 offsets into piece */

    int32_t *vocab; /* open-addressing table of ids (-1 free), vocab_mask + 1 slots */
    uint64_t vocab_mask;
    merge_slot *merges; /* merge_mask + 1 slots */
    uint64_t merge_mask;

    int32_t byte_token[256]; /* id of the character byte b maps to, -1 if none */
    int32_t unk_fallback;    /* unk if its type is UNKNOWN, else -1 */

    special_ref *specials; /* sorted by first byte, then longest first */
    int32_t n_specials;
    int32_t special_start[257]; /* specials with first byte b: [start[b], start[b+1]) */

    int n_regex;
    pcre2_code *regex[TOK_MAX_REGEX];
};

/* Smallest power of two >= 2 * n, at least 16. */
static inline uint64_t tok_table_size(uint64_t n)
{
    uint64_t size = 16;
    while (size < 2 * n)
        size <<= 1;
    return size;
}

/* tokenizer_encode.c, called by gqa_tokenizer_create once the vocabulary is
 * built (gqa_tokenizer_find works). On failure the error is set and what was
 * allocated so far stays in t for gqa_tokenizer_free. */

/* Resolve every merge "left right" of cfg to a (left id, right id) ->
 * (rank, joined id) entry of t->merges. */
gqa_status gqa_tokenizer_build_merges(gqa_tokenizer *t, const gqa_tokenizer_config *cfg);

/* Compile the regexes of cfg's pre-tokenizer ("default" when unnamed) into
 * t->regex; GQA_ERR_UNSUPPORTED for an unknown name. */
gqa_status gqa_tokenizer_build_regex(gqa_tokenizer *t, const gqa_tokenizer_config *cfg);

/* GPT-2's byte-to-unicode spelling of byte b (0..255) as UTF-8 in out: the
 * text of the vocabulary entry that stands for that byte. Returns 1 or 2. */
int gqa_tokenizer_byte_spelling(int b, char out[2]);

#endif
