/* simd.h - the thin vector abstraction the micro-kernels are written in.
 *
 * Exactly one of GQA_SIMD_AVX512, GQA_SIMD_AVX2, GQA_SIMD_NEON, GQA_SIMD_SCALAR
 * is defined by the file that includes this (each compiled with its own ISA
 * flags). Every operation is a static inline function of `vf`, a vector of
 * VL floats:
 *   v_zero, v_set1, v_load (unaligned), v_store, v_fma(a, b, c) = a*b + c,
 *   v_mul, v_add, v_sub, v_max, v_min, v_hmax, v_hsum,
 *   v_load_f16 / v_load_bf16 (VL elements widened to f32 in registers),
 *   v_load_n_{f32,f16,bf16}(p, n): the first n < VL elements, rest zero,
 *   v_load_q8(p, scale): VL int8 values times scale,
 *   v_load_q8v(p, vscale): the same with the scale already in a vector,
 *   f16_scalar(h): one f16 bit pattern as a float (hardware conversion),
 *   v_keep_range(s, j0, lo, hi): lanes i with lo <= j0 + i <= hi keep s, else -inf,
 *   v_keep_rows(s, j, lo, hi): lanes i with lo[i] <= j <= hi[i] keep s, else -inf,
 *   v_exp (relative error ~2e-7; exactly 0 for x < -87.3 and for -inf; NaN stays NaN),
 *   v_reduce_lanes(a): given VL vectors, the vector whose lane i is the sum of a[i],
 *   v_store_span(p, a, lane0, n): lanes lane0..lane0+n-1 of a to p[lane0..lane0+n-1]
 *   (nothing else written; p + lane0 .. p + lane0 + n - 1 must be valid).
 */
#ifndef GQA_KERNELS_SIMD_H
#define GQA_KERNELS_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define GQA_INLINE static inline __attribute__((always_inline))
/* A read prefetch into L2, or into L1 (hints: never fault, may be dropped). */
#define v_prefetch(p) __builtin_prefetch((p), 0, 2)
#define v_prefetch_l1(p) __builtin_prefetch((p), 0, 3)

/* exp(x) = 2^n * e^r, |r| <= ln2/2, e^r by its Taylor polynomial of degree 6
 * (truncation error below 1.2e-7 relative). */
#define GQA_EXP_HI 88.0f
#define GQA_EXP_LO (-87.33654f)
#define GQA_LOG2E 1.44269504088896341f
#define GQA_LN2_HI 0.693359375f
#define GQA_LN2_LO (-2.12194440e-4f)
#define GQA_EXP_C6 (1.0f / 720.0f)
#define GQA_EXP_C5 (1.0f / 120.0f)
#define GQA_EXP_C4 (1.0f / 24.0f)
#define GQA_EXP_C3 (1.0f / 6.0f)
#define GQA_EXP_C2 0.5f

