/* data.c - a text file as byte tokens with a fixed train/validation split,
 * deterministic training windows and the validation loss.
 *
 * Split: the first n - n/10 bytes train, the last n/10 bytes validate - the
 * same for every seed and run, so validation losses of different runs on the
 * same file are comparable. Training windows start at positions that are a
 * pure function of (seed, step, micro-batch, row), which is what makes a
 * resumed run read exactly the windows an uninterrupted one would. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "gqa_train.h"
#include "train/train_internal.h"

struct gqa_train_data {
    unsigned char *bytes;
    int64_t n, n_train; /* validation: bytes n_train .. n-1 */
};

gqa_status gqa_train_data_from_memory(const void *bytes, size_t n, gqa_train_data **out)
{
    if (out)
        *out = NULL;
    if (!bytes || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_data_from_memory: NULL argument");
    if (n < 20)
        return gqa_fail(GQA_ERR_INVALID_ARG, "training data: %zu bytes is too little (need 20)", n);
    gqa_train_data *d = calloc(1, sizeof *d);
    if (d)
        d->bytes = malloc(n);
    if (!d || !d->bytes) {
        free(d);
        return gqa_fail(GQA_ERR_NO_MEMORY, "training data: out of memory for %zu bytes", n);
    }
    memcpy(d->bytes, bytes, n);
    d->n = (int64_t)n;
    d->n_train = d->n - d->n / 10;
    *out = d;
    return GQA_OK;
}

gqa_status gqa_train_data_open(const char *path, gqa_train_data **out)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_data_open: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return gqa_fail(GQA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return gqa_fail(GQA_ERR_NO_MEMORY, "reading %s: out of memory", path);
            }
            buf = nb;
        }
        const size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    const int err = ferror(f);
    fclose(f);
    gqa_status s = err ? gqa_fail(GQA_ERR_IO, "reading %s failed", path)
                       : gqa_train_data_from_memory(buf ? buf : (unsigned char *)"", n, out);
    free(buf);
    return s;
}

void gqa_train_data_free(gqa_train_data *d)
{
    if (!d)
        return;
    free(d->bytes);
    free(d);
}

int64_t gqa_train_data_train_tokens(const gqa_train_data *d)
{
    return d ? d->n_train : 0;
}

int64_t gqa_train_data_val_tokens(const gqa_train_data *d)
{
    return d ? d->n - d->n_train : 0;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void window(const unsigned char *src, int32_t T, int32_t *tok, int32_t *tgt)
{
    for (int32_t j = 0; j < T; j++) {
        tok[j] = src[j];
        tgt[j] = src[j + 1];
    }
}

gqa_status gqa_train_data_batch(const gqa_train_data *d, uint64_t seed, int64_t step, int32_t micro,
                                int32_t B, int32_t T, int32_t *tokens, int32_t *targets)
{
    if (!d || !tokens || !targets || B < 1 || T < 1 || step < 0 || micro < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_data_batch: bad argument");
    if ((int64_t)T + 1 > d->n_train)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "training data: windows of %d tokens need more than the %lld training "
                        "bytes",
                        (int)T + 1, (long long)d->n_train);
    const uint64_t span = (uint64_t)(d->n_train - T); /* start in 0..n_train-T-1 */
    for (int32_t b = 0; b < B; b++) {
        const uint64_t h =
            mix(mix(mix(mix(seed) ^ (uint64_t)step) ^ (uint64_t)micro) ^ (uint64_t)b);
        window(d->bytes + h % span, T, tokens + (int64_t)b * T, targets + (int64_t)b * T);
    }
    return GQA_OK;
}

int64_t gqa_train_data_val_windows(const gqa_train_data *d, int32_t T, int64_t max_windows)
{
    if (!d || T < 1)
        return 0;
    const int64_t n = (d->n - d->n_train - 1) / T; /* windows of T + 1 sharing one byte */
    return max_windows > 0 && n > max_windows ? max_windows : n;
}

gqa_status gqa_train_eval(gqa_train_model *m, const gqa_train_data *d, int32_t B, int32_t T,
                          int64_t max_windows, float *loss)
{
    if (!m || !d || !loss || B < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_eval: bad argument");
    const int64_t nw = gqa_train_data_val_windows(d, T, max_windows);
    if (nw < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "validation data: %lld bytes hold no window of %d tokens",
                        (long long)(d->n - d->n_train), (int)T + 1);
    int32_t *tok = malloc((size_t)B * (size_t)T * sizeof(int32_t));
    int32_t *tgt = malloc((size_t)B * (size_t)T * sizeof(int32_t));
    if (!tok || !tgt) {
        free(tok);
        free(tgt);
        return gqa_fail(GQA_ERR_NO_MEMORY, "gqa_train_eval: out of memory");
    }
    double sum = 0.0;
    gqa_status s = GQA_OK;
    for (int64_t w0 = 0; w0 < nw && s == GQA_OK; w0 += B) {
        const int32_t nb = (int32_t)(nw - w0 < B ? nw - w0 : B);
        for (int32_t b = 0; b < nb; b++)
            window(d->bytes + d->n_train + (w0 + b) * T, T, tok + (int64_t)b * T,
                   tgt + (int64_t)b * T);
        float l = 0.0f;
        s = gqa_train_model_forward(m, tok, tgt, nb, T, &l, NULL);
        sum += (double)l * nb;
    }
    free(tok);
    free(tgt);
    m->ready = 0; /* an evaluation is not something to backpropagate */
    if (s == GQA_OK)
        *loss = (float)(sum / (double)nw);
    return s;
}
