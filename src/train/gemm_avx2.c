/* gemm_avx2.c - the AVX2 + FMA gemm micro-kernel: 6 x 16 tiles (12 ymm
 * accumulators), gemm_tile.inc compiled with this file's ISA flags. */
#define GQA_SIMD_AVX2 1

#include "kernels/simd.h"
#include "train/gemm.h"

#define GEMM_MR       6
#define GEMM_NV       2
#define GEMM_KERNEL   gqa_gemm_kernel_avx2
#define GEMM_ISA_NAME "avx2"
#include "train/gemm_tile.inc"
