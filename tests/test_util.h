/* test_util.h - helpers shared by the gqa tests.
 *
 * A seeded PRNG (every case is reproducible from its seed), K/V encoding into
 * the library's element types, guarded output buffers that catch writes
 * outside the documented extent, the visibility rule of gqa_attention spelled
 * out independently of the library, a tolerance checker that keeps the first
 * failures for the report, and the list of kernel sets to test.
 *
 * Tests use only the public API (gqa.h); nothing here reaches into src/.
 */
#ifndef GQA_TEST_UTIL_H
#define GQA_TEST_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "gqa.h"

/* ------------------------------------------------------------- PRNG -- */

/* splitmix64: tiny, full-period, and identical on every platform. */
typedef struct tu_rng {
    uint64_t state;
} tu_rng;

void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
/* Uniform float in [lo, hi). */
float tu_rng_uniform(tu_rng *r, float lo, float hi);
/* Uniform integer in [lo, hi] (inclusive). */
int tu_rng_int(tu_rng *r, int lo, int hi);
/* Fill n floats uniformly in [lo, hi). */
void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi);

/* ------------------------------------------------------- allocation -- */

/* malloc that ends the test with file:line on failure (tests may exit). */
void *tu_xmalloc_at(size_t bytes, const char *file, int line);
#define tu_xmalloc(bytes) tu_xmalloc_at((bytes), __FILE__, __LINE__)

/* ------------------------------------------------------------ dtypes -- */

/* Bytes per element of a K/V dtype this suite feeds the library (f32/f16/bf16). */
size_t tu_dtype_size(gqa_dtype t);
/* Bytes of n elements of t (q8_0: n a multiple of 32). */
size_t tu_bytes(gqa_dtype t, size_t n);
/* Encode n floats as `t` elements into dst (f32: copy; f16/bf16: the
 * library's round-to-nearest-even conversion). */
void tu_encode(gqa_dtype t, const float *src, void *dst, size_t n);
/* Element i of a buffer of `t` elements, as a double (exact). */
double tu_decode(gqa_dtype t, const void *src, size_t i);

/* --------------------------------------------------- guarded buffers -- */

/* n floats with TU_GUARD guard floats on either side holding a sentinel bit
 * pattern. The body starts as NaN so that an element the library forgets to
 * write shows up as a mismatch. */
#define TU_GUARD 16
typedef struct tu_guarded {
    float *base;
    float *p; /* the body: n floats */
    size_t n;
} tu_guarded;

void tu_guarded_alloc(tu_guarded *g, size_t n);
void tu_guarded_fill(tu_guarded *g, float value);
/* 1 when both guards still hold the sentinel. */
int tu_guarded_intact(const tu_guarded *g);
void tu_guarded_free(tu_guarded *g);

/* --------------------------------------------------------- semantics -- */

/* The effective softmax scale: desc->scale, or 1/sqrt(d) when it is 0. */
double tu_effective_scale(const gqa_attn_desc *desc);
/* Keys visible to a query at absolute position pos, as documented in gqa.h:
 * lo..hi inclusive; hi < lo when the row sees no key. */
void tu_visible_keys(const gqa_attn_desc *desc, int64_t n_kv, int64_t pos, int64_t *lo,
                     int64_t *hi);
/* Sum over query rows q_pos .. q_pos+n_q-1 of the visible key count. */
int64_t tu_visible_total(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv, int64_t q_pos);

/* ----------------------------------------------------------- checking -- */

/* Per element: |got - ref| <= atol + rtol * |ref|. A NaN reference requires
 * a NaN result, an infinite reference the same infinity; a finite reference
 * requires a finite result. Up to TU_CHECK_KEEP failures are kept for the
 * report, with their index decoded as [token][head][dim]. */
#define TU_CHECK_KEEP 5
typedef struct tu_check {
    const char *what;
    double atol, rtol;
    int64_t heads, dim; /* to decode a flat index for printing */
    int64_t n_checked, n_bad;
    double max_err;    /* largest |got - ref| among finite pairs */
    double max_excess; /* largest |got - ref| / (atol + rtol*|ref|) */
    int64_t max_err_at;
    int64_t kept_at[TU_CHECK_KEEP];
    double kept_got[TU_CHECK_KEEP], kept_ref[TU_CHECK_KEEP];
    int n_kept;
} tu_check;

void tu_check_begin(tu_check *c, const char *what, double atol, double rtol, int64_t heads,
                    int64_t dim);
/* Compare elements [begin, end) of got against ref (flat indices). */
void tu_check_range(tu_check *c, const float *got, const float *ref, int64_t begin, int64_t end);
int tu_check_ok(const tu_check *c);
/* Print the kept failures and the error summary (indented, to stdout). */
void tu_check_report(const tu_check *c);

/* ------------------------------------------------------ kernel sets -- */

/* Every fast kernel set gqa_set_kernel knows; tu_select_kernel skips the ones
 * this CPU or build cannot run. */
extern const char *const tu_fast_kernels[];
extern const int tu_n_fast_kernels;
/* The kernel set (gqa_set_kernel name) a tu_fast_kernels entry runs. */
const char *tu_kernel_set(const char *name);
/* Make every attention call count as streaming its K/V from memory (on), so
 * that the kernels take their from-memory prefetch paths on test-sized data;
 * off: the real cache size decides again. */
void tu_kv_from_memory(int on);

/* Select a kernel set: 1 on success, 0 if it is unsupported here (a note is
 * printed once per name), -1 on any other status (printed). "ref" and
 * "scalar" must always be available, so for them 0 is turned into -1. */
int tu_select_kernel(const char *name);

/* The whole file at `path`, malloc'd with one spare byte (NULL if it cannot
 * be opened); *n receives its size (0 on failure). */
unsigned char *tu_read_file(const char *path, size_t *n);

/* The real-model tests' model: $GQA_MODEL_PATH if set, else `dflt`, in
 * *path. Returns 1 if the file exists; otherwise prints one line and returns
 * 0 (SKIP) or, with GQA_REQUIRE_MODEL=1, -1 (FAIL: the caller exits 1). */
int tu_model_path(const char *dflt, const char **path);

/* Wall-clock seconds from an arbitrary origin (C11 timespec_get). */
double tu_seconds(void);


/* Check counters shared by a test binary; CHECK counts a pass or prints the
 * failure (file:line and a printf-style message) and counts it. */
extern int tu_passed, tu_failed;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            tu_passed++;                                                                           \
        } else {                                                                                   \
            tu_failed++;                                                                           \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)
/* Print the closing "N passed, M failed" line; the exit status for main. */
int tu_summary(void);

#endif
