/* hf_dir.c - reading a Hugging Face model directory (config.json plus
 * model.safetensors, or shards listed by model.safetensors.index.json).
 * Writing one is hf_dir_write.c.
 *
 * The index and the shards are cross-checked at open: every weight_map
 * entry must name a tensor that is in that shard, every shard tensor must be
 * listed, and no tensor may be in two shards - so a lookup by name and the
 * list of tensors always agree, whatever the index says. Shard file names
 * must be plain names inside the directory (no '/', not "." or ".."): an
 * index is as untrusted as the files it points to.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "convert/hf_dir_internal.h"
#include "convert/hf_util.h"
#include "core/internal.h"

#define HF_MAX_JSON (100u << 20) /* config.json and index.json: generous caps */

/* ------------------------------------------------------------ config -- */

/* Read and parse a JSON file that must hold an object. */
gqa_status gqa_hf_read_json(const char *path, cJSON **out)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    gqa_status s = gqa_read_file(path, HF_MAX_JSON, &text, &len);
    if (s != GQA_OK)
        return s;
    /* JSON is UTF-8 (RFC 8259); cJSON does not check, and would copy a NUL
     * or a broken sequence into names and values we write back */
    uint64_t bad = gqa_utf8_check(text, len);
    const char *nul = memchr(text, 0, len);
    if (nul && (uint64_t)(nul - text) < bad)
        bad = (uint64_t)(nul - text);
    if (bad < len) {
        free(text);
        return gqa_fail(GQA_ERR_FORMAT, "'%s': not UTF-8 text without NUL (byte %llu)", path,
                        (unsigned long long)bad);
    }
    const char *end = NULL;
    /* text is NUL-terminated at len, so cJSON cannot read past it */
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t at = end && end >= text ? (size_t)(end - text) : 0;
    free(text);
    if (!j)
        return gqa_fail(GQA_ERR_FORMAT, "'%s': not valid JSON (near byte %zu)", path, at);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return gqa_fail(GQA_ERR_FORMAT, "'%s': not a JSON object", path);
    }
    *out = j;
    return GQA_OK;
}

/* A positive int32 config value; null counts as absent. */
static gqa_status cfg_int(const cJSON *root, const char *key, const char *path, int required,
                          int32_t *out, int32_t *present)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    uint64_t u;
    if (present)
        *present = v && !cJSON_IsNull(v);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return gqa_fail(GQA_ERR_FORMAT, "'%s': missing \"%s\"", path, key);
        return GQA_OK;
    }
    if (!gqa_json_uint(v, &u) || u < 1 || u > INT32_MAX)
        return gqa_fail(GQA_ERR_FORMAT, "'%s': \"%s\" is not an integer in 1..%d", path, key,
                        INT32_MAX);
    *out = (int32_t)u;
    return GQA_OK;
}

static void cfg_str(const cJSON *v, char *dst, size_t cap)
{
    dst[0] = '\0';
    if (cJSON_IsString(v))
        snprintf(dst, cap, "%s", v->valuestring);
}

