/* hf_dir_write.c - writing a Hugging Face model directory (gqa_hf_write,
 * gqa_hf_write_new; contract in hf_internal.h).
 *
 * The whole directory is built under a temporary name next to OUT
 * ("OUT.tmp-<pid>-<k>"), every file fsync'ed, then renamed to OUT in one
 * rename(2): a reader (or a crash) sees no OUT or a complete one, never a
 * directory with some shards missing. rename() replaces an empty directory,
 * which is why an existing empty OUT is accepted.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "convert/hf_dir_internal.h"
#include "convert/hf_util.h"
#include "core/internal.h"

/* ------------------------------------------------- output directory -- */

typedef struct out_dir {
    char final[4096]; /* OUT without trailing slashes */
    char tmp[4200];   /* the temporary directory being filled */
    int created;
} out_dir;

/* OUT must not exist, or be an empty directory that is not the source. */
static gqa_status check_out(const char *out, const char *src_path)
{
    struct stat st, ss;
    if (stat(out, &st) != 0) {
        if (errno == ENOENT)
            return GQA_OK;
        return gqa_fail(GQA_ERR_IO, "cannot stat '%s': %s", out, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return gqa_fail(GQA_ERR_INVALID_ARG, "output '%s' already exists (and is not a directory)",
                        out);
    if (src_path && stat(src_path, &ss) == 0 && ss.st_dev == st.st_dev && ss.st_ino == st.st_ino)
        return gqa_fail(GQA_ERR_INVALID_ARG, "output '%s' is the input directory", out);
    DIR *dir = opendir(out);
    if (!dir)
        return gqa_fail(GQA_ERR_IO, "cannot read directory '%s': %s", out, strerror(errno));
    int empty = 1;
    for (struct dirent *e; empty && (e = readdir(dir)) != NULL;)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(dir);
    if (!empty)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "output directory '%s' already exists and is not empty", out);
    return GQA_OK;
}

static gqa_status out_begin(const char *out, const char *src_path, out_dir *o)
{
    o->created = 0;
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof o->final || (n == 1 && out[0] == '/'))
        return gqa_fail(GQA_ERR_INVALID_ARG, "bad output directory '%.300s'", out);
    memcpy(o->final, out, n);
    o->final[n] = '\0';
    gqa_status s = check_out(o->final, src_path);
    if (s != GQA_OK)
        return s;
    for (unsigned k = 0; k < 100; k++) {
        snprintf(o->tmp, sizeof o->tmp, "%s.tmp-%ld-%u", o->final, (long)getpid(), k);
        if (mkdir(o->tmp, 0777) == 0) {
            o->created = 1;
            return GQA_OK;
        }
        if (errno != EEXIST)
            return gqa_fail(GQA_ERR_IO, "cannot create directory '%s' (to become '%s'): %s", o->tmp,
                            o->final, strerror(errno));
    }
    return gqa_fail(GQA_ERR_IO, "cannot create a temporary directory next to '%s'", o->final);
}

/* Remove the temporary directory and what we put in it (plain files only). */
static void out_abort(out_dir *o)
{
    if (!o->created)
        return;
    DIR *dir = opendir(o->tmp);
    if (dir) {
        for (struct dirent *e; (e = readdir(dir)) != NULL;) {
            char p[4400];
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                gqa_path_join(p, sizeof p, o->tmp, e->d_name) == GQA_OK)
                unlink(p);
        }
        closedir(dir);
    }
    rmdir(o->tmp);
    o->created = 0;
}

static gqa_status out_finish(out_dir *o)
{
    int fd = open(o->tmp, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { /* make the entries durable before the name is */
        fsync(fd);
        close(fd);
    }
    if (rename(o->tmp, o->final) != 0)
        return gqa_fail(GQA_ERR_IO, "cannot rename '%s' to '%s': %s", o->tmp, o->final,
                        strerror(errno));
    o->created = 0;
    return gqa_fsync_parent(o->final);
}

/* A new file dir/name holding text, fsync'ed. */
static gqa_status write_text(const char *dir, const char *name, const char *text)
{
    char p[4400];
    gqa_status s = gqa_path_join(p, sizeof p, dir, name);
    if (s != GQA_OK)
        return s;
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0)
        return gqa_fail(GQA_ERR_IO, "cannot create '%s': %s", p, strerror(errno));
    s = gqa_write_all(fd, text, strlen(text), p);
    if (s == GQA_OK && fsync(fd) != 0)
        s = gqa_fail(GQA_ERR_IO, "cannot sync '%s': %s", p, strerror(errno));
    if (close(fd) != 0 && s == GQA_OK)
        s = gqa_fail(GQA_ERR_IO, "cannot close '%s': %s", p, strerror(errno));
    return s;
}

