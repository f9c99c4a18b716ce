/* heads.c - the arithmetic of a change of KV heads, on f32 heads: which old
 * heads make a new one, mean / first / random / repeat, and the output-type
 * rules. Format-neutral: the GGUF converter and the Hugging Face one call it
 * with heads they have already dequantised. */
#include <math.h>
#include <string.h>

#include "convert/convert_internal.h"
#include "gqa_model.h"

gqa_status gqa_conv_check_heads(int32_t h, int32_t g0, int32_t g, gqa_convert_method method)
{
    if (h < 1 || g0 < 1 || h % g0 != 0)
        return gqa_fail(GQA_ERR_FORMAT,
                        "the model has %d query heads and %d KV heads; the KV "
                        "heads must divide the query heads",
                        (int)h, (int)g0);
    if (g < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "cannot convert to %d KV heads: at least 1 is needed",
                        (int)g);
    if (method == GQA_CONVERT_REPEAT) {
        if (g % g0 != 0 || h % g != 0)
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "cannot repeat to %d KV heads: the number must be a multiple of the "
                            "model's %d KV heads and divide its %d query heads (%d gives MHA)",
                            (int)g, (int)g0, (int)h, (int)h);
        return GQA_OK;
    }
    if (g > g0 || g0 % g != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "cannot convert to %d KV heads with %s: the number must divide the "
                        "model's %d KV heads (each new head pools consecutive old ones)%s",
                        (int)g, gqa_convert_method_name(method), (int)g0,
                        g > g0 && g % g0 == 0 ? "; method repeat adds heads" : "");
    return GQA_OK;
}

void gqa_conv_members(int32_t g0, int32_t g, gqa_convert_method method, int32_t j, int32_t *first,
                      int32_t *count)
{
    if (method == GQA_CONVERT_REPEAT) {
        *first = j / (g / g0);
        *count = 1;
        return;
    }
    const int32_t size = g0 / g;
    *first = j * size;
    *count = method == GQA_CONVERT_FIRST ? 1 : size;
}

/* splitmix64: a full-period generator with good mixing, the same on every
 * platform, so a seed names the same weights everywhere (up to libm's last
 * bit in log/cos, which rounding to the output type almost always hides). */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t gqa_conv_stream(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t s = seed;
    uint64_t x = splitmix64(&s);
    s = x ^ (a * 0xd1b54a32d192ed03ull);
    x = splitmix64(&s);
    s = x ^ (b * 0x8cb92ba72f3d8dd7ull);
    return splitmix64(&s);
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal values by Box-Muller, two per pair of uniforms. */
static void fill_normal(uint64_t *s, double scale, float *dst, int64_t n)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < n; i += 2) {
        const double u1 = 1.0 - uniform01(s); /* (0, 1]: log is finite */
        const double u2 = uniform01(s);
        const double r = sqrt(-2.0 * log(u1)) * scale;
        dst[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n)
            dst[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

void gqa_conv_head_f32(const gqa_conv_heads *c, const float *src, int32_t j, float *dst)
{
    const int64_t n = c->head_elems;
    if (c->method == GQA_CONVERT_RANDOM) {
        uint64_t s = gqa_conv_stream(c->seed, (uint64_t)j, 0x68656164u /* "head" */);
        fill_normal(&s, c->rms, dst, n);
        return;
    }
    int32_t first, count;
    gqa_conv_members(c->g0, c->g, c->method, j, &first, &count);
    const float *h0 = src + (size_t)first * (size_t)n;
    if (count == 1) {
        memcpy(dst, h0, (size_t)n * sizeof *dst);
        return;
    }
    /* The sum of a few floats is exact or nearly so in double, and the
     * quotient is rounded to float once: mean of k copies of x gives x back
     * exactly, which makes repeat-then-mean an exact round trip. */
    for (int64_t i = 0; i < n; i++) {
        double sum = (double)h0[i]; /* not 0.0 + ...: that would turn -0 into +0 */
        for (int32_t k = 1; k < count; k++)
            sum += (double)h0[(size_t)k * (size_t)n + (size_t)i];
        dst[i] = (float)(sum / (double)count);
    }
}

void gqa_conv_heads_f32(const gqa_conv_heads *c, const float *src, float *dst)
{
    for (int32_t j = 0; j < c->g; j++)
        gqa_conv_head_f32(c, src, j, dst + (size_t)j * (size_t)c->head_elems);
}

double gqa_conv_rms(const float *x, int64_t n)
{
    if (n <= 0)
        return 0.0;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    return sqrt(ss / (double)n);
}

int gqa_conv_writable(uint32_t t)
{
    switch (t) {
    case GQA_GGML_TYPE_F32:
    case GQA_GGML_TYPE_F16:
    case GQA_GGML_TYPE_BF16:
    case GQA_GGML_TYPE_Q8_0:
    case GQA_GGML_TYPE_Q4_0:
    case GQA_GGML_TYPE_Q4_1: return 1;
    default: return 0;
    }
}

uint32_t gqa_conv_out_type(gqa_convert_out_type t, uint32_t in_type, int32_t n_dims)
{
    uint32_t r;
    switch (t) {
    case GQA_CONVERT_F32: r = GQA_GGML_TYPE_F32; break;
    case GQA_CONVERT_F16: r = GQA_GGML_TYPE_F16; break;
    case GQA_CONVERT_BF16: r = GQA_GGML_TYPE_BF16; break;
    case GQA_CONVERT_Q8_0: r = GQA_GGML_TYPE_Q8_0; break;
    case GQA_CONVERT_Q4_0: r = GQA_GGML_TYPE_Q4_0; break;
    case GQA_CONVERT_Q4_1: r = GQA_GGML_TYPE_Q4_1; break;
    default: r = gqa_conv_writable(in_type) ? in_type : GQA_GGML_TYPE_F16; break;
    }
    /* a bias is added in f32 by every runtime and is tiny; block formats
     * would also need its length to be whole blocks */
    if (n_dims == 1 &&
        (r == GQA_GGML_TYPE_Q8_0 || r == GQA_GGML_TYPE_Q4_0 || r == GQA_GGML_TYPE_Q4_1))
        r = GQA_GGML_TYPE_F32;
    return r;
}

void gqa_convert_options_default(gqa_convert_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->method = GQA_CONVERT_MEAN;
    o->out_type = GQA_CONVERT_KEEP;
}

const char *gqa_convert_method_name(gqa_convert_method m)
{
    switch (m) {
    case GQA_CONVERT_MEAN: return "mean";
    case GQA_CONVERT_FIRST: return "first";
    case GQA_CONVERT_RANDOM: return "random";
    case GQA_CONVERT_REPEAT: return "repeat";
    }
    return "unknown";
}

const char *gqa_convert_out_type_name(gqa_convert_out_type t)
{
    switch (t) {
    case GQA_CONVERT_KEEP: return "keep";
    case GQA_CONVERT_F32: return "f32";
    case GQA_CONVERT_F16: return "f16";
    case GQA_CONVERT_BF16: return "bf16";
    case GQA_CONVERT_Q8_0: return "q8_0";
    case GQA_CONVERT_Q4_0: return "q4_0";
    case GQA_CONVERT_Q4_1: return "q4_1";
    }
    return "unknown";
}
