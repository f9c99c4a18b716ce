/* hf_dir_internal.h - the Hugging Face directory handle, shared by
 * hf_dir.c (reading) and hf_dir_write.c (writing). Not installed. */
#ifndef GQA_CONVERT_HF_DIR_INTERNAL_H
#define GQA_CONVERT_HF_DIR_INTERNAL_H

#include "convert/hf_internal.h"

#define GQA_HF_CONFIG "config.json"
#define GQA_HF_SINGLE "model.safetensors"
#define GQA_HF_INDEX  "model.safetensors.index.json"

struct gqa_hf_dir {
    char *path;
    struct cJSON *config; /* config.json */
    gqa_hf_config cfg;
    int sharded;
    struct cJSON *index; /* index.json when sharded, else NULL */
    int32_t n_shards;
    char **shard_names; /* file names inside path */
    gqa_st_file **shards;
    int64_t n_tensors; /* over all shards */
    struct hf_ref {
        int32_t shard;
        int64_t index; /* in that shard's data order */
    } * refs;          /* global tensor i, shard by shard */
    int64_t *by_name;  /* global indices sorted by name */
};

/* Read and parse the JSON file at `path`, which must hold an object.
 * GQA_ERR_IO, GQA_ERR_FORMAT (naming the file), GQA_ERR_NO_MEMORY. */
gqa_status gqa_hf_read_json(const char *path, struct cJSON **out);

/* cJSON_Print(j) and a newline into dir/name (not atomic). GQA_ERR_IO,
 * GQA_ERR_NO_MEMORY. */
gqa_status gqa_hf_write_json(const struct cJSON *j, const char *dir, const char *name);

#endif
