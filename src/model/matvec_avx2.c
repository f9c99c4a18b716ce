/* matvec_avx2.c - the avx2 weight matvec: matvec.inc compiled with this file's ISA flags. */
#define GQA_SIMD_AVX2 1
#define GQA_MVFN(name) name##_avx2

#include "core/internal.h"
#include "kernels/simd.h"
#include "model/matvec.inc"
