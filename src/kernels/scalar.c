/* scalar.c - the scalar kernel set: attn_tile.inc compiled with this file's ISA flags. */
#define GQA_SIMD_SCALAR 1
#define GQA_KFN(name) name##_scalar

#include "kernels/attn_tile.inc"
#include "kernels/attn_bwd.inc"

const gqa_kernel_set gqa_kernels_scalar = {"scalar", attn_tile_scalar, attn_bwd_kv_scalar, attn_bwd_q_scalar,
                                           fma_probe_scalar, read_probe_scalar};
