/* threads.c - the library-wide thread count. */
#include <stdlib.h>

#include <omp.h>

#include "core/internal.h"

static int requested = -1; /* -1: not yet initialised from GQA_THREADS */

static int initial_request(void)
{
    const char *s = getenv("GQA_THREADS");
    if (!s || !*s)
        return 0;
    char *end;
    long n = strtol(s, &end, 10);
    if (*end != '\0' || n < 0 || n > 4096)
        return 0;
    return (int)n;
}

void gqa_set_num_threads(int n)
{
    __atomic_store_n(&requested, n < 0 ? 0 : n, __ATOMIC_RELAXED);
}

int gqa_threads_resolved(void)
{
    int n = __atomic_load_n(&requested, __ATOMIC_RELAXED);
    if (n < 0) {
        n = initial_request();
        int expected = -1;
        __atomic_compare_exchange_n(&requested, &expected, n, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
        n = __atomic_load_n(&requested, __ATOMIC_RELAXED);
    }
    if (n == 0)
        n = omp_get_num_procs();
    return n < 1 ? 1 : n;
}

int gqa_get_num_threads(void)
{
    return gqa_threads_resolved();
}
