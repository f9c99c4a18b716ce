/* avx512.c - the avx512 kernel set: attn_tile.inc compiled with this file's
 * ISA flags, plus the AMX path (amx.c) where the CPU has it. */
#define GQA_SIMD_AVX512 1
#define GQA_KFN(name) name##_avx512

#include "kernels/attn_tile.inc"
#include "kernels/attn_bwd.inc"

void gqa_attn_tile_avx512_vec(const gqa_tile_job *job)
{
    attn_tile_avx512(job);
}

/* Jobs with much work per K/V byte go to the AMX tile unit when it is there. */
static void attn_tile_amx_or_vec(const gqa_tile_job *job)
{
    if (gqa_amx_active() && gqa_amx_job_fits(job))
        gqa_amx_attn_tile(job);
    else
        attn_tile_avx512(job);
}

const gqa_kernel_set gqa_kernels_avx512 = {"avx512",           attn_tile_amx_or_vec,
                                           attn_bwd_kv_avx512, attn_bwd_q_avx512,
                                           fma_probe_avx512,   read_probe_avx512};
