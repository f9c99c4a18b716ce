/* gqa.h - public API of libgqa: grouped-query attention on the CPU.
 *
 * Grouped-query attention (GQA) partitions H query heads into G groups; all
 * query heads of a group share one key head and one value head.  G == H is
 * multi-head attention (MHA), G == 1 is multi-query attention (MQA).
 *
 * Conventions used throughout:
 *  - Activations and K/V rows are [token][head][dim], row-major, densely packed.
 *  - Grouping is contiguous: query head h reads KV head h / (H / G).
 *  - Positions are absolute token indices from 0; key j sits at position j.
 *  - Every function that can fail returns a gqa_status; on failure a message
 *    naming the offending value is available from gqa_last_error().
 *  - The library never aborts, exits or prints.
 */
#ifndef GQA_H
#define GQA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GQA_VERSION_MAJOR 0
#define GQA_VERSION_MINOR 1
#define GQA_VERSION_PATCH 0

/* ------------------------------------------------------------------ core -- */

typedef enum gqa_status {
    GQA_OK = 0,
    GQA_ERR_INVALID_ARG,   /* bad shape, NULL pointer, H % G != 0, window < 0, ... */
    GQA_ERR_NO_MEMORY,
    GQA_ERR_UNSUPPORTED,   /* a valid request this build cannot serve */
    GQA_ERR_IO,
    GQA_ERR_FORMAT,        /* malformed input file */
    GQA_ERR_CAPACITY       /* a cache or budget is full */
} gqa_status;

/* A static, human-readable name for s ("ok", "invalid argument", ...).
 * Unknown values give "unknown status". Never NULL. */
const char *gqa_status_string(gqa_status s);

/* Thread-local detail of the last failure on the calling thread, never NULL
 * ("" if nothing has failed yet). Valid until the next failing call on the
 * same thread. Successful calls do not clear it. */
const char *gqa_last_error(void);

/* Element types. f16 and bf16 values are passed as uint16_t bit patterns.
 * GQA_Q8_0: blocks of 32 int8 values with one f16 scale (GGML layout). */
typedef enum gqa_dtype { GQA_F32 = 0, GQA_F16, GQA_BF16, GQA_Q8_0 } gqa_dtype;

/* Lower-case name of a dtype ("f32", "f16", "bf16", "q8_0"), or "unknown". */
const char *gqa_dtype_name(gqa_dtype t);

/* Scalar conversions (round to nearest even; NaN stays NaN, overflow to Inf). */
uint16_t gqa_f32_to_f16(float x);
float    gqa_f16_to_f32(uint16_t h);
uint16_t gqa_f32_to_bf16(float x);
float    gqa_bf16_to_f32(uint16_t h);

/* Number of worker threads used by the library's parallel loops.
 * n == 0 means one per core (the default). The environment variable
 * GQA_THREADS, read once at first use, sets the initial value. n < 0 is
 * treated as 0. */
void gqa_set_num_threads(int n);
/* The thread count that the next call will use (resolves 0 to the core count). */
int  gqa_get_num_threads(void);

/* The kernel set in use: "avx512", "avx2", "neon", "scalar" or "ref".
 * Chosen once by CPUID at first use; GQA_KERNEL=<name> in the environment
 * selects a lower set (or "ref", the naive double-precision reference). */
const char *gqa_kernel_name(void);

/* Select a kernel set by name for the whole process (tests and benchmarks).
 * GQA_ERR_UNSUPPORTED if this CPU or build cannot run it, GQA_ERR_INVALID_ARG
 * for an unknown name. Not thread-safe against concurrent attention calls. */
gqa_status gqa_set_kernel(const char *name);

/* ------------------------------------------------------------- attention -- */

typedef struct gqa_attn_desc {
    int32_t   n_q_heads;   /* H */
    int32_t   n_kv_heads;  /* G; must divide H. Query head h reads KV head h / (H / G) */
    int32_t   head_dim;    /* d, 1..256 */
    float     scale;       /* softmax scale; 0 means 1/sqrt(d) */
    int32_t   causal;      /* nonzero: query i sits at position q_pos + i, sees keys 0..q_pos+i */
    int32_t   window;      /* 0: no limit; W > 0: a query at position p sees keys p-W+1..p only */
    gqa_dtype kv_dtype;    /* element type of k and v */
} gqa_attn_desc;

/* Scaled dot-product attention with grouped KV heads.
 *
 * q:   n_q  x H x d floats            ([token][head][dim], row-major)
 * k,v: n_kv x G x d kv_dtype elements (f16/bf16 as uint16_t bit patterns;
 *      q8_0: each row of d elements is d/32 GGML blocks of 34 bytes - an f16
 *      scale, then 32 int8 - so a row is d/32*34 bytes, d % 32 == 0)
 * out: n_q  x H x d floats (written; must not overlap the inputs)
 * lse: NULL, or n_q x H floats: the natural-log log-sum-exp of each row's
 *      scaled, masked scores.
 * Keys sit at positions 0..n_kv-1; query i sits at position q_pos + i.
 * With causal set, q_pos + n_q <= n_kv is required (the causal mask is
 * bottom-right aligned when q_pos = n_kv - n_q). With window W > 0, a query
 * at position p sees keys max(0, p-W+1) .. min(p, n_kv-1), causal or not.
 * A row that sees no key at all (possible only with a window and a
 * non-causal q_pos beyond the keys) gets zeros and lse = -inf.
 *
 * All pointers are borrowed for the duration of the call. q may be NULL only
 * when n_q == 0 (then nothing is computed).
 * Errors: GQA_ERR_INVALID_ARG (NULL pointer, H % G != 0, d outside 1..256,
 * n_kv <= 0, n_q < 0, q_pos < 0, causal with q_pos + n_q > n_kv, window < 0,
 * non-finite or negative scale, unknown dtype, byte sizes that overflow),
 * GQA_ERR_UNSUPPORTED (q8_0 with d % 32 != 0), GQA_ERR_NO_MEMORY (workspace).
 * Results are bitwise identical from run to run at a fixed thread count. */
gqa_status gqa_attention(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv, int64_t q_pos,
                         const float *q, const void *k, const void *v,
                         float *out, float *lse);

/* Release the calling thread's reusable attention workspace (optional; it is
 * otherwise kept for the next call on the same thread and freed at exit). */
void gqa_workspace_release(void);

/* ------------------------------------------------- measurement probes -- */
/* Used by `gqa bench` to put kernel timings next to machine limits measured in
 * the same process. Both run on the current thread count and kernel ISA. */

/* Sustained read bandwidth in bytes per second over a buffer of `bytes` bytes
 * (rounded up to 4 KiB), using gqa_get_num_threads() threads, median of
 * `reps` passes after a warm-up pass. GQA_ERR_INVALID_ARG for bytes == 0 or
 * reps < 1, GQA_ERR_NO_MEMORY. */
gqa_status gqa_probe_read_bandwidth(size_t bytes, int reps, double *bytes_per_sec);

/* Peak f32 fused multiply-add throughput in FLOP/s (2 per FMA lane), all
 * threads, with the widest FMA the current kernel set uses. */
gqa_status gqa_probe_fma_peak(double *flops_per_sec);

#ifdef __cplusplus
}
#endif

#endif /* GQA_H */
