/* cpu.c - run-time CPU feature detection.
 *
 * A feature counts only when the CPU reports it AND the OS saves the register
 * state it needs (XCR0), otherwise the first AVX instruction would fault. */
#include "core/internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(gqa_cpu_features *f)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return;
    uint64_t xcr0 = read_xcr0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1;
    f->avx2_fma_f16c = ymm_ok && avx2 && fma && f16c;
    f->avx512 = zmm_ok && f->avx2_fma_f16c && avx512f && avx512dq && avx512bw && avx512vl;
}
#else
static void detect(gqa_cpu_features *f)
{
#if defined(__aarch64__)
    f->neon = 1;
#else
    (void)f;
#endif
}
#endif

const gqa_cpu_features *gqa_cpu(void)
{
    static gqa_cpu_features features;
    static int done;
    /* Detection is idempotent and cheap, so a benign race only repeats it. */
    if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        gqa_cpu_features f = {0, 0, 0};
        detect(&f);
        features = f;
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    return &features;
}
