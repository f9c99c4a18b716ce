/* glu_avx2.c - SwiGLU forward and backward, 8 floats per step (AVX2 + FMA),
 * the tail through a stack buffer. See glu_simd.h. */
#include <immintrin.h>
#include <string.h>

#include "train/glu_simd.h"

static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^k in the exponent bits (k in -126..127 after the clamp) */
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 sigmoid8(__m256 g)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

static void fwd8(const float *g, const float *u, float *h)
{
    const __m256 gv = _mm256_loadu_ps(g), uv = _mm256_loadu_ps(u);
    _mm256_storeu_ps(h, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid8(gv)), uv));
}

static void bwd8(const float *g, const float *u, const float *dh, float *dg, float *du)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 gv = _mm256_loadu_ps(g), uv = _mm256_loadu_ps(u), d = _mm256_loadu_ps(dh);
    const __m256 s = sigmoid8(gv);
    const __m256 t = _mm256_fmadd_ps(gv, _mm256_sub_ps(one, s), one);
    _mm256_storeu_ps(dg, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, uv), s), t));
    _mm256_storeu_ps(du, _mm256_mul_ps(d, _mm256_mul_ps(gv, s)));
}

void gqa_glu_fwd_avx2(const float *g, const float *u, int64_t n, float *h)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        fwd8(g + i, u + i, h + i);
    if (i < n) {
        float bg[8] = {0}, bu[8] = {0}, bh[8];
        memcpy(bg, g + i, (size_t)(n - i) * sizeof(float));
        memcpy(bu, u + i, (size_t)(n - i) * sizeof(float));
        fwd8(bg, bu, bh);
        memcpy(h + i, bh, (size_t)(n - i) * sizeof(float));
    }
}

void gqa_glu_bwd_avx2(const float *g, const float *u, const float *dh, int64_t n, float *dg,
                      float *du)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        bwd8(g + i, u + i, dh + i, dg + i, du + i);
    if (i < n) {
        float bg[8] = {0}, bu[8] = {0}, bd[8] = {0}, og[8], ou[8];
        const size_t b = (size_t)(n - i) * sizeof(float);
        memcpy(bg, g + i, b);
        memcpy(bu, u + i, b);
        memcpy(bd, dh + i, b);
        bwd8(bg, bu, bd, og, ou);
        memcpy(dg + i, og, b);
        memcpy(du + i, ou, b);
    }
}