/* cJSON_Print(j) into dir/name, with a final newline as editors write. */
static gqa_status write_json(const cJSON *j, const char *dir, const char *name)
{
    char *text = cJSON_Print(j);
    if (!text)
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory printing %s", name);
    size_t n = strlen(text);
    char *nl = realloc(text, n + 2);
    if (!nl) {
        free(text);
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory printing %s", name);
    }
    nl[n] = '\n';
    nl[n + 1] = '\0';
    gqa_status s = write_text(dir, name, nl);
    free(nl);
    return s;
}

gqa_status gqa_hf_write_json(const cJSON *j, const char *dir, const char *name)
{
    return write_json(j, dir, name);
}

/* ---------------------------------------------------------- weights -- */

/* Progress over several files: each file's bytes are offset by those of
 * the files before it, against the total of all of them. */
typedef struct progress_span {
    gqa_progress_fn fn;
    void *user;
    uint64_t base, total;
} progress_span;

static void span_report(void *user, int64_t done, int64_t total)
{
    const progress_span *p = user;
    (void)total;
    p->fn(p->user, (int64_t)(p->base + (uint64_t)done), (int64_t)p->total);
}

/* The output tensors of shard s (pointers copied, data borrowed) into sub. */
static int64_t gather(const gqa_st_out_tensor *t, int64_t n, const int32_t *shard_of, int32_t s,
                      gqa_st_out_tensor *sub)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (shard_of[i] == s)
            sub[k++] = t[i];
    return k;
}

/* Write every shard of src's layout into dir, src's __metadata__ kept. */
static gqa_status write_shards(const gqa_hf_dir *src, const char *dir, const gqa_st_out_tensor *t,
                               int64_t n, const int32_t *shard_of, gqa_progress_fn fn, void *user)
{
    gqa_st_out_tensor *sub = malloc((size_t)(n ? n : 1) * sizeof *sub);
    if (!sub)
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory");
    progress_span span = {fn, user, 0, 0};
    gqa_status s = GQA_OK;
    for (int pass = 0; pass < 2 && s == GQA_OK; pass++) { /* 0: sizes, 1: write */
        span.base = 0;
        for (int32_t sh = 0; sh < src->n_shards && s == GQA_OK; sh++) {
            const gqa_st_file *f = src->shards[sh];
            int64_t n_meta = gqa_st_n_meta(f), k = gather(t, n, shard_of, sh, sub);
            if (k == 0 && src->sharded)
                continue; /* every tensor of this shard dropped: no file, no entry */
            const char **mk = malloc((size_t)(n_meta + 1) * sizeof *mk);
            const char **mv = malloc((size_t)(n_meta + 1) * sizeof *mv);
            for (int64_t i = 0; mk && mv && i < n_meta; i++)
                mk[i] = gqa_st_meta_key(f, i), mv[i] = gqa_st_meta_value(f, i);
            uint64_t size = 0;
            char p[4400];
            if (!mk || !mv)
                s = gqa_fail(GQA_ERR_NO_MEMORY, "out of memory");
            if (s == GQA_OK)
                s = gqa_st_write_size(sub, k, mk, mv, n_meta, &size);
            if (s == GQA_OK && pass == 1)
                s = gqa_path_join(p, sizeof p, dir, src->shard_names[sh]);
            if (s == GQA_OK && pass == 1)
                s = gqa_st_write(p, sub, k, mk, mv, n_meta, fn ? span_report : NULL, &span);
            span.base += size;
            free(mk);
            free(mv);
        }
        span.total = span.base;
    }
    free(sub);
    return s;
}

/* ------------------------------------------------------ JSON files -- */

static gqa_status write_config(const cJSON *cfg, int32_t n_kv_heads, const char *dir)
{
    cJSON *j = cJSON_Duplicate(cfg, 1);
    cJSON *v = cJSON_CreateNumber(n_kv_heads);
    int ok = j && v;
    if (ok && cJSON_GetObjectItemCaseSensitive(j, "num_key_value_heads"))
        ok = cJSON_ReplaceItemInObjectCaseSensitive(j, "num_key_value_heads", v); /* in place */
    else if (ok)
        ok = cJSON_AddItemToObject(j, "num_key_value_heads", v);
    if (!ok)
        cJSON_Delete(v);
    gqa_status s = ok ? write_json(j, dir, GQA_HF_CONFIG)
                      : gqa_fail(GQA_ERR_NO_MEMORY, "out of memory writing config.json");
    cJSON_Delete(j);
    return s;
}

