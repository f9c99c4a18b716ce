/* dispatch.c - choose the kernel set once, by CPUID, overridable by name. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kernels/kernel.h"

/* The reference is not a gqa_kernel_set (it is a whole attention, not a
 * tile); "selected" == &ref_marker means "use gqa_attention_ref". */
static const gqa_kernel_set ref_marker = {"ref", NULL, NULL, NULL, NULL, NULL};
static const gqa_kernel_set *selected;

static const gqa_kernel_set *by_name(const char *name, int *known)
{
    const gqa_cpu_features *cpu = gqa_cpu();
    *known = 1;
    if (strcmp(name, "ref") == 0)
        return &ref_marker;
    if (strcmp(name, "scalar") == 0)
        return &gqa_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
    if (strcmp(name, "avx2") == 0)
        return cpu->avx2_fma_f16c ? &gqa_kernels_avx2 : NULL;
    if (strcmp(name, "avx512") == 0)
        return cpu->avx512 ? &gqa_kernels_avx512 : NULL;
#elif defined(__aarch64__)
    if (strcmp(name, "neon") == 0)
        return cpu->neon ? &gqa_kernels_neon : NULL;
#endif
    if (strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0 || strcmp(name, "neon") == 0)
        return NULL;
    *known = 0;
    return NULL;
}

static const gqa_kernel_set *best(void)
{
    const char *env = getenv("GQA_KERNEL");
    int known;
    if (env && *env) {
        const gqa_kernel_set *s = by_name(env, &known);
        if (s)
            return s;
    }
#if defined(__x86_64__) || defined(_M_X64)
    if (gqa_cpu()->avx512)
        return &gqa_kernels_avx512;
    if (gqa_cpu()->avx2_fma_f16c)
        return &gqa_kernels_avx2;
#elif defined(__aarch64__)
    return &gqa_kernels_neon;
#endif
    return &gqa_kernels_scalar;
}

static const gqa_kernel_set *current(void)
{
    const gqa_kernel_set *s = __atomic_load_n(&selected, __ATOMIC_ACQUIRE);
    if (!s) {
        s = best();
        const gqa_kernel_set *expected = NULL;
        if (!__atomic_compare_exchange_n(&selected, &expected, s, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            s = expected;
    }
    return s;
}

const gqa_kernel_set *gqa_kernels_active(void)
{
    const gqa_kernel_set *s = current();
    return s == &ref_marker ? NULL : s;
}

const char *gqa_kernel_name(void)
{
    return current()->name;
}

gqa_status gqa_set_kernel(const char *name)
{
    if (!name)
        return gqa_fail(GQA_ERR_INVALID_ARG, "kernel name is NULL");
    int known;
    const gqa_kernel_set *s = by_name(name, &known);
    if (!known)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "unknown kernel set '%s' (expected ref, scalar, avx2, avx512 or neon)", name);
    if (!s)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "kernel set '%s' cannot run on this CPU or build",
                        name);
    __atomic_store_n(&selected, s, __ATOMIC_RELEASE);
    return GQA_OK;
}

int gqa_kernel_amx(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    return current() == &gqa_kernels_avx512 && gqa_amx_active();
#else
    return 0;
#endif
}
