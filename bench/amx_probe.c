/* amx_probe.c - is AMX usable on this machine, and how fast is its BF16
 * tile multiply next to the FMA peak?
 *
 * The gemm-shaped attention work (MQA decode, prefill) runs at 50-55% of the
 * AVX-512 FMA peak (bench/RESULTS.md). An AMX-BF16 path could compute it
 * exactly to f32 rounding by splitting each f32 q into three bf16 parts and
 * each f16 K/V element into two (five partial products kept), if the tile
 * unit is fast enough. This asks Linux for the tile-data permission, runs
 * four independent TDPBF16PS chains (16 x 16 x 32 each) and prints the rate.
 *
 * Not part of the library or its tests (it needs AMX at run time):
 *   gcc -O2 -mamx-tile -mamx-bf16 bench/amx_probe.c -o /tmp/amx_probe && /tmp/amx_probe
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define N 2000000L

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

static _Alignas(64) uint16_t a_bf16[16 * 32], b_bf16[16 * 32];
static _Alignas(64) float c_f32[16 * 16];

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void)
{
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        printf("AMX tile data: not permitted by this kernel\n");
        return 1;
    }
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64; /* 16 f32 or 32 bf16 per row */
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
    for (int i = 0; i < 16 * 32; i++)
        a_bf16[i] = b_bf16[i] = 0x3f80; /* 1.0 */
    _tile_loadd(1, a_bf16, 64);
    _tile_loadd(2, b_bf16, 64);
    _tile_zero(0);
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    const double t0 = now();
    for (long i = 0; i < N; i++) {
        _tile_dpbf16ps(0, 1, 2);
        _tile_dpbf16ps(3, 1, 2);
        _tile_dpbf16ps(4, 1, 2);
        _tile_dpbf16ps(5, 1, 2);
    }
    const double t = now() - t0;
    _tile_stored(0, c_f32, 64);
    _tile_release();
    const double flops = 4.0 * N * 16 * 16 * 32 * 2;
    printf("AMX BF16: %.2f ns per 16x16x32 TDPBF16PS, %.0f GFLOP/s on one core "
           "(check: C[0] = %.0f, expected %.0f)\n",
           t / (4.0 * N) * 1e9, flops / t / 1e9, (double)c_f32[0], 32.0 * N);
    return 0;
}
