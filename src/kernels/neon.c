/* neon.c - the neon kernel set: attn_tile.inc compiled with this file's ISA flags. */
#define GQA_SIMD_NEON 1
#define GQA_KFN(name) name##_neon

#include "kernels/attn_tile.inc"
#include "kernels/attn_bwd.inc"

const gqa_kernel_set gqa_kernels_neon = {"neon", attn_tile_neon, attn_bwd_kv_neon, attn_bwd_q_neon,
                                           fma_probe_neon, read_probe_neon};
