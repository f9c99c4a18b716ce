/* test_packed.c - the packed weight layout of the forward pass
 * (src/model/packed.h): re-packing, int16 activation quantisation and the
 * packed kernels.
 *
 * Random q4_0 / q4_1 / q8_0 matrices (random quants and f16 scales), rows
 * {1, 15, 16, 17, 33, 100} x cols {32, 96, 576} x tokens {1, 3, 4, 5, 9},
 * 1 and 2 threads:
 *  - every kernel (reference, and AVX-512 where the CPU has it) against the
 *    exact double product of the dequantised weights (gqa_dequantize_row) and
 *    the ORIGINAL f32 activations. Per row r the bound is
 *        sum_b sum_i |w_ri| * dx_b / 2  +  (cols + 8) * 2^-24 * S_r,
 *    the first term the int16 rounding of x (|x - dx xq| <= dx / 2 with
 *    dx = max|x_b| / 32767), the second f32 rounding of the scaled block sums
 *    (S_r = sum_i |w_ri x_i| + the same for the rounded x).
 *  - the AVX-512 kernel against the reference kernel on the same packed data
 *    and quantised x: equal to f32 rounding of the block sums.
 *  - rows of a padded last group are not written past the matrix (guards).
 *  - gqa_packed_matmul with 1 and 2 threads: bitwise equal.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "gqa_model.h"
#include "model/packed.h"
#include "test_util.h"

#define U24 (1.0 / 16777216.0)

static size_t block_bytes(uint32_t t)
{
    return t == GQA_GGML_TYPE_Q8_0 ? 34 : t == GQA_GGML_TYPE_Q4_1 ? 20 : 18;
}

/* Random GGUF-layout weights: quants uniform, scales in +-[0.001, 0.1]. */
static unsigned char *random_weights(tu_rng *r, uint32_t t, int64_t rows, int64_t cols)
{
    const size_t bb = block_bytes(t), n = (size_t)rows * (size_t)(cols / 32);
    unsigned char *w = tu_xmalloc(n * bb);
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = w + i * bb;
        for (size_t j = 0; j < bb; j++)
            b[j] = (unsigned char)tu_rng_int(r, 0, 255);
        uint16_t d =
            gqa_f32_to_f16(tu_rng_uniform(r, 0.001f, 0.1f) * (tu_rng_int(r, 0, 1) ? 1.0f : -1.0f));
        memcpy(b, &d, 2);
        if (t == GQA_GGML_TYPE_Q4_1) {
            uint16_t m = gqa_f32_to_f16(tu_rng_uniform(r, -0.5f, 0.5f));
            memcpy(b + 2, &m, 2);
        }
    }
    return w;
}

