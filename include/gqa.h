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

/* 1 when the kernels in use send the work with many query rows per KV head
 * (MQA decode, prefill: 16, 32, ... rows per KV head, f16/bf16 K/V, head_dim
 * 32..128 in steps of 32) to the AMX tile unit: the avx512 set on a CPU with
 * AMX-BF16 whose OS grants tile state, unless GQA_AMX=0 is in the environment.
 * Results match the AVX-512 path to f32 rounding (docs/kernel-contract.md). */
int gqa_kernel_amx(void);

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

/* Gradients of one gqa_attention call with f32 K/V (training). q, k, v,
 * desc, n_q, n_kv and q_pos are those of the forward call; out and lse are
 * what it returned (lse is required here); d_out is the gradient of the loss
 * with respect to out. Same layouts as gqa_attention:
 *   q, out, d_out, d_q: n_q x H x d floats
 *   k, v, d_k, d_v:     n_kv x G x d floats
 *   lse:                n_q x H floats
 * d_k and d_v of KV head g are summed over the H/G query heads of its group;
 * keys no query sees get zeros. Outputs are overwritten, not accumulated, and
 * must not overlap the inputs or each other.
 * Flash-style: the probabilities are recomputed from lse, no n_q x n_kv
 * matrix is kept; causal and windowed masks as in the forward. The work is
 * split so that each output row is computed by one thread in an order fixed
 * by the shape: results are bitwise identical for ANY thread count.
 * Errors: those of gqa_attention for the shared arguments, GQA_ERR_INVALID_ARG
 * for a NULL pointer (all are required when n_q > 0; with n_q == 0, d_k and
 * d_v are zeroed), GQA_ERR_UNSUPPORTED (kv_dtype other than GQA_F32),
 * GQA_ERR_NO_MEMORY (workspace). GQA_KERNEL=ref selects the reference
 * (double accumulation, direct formulas). */
gqa_status gqa_attention_backward(const gqa_attn_desc *desc, int64_t n_q, int64_t n_kv,
                                  int64_t q_pos, const float *q, const float *k, const float *v,
                                  const float *out, const float *lse, const float *d_out,
                                  float *d_q, float *d_k, float *d_v);

/* Release the calling thread's reusable attention workspace (optional; it is
 * otherwise kept for the next call on the same thread and freed at exit). */
void gqa_workspace_release(void);

/* ------------------------------------------------------ paged KV cache -- */
/* A KV cache for many sequences in one memory budget. Memory is cut into
 * blocks of `block_tokens` tokens; each block holds K and V of every layer and
 * KV head for its tokens. A sequence is a list of blocks (its block table);
 * forked sequences share blocks, which are copied on the first write.
 *
 * Bytes per token (exactly what the cache charges per token slot):
 *   2 * n_layers * G * row_bytes(d, dtype), with
 *   row_bytes = d * 4 (f32), d * 2 (f16, bf16), d / 32 * 34 (q8_0: 32 int8
 *   values and one f16 scale per 32 elements; q8_0 needs d % 32 == 0).
 * A block costs block_tokens * bytes_per_token; the cache holds
 * floor(budget_bytes / block_bytes) blocks (at most 2^31 - 2), allocated once
 * at creation.
 *
 * Thread safety: calls that change the cache (create/free/fork/truncate of
 * sequences, append, reserve, write_layer) must not run concurrently with any
 * other call on the same cache; readers (len, read_layer, stats, attention)
 * may run concurrently with each other.
 * Calls that may need memory for a sequence's block table or the sequence
 * table (seq_create, fork, append, reserve) can also return
 * GQA_ERR_NO_MEMORY; the sequence table is bounded, and a full one gives
 * GQA_ERR_CAPACITY. A q8_0 block holding Inf or NaN is stored with a NaN
 * scale and reads back as NaN. */

typedef struct gqa_kv_cache gqa_kv_cache;

typedef struct gqa_kv_config {
    int32_t   n_layers;     /* >= 1 */
    int32_t   n_kv_heads;   /* G >= 1 */
    int32_t   head_dim;     /* d, 1..256; q8_0 needs d % 32 == 0 */
    int32_t   block_tokens; /* tokens per block, 1..65536 */
    gqa_dtype dtype;        /* storage type of K and V: f32, f16, bf16 or q8_0 */
    uint64_t  budget_bytes; /* memory for blocks; must hold at least one block */
} gqa_kv_config;

typedef struct gqa_kv_stats {
    int64_t  blocks_total, blocks_used, blocks_free;
    uint64_t block_bytes;      /* bytes of one block */
    uint64_t bytes_per_token;  /* = gqa_kv_bytes_per_token(...) */
    uint64_t bytes_used;       /* blocks_used * block_bytes */
    int64_t  token_capacity;   /* blocks_total * block_tokens */
    int32_t  n_sequences;      /* live sequences */
} gqa_kv_stats;

/* Bytes one token costs in the cache (formula above); 0 for invalid input. */
uint64_t gqa_kv_bytes_per_token(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim,
                                gqa_dtype dtype);

