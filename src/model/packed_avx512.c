/* packed_avx512.c - the packed-weight kernel (model/packed.h) for AVX-512
 * (F + BW): one vector lane per row of a 16-row group, int16 pair products
 * accumulated exactly in int32 for a block, then scaled once. Up to four
 * tokens share each unpacked weight vector, so a prompt pays the unpacking
 * once per four tokens. Compiled with this file's ISA flags only. */
#include <immintrin.h>
#include <string.h>

#include "gqa_model.h"
#include "model/packed.h"

#define TOKENS 4

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* acc += a . b over int16 pairs (vpmaddwd + vpaddd). */
ALWAYS_INLINE __m512i dp16(__m512i acc, __m512i a, __m512i b)
{
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
}

/* The int16 pair x[i], x[i+1] broadcast to every lane. */
ALWAYS_INLINE __m512i pair(const int16_t *x)
{
    int32_t v;
    memcpy(&v, x, 4);
    return _mm512_set1_epi32(v);
}

/* One group's 16 rows for nt (1..TOKENS) tokens starting at t0. */
ALWAYS_INLINE void group_tokens(const packed_weight *w, const packed_x *px, int64_t g, int64_t t0,
                                const int nt, float *y, int64_t ldy)
{
    const int q8 = w->type == GQA_GGML_TYPE_Q8_0;
    __m512 acc[TOKENS];
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    const unsigned char *o = w->data + (size_t)g * (size_t)w->n_blocks * w->block_bytes;
    for (int64_t b = 0; b < w->n_blocks; b++, o += w->block_bytes) {
        __m512i is[TOKENS];
        const int16_t *xq[TOKENS];
        for (int t = 0; t < nt; t++) {
            is[t] = _mm512_setzero_si512();
            xq[t] = px->q + (t0 + t) * px->cols + b * 32;
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(const void *)o));
        if (q8) {
            for (int p = 0; p < 16; p++) {
                const __m512i v = _mm512_cvtepi8_epi16(
                    _mm256_load_si256((const __m256i *)(const void *)(o + 32 + 32 * p)));
                for (int t = 0; t < nt; t++)
                    is[t] = dp16(is[t], v, pair(xq[t] + 2 * p));
            }
        } else {
            const unsigned char *qb = o + (w->type == GQA_GGML_TYPE_Q4_1 ? 64 : 32);
            const __m512i low = _mm512_set1_epi16(15);
            for (int p = 0; p < 8; p++) {
                const __m512i v = _mm512_cvtepu8_epi16(
                    _mm256_load_si256((const __m256i *)(const void *)(qb + 32 * p)));
                const __m512i lo = _mm512_and_si512(v, low), hi = _mm512_srli_epi16(v, 4);
                for (int t = 0; t < nt; t++) {
                    is[t] = dp16(is[t], lo, pair(xq[t] + 2 * p));
                    is[t] = dp16(is[t], hi, pair(xq[t] + 16 + 2 * p));
                }
            }
        }
        /* q4_1: the stored min; q4_0: -8 d; q8_0: none */
        const __m512 m =
            q8 ? _mm512_setzero_ps()
            : w->type == GQA_GGML_TYPE_Q4_1
                ? _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(const void *)(o + 32)))
                : _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
        for (int t = 0; t < nt; t++) {
            const int64_t xb = (t0 + t) * w->n_blocks + b;
            const __m512 s = _mm512_mul_ps(_mm512_mul_ps(d, _mm512_set1_ps(px->d[xb])),
                                           _mm512_cvtepi32_ps(is[t]));
            acc[t] = _mm512_add_ps(acc[t],
                                   _mm512_add_ps(s, _mm512_mul_ps(m, _mm512_set1_ps(px->s[xb]))));
        }
    }
    const int64_t left = w->rows - g * PACK_ROWS;
    const __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    for (int t = 0; t < nt; t++)
        _mm512_mask_storeu_ps(y + (t0 + t) * ldy + g * PACK_ROWS, mask, acc[t]);
}

void gqa_packed_rows_avx512(const packed_weight *w, const packed_x *px, int64_t g0, int64_t g1,
                            float *y, int64_t ldy)
{
    for (int64_t g = g0; g < g1; g++) {
        int64_t t = 0;
        for (; t + TOKENS <= px->n; t += TOKENS)
            group_tokens(w, px, g, t, TOKENS, y, ldy);
        switch (px->n - t) {
        case 3: group_tokens(w, px, g, t, 3, y, ldy); break;
        case 2: group_tokens(w, px, g, t, 2, y, ldy); break;
        case 1: group_tokens(w, px, g, t, 1, y, ldy); break;
        default: break;
        }
    }
}
