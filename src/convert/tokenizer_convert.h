/* tokenizer_convert.h - the tokenizer between a Hugging Face directory's
 * tokenizer.json / tokenizer_config.json and a GGUF file's tokenizer.ggml.*
 * keys (byte-level BPE only; docs/conversion.md). Internal; not installed. */
#ifndef GQA_CONVERT_TOKENIZER_CONVERT_H
#define GQA_CONVERT_TOKENIZER_CONVERT_H

#include "convert/convert_internal.h"
#include "gqa_convert.h"

/* Add the tokenizer.ggml.* keys (and tokenizer.chat_template) made from the
 * directory dir's tokenizer.json, tokenizer_config.json and config.json.
 * *written = 0 and GQA_OK when dir has no tokenizer.json. Errors:
 * GQA_ERR_UNSUPPORTED (not byte-level BPE, an unknown pre-tokenizer),
 * GQA_ERR_FORMAT (malformed files, token id gaps), GQA_ERR_IO,
 * GQA_ERR_NO_MEMORY. */
gqa_status gqa_tokconv_hf_to_gguf(gqa_gguf_writer *w, const char *dir, int *written);

#define GQA_TOKCONV_N_FILES 3
/* The file names of gqa_tokconv_gguf_build's documents, in order. */
extern const char *const gqa_tokconv_files[GQA_TOKCONV_N_FILES];

/* Build tokenizer.json, tokenizer_config.json and special_tokens_map.json
 * (cJSON objects, the caller's to cJSON_Delete) from g's tokenizer.ggml.*
 * keys. All NULL and GQA_OK when g has no tokenizer.ggml.tokens. Errors:
 * GQA_ERR_UNSUPPORTED (not "gpt2", a pre-tokenizer gqa does not know),
 * GQA_ERR_FORMAT, GQA_ERR_NO_MEMORY. */
gqa_status gqa_tokconv_gguf_build(const gqa_gguf *g, struct cJSON *out[GQA_TOKCONV_N_FILES]);

#endif
