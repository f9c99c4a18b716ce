/* internal.h - shared by the library's layers; not installed. */
#ifndef GQA_CORE_INTERNAL_H
#define GQA_CORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"

#if defined(__GNUC__)
#define GQA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define GQA_PRINTF(a, b)
#endif

/* Record a formatted message for gqa_last_error() and return s. */
gqa_status gqa_fail(gqa_status s, const char *fmt, ...) GQA_PRINTF(2, 3);

/* Overflow-checked size arithmetic: return 0 on success, nonzero on overflow. */
static inline int gqa_mul_overflow_i64(int64_t a, int64_t b, int64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* Bytes of one row of d elements of type t (q8_0: d % 32 == 0, 34 bytes per
 * 32 values: an f16 scale then 32 int8). */
static inline int64_t gqa_row_bytes(int64_t d, gqa_dtype t)
{
    switch (t) {
    case GQA_F32: return d * 4;
    case GQA_Q8_0: return d / 32 * 34;
    default: return d * 2;
    }
}

/* CPU features, detected once (CPUID plus OS support for the register state). */
typedef struct gqa_cpu_features {
    int avx2_fma_f16c; /* AVX2 + FMA + F16C, with YMM state enabled by the OS */
    int avx512;        /* AVX-512 F/BW/VL/DQ with ZMM state enabled by the OS */
    int neon;
    int amx;           /* AMX-TILE + AMX-BF16, tile state enabled and granted by the OS */
    int64_t llc_bytes; /* last-level (L3) cache size as the C library reports it; 0: unknown */
} gqa_cpu_features;
const gqa_cpu_features *gqa_cpu(void);

/* Whether the avx512 kernels send gemm-like jobs to the AMX tile unit: where
 * the CPU has it, unless GQA_AMX=0 (read once) or gqa_amx_set(0). Setting 1
 * where it is missing: GQA_ERR_UNSUPPORTED. */
int        gqa_amx_active(void);
gqa_status gqa_amx_set(int on);

/* The last-level cache size whose half the attention planner compares a
 * call's K/V bytes with (gqa_tile_job.from_memory): the detected size (32 MiB
 * where it is unknown), or the size set here; tests set 1 to take the
 * from-memory paths on small data, 0 restores the detected size. */
int64_t gqa_llc_bytes(void);
void    gqa_llc_bytes_set(int64_t bytes);

/* Threads actually used by the next parallel region (>= 1). */
int gqa_threads_resolved(void);

/* 64-byte aligned allocation; free with gqa_aligned_free (accepts NULL). */
void *gqa_aligned_alloc(size_t bytes);
void  gqa_aligned_free(void *p);
/* The same for big read-mostly arrays (packed weights): 2 MiB aligned and
 * marked for transparent huge pages where the OS has them; free with
 * gqa_aligned_free. */
void *gqa_large_alloc(size_t bytes);

/* The calling thread's grow-only scratch areas, at least `bytes` long and
 * 64-byte aligned, reused from call to call. NULL (with the error set) if the
 * allocation fails. Contents are not preserved when a slot grows. */
enum { GQA_WS_MAIN = 0, GQA_WS_PLAN, GQA_WS_BATCH, GQA_WS_MODEL, GQA_WS_GEMM, GQA_WS_SLOTS };
void *gqa_workspace_slot(int slot, size_t bytes);
void *gqa_workspace_get(size_t bytes); /* slot GQA_WS_MAIN */

#endif
