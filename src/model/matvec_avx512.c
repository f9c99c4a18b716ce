/* matvec_avx512.c - the avx512 weight matvec: matvec.inc compiled with this file's ISA flags. */
#define GQA_SIMD_AVX512 1
#define GQA_MVFN(name) name##_avx512

#include "core/internal.h"
#include "kernels/simd.h"
#include "model/matvec.inc"
