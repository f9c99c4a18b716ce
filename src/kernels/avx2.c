/* avx2.c - the avx2 kernel set: attn_tile.inc compiled with this file's ISA flags. */
#define GQA_SIMD_AVX2 1
#define GQA_KFN(name) name##_avx2

#include "kernels/attn_tile.inc"
#include "kernels/attn_bwd.inc"

const gqa_kernel_set gqa_kernels_avx2 = {"avx2", attn_tile_avx2, attn_bwd_kv_avx2, attn_bwd_q_avx2,
                                           fma_probe_avx2, read_probe_avx2};