#if defined(GQA_SIMD_AVX512)
/* ------------------------------------------------------------ AVX-512 -- */
#include <immintrin.h>
#define VL 16
typedef __m512 vf;
GQA_INLINE vf v_zero(void) { return _mm512_setzero_ps(); }
GQA_INLINE vf v_set1(float x) { return _mm512_set1_ps(x); }
GQA_INLINE vf v_load(const float *p) { return _mm512_loadu_ps(p); }
GQA_INLINE void v_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
GQA_INLINE vf v_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
GQA_INLINE vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
GQA_INLINE vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
GQA_INLINE vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
GQA_INLINE vf v_max(vf a, vf b) { return _mm512_max_ps(a, b); }
GQA_INLINE vf v_min(vf a, vf b) { return _mm512_min_ps(a, b); }
GQA_INLINE float v_hmax(vf a) { return _mm512_reduce_max_ps(a); }
GQA_INLINE float v_hsum(vf a) { return _mm512_reduce_add_ps(a); }
GQA_INLINE __mmask16 first_n(int n) { return (__mmask16)((1u << n) - 1u); }
GQA_INLINE vf v_load_f16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
}
GQA_INLINE vf bf16_widen(__m256i h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
GQA_INLINE vf v_load_bf16(const uint16_t *p)
{
    return bf16_widen(_mm256_loadu_si256((const __m256i *)(const void *)p));
}
GQA_INLINE vf v_load_n_f32(const float *p, int n) { return _mm512_maskz_loadu_ps(first_n(n), p); }
GQA_INLINE float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }
GQA_INLINE vf v_load_q8v(const int8_t *p, vf scale)
{
    const __m512i w = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(w), scale);
}
GQA_INLINE vf v_load_q8(const int8_t *p, float scale) { return v_load_q8v(p, _mm512_set1_ps(scale)); }
GQA_INLINE vf v_load_n_f16(const uint16_t *p, int n)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_n(n), p));
}
GQA_INLINE vf v_load_n_bf16(const uint16_t *p, int n)
{
    return bf16_widen(_mm256_maskz_loadu_epi16(first_n(n), p));
}
GQA_INLINE vf v_keep_range_or(vf s, int32_t j0, int32_t lo, int32_t hi, float fill)
{
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(j0),
                                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                           12, 13, 14, 15));
    __mmask16 k = _mm512_cmp_epi32_mask(idx, _mm512_set1_epi32(lo), _MM_CMPINT_NLT) &
                  _mm512_cmp_epi32_mask(idx, _mm512_set1_epi32(hi), _MM_CMPINT_LE);
    return _mm512_mask_blend_ps(k, _mm512_set1_ps(fill), s);
}
GQA_INLINE vf v_keep_rows(vf s, int32_t j, const int32_t *lo, const int32_t *hi)
{
    const __m512i jj = _mm512_set1_epi32(j);
    __mmask16 k = _mm512_cmp_epi32_mask(_mm512_loadu_si512(lo), jj, _MM_CMPINT_LE) &
                  _mm512_cmp_epi32_mask(_mm512_loadu_si512(hi), jj, _MM_CMPINT_NLT);
    return _mm512_mask_blend_ps(k, _mm512_set1_ps(-INFINITY), s);
}
GQA_INLINE vf v_exp(vf x)
{
    /* Constants first in min/max: those return the second operand on NaN. */
    vf xc = _mm512_min_ps(_mm512_set1_ps(GQA_EXP_HI), _mm512_max_ps(_mm512_set1_ps(GQA_EXP_LO), x));
    vf n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(GQA_LOG2E)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vf r = _mm512_fnmadd_ps(n, _mm512_set1_ps(GQA_LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(GQA_LN2_LO), r);
    vf p = _mm512_set1_ps(GQA_EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GQA_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GQA_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GQA_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(GQA_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    vf e = _mm512_scalef_ps(p, n);
    __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(GQA_EXP_LO), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(under, e, _mm512_setzero_ps());
}
/* Transpose-and-add: 4 levels of 128-bit-lane and in-lane shuffles fold 16
 * vectors into one. The tree leaves sums in a fixed permuted lane order, so
 * the inputs are fed through the inverse permutation. */
GQA_INLINE vf v_reduce_lanes(const vf *a)
{
    static const int feed[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};
    vf b[8], c[4], e[2];
    for (int i = 0; i < 8; i++) {
        vf x = a[feed[i]], y = a[feed[i + 8]];
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xEE));
    }
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[i], b[i + 4], 0x88),
                             _mm512_shuffle_f32x4(b[i], b[i + 4], 0xDD));
    for (int i = 0; i < 2; i++)
        e[i] = _mm512_add_ps(_mm512_shuffle_ps(c[i], c[i + 2], 0x44),
                             _mm512_shuffle_ps(c[i], c[i + 2], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], 0x88), _mm512_shuffle_ps(e[0], e[1], 0xDD));
}

GQA_INLINE void v_store_span(float *p, vf a, int lane0, int n)
{
    _mm512_mask_storeu_ps(p, (__mmask16)(first_n(n) << lane0), a);
}
#define GQA_HAVE_STORE_SPAN 1

