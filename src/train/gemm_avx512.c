/* gemm_avx512.c - the AVX-512 gemm micro-kernel: 12 x 32 tiles (24 zmm
 * accumulators), gemm_tile.inc compiled with this file's ISA flags. */
#define GQA_SIMD_AVX512 1

#include "kernels/simd.h"
#include "train/gemm.h"

#define GEMM_MR       12
#define GEMM_NV       2
#define GEMM_KERNEL   gqa_gemm_kernel_avx512
#define GEMM_ISA_NAME "avx512"
#include "train/gemm_tile.inc"
