/* amx_overlap.c - does AMX tile work overlap with AVX-512 work in the same
 * thread, and does it matter where the vector work's data comes from?
 *
 * The AMX attention path (src/kernels/amx.c) interleaves vector work (K/V
 * conversion, softmax) with tile multiplies, hoping the two units work at
 * once; measured inside the kernel, the phases' times add up instead. This
 * times one loop iteration (cycles at 3.4 GHz) of:
 *   m0: 5 TDPBF16PS with 5 tile loads (one d chunk of the score loop)
 *   m1: a conversion block: NST x 32 f16 values read from a SRC_KB buffer,
 *       widened, split into two bf16 parts, paired and stored (amx.c's units)
 *   m2: both, interleaved per iteration
 * With the source in L1 (32 KB) the two overlap; from L2 (2 MB) much less.
 * Not part of the library or its tests (it needs AMX at run time):
 *   gcc -O2 -mavx512f -mavx512bw -mf16c -mamx-tile -mamx-bf16 bench/amx_overlap.c \
 *       -o /tmp/amx_overlap
 *   for kb in 32 2048; do /tmp/amx_overlap 8 $kb; /tmp/amx_overlap 16 $kb; done
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18
#define ROW                 4096 /* conversion output per iteration and part */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

static _Alignas(64) uint16_t tiles[8][16 * 32];
static _Alignas(64) uint16_t out_hi[64][ROW], out_lo[64][ROW];
static uint16_t *src;
static size_t src_n;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* n blocks of 32 f16 values: widen, split into hi + lo bf16, pair, store. */
__attribute__((noinline)) static void convert(long it, int n)
{
    const uint16_t *s = src + ((size_t)it * 2048) % (src_n - 2048);
    uint16_t *yh = out_hi[it & 63], *yl = out_lo[it & 63];
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    for (int e = 0; e < n; e++) {
        const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + e * 32)));
        const __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + e * 32 + 16)));
        const __m512 ha = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), hi_mask));
        const __m512 hb = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(b), hi_mask));
        const __m512 la = _mm512_sub_ps(a, ha), lb = _mm512_sub_ps(b, hb);
        _mm512_storeu_si512(yh + e * 32, _mm512_ternarylogic_epi32(
                                             _mm512_castps_si512(hb),
                                             _mm512_srli_epi32(_mm512_castps_si512(ha), 16),
                                             hi_mask, 0xE4));
        _mm512_storeu_si512(yl + e * 32, _mm512_ternarylogic_epi32(
                                             _mm512_castps_si512(lb),
                                             _mm512_srli_epi32(_mm512_castps_si512(la), 16),
                                             hi_mask, 0xE4));
    }
}

int main(int argc, char **argv)
{
    const int nst = argc > 1 ? atoi(argv[1]) : 8;
    const long kb = argc > 2 ? atol(argv[2]) : 32;
    if (nst < 1 || nst > 64 || kb < 16 || kb > (1L << 20)) {
        printf("usage: amx_overlap [NST 1..64] [SRC_KB 16..1048576]\n");
        return 1;
    }
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        printf("AMX tile data: not permitted by this kernel\n");
        return 1;
    }
    src_n = (size_t)kb * 512;
    src = aligned_alloc(64, src_n * 2);
    if (!src)
        return 1;
    for (size_t i = 0; i < src_n; i++)
        src[i] = 0x3c00; /* f16 1.0 */
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
    for (int i = 0; i < 8 * 16 * 32; i++)
        ((uint16_t *)tiles)[i] = 0x3f80; /* bf16 1.0 */
    const long n = 100000;
    for (int mode = 0; mode < 3; mode++) {
        _tile_zero(0);
        const double t0 = now();
        for (long it = 0; it < n; it++) {
            if (mode != 1) {
                _tile_loadd(4, tiles[0], 64);
                _tile_loadd(5, tiles[1], 64);
                _tile_loadd(6, tiles[2], 64);
                _tile_loadd(2, tiles[3], 64);
                _tile_dpbf16ps(0, 2, 4);
                _tile_dpbf16ps(0, 2, 5);
                _tile_dpbf16ps(0, 2, 6);
                _tile_loadd(3, tiles[4], 64);
                _tile_dpbf16ps(0, 3, 4);
                _tile_dpbf16ps(0, 3, 5);
            }
            if (mode >= 1)
                convert(it, nst);
        }
        printf("m%d %.0f  ", mode, (now() - t0) / (double)n * 3.4e9);
    }
    printf("(cycles per iteration; NST %d, source %ld KB)\n", nst, kb);
    _tile_release();
    free(src);
    return 0;
}