#elif defined(GQA_SIMD_AVX2)
/* --------------------------------------------------------- AVX2 + FMA -- */
#include <immintrin.h>
#define VL 8
typedef __m256 vf;
GQA_INLINE vf v_zero(void) { return _mm256_setzero_ps(); }
GQA_INLINE vf v_set1(float x) { return _mm256_set1_ps(x); }
GQA_INLINE vf v_load(const float *p) { return _mm256_loadu_ps(p); }
GQA_INLINE void v_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
GQA_INLINE vf v_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
GQA_INLINE vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
GQA_INLINE vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
GQA_INLINE vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
GQA_INLINE vf v_max(vf a, vf b) { return _mm256_max_ps(a, b); }
GQA_INLINE vf v_min(vf a, vf b) { return _mm256_min_ps(a, b); }
GQA_INLINE float v_hsum(vf a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
GQA_INLINE float v_hmax(vf a)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
GQA_INLINE vf v_load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}
GQA_INLINE vf bf16_widen(__m128i h)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
GQA_INLINE vf v_load_bf16(const uint16_t *p)
{
    return bf16_widen(_mm_loadu_si128((const __m128i *)(const void *)p));
}
GQA_INLINE vf v_load_n_f32(const float *p, int n)
{
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(p, m);
}
GQA_INLINE float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }
GQA_INLINE vf v_load_q8v(const int8_t *p, vf scale)
{
    const __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(w), scale);
}
GQA_INLINE vf v_load_q8(const int8_t *p, float scale) { return v_load_q8v(p, _mm256_set1_ps(scale)); }
GQA_INLINE __m128i load_n_u16(const uint16_t *p, int n)
{
    uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(tmp, p, (size_t)n * sizeof *p);
    return _mm_loadu_si128((const __m128i *)(const void *)tmp);
}
GQA_INLINE vf v_load_n_f16(const uint16_t *p, int n) { return _mm256_cvtph_ps(load_n_u16(p, n)); }
GQA_INLINE vf v_load_n_bf16(const uint16_t *p, int n) { return bf16_widen(load_n_u16(p, n)); }
GQA_INLINE vf v_keep_range_or(vf s, int32_t j0, int32_t lo, int32_t hi, float fill)
{
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(j0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i out = _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(lo), idx),
                                  _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(hi)));
    return _mm256_blendv_ps(s, _mm256_set1_ps(fill), _mm256_castsi256_ps(out));
}
GQA_INLINE vf v_keep_rows(vf s, int32_t j, const int32_t *lo, const int32_t *hi)
{
    const __m256i jj = _mm256_set1_epi32(j);
    __m256i out = _mm256_or_si256(
        _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)(const void *)lo), jj),
        _mm256_cmpgt_epi32(jj, _mm256_loadu_si256((const __m256i *)(const void *)hi)));
    return _mm256_blendv_ps(s, _mm256_set1_ps(-INFINITY), _mm256_castsi256_ps(out));
}
GQA_INLINE vf v_exp(vf x)
{
    vf xc = _mm256_min_ps(_mm256_set1_ps(GQA_EXP_HI), _mm256_max_ps(_mm256_set1_ps(GQA_EXP_LO), x));
    vf n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(GQA_LOG2E)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vf r = _mm256_fnmadd_ps(n, _mm256_set1_ps(GQA_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(GQA_LN2_LO), r);
    vf p = _mm256_set1_ps(GQA_EXP_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GQA_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GQA_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GQA_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(GQA_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n through the exponent field; n is in -126..127 after the clamp. */
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    vf e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    vf under = _mm256_cmp_ps(x, _mm256_set1_ps(GQA_EXP_LO), _CMP_LT_OQ);
    return _mm256_andnot_ps(under, e);
}
GQA_INLINE vf v_reduce_lanes(const vf *a)
{
    static const int feed[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    vf b[4], c[2];
    for (int i = 0; i < 4; i++) {
        vf x = a[feed[i]], y = a[feed[i + 4]];
        b[i] = _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
    }
    for (int i = 0; i < 2; i++)
        c[i] = _mm256_add_ps(_mm256_shuffle_ps(b[i], b[i + 2], 0x44),
                             _mm256_shuffle_ps(b[i], b[i + 2], 0xEE));
    return _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], 0x88), _mm256_shuffle_ps(c[0], c[1], 0xDD));
}

#elif defined(GQA_SIMD_NEON)
/* --------------------------------------------------------------- NEON -- */
#include <arm_neon.h>
#define VL 4
typedef float32x4_t vf;
GQA_INLINE vf v_zero(void) { return vdupq_n_f32(0.0f); }
GQA_INLINE vf v_set1(float x) { return vdupq_n_f32(x); }
GQA_INLINE vf v_load(const float *p) { return vld1q_f32(p); }
GQA_INLINE void v_store(float *p, vf a) { vst1q_f32(p, a); }
GQA_INLINE vf v_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
GQA_INLINE vf v_mul(vf a, vf b) { return vmulq_f32(a, b); }
GQA_INLINE vf v_add(vf a, vf b) { return vaddq_f32(a, b); }
GQA_INLINE vf v_sub(vf a, vf b) { return vsubq_f32(a, b); }
GQA_INLINE vf v_max(vf a, vf b) { return vmaxnmq_f32(a, b); }
GQA_INLINE vf v_min(vf a, vf b) { return vminnmq_f32(a, b); }
GQA_INLINE float v_hmax(vf a) { return vmaxnmvq_f32(a); }
GQA_INLINE float v_hsum(vf a) { return vaddvq_f32(a); }
GQA_INLINE vf v_load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
GQA_INLINE vf v_load_bf16(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
GQA_INLINE float f16_scalar(uint16_t h)
{
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}
GQA_INLINE vf v_load_q8v(const int8_t *p, vf scale)
{
    int8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(b, p, 4); /* exactly the 4 values: never past the row */
    const int32x4_t w = vmovl_s16(vget_low_s16(vmovl_s8(vld1_s8(b))));
    return vmulq_f32(vcvtq_f32_s32(w), scale);
}
GQA_INLINE vf v_load_q8(const int8_t *p, float scale) { return v_load_q8v(p, vdupq_n_f32(scale)); }
GQA_INLINE vf v_load_n_f32(const float *p, int n)
{
    float tmp[4] = {0, 0, 0, 0};
    memcpy(tmp, p, (size_t)n * sizeof *p);
    return vld1q_f32(tmp);
}
GQA_INLINE vf v_load_n_f16(const uint16_t *p, int n)
{
    uint16_t tmp[4] = {0, 0, 0, 0};
    memcpy(tmp, p, (size_t)n * sizeof *p);
    return v_load_f16(tmp);
}
GQA_INLINE vf v_load_n_bf16(const uint16_t *p, int n)
{
    uint16_t tmp[4] = {0, 0, 0, 0};
    memcpy(tmp, p, (size_t)n * sizeof *p);
    return v_load_bf16(tmp);
}
GQA_INLINE vf v_keep_range_or(vf s, int32_t j0, int32_t lo, int32_t hi, float fill)
{
    static const int32_t iota[4] = {0, 1, 2, 3};
    int32x4_t idx = vaddq_s32(vdupq_n_s32(j0), vld1q_s32(iota));
    uint32x4_t keep = vandq_u32(vcgeq_s32(idx, vdupq_n_s32(lo)), vcleq_s32(idx, vdupq_n_s32(hi)));
    return vbslq_f32(keep, s, vdupq_n_f32(fill));
}
GQA_INLINE vf v_keep_rows(vf s, int32_t j, const int32_t *lo, const int32_t *hi)
{
    int32x4_t jj = vdupq_n_s32(j);
    uint32x4_t keep = vandq_u32(vcleq_s32(vld1q_s32(lo), jj), vcgeq_s32(vld1q_s32(hi), jj));
    return vbslq_f32(keep, s, vdupq_n_f32(-INFINITY));
}
GQA_INLINE vf v_exp(vf x)
{
    vf xc = vminq_f32(vdupq_n_f32(GQA_EXP_HI), vmaxq_f32(vdupq_n_f32(GQA_EXP_LO), x));
    vf n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(GQA_LOG2E)));
    vf r = vfmsq_f32(xc, n, vdupq_n_f32(GQA_LN2_HI));
    r = vfmsq_f32(r, n, vdupq_n_f32(GQA_LN2_LO));
    vf p = vdupq_n_f32(GQA_EXP_C6);
    p = vfmaq_f32(vdupq_n_f32(GQA_EXP_C5), p, r);
    p = vfmaq_f32(vdupq_n_f32(GQA_EXP_C4), p, r);
    p = vfmaq_f32(vdupq_n_f32(GQA_EXP_C3), p, r);
    p = vfmaq_f32(vdupq_n_f32(GQA_EXP_C2), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    vf e = vmulq_f32(p, vreinterpretq_f32_s32(bits));
    uint32x4_t under = vcltq_f32(x, vdupq_n_f32(GQA_EXP_LO));
    return vbslq_f32(under, vdupq_n_f32(0.0f), e);
}
GQA_INLINE vf v_reduce_lanes(const vf *a)
{
    return vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
}

#elif defined(GQA_SIMD_SCALAR)
/* ------------------------------------------------------------- scalar -- */
#define VL 1
typedef float vf;
GQA_INLINE vf v_zero(void) { return 0.0f; }
GQA_INLINE vf v_set1(float x) { return x; }
GQA_INLINE vf v_load(const float *p) { return *p; }
GQA_INLINE void v_store(float *p, vf a) { *p = a; }
GQA_INLINE vf v_fma(vf a, vf b, vf c) { return a * b + c; }
GQA_INLINE vf v_mul(vf a, vf b) { return a * b; }
GQA_INLINE vf v_add(vf a, vf b) { return a + b; }
GQA_INLINE vf v_sub(vf a, vf b) { return a - b; }
GQA_INLINE vf v_max(vf a, vf b) { return a > b ? a : b; }
GQA_INLINE vf v_min(vf a, vf b) { return a < b ? a : b; }
GQA_INLINE float v_hmax(vf a) { return a; }
GQA_INLINE float v_hsum(vf a) { return a; }
GQA_INLINE vf v_load_f16(const uint16_t *p) { return gqa_f16_to_f32(*p); }
GQA_INLINE vf v_load_bf16(const uint16_t *p) { return gqa_bf16_to_f32(*p); }
GQA_INLINE vf v_load_n_f32(const float *p, int n) { return n > 0 ? *p : 0.0f; }
GQA_INLINE float f16_scalar(uint16_t h) { return gqa_f16_to_f32(h); }
GQA_INLINE vf v_load_q8v(const int8_t *p, vf scale) { return (float)*p * scale; }
GQA_INLINE vf v_load_q8(const int8_t *p, float scale) { return (float)*p * scale; }
GQA_INLINE vf v_load_n_f16(const uint16_t *p, int n) { return n > 0 ? gqa_f16_to_f32(*p) : 0.0f; }
GQA_INLINE vf v_load_n_bf16(const uint16_t *p, int n) { return n > 0 ? gqa_bf16_to_f32(*p) : 0.0f; }
GQA_INLINE vf v_keep_range_or(vf s, int32_t j0, int32_t lo, int32_t hi, float fill)
{
    return j0 >= lo && j0 <= hi ? s : fill;
}
GQA_INLINE vf v_keep_rows(vf s, int32_t j, const int32_t *lo, const int32_t *hi)
{
    return *lo <= j && j <= *hi ? s : -INFINITY;
}
GQA_INLINE vf v_exp(vf x) { return expf(x); }
GQA_INLINE vf v_reduce_lanes(const vf *a) { return a[0]; }

#else
#error "define one of GQA_SIMD_AVX512, GQA_SIMD_AVX2, GQA_SIMD_NEON, GQA_SIMD_SCALAR"
#endif

#ifndef GQA_HAVE_STORE_SPAN
GQA_INLINE void v_store_span(float *p, vf a, int lane0, int n)
{
    float t[VL];
    v_store(t, a);
    memcpy(p + lane0, t + lane0, (size_t)n * sizeof *t);
}
#endif

/* Lanes of s whose key index j0 + lane lies outside lo..hi become -INFINITY
 * (a masked score), or `fill` with v_keep_range_or. */
GQA_INLINE vf v_keep_range(vf s, int32_t j0, int32_t lo, int32_t hi)
{
    return v_keep_range_or(s, j0, lo, hi, -INFINITY);
}

#endif
