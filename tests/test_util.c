/* test_util.c - see test_util.h. */
#include "test_util.h"

#include "core/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------- PRNG -- */

void tu_rng_seed(tu_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t tu_rng_next(tu_rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float tu_rng_uniform(tu_rng *r, float lo, float hi)
{
    /* 24 random bits: every value is exactly representable. */
    float u = (float)(tu_rng_next(r) >> 40) * 0x1p-24f;
    return lo + (hi - lo) * u;
}

int tu_rng_int(tu_rng *r, int lo, int hi)
{
    uint64_t span = (uint64_t)((int64_t)hi - lo + 1);
    return lo + (int)(tu_rng_next(r) % span);
}

void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tu_rng_uniform(r, lo, hi);
}

/* ------------------------------------------------------- allocation -- */

void *tu_xmalloc_at(size_t bytes, const char *file, int line)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "%s:%d: cannot allocate %zu bytes for the test\n", file, line, bytes);
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------ dtypes -- */

size_t tu_dtype_size(gqa_dtype t)
{
    return t == GQA_F32 ? 4 : 2;
}

size_t tu_bytes(gqa_dtype t, size_t n)
{
    return t == GQA_Q8_0 ? n / 32 * 34 : n * tu_dtype_size(t);
}

/* GGML Q8_0, written here independently of the library: per 32 values an f16
 * scale d = max|x| / 127, then q = round(x / d) as int8. */
static void encode_q8_0(const float *src, unsigned char *dst, size_t n)
{
    for (size_t b = 0; b < n / 32; b++) {
        const float *x = src + b * 32;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++)
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        const uint16_t h = gqa_f32_to_f16(d);
        memcpy(dst + b * 34, &h, 2);
        for (int i = 0; i < 32; i++)
            dst[b * 34 + 2 + (size_t)i] = (unsigned char)(int8_t)lrintf(x[i] * id);
    }
}

void tu_encode(gqa_dtype t, const float *src, void *dst, size_t n)
{
    if (t == GQA_Q8_0) {
        encode_q8_0(src, dst, n);
        return;
    }
    if (t == GQA_F32) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++)
        h[i] = t == GQA_F16 ? gqa_f32_to_f16(src[i]) : gqa_f32_to_bf16(src[i]);
}

double tu_decode(gqa_dtype t, const void *src, size_t i)
{
    if (t == GQA_Q8_0) {
        const unsigned char *blk = (const unsigned char *)src + i / 32 * 34;
        uint16_t h;
        memcpy(&h, blk, 2);
        return (double)(int8_t)blk[2 + i % 32] * (double)gqa_f16_to_f32(h);
    }
    if (t == GQA_F32)
        return (double)((const float *)src)[i];
    uint16_t h = ((const uint16_t *)src)[i];
    return (double)(t == GQA_F16 ? gqa_f16_to_f32(h) : gqa_bf16_to_f32(h));
}

/* --------------------------------------------------- guarded buffers -- */

static const uint32_t guard_bits = 0x7fa5a5a5u; /* a signalling-NaN pattern nobody writes */

void tu_guarded_alloc(tu_guarded *g, size_t n)
{
    g->n = n;
    g->base = tu_xmalloc((n + 2 * TU_GUARD) * sizeof(float));
    g->p = g->base + TU_GUARD;
    for (size_t i = 0; i < TU_GUARD; i++) {
        memcpy(&g->base[i], &guard_bits, sizeof guard_bits);
        memcpy(&g->p[n + i], &guard_bits, sizeof guard_bits);
    }
    tu_guarded_fill(g, NAN);
}

void tu_guarded_fill(tu_guarded *g, float value)
{
    for (size_t i = 0; i < g->n; i++)
        g->p[i] = value;
}

int tu_guarded_intact(const tu_guarded *g)
{
    for (size_t i = 0; i < TU_GUARD; i++) {
        if (memcmp(&g->base[i], &guard_bits, sizeof guard_bits) != 0 ||
            memcmp(&g->p[g->n + i], &guard_bits, sizeof guard_bits) != 0)
            return 0;
    }
    return 1;
}

void tu_guarded_free(tu_guarded *g)
{
    free(g->base);
    g->base = g->p = NULL;
    g->n = 0;
}

/* --------------------------------------------------------- semantics -- */

double tu_effective_scale(const gqa_attn_desc *desc)
{
    return desc->scale == 0.0f ? 1.0 / sqrt((double)desc->head_dim) : (double)desc->scale;
}

void tu_visible_keys(const gqa_attn_desc *desc, int64_t n_kv, int64_t pos, int64_t *lo, int64_t *hi)
{
    int64_t l = 0, h = n_kv - 1;
    if (desc->causal || desc->window > 0)
        h = pos < h ? pos : h;
    if (desc->window > 0 && pos - desc->window + 1 > 0)
        l = pos - desc->window + 1;
    *lo = l;
    *hi = h;
}

int64_t tu_visible_total(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv, int64_t q_pos)
{
    int64_t total = 0;
    for (int64_t i = 0; i < n_q; i++) {
        int64_t lo, hi;
        tu_visible_keys(desc, n_kv, q_pos + i, &lo, &hi);
        if (hi >= lo)
            total += hi - lo + 1;
    }
    return total;
}

/* ----------------------------------------------------------- checking -- */

void tu_check_begin(tu_check *c, const char *what, double atol, double rtol, int64_t heads,
                    int64_t dim)
{
    memset(c, 0, sizeof *c);
    c->what = what;
    c->atol = atol;
    c->rtol = rtol;
    c->heads = heads;
    c->dim = dim;
    c->max_err_at = -1;
}

