/* matvec_neon.c - the neon weight matvec: matvec.inc compiled with this file's ISA flags. */
#define GQA_SIMD_NEON 1
#define GQA_MVFN(name) name##_neon

#include "core/internal.h"
#include "kernels/simd.h"
#include "model/matvec.inc"
