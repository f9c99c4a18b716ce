/* matvec_scalar.c - the scalar weight matvec: matvec.inc compiled with this file's ISA flags. */
#define GQA_SIMD_SCALAR 1
#define GQA_MVFN(name) name##_scalar

#include "core/internal.h"
#include "kernels/simd.h"
#include "model/matvec.inc"