static int add_map_entry(cJSON *wm, const char *name, const char *shard)
{
    cJSON *v = cJSON_CreateString(shard);
    if (v && cJSON_AddItemToObject(wm, name, v))
        return 1;
    cJSON_Delete(v);
    return 0;
}

/* The weight_map for the output: src's entries that are still there, in
 * src's order, then the new names; out_idx[i] says whether src's tensor i
 * is written. */
static cJSON *build_weight_map(const gqa_hf_dir *src, const gqa_st_out_tensor *t, int64_t n,
                               const int32_t *shard_of, const char *written)
{
    cJSON *wm = cJSON_CreateObject();
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(src->index, "weight_map");
    int ok = wm != NULL;
    for (const cJSON *e = old ? old->child : NULL; ok && e; e = e->next) {
        int64_t i = gqa_hf_find(src, e->string);
        if (i >= 0 && written[i])
            ok = add_map_entry(wm, e->string, e->valuestring);
    }
    for (int64_t i = 0; ok && i < n; i++)
        if (gqa_hf_find(src, t[i].name) < 0)
            ok = add_map_entry(wm, t[i].name, src->shard_names[shard_of[i]]);
    if (!ok) {
        cJSON_Delete(wm);
        return NULL;
    }
    return wm;
}

/* Replace (in place) or append key in obj; item is consumed either way. */
static int put(cJSON *obj, const char *key, cJSON *item)
{
    int ok = item && (cJSON_GetObjectItemCaseSensitive(obj, key)
                          ? cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item)
                          : cJSON_AddItemToObject(obj, key, item));
    if (!ok)
        cJSON_Delete(item);
    return ok;
}

/* src's index.json with weight_map rebuilt and metadata.total_size set. */
static gqa_status write_index(const gqa_hf_dir *src, const char *dir, const gqa_st_out_tensor *t,
                              int64_t n, const int32_t *shard_of, const uint64_t *bytes)
{
    char *written = calloc((size_t)(src->n_tensors ? src->n_tensors : 1), 1);
    uint64_t total = 0;
    for (int64_t i = 0; written && i < n; i++) {
        int64_t j = gqa_hf_find(src, t[i].name);
        if (j >= 0)
            written[j] = 1;
        total += bytes[i]; /* the shards' writes kept the sums below 2^53 */
    }
    cJSON *idx = written ? cJSON_Duplicate(src->index, 1) : NULL;
    int ok = idx && put(idx, "weight_map", build_weight_map(src, t, n, shard_of, written));
    cJSON *meta = ok ? cJSON_GetObjectItemCaseSensitive(idx, "metadata") : NULL;
    if (ok && !cJSON_IsObject(meta)) {
        ok = put(idx, "metadata", cJSON_CreateObject());
        meta = ok ? cJSON_GetObjectItemCaseSensitive(idx, "metadata") : NULL;
    }
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)total);
    ok = ok && put(meta, "total_size", cJSON_CreateRaw(num));
    gqa_status s = ok ? write_json(idx, dir, GQA_HF_INDEX)
                      : gqa_fail(GQA_ERR_NO_MEMORY, "out of memory writing %s", GQA_HF_INDEX);
    cJSON_Delete(idx);
    free(written);
    return s;
}

/* --------------------------------------------------- other files -- */

/* Other copies of the weights (another format, or stale shards) would
 * contradict the converted ones; they are not copied. */
static int is_weight_file(const char *name)
{
    static const char *const ext[] = {".safetensors", ".bin",     ".pth",  ".pt",   ".ckpt",
                                      ".h5",          ".msgpack", ".gguf", ".onnx", ".index.json"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t m = strlen(ext[i]);
        if (n >= m && strcmp(name + n - m, ext[i]) == 0)
            return 1;
    }
    return 0;
}