/* Create a cache; *out receives it (free with gqa_kv_cache_free).
 * GQA_ERR_INVALID_ARG for a bad config or a budget below one block,
 * GQA_ERR_UNSUPPORTED for q8_0 with d % 32 != 0, GQA_ERR_NO_MEMORY. */
gqa_status gqa_kv_cache_create(const gqa_kv_config *cfg, gqa_kv_cache **out);
void       gqa_kv_cache_free(gqa_kv_cache *cache); /* NULL is fine */
gqa_status gqa_kv_cache_stats(const gqa_kv_cache *cache, gqa_kv_stats *stats);

/* Sequences are named by small non-negative ids chosen by the cache. */
gqa_status gqa_kv_seq_create(gqa_kv_cache *cache, int32_t *seq);
/* Release a sequence and its references to blocks. */
gqa_status gqa_kv_seq_free(gqa_kv_cache *cache, int32_t seq);
/* A new sequence with the same contents as `parent`, sharing its blocks. */
gqa_status gqa_kv_seq_fork(gqa_kv_cache *cache, int32_t parent, int32_t *child);
/* Current length in tokens; -1 (with the error set) for an unknown id. */
int64_t    gqa_kv_seq_len(const gqa_kv_cache *cache, int32_t seq);
/* Shorten to new_len tokens (0 <= new_len <= len), releasing unused blocks. */
gqa_status gqa_kv_seq_truncate(gqa_kv_cache *cache, int32_t seq, int64_t new_len);

/* Append n >= 1 tokens at the end of `seq`:
 * k, v: n_layers x n x G x d floats ([layer][token][head][dim]), quantised
 * to the cache's dtype on the way in. GQA_ERR_CAPACITY if the blocks it needs
 * (new ones, and copies of shared ones) are not free: then nothing changes. */
gqa_status gqa_kv_seq_append(gqa_kv_cache *cache, int32_t seq, int64_t n, const float *k,
                             const float *v);

/* The same in two steps, for a forward pass that makes K/V one layer at a
 * time: reserve grows the sequence by n token slots (all-or-nothing, as
 * append), write_layer then fills positions pos..pos+n-1 of one layer
 * (k, v: n x G x d floats). Slots not yet written read as zeros.
 * write_layer into a block shared with a fork copies it first, so it too can
 * return GQA_ERR_CAPACITY (nothing changed). n == 0 is a no-op for
 * write_layer and read_layer (pos must still be within 0..len). */
gqa_status gqa_kv_seq_reserve(gqa_kv_cache *cache, int32_t seq, int64_t n);
gqa_status gqa_kv_write_layer(gqa_kv_cache *cache, int32_t seq, int32_t layer, int64_t pos,
                              int64_t n, const float *k, const float *v);

/* Read positions pos..pos+n-1 of one layer back as floats (dequantised):
 * k, v: n x G x d floats. */
gqa_status gqa_kv_read_layer(const gqa_kv_cache *cache, int32_t seq, int32_t layer, int64_t pos,
                             int64_t n, float *k, float *v);

/* One sequence's part of a batched attention call. Its n_q query tokens are
 * the LAST n_q positions of the sequence (their K/V already appended):
 * positions len-n_q .. len-1. */
typedef struct gqa_kv_batch_item {
    int32_t      seq;
    int64_t      n_q;  /* 1..len */
    const float *q;    /* n_q x H x d */
    float       *out;  /* n_q x H x d */
    float       *lse;  /* NULL or n_q x H */
} gqa_kv_batch_item;

/* Attention of every item against its own sequence's keys of `layer`, read
 * through the block tables, in one call: work is spread over (sequence, KV
 * head, key split) so a batch of short sequences and one long one both use
 * every thread. desc->n_kv_heads, head_dim and kv_dtype must match the cache;
 * desc->causal / window apply per sequence (keys at positions 0..len-1). */
gqa_status gqa_kv_attention(const gqa_kv_cache *cache, int32_t layer, const gqa_attn_desc *desc,
                            const gqa_kv_batch_item *items, int32_t n_items);

/* ------------------------------------------------- measurement probes -- */
/* Used by `gqa bench` to put kernel timings next to machine limits measured in
 * the same process. Both run on the current thread count and kernel ISA. */

/* Sustained read bandwidth in bytes per second over a buffer of `bytes` bytes
 * (rounded up to 4 KiB), using gqa_get_num_threads() threads, median of
 * `reps` passes after a warm-up pass. The buffer is allocated as the KV
 * cache's arena is (2 MiB huge pages where the OS grants them, from 2 MiB),
 * so kernel and probe read the same kind of memory. GQA_ERR_INVALID_ARG for
 * bytes == 0 or reps < 1, GQA_ERR_NO_MEMORY. */
gqa_status gqa_probe_read_bandwidth(size_t bytes, int reps, double *bytes_per_sec);

/* Peak f32 fused multiply-add throughput in FLOP/s (2 per FMA lane), all
 * threads, with the widest FMA the current kernel set uses. */
gqa_status gqa_probe_fma_peak(double *flops_per_sec);

#ifdef __cplusplus
}
#endif

#endif /* GQA_H */