static void check_case(tu_rng *r, uint32_t t, int64_t rows, int64_t cols, int64_t n)
{
    unsigned char *w = random_weights(r, t, rows, cols);
    float *x = tu_xmalloc((size_t)(n * cols) * sizeof(float));
    tu_fill_uniform(r, x, (size_t)(n * cols), -2.0f, 2.0f);
    /* a few outliers, as real activations have */
    for (int64_t i = 0; i < n * cols; i += 37)
        x[i] *= 20.0f;
    float *wd = tu_xmalloc((size_t)(rows * cols) * sizeof(float));
    const size_t row_bytes = (size_t)(cols / 32) * block_bytes(t);
    for (int64_t i = 0; i < rows; i++)
        gqa_dequantize_row(t, w + (size_t)i * row_bytes, cols, wd + i * cols);

    packed_weight pw;
    unsigned char *mem = gqa_aligned_alloc(gqa_pack_bytes(t, rows, cols));
    gqa_pack_weight(t, w, rows, cols, mem, &pw);
    void *xm = gqa_aligned_alloc(gqa_packed_x_bytes(n, cols));
    packed_x px;
    gqa_packed_x_init(&px, xm, n, cols);
    gqa_packed_x_quantize(&px, x);

    const int64_t guard = 16;
    const size_t ny = (size_t)(n * rows + guard);
    float *y_ref = tu_xmalloc(ny * sizeof(float)), *y = tu_xmalloc(ny * sizeof(float));
    for (size_t i = 0; i < ny; i++)
        y_ref[i] = y[i] = -7.0f;
    gqa_packed_rows_ref(&pw, &px, 0, pw.n_groups, y_ref, rows);

    int bad = 0;
    double worst = 0.0;
    for (int64_t tk = 0; tk < n; tk++)
        for (int64_t i = 0; i < rows; i++) {
            double exact = 0.0, bound_q = 0.0, s = 0.0;
            for (int64_t c = 0; c < cols; c++) {
                const double wv = wd[i * cols + c], xv = x[tk * cols + c];
                const double dx = px.d[tk * (cols / 32) + c / 32];
                exact += wv * xv;
                bound_q += fabs(wv) * dx / 2.0;
                s += fabs(wv * xv) + fabs(wv) * (fabs(xv) + dx);
            }
            const double bound = bound_q * 1.001 + (double)(cols + 8) * U24 * s;
            const double err = fabs((double)y_ref[tk * rows + i] - exact);
            if (bound > 0 && err / bound > worst)
                worst = err / bound;
            if (!(err <= bound) && bad++ < 3)
                printf("      %s %lldx%lld n %lld: token %lld row %lld got %.7g exact %.7g "
                       "bound %.3g\n",
                       gqa_gguf_type_name(t), (long long)rows, (long long)cols, (long long)n,
                       (long long)tk, (long long)i, (double)y_ref[tk * rows + i], exact, bound);
        }
    CHECK(bad == 0,
          "packed reference %s %lldx%lld, %lld tokens: within the int16 bound "
          "(worst %.2f of it)",
          gqa_gguf_type_name(t), (long long)rows, (long long)cols, (long long)n, worst);
    for (int64_t i = n * rows; i < (int64_t)ny; i++)
        CHECK(y_ref[i] == -7.0f, "reference wrote past the matrix");

#if defined(__x86_64__)
    if (gqa_set_kernel("avx512") == GQA_OK) {
        gqa_packed_rows_avx512(&pw, &px, 0, pw.n_groups, y, rows);
        tu_check ck;
        tu_check_begin(&ck, "avx512 packed == reference packed", 1e-6, 1e-5, 1, rows);
        tu_check_range(&ck, y, y_ref, 0, n * rows);
        CHECK(tu_check_ok(&ck), "avx512 %s %lldx%lld n %lld", gqa_gguf_type_name(t),
              (long long)rows, (long long)cols, (long long)n);
        if (!tu_check_ok(&ck))
            tu_check_report(&ck);
        for (int64_t i = n * rows; i < (int64_t)ny; i++)
            CHECK(y[i] == -7.0f, "avx512 wrote past the matrix");
        /* threads: bitwise */
        float *y1 = tu_xmalloc(ny * sizeof(float)), *y2 = tu_xmalloc(ny * sizeof(float));
        gqa_set_num_threads(1);
        gqa_packed_matmul(gqa_packed_kernel(), &pw, &px, y1);
        gqa_set_num_threads(2);
        gqa_packed_matmul(gqa_packed_kernel(), &pw, &px, y2);
        CHECK(memcmp(y1, y2, (size_t)(n * rows) * sizeof(float)) == 0,
              "1 and 2 threads bitwise equal (%s %lldx%lld)", gqa_gguf_type_name(t),
              (long long)rows, (long long)cols);
        free(y1), free(y2);
        gqa_set_kernel("scalar");
    }
#endif
    free(w), free(x), free(wd), free(y), free(y_ref);
    gqa_aligned_free(mem);
    gqa_aligned_free(xm);
}

int main(void)
{
    tu_rng r;
    tu_rng_seed(&r, 20261129);
    static const uint32_t types[] = {GQA_GGML_TYPE_Q4_0, GQA_GGML_TYPE_Q4_1, GQA_GGML_TYPE_Q8_0};
    static const int64_t rows[] = {1, 15, 16, 17, 33, 100}, cols[] = {32, 96, 576},
                         toks[] = {1, 3, 4, 5, 9};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < sizeof rows / sizeof rows[0]; b++)
            for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
                for (size_t d = 0; d < sizeof toks / sizeof toks[0]; d++)
                    check_case(&r, types[a], rows[b], cols[c], toks[d]);
    CHECK(gqa_pack_supported(GQA_GGML_TYPE_Q4_1) && !gqa_pack_supported(GQA_GGML_TYPE_F32),
          "packable types");
    CHECK(gqa_pack_bytes(GQA_GGML_TYPE_Q4_1, 17, 64) == 2 * 2 * 320, "packed size of 17 x 64");
    return tu_summary();
}
