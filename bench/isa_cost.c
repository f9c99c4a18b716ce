/* isa_cost.c - what an f16 -> f32 widening costs next to FMAs on this core.
 *
 * The decode kernels' inner loops are loads, widenings (vcvtph2ps) and FMAs.
 * This measures, in cycles of the 16-FMA loop (taken as 8 cycles: two
 * 512-bit FMA ports), a loop of 16 independent FMAs fed by
 *   - registers only,
 *   - 4 f32 vectors loaded from L1,
 *   - 4 f16 vectors loaded from L1 and widened,
 * i.e. the dot path's chunk for 4 query rows x 4 keys. If a widening costs
 * one FMA-port uop the third loop takes 10 cycles, if two, 12.
 *
 * Not part of the library or its tests (it needs AVX-512 at run time):
 *   gcc -O2 -march=x86-64-v4 bench/isa_cost.c -o /tmp/isa_cost && /tmp/isa_cost
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define N 20000000L

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static _Alignas(64) uint16_t h16[8192];
static _Alignas(64) float f32[8192];

#define F(a, q, k) a = _mm512_fmadd_ps(q, k, a)
#define ACCS                                                                                       \
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2),                 \
           a3 = _mm512_set1_ps(3), a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5),                 \
           a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7), a8 = _mm512_set1_ps(8),                 \
           a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11),             \
           a12 = _mm512_set1_ps(12), a13 = _mm512_set1_ps(13), a14 = _mm512_set1_ps(14),           \
           a15 = _mm512_set1_ps(15);                                                               \
    __m512 q0 = _mm512_set1_ps(0.9f), q1 = _mm512_set1_ps(0.8f), q2 = _mm512_set1_ps(0.7f),        \
           q3 = _mm512_set1_ps(0.6f)
#define FMA16(k0, k1, k2, k3)                                                                      \
    F(a0, q0, k0); F(a1, q0, k1); F(a2, q0, k2); F(a3, q0, k3);                                    \
    F(a4, q1, k0); F(a5, q1, k1); F(a6, q1, k2); F(a7, q1, k3);                                    \
    F(a8, q2, k0); F(a9, q2, k1); F(a10, q2, k2); F(a11, q2, k3);                                  \
    F(a12, q3, k0); F(a13, q3, k1); F(a14, q3, k2); F(a15, q3, k3)
/* keep every accumulator live, so that no FMA is dropped */
#define SINK                                                                                       \
    const __m512 s0 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));              \
    const __m512 s1 = _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7));              \
    const __m512 s2 = _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11));            \
    const __m512 s3 = _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15));          \
    sink += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))

static float sink;

__attribute__((noinline)) static double fma_only(void)
{
    ACCS;
    const double t0 = now();
    for (long i = 0; i < N; i++) {
        FMA16(q1, q2, q3, q0);
        __asm__ volatile("" : "+v"(q0)); /* q0 is not loop-invariant to the compiler */
    }
    const double t = now() - t0;
    SINK;
    return t / N;
}

__attribute__((noinline)) static double f32_fma(void)
{
    ACCS;
    const double t0 = now();
    for (long i = 0; i < N; i++) {
        const float *p = f32 + (i & 63) * 64;
        __asm__ volatile("" : "+r"(p));
        const __m512 k0 = _mm512_load_ps(p), k1 = _mm512_load_ps(p + 16),
                     k2 = _mm512_load_ps(p + 32), k3 = _mm512_load_ps(p + 48);
        FMA16(k0, k1, k2, k3);
    }
    const double t = now() - t0;
    SINK;
    return t / N;
}

#define CVT(o) _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(const void *)(p + (o))))
__attribute__((noinline)) static double f16_fma(void)
{
    ACCS;
    const double t0 = now();
    for (long i = 0; i < N; i++) {
        const uint16_t *p = h16 + (i & 63) * 64;
        __asm__ volatile("" : "+r"(p));
        const __m512 k0 = CVT(0), k1 = CVT(16), k2 = CVT(32), k3 = CVT(48);
        FMA16(k0, k1, k2, k3);
    }
    const double t = now() - t0;
    SINK;
    return t / N;
}

int main(void)
{
    for (int i = 0; i < 8192; i++) {
        h16[i] = (uint16_t)(0x3c00 + i % 7);
        f32[i] = 1.0f + (float)(i % 5);
    }
    printf("cycles per loop of 16 FMAs (the register-only loop taken as 8 cycles)\n");
    for (int rep = 0; rep < 3; rep++) {
        const double base = fma_only(), a = f32_fma(), b = f16_fma();
        printf("16 FMA %.2f ns (%.2f GHz) | + 4 f32 loads %.2f | + 4 f16 loads and widenings "
               "%.2f\n",
               base * 1e9, 8.0 / (base * 1e9), 8.0 * a / base, 8.0 * b / base);
    }
    return sink == 12345.0f; /* never true; keeps the results live */
}
