/* prefetch_overlap.c - does a streaming read from memory overlap with the
 * work done on it? The measurement behind the dot path's from-memory
 * prefetch (docs/kernel-contract.md).
 *
 *   gcc -O2 -mavx512f -mf16c -mfma bench/prefetch_overlap.c -o /tmp/prefetch_overlap
 *   /tmp/prefetch_overlap [MiB]      (default 512; 1 thread)
 *
 * Reads a buffer of f16 values 256 bytes at a time (one d = 128 head row)
 * and does, per row, `reps` times what an MHA decode does with a K row:
 * widen 8 chunks and FMA them into an accumulator. Two orders:
 *   linear: rows in memory order;
 *   kernel: the dot path's order for a [token][32 heads][128] source: blocks
 *           of 16 keys, heads outer, keys inner (16 streams 8 KiB apart).
 * each without software prefetch and with one (prefetcht0, `pf` bytes
 * ahead in the same walk). Prints ns per 256-byte row: with no prefetch the
 * time grows with the work (memory time + compute time); with one far
 * enough ahead it stays near the pure read. */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline __m512 row_work(const char *p, const __m512 *qv)
{
    const uint16_t *r = (const uint16_t *)p;
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < 8; i++) {
        __m512 k = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(r + 16 * i)));
        s = _mm512_fmadd_ps(qv[i], k, s);
    }
    return s;
}

static inline void pf_row(const char *p)
{
    for (int l = 0; l < 256; l += 64)
        _mm_prefetch(p + l, _MM_HINT_T0);
}

/* order 0: linear; 1: kernel order (16-key blocks of 8 KiB rows). */
static __attribute__((noinline)) float walk(const char *c, size_t bytes, int order, long pf,
                                            int reps)
{
    __m512 qv[8];
    for (int i = 0; i < 8; i++)
        qv[i] = _mm512_set1_ps(0.001f * (float)i);
    __m512 acc = _mm512_setzero_ps();
    if (order == 0) {
        for (size_t o = 0; o < bytes; o += 256) {
            if (pf)
                pf_row(c + o + pf);
            for (int r = 0; r < reps; r++)
                acc = _mm512_add_ps(acc, row_work(c + o, qv));
        }
    } else {
        const size_t rowb = 8192, blk = 16 * rowb;
        for (size_t b = 0; b < bytes; b += blk)
            for (size_t h = 0; h < rowb / 256; h++)
                for (size_t k = 0; k < 16; k++) {
                    const char *p = c + b + k * rowb + h * 256;
                    if (pf)
                        pf_row(p + pf);
                    for (int r = 0; r < reps; r++)
                        acc = _mm512_add_ps(acc, row_work(p, qv));
                }
    }
    return _mm512_reduce_add_ps(acc);
}

int main(int argc, char **argv)
{
    const size_t bytes = (size_t)(argc > 1 ? atol(argv[1]) : 512) << 20;
    const size_t slack = (size_t)1 << 20; /* prefetches past the end stay mapped */
    char *buf = mmap(NULL, bytes + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    madvise(buf, bytes + slack, MADV_HUGEPAGE);
    for (size_t i = 0; i < bytes + slack; i += 2)
        *(uint16_t *)(buf + i) = (uint16_t)(0x3c00 + (i & 0xff));
    const struct {
        int order;
        long pf;
        const char *what;
    } cf[] = {{0, 0, "linear, no prefetch"},
              {0, 4096, "linear, prefetch 4 KiB ahead"},
              {1, 0, "kernel order, no prefetch"},
              {1, 131072, "kernel order, prefetch next block"}};
    for (int pass = 0; pass < 2; pass++)
        for (int reps = 1; reps <= 3; reps += 2)
            for (int i = 0; i < 4; i++) {
                const double t0 = now();
                const float sink = walk(buf, bytes, cf[i].order, cf[i].pf, reps);
                const double t = now() - t0;
                printf("work x%d  %-34s %5.1f ns/row  %5.1f GB/s  (%g)\n", reps, cf[i].what,
                       t * 1e9 / (double)(bytes / 256), (double)bytes / t / 1e9, sink);
            }
    return 0;
}
