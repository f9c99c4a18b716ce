/* tokenizer_pre.h - the pre-tokenizer regex lists tokenizer_encode.c knows,
 * per llama.cpp tokenizer.ggml.pre name, for the converters
 * (src/convert/tokenizer_convert.c). Internal; not installed. */
#ifndef GQA_MODEL_TOKENIZER_PRE_H
#define GQA_MODEL_TOKENIZER_PRE_H

/* The regex list of pre-tokenizer `name` (NUL-terminated): its count, or -1
 * when unknown; *regex points at static strings. */
int gqa_tokenizer_pre_regexes(const char *name, const char *const **regex);

/* The first known pre-tokenizer name whose regex list is exactly regex[0..n-1],
 * or NULL. */
const char *gqa_tokenizer_pre_name(int n, const char *const *regex);

#endif
