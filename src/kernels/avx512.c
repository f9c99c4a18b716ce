/* avx512.c - the avx512 kernel set: attn_tile.inc compiled with this file's ISA flags. */
#define GQA_SIMD_AVX512 1
#define GQA_KFN(name) name##_avx512

#include "kernels/attn_tile.inc"
#include "kernels/attn_bwd.inc"

const gqa_kernel_set gqa_kernels_avx512 = {"avx512", attn_tile_avx512, attn_bwd_kv_avx512, attn_bwd_q_avx512,
                                           fma_probe_avx512, read_probe_avx512};
