/* cpu.c - run-time CPU feature detection.
 *
 * A feature counts only when the CPU reports it AND the OS saves the register
 * state it needs (XCR0), otherwise the first AVX instruction would fault. */
#define _GNU_SOURCE 1 /* syscall(), for the AMX permission */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h> /* sysconf: the cache size */
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18
#endif

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
    /* AMX: the CPU bits, the OS saving tile state (XCR0 bits 17, 18), and on
     * Linux the per-process permission to use tile data (asked once here; a
     * kernel that does not know the request refuses it, and AMX stays off). */
    int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    int tiles_ok = (xcr0 & 0x60000) == 0x60000;
    f->amx = f->avx512 && amx_bf16 && amx_tile && tiles_ok;
#if defined(__linux__)
    if (f->amx && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        f->amx = 0;
#else
    f->amx = 0;
#endif
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
        gqa_cpu_features f = {0, 0, 0, 0, 0};
        detect(&f);
#if defined(_SC_LEVEL3_CACHE_SIZE)
        const long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
        f.llc_bytes = llc > 0 ? llc : 0;
#endif
        features = f;
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    return &features;
}

static int64_t llc_override; /* 0: none */

int64_t gqa_llc_bytes(void)
{
    const int64_t set = __atomic_load_n(&llc_override, __ATOMIC_RELAXED);
    if (set > 0)
        return set;
    return gqa_cpu()->llc_bytes > 0 ? gqa_cpu()->llc_bytes : (int64_t)32 << 20;
}

void gqa_llc_bytes_set(int64_t bytes)
{
    __atomic_store_n(&llc_override, bytes > 0 ? bytes : 0, __ATOMIC_RELAXED);
}

/* -1: not decided yet. */
static int amx_on = -1;

int gqa_amx_active(void)
{
    int on = __atomic_load_n(&amx_on, __ATOMIC_ACQUIRE);
    if (on < 0) {
        const char *env = getenv("GQA_AMX");
        on = gqa_cpu()->amx && !(env && strcmp(env, "0") == 0);
        int expected = -1;
        if (!__atomic_compare_exchange_n(&amx_on, &expected, on, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            on = expected;
    }
    return on;
}

gqa_status gqa_amx_set(int on)
{
    if (on && !gqa_cpu()->amx)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "this CPU or OS does not offer AMX tiles");
    __atomic_store_n(&amx_on, on ? 1 : 0, __ATOMIC_RELEASE);
    return GQA_OK;
}
