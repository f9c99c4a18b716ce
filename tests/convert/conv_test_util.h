/* conv_test_util.h - helpers shared by the conversion tests (test_convert.c,
 * test_convert_model.c): files, directories, tensors as floats, and the
 * expected heads of a conversion computed independently of src/convert/.
 * Public API only. */
#ifndef GQA_TESTS_CONV_TEST_UTIL_H
#define GQA_TESTS_CONV_TEST_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../test_util.h"
#include "gqa_convert.h"
#include "gqa_model.h"

static inline int ct_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, n, f) == n;
    if (f)
        ok &= fclose(f) == 0;
    return ok;
}

/* 1 when both files exist and hold the same bytes. */
static inline int ct_same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *pa = tu_read_file(a, &na), *pb = tu_read_file(b, &nb);
    int same = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa), free(pb);
    return same;
}

static inline int ct_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Entries of `dir` whose name contains ".tmp-" (left-over temporary files). */
static inline int ct_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

/* 1 when directories a and b hold the same regular files with the same
 * bytes (subdirectories are not looked into). */
static inline int ct_same_dir(const char *a, const char *b)
{
    int same = 1, n_a = 0, n_b = 0;
    for (int side = 0; side < 2; side++) {
        DIR *d = opendir(side ? b : a);
        if (!d)
            return 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char pa[4096], pb[4096];
            snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
            snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
            *(side ? &n_b : &n_a) += 1;
            if (!side)
                same &= ct_same_file(pa, pb);
        }
        closedir(d);
    }
    return same && n_a == n_b;
}

/* Remove the directory `dir` and the plain files in it (a converted Hugging
 * Face model); a file is just removed. Missing is fine. */
static inline void ct_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        remove(dir);
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            remove(p);
    }
    closedir(d);
    remove(dir);
}

/* All-position logits (n * vocab floats, malloc'd) of the tokens `ids` with
 * the model at `path` and an f32 KV cache; NULL on failure. */
static inline float *ct_logits(const char *path, const int32_t *ids, int64_t n, int32_t *vocab)
{
    gqa_model *m = NULL;
    gqa_kv_cache *c = NULL;
    gqa_model_info in;
    gqa_kv_config cfg;
    int32_t seq;
    float *lg = NULL;
    if (gqa_model_load(path, &m) == GQA_OK && gqa_model_info_get(m, &in) == GQA_OK &&
        gqa_model_kv_config(m, GQA_F32, 16, 64ull << 20, &cfg) == GQA_OK &&
        gqa_kv_cache_create(&cfg, &c) == GQA_OK && gqa_kv_seq_create(c, &seq) == GQA_OK) {
        lg = (float *)tu_xmalloc((size_t)n * (size_t)in.n_vocab * sizeof *lg);
        gqa_forward_item it = {
            .seq = seq, .tokens = ids, .n_tokens = n, .logits = lg, .all_logits = 1};
        if (gqa_model_forward(m, c, &it, 1) != GQA_OK)
            free(lg), lg = NULL;
        *vocab = in.n_vocab;
    }
    gqa_kv_cache_free(c);
    gqa_model_free(m);
    return lg;
}

/* A tensor of a GGUF file as n_elements floats (malloc'd), NULL on failure. */
static inline float *ct_tensor_f32(const gqa_gguf *g, const char *name, gqa_gguf_tensor_info *ti)
{
    if (gqa_gguf_tensor(g, name, ti) != GQA_OK)
        return NULL;
    float *x = tu_xmalloc((size_t)ti->n_elements * sizeof *x);
    if (gqa_dequantize_row(ti->ggml_type, ti->data, ti->n_elements, x) != GQA_OK) {
        free(x);
        return NULL;
    }
    return x;
}

/* What new head j of g must hold (MEAN, FIRST, REPEAT), written out from the
 * definition: old heads of `he` floats; contiguous groups of g0/g for
 * pooling, old head j / (g/g0) for repeat; the mean summed in double in head
 * order and rounded to float once. */
static inline void ct_expected_head(const float *old, int32_t g0, int32_t g, int64_t he,
                                    gqa_convert_method m, int32_t j, float *dst)
{
    int32_t first, count = 1;
    if (m == GQA_CONVERT_REPEAT) {
        first = j / (g / g0);
    } else {
        first = j * (g0 / g);
        count = m == GQA_CONVERT_MEAN ? g0 / g : 1;
    }
    for (int64_t i = 0; i < he; i++) {
        double s = 0.0;
        for (int32_t k = 0; k < count; k++)
            s += (double)old[(size_t)(first + k) * (size_t)he + (size_t)i];
        dst[i] = (float)(s / (double)count);
    }
}

#endif