static gqa_status parse_config(const cJSON *j, const char *path, gqa_hf_config *c)
{
    memset(c, 0, sizeof *c);
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    cfg_str(cJSON_IsArray(arch) ? arch->child : NULL, c->architecture, sizeof c->architecture);
    cfg_str(cJSON_GetObjectItemCaseSensitive(j, "model_type"), c->model_type, sizeof c->model_type);
    gqa_status s;
    if ((s = cfg_int(j, "num_attention_heads", path, 1, &c->n_heads, NULL)) != GQA_OK ||
        (s = cfg_int(j, "hidden_size", path, 1, &c->hidden_size, NULL)) != GQA_OK ||
        (s = cfg_int(j, "num_hidden_layers", path, 1, &c->n_layers, NULL)) != GQA_OK ||
        (s = cfg_int(j, "num_key_value_heads", path, 0, &c->n_kv_heads, &c->has_n_kv_heads)) !=
            GQA_OK ||
        (s = cfg_int(j, "head_dim", path, 0, &c->head_dim, &c->has_head_dim)) != GQA_OK)
        return s;
    if (!c->has_n_kv_heads)
        c->n_kv_heads = c->n_heads;
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return gqa_fail(GQA_ERR_FORMAT,
                        "'%s': num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        path, (int)c->n_heads, (int)c->n_kv_heads);
    if (!c->has_head_dim) {
        if (c->hidden_size % c->n_heads != 0)
            return gqa_fail(GQA_ERR_FORMAT,
                            "'%s': no head_dim, and hidden_size %d is not a multiple of "
                            "num_attention_heads %d",
                            path, (int)c->hidden_size, (int)c->n_heads);
        c->head_dim = c->hidden_size / c->n_heads;
    }
    return GQA_OK;
}

/* ------------------------------------------------------------ shards -- */

/* Index of shard `name`, appending it when new. */
static gqa_status shard_slot(gqa_hf_dir *d, const char *name, int32_t *slot)
{
    for (int32_t s = 0; s < d->n_shards; s++)
        if (strcmp(d->shard_names[s], name) == 0) {
            *slot = s;
            return GQA_OK;
        }
    if (!name[0] || strchr(name, '/') || strchr(name, '\\') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return gqa_fail(GQA_ERR_FORMAT,
                        "'%s/%s': shard file name '%.200s' is not a plain file name in the "
                        "directory",
                        d->path, GQA_HF_INDEX, name);
    char **names = realloc(d->shard_names, (size_t)(d->n_shards + 1) * sizeof *names);
    if (!names)
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory");
    d->shard_names = names;
    size_t n = strlen(name) + 1;
    if (!(names[d->n_shards] = malloc(n)))
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory");
    memcpy(names[d->n_shards], name, n);
    *slot = d->n_shards++;
    return GQA_OK;
}

/* The weight_map's shard names, in order of first appearance. */
static gqa_status list_shards(gqa_hf_dir *d, const cJSON *wm)
{
    if (!cJSON_IsObject(wm))
        return gqa_fail(GQA_ERR_FORMAT, "'%s/%s': no \"weight_map\" object", d->path, GQA_HF_INDEX);
    for (const cJSON *e = wm->child; e; e = e->next) {
        int32_t slot;
        if (!cJSON_IsString(e))
            return gqa_fail(GQA_ERR_FORMAT, "'%s/%s': weight_map entry '%.200s' is not a file name",
                            d->path, GQA_HF_INDEX, e->string);
        gqa_status s = shard_slot(d, e->valuestring, &slot);
        if (s != GQA_OK)
            return s;
    }
    return GQA_OK;
}

static gqa_status open_shards(gqa_hf_dir *d)
{
    d->shards = calloc((size_t)(d->n_shards ? d->n_shards : 1), sizeof *d->shards);
    if (!d->shards)
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory");
    for (int32_t s = 0; s < d->n_shards; s++) {
        char p[4096];
        gqa_status st = gqa_path_join(p, sizeof p, d->path, d->shard_names[s]);
        if (st == GQA_OK)
            st = gqa_st_open(p, &d->shards[s]);
        if (st != GQA_OK)
            return st;
        d->n_tensors += gqa_st_n_tensors(d->shards[s]);
    }
    return GQA_OK;
}

/* ------------------------------------------------------- name index -- */

static _Thread_local const gqa_hf_dir *sort_dir;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(gqa_hf_tensor_at(sort_dir, *(const int64_t *)a)->name,
                  gqa_hf_tensor_at(sort_dir, *(const int64_t *)b)->name);
}

/* The global tensor table (shard by shard) and its name index; a name in
 * two shards is an error. */
static gqa_status index_tensors(gqa_hf_dir *d)
{
    int64_t n = d->n_tensors ? d->n_tensors : 1;
    d->refs = malloc((size_t)n * sizeof *d->refs);
    d->by_name = malloc((size_t)n * sizeof *d->by_name);
    if (!d->refs || !d->by_name)
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory");
    int64_t k = 0;
    for (int32_t s = 0; s < d->n_shards; s++)
        for (int64_t i = 0; i < gqa_st_n_tensors(d->shards[s]); i++, k++) {
            d->refs[k].shard = s;
            d->refs[k].index = i;
            d->by_name[k] = k;
        }
    sort_dir = d;
    if (d->n_tensors)
        qsort(d->by_name, (size_t)d->n_tensors, sizeof *d->by_name, cmp_name);
    for (int64_t i = 1; i < d->n_tensors; i++) {
        int64_t a = d->by_name[i - 1], b = d->by_name[i];
        if (strcmp(gqa_hf_tensor_at(d, a)->name, gqa_hf_tensor_at(d, b)->name) == 0)
            return gqa_fail(GQA_ERR_FORMAT, "'%s': tensor '%.200s' is in both '%s' and '%s'",
                            d->path, gqa_hf_tensor_at(d, a)->name, d->shard_names[d->refs[a].shard],
                            d->shard_names[d->refs[b].shard]);
    }
    return GQA_OK;
}

/* Every weight_map entry names a tensor of its shard, once; every tensor is
 * listed. With names unique across shards that makes the two agree. */
static gqa_status check_weight_map(gqa_hf_dir *d, const cJSON *wm)
{
    char *listed = calloc((size_t)(d->n_tensors ? d->n_tensors : 1), 1);
    if (!listed)
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory");
    gqa_status s = GQA_OK;
    for (const cJSON *e = wm->child; e && s == GQA_OK; e = e->next) {
        int64_t i = gqa_hf_find(d, e->string);
        if (i < 0 || strcmp(d->shard_names[d->refs[i].shard], e->valuestring) != 0)
            s = gqa_fail(GQA_ERR_FORMAT, "'%s/%s': tensor '%.200s' is listed in '%s', which %s",
                         d->path, GQA_HF_INDEX, e->string, e->valuestring,
                         i < 0 ? "does not hold it" : "is not where it is");
        else if (listed[i]++)
            s = gqa_fail(GQA_ERR_FORMAT, "'%s/%s': tensor '%.200s' is listed twice", d->path,
                         GQA_HF_INDEX, e->string);
    }
    for (int64_t i = 0; i < d->n_tensors && s == GQA_OK; i++)
        if (!listed[i])
            s = gqa_fail(GQA_ERR_FORMAT,
                         "'%s/%s': tensor '%.200s' of '%s' is not in the weight_map", d->path,
                         GQA_HF_INDEX, gqa_hf_tensor_at(d, i)->name,
                         d->shard_names[d->refs[i].shard]);
    free(listed);
    return s;
}

/* -------------------------------------------------------------- open -- */

static gqa_status open_weights(gqa_hf_dir *d)
{
    char p[4096];
    struct stat st;
    gqa_status s = gqa_path_join(p, sizeof p, d->path, GQA_HF_INDEX);
    if (s != GQA_OK)
        return s;
    d->sharded = stat(p, &st) == 0;
    if (d->sharded) {
        if ((s = gqa_hf_read_json(p, &d->index)) != GQA_OK ||
            (s = list_shards(d, cJSON_GetObjectItemCaseSensitive(d->index, "weight_map"))) !=
                GQA_OK)
            return s;
    } else {
        if ((s = gqa_path_join(p, sizeof p, d->path, GQA_HF_SINGLE)) != GQA_OK)
            return s;
        if (stat(p, &st) != 0)
            return gqa_fail(GQA_ERR_IO, "'%s': no %s or %s (%s)", d->path, GQA_HF_SINGLE,
                            GQA_HF_INDEX, strerror(errno));
        int32_t slot;
        if ((s = shard_slot(d, GQA_HF_SINGLE, &slot)) != GQA_OK)
            return s;
    }
    if ((s = open_shards(d)) != GQA_OK || (s = index_tensors(d)) != GQA_OK)
        return s;
    if (d->sharded)
        s = check_weight_map(d, cJSON_GetObjectItemCaseSensitive(d->index, "weight_map"));
    return s;
}

gqa_status gqa_hf_open(const char *path, gqa_hf_dir **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_hf_open: out is NULL");
    *out = NULL;
    if (!path)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_hf_open: path is NULL");
    gqa_hf_dir *d = calloc(1, sizeof *d);
    size_t n = strlen(path) + 1;
    if (!d || !(d->path = malloc(n))) {
        free(d);
        return gqa_fail(GQA_ERR_NO_MEMORY, "gqa_hf_open: out of memory");
    }
    memcpy(d->path, path, n);
    char p[4096];
    gqa_status s = gqa_path_join(p, sizeof p, path, GQA_HF_CONFIG);
    if (s == GQA_OK)
        s = gqa_hf_read_json(p, &d->config);
    if (s == GQA_OK)
        s = parse_config(d->config, p, &d->cfg);
    if (s == GQA_OK)
        s = open_weights(d);
    if (s != GQA_OK) {
        gqa_hf_close(d);
        return s;
    }
    *out = d;
    return GQA_OK;
}

void gqa_hf_close(gqa_hf_dir *d)
{
    if (!d)
        return;
    for (int32_t s = 0; s < d->n_shards; s++) {
        if (d->shards)
            gqa_st_close(d->shards[s]);
        free(d->shard_names[s]);
    }
    free(d->shards);
    free(d->shard_names);
    free(d->refs);
    free(d->by_name);
    cJSON_Delete(d->config);
    cJSON_Delete(d->index);
    free(d->path);
    free(d);
}

/* --------------------------------------------------------- accessors -- */

const gqa_hf_config *gqa_hf_config_get(const gqa_hf_dir *d)
{
    return d ? &d->cfg : NULL;
}

const struct cJSON *gqa_hf_config_json(const gqa_hf_dir *d)
{
    return d ? d->config : NULL;
}

int gqa_hf_config_number(const gqa_hf_dir *d, const char *key, double *out)
{
    const cJSON *v = d && key ? cJSON_GetObjectItemCaseSensitive(d->config, key) : NULL;
    if (!cJSON_IsNumber(v))
        return 0;
    if (out)
        *out = v->valuedouble;
    return 1;
}

const char *gqa_hf_path(const gqa_hf_dir *d)
{
    return d ? d->path : NULL;
}

int gqa_hf_sharded(const gqa_hf_dir *d)
{
    return d ? d->sharded : 0;
}

int32_t gqa_hf_n_shards(const gqa_hf_dir *d)
{
    return d ? d->n_shards : 0;
}

const char *gqa_hf_shard_name(const gqa_hf_dir *d, int32_t s)
{
    return d && s >= 0 && s < d->n_shards ? d->shard_names[s] : NULL;
}

const gqa_st_file *gqa_hf_shard(const gqa_hf_dir *d, int32_t s)
{
    return d && s >= 0 && s < d->n_shards ? d->shards[s] : NULL;
}

int64_t gqa_hf_n_tensors(const gqa_hf_dir *d)
{
    return d ? d->n_tensors : 0;
}

const gqa_st_tensor *gqa_hf_tensor_at(const gqa_hf_dir *d, int64_t i)
{
    if (!d || i < 0 || i >= d->n_tensors)
        return NULL;
    return gqa_st_tensor_at(d->shards[d->refs[i].shard], d->refs[i].index);
}

int32_t gqa_hf_tensor_shard(const gqa_hf_dir *d, int64_t i)
{
    return d && i >= 0 && i < d->n_tensors ? d->refs[i].shard : -1;
}

int64_t gqa_hf_find(const gqa_hf_dir *d, const char *name)
{
    if (!d || !name)
        return -1;
    int64_t lo = 0, hi = d->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(gqa_hf_tensor_at(d, d->by_name[mid])->name, name);
        if (r == 0)
            return d->by_name[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

gqa_status gqa_hf_tensor(const gqa_hf_dir *d, const char *name, const gqa_st_tensor **out)
{
    if (!d || !name || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_hf_tensor: NULL argument");
    int64_t i = gqa_hf_find(d, name);
    *out = gqa_hf_tensor_at(d, i);
    if (!*out)
        return gqa_fail(GQA_ERR_FORMAT, "'%s': no tensor '%.200s'", d->path, name);
    return GQA_OK;
}
