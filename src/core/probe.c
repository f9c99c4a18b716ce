/* probe.c - machine limits measured in-process: read bandwidth and FMA peak.
 *
 * `gqa bench` divides kernel timings by these numbers, so the probes run the
 * way the attention kernels do: the library's thread count, OpenMP, and the
 * active kernel set's own vector width (its read_probe and fma_probe). With
 * the reference selected there is no vector width to speak of, so the scalar
 * set stands in.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <omp.h>

#include "core/internal.h"
#include "kernels/kernel.h"

#define PROBE_PAGE            ((size_t)4096)
#define PROBE_FLOATS_PER_PAGE (PROBE_PAGE / sizeof(float))

/* Target wall time of one timed FMA pass, and of the calibration pass. */
#define FMA_PASS_SECONDS      0.06
#define FMA_CALIBRATE_SECONDS 0.01
#define FMA_TIMED_PASSES      4

/* Written once per probe so the compiler cannot drop the reads. */
static volatile float probe_sink;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const gqa_kernel_set *probe_kernels(void)
{
    const gqa_kernel_set *ks = gqa_kernels_active();
    return ks ? ks : &gqa_kernels_scalar;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Thread t of n owns pages [*lo, *hi): whole pages keep every slice 64-byte
 * aligned and a multiple of 64 floats, as read_probe requires. */
static void page_slice(size_t pages, int t, int n, size_t *lo, size_t *hi)
{
    size_t base = pages / (size_t)n, rem = pages % (size_t)n, ut = (size_t)t;
    *lo = ut * base + (ut < rem ? ut : rem);
    *hi = *lo + base + (ut < rem ? 1 : 0);
}

/* Each thread first-touches its own slice (so its pages sit on its NUMA node),
 * then every rep is one parallel pass between two barriers in which each
 * thread reads its slice once; thread 0 times the pass. Rep -1 is the warm-up. */
gqa_status gqa_probe_read_bandwidth(size_t bytes, int reps, double *bytes_per_sec)
{
    if (!bytes_per_sec)
        return gqa_fail(GQA_ERR_INVALID_ARG, "probe_read_bandwidth: bytes_per_sec is NULL");
    if (bytes == 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "probe_read_bandwidth: bytes is 0");
    if (reps < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "probe_read_bandwidth: reps = %d, need >= 1", reps);
    if (bytes > SIZE_MAX - (PROBE_PAGE - 1))
        return gqa_fail(GQA_ERR_INVALID_ARG, "probe_read_bandwidth: %zu bytes is too large", bytes);

    const gqa_kernel_set *ks = probe_kernels();
    if (!ks->read_probe)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "kernel set '%s' has no read probe", ks->name);

    size_t pages = (bytes + PROBE_PAGE - 1) / PROBE_PAGE;
    size_t total = pages * PROBE_PAGE;
    float *buf = gqa_large_alloc(total);
    double *times = malloc(sizeof(double) * (size_t)reps);
    if (!buf || !times) {
        gqa_aligned_free(buf);
        free(times);
        return gqa_fail(GQA_ERR_NO_MEMORY, "cannot allocate a %zu-byte probe buffer", total);
    }

    int nt = gqa_threads_resolved();
    float sink = 0.0f;
#pragma omp parallel num_threads(nt) reduction(+ : sink)
    {
        int t = omp_get_thread_num();
        size_t lo, hi;
        page_slice(pages, t, omp_get_num_threads(), &lo, &hi);
        float *mine = buf + lo * PROBE_FLOATS_PER_PAGE;
        size_t count = (hi - lo) * PROBE_FLOATS_PER_PAGE;
        for (size_t i = 0; i < count; i++)
            mine[i] = (float)(i & 255) * (1.0f / 256.0f);

        double start = 0.0;
        for (int r = -1; r < reps; r++) {
#pragma omp barrier
            if (t == 0)
                start = now_seconds();
            if (count)
                sink += ks->read_probe(mine, count);
#pragma omp barrier
            if (t == 0 && r >= 0)
                times[r] = now_seconds() - start;
        }
    }
    probe_sink = sink;

    qsort(times, (size_t)reps, sizeof(double), compare_doubles);
    double median = (reps % 2) ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    free(times);
    gqa_aligned_free(buf);
    if (!(median > 0.0))
        return gqa_fail(GQA_ERR_UNSUPPORTED, "read probe took no measurable time");
    *bytes_per_sec = (double)total / median;
    return GQA_OK;
}

/* One pass: every thread runs `iters` FMA iterations at once. */
static double fma_pass(const gqa_kernel_set *ks, int nt, int64_t iters, double *seconds)
{
    double flops = 0.0;
    double start = now_seconds();
#pragma omp parallel num_threads(nt) reduction(+ : flops)
    flops += ks->fma_probe(iters);
    *seconds = now_seconds() - start;
    return flops;
}

/* Calibrate the iteration count on the full team (which also brings the cores
 * up to their wide-vector clock), then keep the best of a few ~60 ms passes:
 * a peak is a best case, and anything slower is interference. */
gqa_status gqa_probe_fma_peak(double *flops_per_sec)
{
    if (!flops_per_sec)
        return gqa_fail(GQA_ERR_INVALID_ARG, "probe_fma_peak: flops_per_sec is NULL");
    const gqa_kernel_set *ks = probe_kernels();
    if (!ks->fma_probe)
        return gqa_fail(GQA_ERR_UNSUPPORTED, "kernel set '%s' has no FMA probe", ks->name);

    int nt = gqa_threads_resolved();
    int64_t iters = 1024;
    double seconds = 0.0;
    for (;;) {
        double flops = fma_pass(ks, nt, iters, &seconds);
        if (!(flops > 0.0))
            return gqa_fail(GQA_ERR_UNSUPPORTED, "FMA probe of kernel set '%s' did no work",
                            ks->name);
        if (seconds >= FMA_CALIBRATE_SECONDS || iters > (INT64_C(1) << 40))
            break;
        iters *= 4;
    }
    double scaled = (double)iters * (FMA_PASS_SECONDS / seconds);
    if (scaled > 1e15)
        scaled = 1e15;
    iters = scaled < 1.0 ? 1 : (int64_t)scaled;

    double best = 0.0;
    for (int p = 0; p < FMA_TIMED_PASSES; p++) {
        double flops = fma_pass(ks, nt, iters, &seconds);
        if (seconds > 0.0 && flops / seconds > best)
            best = flops / seconds;
    }
    if (!(best > 0.0))
        return gqa_fail(GQA_ERR_UNSUPPORTED, "FMA probe took no measurable time");
    *flops_per_sec = best;
    return GQA_OK;
}