static gqa_status copy_others(const gqa_hf_dir *src, const char *dir)
{
    DIR *d = opendir(src->path);
    if (!d)
        return gqa_fail(GQA_ERR_IO, "cannot read directory '%s': %s", src->path, strerror(errno));
    gqa_status s = GQA_OK;
    for (struct dirent *e; s == GQA_OK && (e = readdir(d)) != NULL;) {
        const char *name = e->d_name;
        int skip = strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
                   strcmp(name, GQA_HF_CONFIG) == 0 || is_weight_file(name);
        for (int32_t i = 0; !skip && i < src->n_shards; i++)
            skip = strcmp(name, src->shard_names[i]) == 0;
        char from[4400], to[4400];
        struct stat st;
        if (skip || gqa_path_join(from, sizeof from, src->path, name) != GQA_OK)
            continue;
        if (stat(from, &st) != 0) { /* e.g. a dangling link into an incomplete HF cache */
            s = gqa_fail(GQA_ERR_IO, "cannot copy '%s': %s", from, strerror(errno));
            break;
        }
        if (!S_ISREG(st.st_mode))
            continue; /* symlinks are followed; directories are not copied */
        s = gqa_path_join(to, sizeof to, dir, name);
        if (s == GQA_OK)
            s = gqa_copy_file(from, to);
    }
    closedir(d);
    return s;
}

/* ------------------------------------------------------------ API -- */

/* Each output tensor's shard (its name's shard in src, else the last) and
 * byte size (checked again by gqa_st_write). */
static gqa_status assign(const gqa_hf_dir *src, const gqa_st_out_tensor *t, int64_t n,
                         int32_t *shard_of, uint64_t *bytes)
{
    for (int64_t i = 0; i < n; i++) {
        gqa_status s = gqa_st_out_bytes(&t[i], &bytes[i]);
        if (s != GQA_OK)
            return s;
        int64_t j = gqa_hf_find(src, t[i].name);
        shard_of[i] = j >= 0 ? gqa_hf_tensor_shard(src, j) : src->n_shards - 1;
    }
    return GQA_OK;
}

gqa_status gqa_hf_write(const gqa_hf_dir *src, const char *out_path,
                        const gqa_st_out_tensor *tensors, int64_t n, int32_t n_kv_heads,
                        gqa_progress_fn progress, void *progress_user)
{
    if (!src || !out_path || n < 0 || (n > 0 && !tensors) || n_kv_heads <= 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_hf_write: NULL argument, negative count or n_kv_heads <= 0");
    int32_t *shard_of = malloc((size_t)(n ? n : 1) * sizeof *shard_of);
    uint64_t *bytes = malloc((size_t)(n ? n : 1) * sizeof *bytes);
    gqa_status s = shard_of && bytes ? assign(src, tensors, n, shard_of, bytes)
                                     : gqa_fail(GQA_ERR_NO_MEMORY, "out of memory");
    out_dir o = {0};
    if (s == GQA_OK)
        s = out_begin(out_path, src->path, &o);
    if (s == GQA_OK)
        s = write_shards(src, o.tmp, tensors, n, shard_of, progress, progress_user);
    if (s == GQA_OK)
        s = write_config(src->config, n_kv_heads, o.tmp);
    if (s == GQA_OK && src->sharded)
        s = write_index(src, o.tmp, tensors, n, shard_of, bytes);
    if (s == GQA_OK)
        s = copy_others(src, o.tmp);
    if (s == GQA_OK)
        s = out_finish(&o);
    if (s != GQA_OK)
        out_abort(&o);
    free(shard_of);
    free(bytes);
    return s;
}

gqa_status gqa_hf_write_new(const char *out_path, const struct cJSON *config,
                            const gqa_st_out_tensor *tensors, int64_t n, gqa_progress_fn progress,
                            void *progress_user)
{
    if (!out_path || !cJSON_IsObject(config) || n < 0 || (n > 0 && !tensors))
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_hf_write_new: NULL argument, config not an object, or n < 0");
    out_dir o = {0};
    gqa_status s = out_begin(out_path, NULL, &o);
    char p[4400];
    static const char *const mk[] = {"format"}, *const mv[] = {"pt"};
    if (s == GQA_OK)
        s = gqa_path_join(p, sizeof p, o.tmp, GQA_HF_SINGLE);
    if (s == GQA_OK)
        s = gqa_st_write(p, tensors, n, mk, mv, 1, progress, progress_user);
    if (s == GQA_OK)
        s = write_json(config, o.tmp, GQA_HF_CONFIG);
    if (s == GQA_OK)
        s = out_finish(&o);
    if (s != GQA_OK)
        out_abort(&o);
    return s;
}