static int element_ok(double got, double ref, double atol, double rtol, double *err)
{
    *err = 0.0;
    if (isnan(ref))
        return isnan(got);
    if (isinf(ref))
        return got == ref;
    if (!isfinite(got))
        return 0;
    *err = fabs(got - ref);
    return *err <= atol + rtol * fabs(ref);
}

void tu_check_range(tu_check *c, const float *got, const float *ref, int64_t begin, int64_t end)
{
    for (int64_t i = begin; i < end; i++) {
        double g = (double)got[i], r = (double)ref[i], err;
        int ok = element_ok(g, r, c->atol, c->rtol, &err);
        c->n_checked++;
        if (err > c->max_err || (c->max_err_at < 0 && !ok)) {
            c->max_err = err > c->max_err ? err : c->max_err;
            c->max_err_at = i;
        }
        double excess = err / (c->atol + c->rtol * fabs(r));
        if (excess > c->max_excess)
            c->max_excess = excess;
        if (!ok) {
            if (c->n_kept < TU_CHECK_KEEP) {
                c->kept_at[c->n_kept] = i;
                c->kept_got[c->n_kept] = g;
                c->kept_ref[c->n_kept] = r;
                c->n_kept++;
            }
            c->n_bad++;
        }
    }
}

int tu_check_ok(const tu_check *c)
{
    return c->n_bad == 0;
}

static void print_index(const tu_check *c, int64_t i)
{
    int64_t row = c->heads * c->dim;
    printf("[token %lld, head %lld, dim %lld]", (long long)(i / row),
           (long long)((i / c->dim) % c->heads), (long long)(i % c->dim));
}

void tu_check_report(const tu_check *c)
{
    printf("    %s: %lld of %lld elements outside |got-ref| <= %.3g + %.3g*|ref|\n", c->what,
           (long long)c->n_bad, (long long)c->n_checked, c->atol, c->rtol);
    for (int i = 0; i < c->n_kept; i++) {
        printf("      ");
        print_index(c, c->kept_at[i]);
        printf(" got % .9g ref % .9g diff %.3g\n", c->kept_got[i], c->kept_ref[i],
               fabs(c->kept_got[i] - c->kept_ref[i]));
    }
    if (c->max_err_at >= 0) {
        printf("      max |got-ref| %.3g at ", c->max_err);
        print_index(c, c->max_err_at);
        printf(", worst error/tolerance %.3g\n", c->max_excess);
    }
}

/* ------------------------------------------------------ kernel sets -- */

/* "avx512" is that set with its AMX path off, "avx512-amx" with it on (jobs
 * of 16, 32, ... rows per KV head with f16/bf16 K/V go to the tile unit). */
const char *const tu_fast_kernels[] = {"scalar", "avx2", "avx512", "avx512-amx", "neon"};
const int tu_n_fast_kernels = (int)(sizeof tu_fast_kernels / sizeof tu_fast_kernels[0]);

const char *tu_kernel_set(const char *name)
{
    return strcmp(name, "avx512-amx") == 0 ? "avx512" : name;
}

void tu_kv_from_memory(int on)
{
    gqa_llc_bytes_set(on ? 1 : 0);
}

int tu_select_kernel(const char *name)
{
    static char noted[8][16];
    static int n_noted;
    const int amx = strcmp(name, "avx512-amx") == 0;
    gqa_status s = gqa_set_kernel(tu_kernel_set(name));
    if (s == GQA_OK)
        s = gqa_amx_set(amx);
    int must_exist = strcmp(name, "ref") == 0 || strcmp(name, "scalar") == 0;
    if (s == GQA_OK)
        return 1;
    if (s == GQA_ERR_UNSUPPORTED && !must_exist) {
        for (int i = 0; i < n_noted; i++)
            if (strcmp(noted[i], name) == 0)
                return 0;
        if (n_noted < 8)
            snprintf(noted[n_noted++], sizeof noted[0], "%s", name);
        printf("note: kernel set \"%s\" is not supported here; skipped (%s)\n", name,
               gqa_last_error());
        return 0;
    }
    printf("FAIL: gqa_set_kernel(\"%s\") returned %s: %s\n", name, gqa_status_string(s),
           gqa_last_error());
    return -1;
}

unsigned char *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = tu_xmalloc((size_t)(len > 0 ? len : 0) + 1);
    *n = len > 0 ? fread(p, 1, (size_t)len, f) : 0;
    fclose(f);
    return p;
}

int tu_model_path(const char *dflt, const char **path)
{
    const char *env = getenv("GQA_MODEL_PATH");
    *path = env && *env ? env : dflt;
    FILE *f = fopen(*path, "rb");
    if (f) {
        fclose(f);
        return 1;
    }
    const char *req = getenv("GQA_REQUIRE_MODEL");
    if (req && !strcmp(req, "1")) {
        printf("FAIL: GQA_REQUIRE_MODEL=1 but the model %s is absent (run scripts/fetch_model.sh "
               "or set GQA_MODEL_PATH)\n",
               *path);
        return -1;
    }
    printf("SKIP: model %s is absent (run scripts/fetch_model.sh or set GQA_MODEL_PATH; "
           "GQA_REQUIRE_MODEL=1 makes this a failure)\n",
           *path);
    return 0;
}

double tu_seconds(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tu_passed, tu_failed;

int tu_summary(void)
{
    printf("%d passed, %d failed\n", tu_passed, tu_failed);
    return tu_failed ? 1 : 0;
}
