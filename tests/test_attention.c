/* test_attention.c - every fast kernel set against the reference.
 *
 * The full cartesian product of the interesting values (8 head shapes x 7
 * head dims x 5 key lengths x 4 query lengths x 10 masks x 3 dtypes x 2
 * scales) is 67,200 cases and the reference is a naive double loop, so the
 * sweep is built instead as a pairwise covering array: every value of every
 * axis appears, and every PAIR of values of any two axes appears in at least
 * one case, among the cases whose reference work (sum over rows of visible
 * keys x H x d) fits SWEEP_BUDGET. A greedy pass picks the case covering the
 * most uncovered pairs (build_sweep() says how ties go). On top of it, a list of
 * explicit cases adds the realistic big shapes (decode with split-KV, long
 * causal prefill, whose reference is checked on sampled row blocks), odd head
 * dims, tile tails and large-magnitude scores that stress the online softmax.
 *
 * For each case the reference ("ref") runs once; each fast kernel set this
 * CPU supports then runs at 1 and 2 threads (3 as well for explicit cases
 * that are not sampled), with lse and (unless sampled) once more without,
 * into NaN-filled, guard-banded buffers. Sweep cases and the cheaper explicit
 * cases also check the reference itself against this file's own double loop,
 * so a bug shared by ref and the kernels cannot hide.
 *
 * In a sanitizer build (GQA_TEST_SANITIZED, set by tests/CMakeLists.txt) the
 * sampled cases run at 2 threads only: there they cost minutes, and the
 * 1-thread path of the same code is exercised by every other case.
 *
 * Usage: test_attention [--list] [CASE]   (CASE: run only that case number)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "test_util.h"

/* Tolerances: per element |got - ref| <= ATOL * vmax + RTOL * |ref|, where
 * vmax is the largest |v| of the case (1 for the [-1, 1) data, 8 for the
 * large-magnitude data: the output is a convex combination of V rows, so every
 * absolute error scales with it).
 *
 * The fast kernels round in float where the reference works in double; both
 * see exactly the same (f16/bf16-rounded) K/V, so the dtype adds nothing and
 * the same tolerance serves f32, f16 and bf16. What float costs:
 *  - scores: q*scale is rounded once, and a d-term dot product of |q|,|k| <= 1
 *    at scale 1/sqrt(d) has an absolute error of a few ulps of sqrt(d)/4, i.e.
 *    <~ 1e-6 for d <= 256. A score error e changes each weight by a relative
 *    e and the output by at most e * max|v - out| <= 2e.
 *  - exp: a few ulps relative on each weight, the same effect, ~1e-6.
 *  - the sums l and acc over up to 4096 keys: a random walk of rounding errors,
 *    ~sqrt(n) * 2^-24 relative ~ 4e-6, against outputs that are averages of
 *    many v (|out| ~ 1e-2 for long rows), hence an absolute term.
 * ATOL_OUT = 2e-5 leaves about 5x headroom over those; RTOL_OUT = 2e-4 covers
 * short rows (one or a few keys) where |out| ~ |v| and the relative rounding
 * of a few operations dominates. lse = m + log(l) is an absolute quantity:
 * the score error plus the relative error of l, same size as above, plus
 * the float rounding of lse itself (2^-24 relative), hence RTOL_LSE.
 * Measured (x86-64, scalar/AVX2/AVX-512): the worst error over the whole run
 * is below 0.02 of the out tolerance and 0.08 of the lse tolerance, as the
 * closing "worst error/tolerance" line prints.
 * The large-magnitude data keeps q and k small integers with scale 1, so
 * every score is an exact integer in float too (|s| < 2^24): those cases
 * stress the max/rescale logic with no extra rounding, and need no looser
 * tolerance either. */
#define ATOL_OUT 2e-5
#define RTOL_OUT 2e-4
#define ATOL_LSE 2e-5
#define RTOL_LSE 2e-5

/* The reference against this file's double loop: both accumulate in double,
 * so only their final rounding to float (2^-24 relative) separates them. */
#define ATOL_REF 1e-6
#define RTOL_REF 1e-6

/* Reference work (rows x visible keys x H x d) allowed per sweep case, and
 * the most for which an explicit case also runs the naive double loop. */
#define SWEEP_BUDGET ((int64_t)1 << 22)
#define NAIVE_BUDGET ((int64_t)1 << 24)

typedef enum data_kind {
    DATA_UNIFORM,    /* q, k, v uniform in [-1, 1) */
    DATA_LARGE,      /* q, k integers in [-8, 8], v uniform in [-8, 8); use scale 1 */
    DATA_LARGE_RAMP, /* as DATA_LARGE, q > 0 and k rising along the keys: the row max
                        moves up in every tile, so every tile rescales the state */
} data_kind;

static const char *const data_names[] = {"uniform", "large", "large-ramp"};

typedef struct attn_case {
    const char *label; /* explicit cases: why the case is here */
    int32_t H, G, d;
    int64_t n_q, n_kv, q_pos;
    int32_t causal, window;
    float scale;
    gqa_dtype dtype;
    data_kind data;
    int sample_rows;       /* compare only sampled row blocks (the reference is too slow for all) */
    int naive_check;       /* also check the reference against naive_attention() */
    const char *mask_name; /* sweep cases: which mask_kind */
} attn_case;

/* ------------------------------------------------------------ sweep -- */

static const int32_t sweep_shapes[][2] = {{1, 1}, {8, 8},  {8, 1},  {8, 2}, {32, 2},
                                          {9, 3}, {14, 2}, {32, 8}, {27, 1}};
static const int32_t sweep_dims[] = {8, 64, 80, 96, 128, 256, 37};
static const int64_t sweep_kv_lens[] = {1, 17, 113, 1000, 4096};
static const int64_t sweep_q_lens[] = {1, 7, 64, 512};
static const gqa_dtype sweep_dtypes[] = {GQA_F32, GQA_F16, GQA_BF16};
static const float sweep_scales[] = {0.0f, 0.3f};

/* Masks: causal flag, window and q_pos, as a function of n_q and n_kv. */
typedef enum mask_kind {
    MASK_FULL,         /* non-causal, q_pos 0 */
    MASK_FULL_OFFSET,  /* non-causal, q_pos n_kv/2 + 1 (must not change anything) */
    MASK_CAUSAL_BR,    /* causal, bottom-right: q_pos = n_kv - n_q */
    MASK_CAUSAL_TL,    /* causal, q_pos 0: early rows see few keys */
    MASK_CAUSAL_W1,    /* causal, window 1, bottom-right */
    MASK_CAUSAL_WMID,  /* causal, window n_kv/3 + 2, bottom-right */
    MASK_CAUSAL_WBIG,  /* causal, window n_kv + 9 (wider than the keys), q_pos 0 */
    MASK_WIN_PAST_END, /* non-causal, window n_kv/4 + 3, rows run past the last key */
    MASK_WIN_W1,       /* non-causal, window 1, q_pos 0: rows past n_kv see nothing */
    MASK_WIN_WBIG,     /* non-causal, window n_kv + 9, q_pos n_kv/2 */
    MASK_COUNT
} mask_kind;

static const char *const mask_names[] = {
    "full",        "full+q_pos",  "causal-br",    "causal-tl", "causal-w1",
    "causal-wmid", "causal-wbig", "win-past-end", "win-w1",    "win-wbig",
};

#define N_ELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))

enum { AX_SHAPE, AX_DIM, AX_NKV, AX_NQ, AX_MASK, AX_DTYPE, AX_SCALE, N_AXES };

static const int axis_len[N_AXES] = {
    N_ELEMS(sweep_shapes), N_ELEMS(sweep_dims), N_ELEMS(sweep_kv_lens),
    N_ELEMS(sweep_q_lens), MASK_COUNT,          N_ELEMS(sweep_dtypes),
    N_ELEMS(sweep_scales),
};

/* Set causal, window and q_pos for a mask; 0 if the mask is impossible here. */
static int apply_mask(attn_case *c, int kind)
{
    int64_t n_q = c->n_q, n_kv = c->n_kv;
    c->causal = 0;
    c->window = 0;
    c->q_pos = 0;
    switch ((mask_kind)kind) {
    case MASK_FULL: break;
    case MASK_FULL_OFFSET: c->q_pos = n_kv / 2 + 1; break;
    case MASK_CAUSAL_BR:
        c->causal = 1;
        c->q_pos = n_kv - n_q;
        break;
    case MASK_CAUSAL_TL: c->causal = 1; break;
    case MASK_CAUSAL_W1:
        c->causal = 1;
        c->window = 1;
        c->q_pos = n_kv - n_q;
        break;
    case MASK_CAUSAL_WMID:
        c->causal = 1;
        c->window = (int32_t)(n_kv / 3 + 2);
        c->q_pos = n_kv - n_q;
        break;
    case MASK_CAUSAL_WBIG:
        c->causal = 1;
        c->window = (int32_t)(n_kv + 9);
        break;
    case MASK_WIN_PAST_END:
        c->window = (int32_t)(n_kv / 4 + 3);
        c->q_pos = n_kv > n_q / 2 ? n_kv - n_q / 2 : 0;
        break;
    case MASK_WIN_W1: c->window = 1; break;
    case MASK_WIN_WBIG:
        c->window = (int32_t)(n_kv + 9);
        c->q_pos = n_kv / 2;
        break;
    case MASK_COUNT: return 0;
    }
    return !c->causal || (c->q_pos >= 0 && c->q_pos + n_q <= n_kv);
}

static gqa_attn_desc desc_of(const attn_case *c)
{
    gqa_attn_desc desc = {c->H, c->G, c->d, c->scale, c->causal, c->window, c->dtype};
    return desc;
}

static int64_t case_cost(const attn_case *c)
{
    gqa_attn_desc desc = desc_of(c);
    return tu_visible_total(&desc, c->n_q, c->n_kv, c->q_pos) * c->H * c->d;
}

static int case_from_values(const int *val, attn_case *c)
{
    memset(c, 0, sizeof *c);
    c->H = sweep_shapes[val[AX_SHAPE]][0];
    c->G = sweep_shapes[val[AX_SHAPE]][1];
    c->d = sweep_dims[val[AX_DIM]];
    c->n_kv = sweep_kv_lens[val[AX_NKV]];
    c->n_q = sweep_q_lens[val[AX_NQ]];
    c->dtype = sweep_dtypes[val[AX_DTYPE]];
    c->scale = sweep_scales[val[AX_SCALE]];
    c->data = DATA_UNIFORM;
    c->naive_check = 1;
    c->mask_name = mask_names[val[AX_MASK]];
    return apply_mask(c, val[AX_MASK]);
}

typedef struct sweep_info {
    int n_pairs, n_coverable, n_candidates;
} sweep_info;

/* The pairwise covering array described at the top of the file. */
static attn_case *build_sweep(int *n_cases, sweep_info *info)
{
    int pair_off[N_AXES][N_AXES], n_pairs = 0;
    for (int a = 0; a < N_AXES; a++)
        for (int b = a + 1; b < N_AXES; b++) {
            pair_off[a][b] = n_pairs;
            n_pairs += axis_len[a] * axis_len[b];
        }
    int64_t n_all = 1;
    for (int a = 0; a < N_AXES; a++)
        n_all *= axis_len[a];

    unsigned char *vals = tu_xmalloc((size_t)n_all * N_AXES);
    int64_t *cost = tu_xmalloc((size_t)n_all * sizeof *cost);
    unsigned char *used = tu_xmalloc((size_t)n_all);
    unsigned char *coverable = calloc((size_t)n_pairs, 1);
    unsigned char *covered = calloc((size_t)n_pairs, 1);
    int *pairs = tu_xmalloc((size_t)n_all * (N_AXES * (N_AXES - 1) / 2) * sizeof *pairs);
    if (!coverable || !covered) {
        fprintf(stderr, "out of memory building the sweep\n");
        exit(2);
    }
    const int pairs_per = N_AXES * (N_AXES - 1) / 2;

    /* Candidates: every feasible combination within the budget. */
    int64_t n_cand = 0;
    for (int64_t idx = 0; idx < n_all; idx++) {
        int val[N_AXES];
        int64_t rest = idx;
        for (int a = 0; a < N_AXES; a++) {
            val[a] = (int)(rest % axis_len[a]);
            rest /= axis_len[a];
        }
        attn_case c;
        if (!case_from_values(val, &c))
            continue;
        int64_t w = case_cost(&c);
        if (w > SWEEP_BUDGET)
            continue;
        int *pp = &pairs[n_cand * pairs_per];
        for (int a = 0, k = 0; a < N_AXES; a++)
            for (int b = a + 1; b < N_AXES; b++, k++) {
                pp[k] = pair_off[a][b] + val[a] * axis_len[b] + val[b];
                coverable[pp[k]] = 1;
            }
        for (int a = 0; a < N_AXES; a++)
            vals[n_cand * N_AXES + a] = (unsigned char)val[a];
        cost[n_cand] = w;
        used[n_cand] = 0;
        n_cand++;
    }
    int n_coverable = 0;
    for (int p = 0; p < n_pairs; p++)
        n_coverable += coverable[p];

    /* Greedy: the candidate covering the most uncovered pairs; on a tie the
     * one whose values have been used least so far (so that no value, f32 or
     * n_kv = 1 say, wins every tie), then the cheapest. */
    int cap = 64, n_out = 0, n_left = n_coverable;
    int uses[N_AXES][16] = {{0}};
    attn_case *out = tu_xmalloc((size_t)cap * sizeof *out);
    while (n_left > 0) {
        int64_t best = -1;
        int best_gain = 0, best_uses = 0;
        for (int64_t i = 0; i < n_cand; i++) {
            if (used[i])
                continue;
            const int *pp = &pairs[i * pairs_per];
            int gain = 0;
            for (int k = 0; k < pairs_per; k++)
                gain += !covered[pp[k]];
            if (gain == 0 || gain < best_gain)
                continue;
            int u = 0;
            for (int a = 0; a < N_AXES; a++)
                u += uses[a][vals[i * N_AXES + a]];
            if (gain > best_gain || u < best_uses || (u == best_uses && cost[i] < cost[best])) {
                best = i;
                best_gain = gain;
                best_uses = u;
            }
        }
        if (best < 0)
            break;
        used[best] = 1;
        for (int k = 0; k < pairs_per; k++)
            covered[pairs[best * pairs_per + k]] = 1;
        n_left -= best_gain;
        if (n_out == cap) {
            cap *= 2;
            attn_case *grown = realloc(out, (size_t)cap * sizeof *out);
            if (!grown) {
                fprintf(stderr, "out of memory building the sweep\n");
                exit(2);
            }
            out = grown;
        }
        int val[N_AXES];
        for (int a = 0; a < N_AXES; a++) {
            val[a] = vals[best * N_AXES + a];
            uses[a][val[a]]++;
        }
        case_from_values(val, &out[n_out++]);
    }
    info->n_pairs = n_pairs;
    info->n_coverable = n_coverable;
    info->n_candidates = (int)n_cand;
    free(vals);
    free(cost);
    free(used);
    free(coverable);
    free(covered);
    free(pairs);
    *n_cases = n_out;
    return out;
}

/* --------------------------------------------------- explicit cases -- */

/* Columns: label; H, G, d; n_q, n_kv, q_pos; causal, window; scale; dtype;
 * data; sample_rows (naive_check and mask_name are filled in at run time). */
/* clang-format off */
static const attn_case explicit_cases[] = {
    /* Llama-3-8B-like layer (H 32, G 8, d 128) at 4k context. */
    {"decode, causal, f16",
        32, 8, 128, 1, 4096, 4095, 1, 0, 0.0f, GQA_F16, DATA_UNIFORM, 0, 0, NULL},
    {"decode, non-causal, bf16",
        32, 8, 128, 1, 4096, 0, 0, 0, 0.0f, GQA_BF16, DATA_UNIFORM, 0, 0, NULL},
    {"decode, window 1000",
        32, 8, 128, 1, 4096, 4095, 0, 1000, 0.0f, GQA_F32, DATA_UNIFORM, 0, 0, NULL},
    {"prefill 512, causal bottom-right, f16 (sampled rows)",
        32, 8, 128, 512, 4096, 3584, 1, 0, 0.0f, GQA_F16, DATA_UNIFORM, 1, 0, NULL},
    /* Other shapes and masks. */
    {"prefill 512, causal from 0 (square), f32 (sampled rows)",
        8, 2, 64, 512, 512, 0, 1, 0, 0.0f, GQA_F32, DATA_UNIFORM, 1, 0, NULL},
    {"prefill, causal window 256, bf16",
        14, 2, 80, 64, 1000, 936, 1, 256, 0.0f, GQA_BF16, DATA_UNIFORM, 0, 0, NULL},
    {"MQA, non-causal, q_pos > 0",
        27, 1, 96, 64, 113, 40, 0, 0, 0.0f, GQA_F32, DATA_UNIFORM, 0, 0, NULL},
    {"H/G 3, odd d, causal bottom-right",
        9, 3, 37, 7, 1000, 993, 1, 0, 0.0f, GQA_F16, DATA_UNIFORM, 0, 0, NULL},
    {"MHA d 256, causal window wider than the keys",
        8, 8, 256, 7, 4096, 4089, 1, 5000, 0.0f, GQA_F32, DATA_UNIFORM, 0, 0, NULL},
    {"non-causal window 16, rows past the last key see nothing",
        32, 8, 128, 64, 4096, 4090, 0, 16, 0.0f, GQA_BF16, DATA_UNIFORM, 0, 0, NULL},
    {"tile tails: n_q 65, n_kv 97",
        8, 2, 64, 65, 97, 32, 1, 0, 0.0f, GQA_F32, DATA_UNIFORM, 0, 0, NULL},
    {"d 1, n_q 129 non-causal",
        4, 2, 1, 129, 70, 0, 0, 0, 0.0f, GQA_F32, DATA_UNIFORM, 0, 0, NULL},
    {"d 3, H/G 2, causal",
        6, 3, 3, 7, 17, 10, 1, 0, 0.0f, GQA_F16, DATA_UNIFORM, 0, 0, NULL},
    {"d 255, MQA decode",
        4, 1, 255, 1, 1000, 0, 0, 0, 0.0f, GQA_BF16, DATA_UNIFORM, 0, 0, NULL},
    {"d 256, MQA split decode",
        32, 1, 256, 1, 4096, 4095, 1, 0, 0.0f, GQA_F16, DATA_UNIFORM, 0, 0, NULL},
    {"H/G 7, explicit scale",
        14, 2, 64, 7, 300, 293, 1, 0, 0.05f, GQA_F32, DATA_UNIFORM, 0, 0, NULL},
    /* Large-magnitude scores (scale 1, |q|,|k| <= 8): |s| reaches hundreds, far
     * beyond what exp() survives without subtracting the running max. */
    {"large scores, causal prefill",
        8, 2, 64, 64, 1000, 936, 1, 0, 1.0f, GQA_F32, DATA_LARGE, 0, 0, NULL},
    {"large scores, MQA split decode",
        32, 1, 128, 1, 4096, 4095, 1, 0, 1.0f, GQA_F16, DATA_LARGE, 0, 0, NULL},
    {"large scores rising along the keys, causal",
        4, 1, 8, 7, 4096, 4089, 1, 0, 1.0f, GQA_BF16, DATA_LARGE_RAMP, 0, 0, NULL},
    {"large scores rising along the keys, decode d 128",
        8, 2, 128, 1, 1000, 0, 0, 0, 1.0f, GQA_F32, DATA_LARGE_RAMP, 0, 0, NULL},
    {"large scores, windowed non-causal",
        9, 3, 96, 64, 113, 80, 0, 40, 1.0f, GQA_F16, DATA_LARGE, 0, 0, NULL},
    /* q8_0 K/V (GGML blocks; d % 32 == 0): decode, prefill, MQA, window. */
    {"q8_0 decode, causal",
        32, 8, 128, 1, 4096, 4095, 1, 0, 0.0f, GQA_Q8_0, DATA_UNIFORM, 0, 0, NULL},
    {"q8_0 prefill, causal bottom-right, H/G 3",
        9, 3, 64, 64, 1000, 936, 1, 0, 0.0f, GQA_Q8_0, DATA_UNIFORM, 0, 0, NULL},
    {"q8_0 MQA split decode, d 96",
        27, 1, 96, 1, 4096, 4095, 1, 0, 0.0f, GQA_Q8_0, DATA_UNIFORM, 0, 0, NULL},
    {"q8_0 non-causal window, d 32, MHA",
        8, 8, 32, 7, 113, 50, 0, 16, 0.0f, GQA_Q8_0, DATA_UNIFORM, 0, 0, NULL},
    {"q8_0 large scores, d 256",
        8, 2, 256, 7, 1000, 993, 1, 0, 1.0f, GQA_Q8_0, DATA_LARGE, 0, 0, NULL},
};
/* clang-format on */

/* ------------------------------------------------------------- data -- */

typedef struct case_data {
    float *q;
    void *k, *v;
    double vmax;
} case_data;

static uint64_t case_seed(int case_no)
{
    return (uint64_t)(case_no + 1) * 0x9e3779b97f4a7c15ull ^ 0x6a09e667f3bcc909ull;
}

static void make_data(const attn_case *c, uint64_t seed, case_data *cd)
{
    size_t nq = (size_t)(c->n_q * c->H * c->d), nkv = (size_t)(c->n_kv * c->G * c->d);
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    float *kf = tu_xmalloc(nkv * sizeof(float)), *vf = tu_xmalloc(nkv * sizeof(float));
    cd->q = tu_xmalloc((nq ? nq : 1) * sizeof(float));
    cd->vmax = 1.0;
    switch (c->data) {
    case DATA_UNIFORM:
        tu_fill_uniform(&rng, cd->q, nq, -1.0f, 1.0f);
        tu_fill_uniform(&rng, kf, nkv, -1.0f, 1.0f);
        tu_fill_uniform(&rng, vf, nkv, -1.0f, 1.0f);
        break;
    case DATA_LARGE:
        for (size_t i = 0; i < nq; i++)
            cd->q[i] = (float)tu_rng_int(&rng, -8, 8);
        for (size_t i = 0; i < nkv; i++)
            kf[i] = (float)tu_rng_int(&rng, -8, 8);
        tu_fill_uniform(&rng, vf, nkv, -8.0f, 8.0f);
        cd->vmax = 8.0;
        break;
    case DATA_LARGE_RAMP:
        for (size_t i = 0; i < nq; i++)
            cd->q[i] = (float)tu_rng_int(&rng, 1, 8);
        for (int64_t j = 0; j < c->n_kv; j++) {
            int trend = c->n_kv > 1 ? (int)(-8 + (16 * j) / (c->n_kv - 1)) : 0;
            for (int64_t e = 0; e < (int64_t)c->G * c->d; e++) {
                int x = trend + tu_rng_int(&rng, -1, 1);
                kf[j * c->G * c->d + e] = (float)(x < -8 ? -8 : x > 8 ? 8 : x);
            }
        }
        tu_fill_uniform(&rng, vf, nkv, -8.0f, 8.0f);
        cd->vmax = 8.0;
        break;
    }
    cd->k = tu_xmalloc(tu_bytes(c->dtype, nkv));
    cd->v = tu_xmalloc(tu_bytes(c->dtype, nkv));
    tu_encode(c->dtype, kf, cd->k, nkv);
    tu_encode(c->dtype, vf, cd->v, nkv);
    free(kf);
    free(vf);
}

static void free_data(case_data *cd)
{
    free(cd->q);
    free(cd->k);
    free(cd->v);
}

/* ------------------------------------------------ naive double loop -- */

/* Rows r0..r1-1, written from the documented semantics only: it shares no
 * code with the library beyond the f16/bf16 decoders. */
static void naive_attention(const attn_case *c, const case_data *cd, int64_t r0, int64_t r1,
                            float *out, float *lse, double *scores)
{
    gqa_attn_desc desc = desc_of(c);
    double scale = tu_effective_scale(&desc);
    int64_t H = c->H, d = c->d, group = c->H / c->G;
    double acc[256]; /* d <= 256 (gqa.h) */
    for (int64_t i = r0; i < r1; i++) {
        int64_t lo, hi;
        tu_visible_keys(&desc, c->n_kv, c->q_pos + i, &lo, &hi);
        for (int64_t h = 0; h < H; h++) {
            const float *qr = cd->q + (i * H + h) * d;
            float *o = out + (i * H + h) * d;
            int64_t g = h / group;
            if (hi < lo) {
                for (int64_t t = 0; t < d; t++)
                    o[t] = 0.0f;
                lse[i * H + h] = -INFINITY;
                continue;
            }
            double m = -(double)INFINITY;
            for (int64_t j = lo; j <= hi; j++) {
                double s = 0.0;
                size_t base = (size_t)((j * c->G + g) * d);
                for (int64_t t = 0; t < d; t++)
                    s += (double)qr[t] * tu_decode(c->dtype, cd->k, base + (size_t)t);
                s *= scale;
                scores[j - lo] = s;
                m = s > m ? s : m;
            }
            double l = 0.0;
            for (int64_t t = 0; t < d; t++)
                acc[t] = 0.0;
            for (int64_t j = lo; j <= hi; j++) {
                double p = exp(scores[j - lo] - m);
                size_t base = (size_t)((j * c->G + g) * d);
                l += p;
                for (int64_t t = 0; t < d; t++)
                    acc[t] += p * tu_decode(c->dtype, cd->v, base + (size_t)t);
            }
            for (int64_t t = 0; t < d; t++)
                o[t] = (float)(acc[t] / l);
            lse[i * H + h] = (float)(m + log(l));
        }
    }
}

/* ------------------------------------------------------------- runs -- */

typedef struct row_range {
    int64_t r0, r1;
} row_range;

/* All rows, or (sample_rows) 24 rows: the first and last four, and eight
 * across each of the 64-row tile boundaries at 64 and n_q/2. */
static int row_ranges(const attn_case *c, row_range *r)
{
    if (!c->sample_rows) {
        r[0].r0 = 0;
        r[0].r1 = c->n_q;
        return 1;
    }
    const int64_t starts[4] = {0, 60, c->n_q / 2 - 4, c->n_q - 4};
    const int64_t lens[4] = {4, 8, 8, 4};
    int n = 0;
    for (int i = 0; i < 4; i++) {
        int64_t a = starts[i] < 0 ? 0 : starts[i], b = starts[i] + lens[i];
        b = b > c->n_q ? c->n_q : b;
        if (n > 0 && a <= r[n - 1].r1) {
            r[n - 1].r1 = b > r[n - 1].r1 ? b : r[n - 1].r1;
        } else if (a < b) {
            r[n].r0 = a;
            r[n].r1 = b;
            n++;
        }
    }
    return n;
}

typedef struct run_stats {
    int passed, failed;
    double worst_out[8], worst_lse[8]; /* error / tolerance, per fast kernel set */
    double worst_ref;                  /* reference vs naive */
} run_stats;

static void describe(const attn_case *c, int case_no)
{
    printf("  case %d%s%s%s%s: H=%d G=%d d=%d n_q=%lld n_kv=%lld q_pos=%lld causal=%d window=%d "
           "scale=%g dtype=%s data=%s seed=%#llx\n",
           case_no, c->label ? " " : "", c->label ? c->label : "", c->mask_name ? " mask " : "",
           c->mask_name ? c->mask_name : "", (int)c->H, (int)c->G, (int)c->d, (long long)c->n_q,
           (long long)c->n_kv, (long long)c->q_pos, (int)c->causal, (int)c->window,
           (double)c->scale, gqa_dtype_name(c->dtype), data_names[c->data],
           (unsigned long long)case_seed(case_no));
}

/* Rows outside the sampled blocks are not compared; they must at least be
 * finite (zero for rows that see no key). */
static int64_t unchecked_rows_bad(const attn_case *c, const float *out, const float *lse,
                                  const row_range *rr, int n_rr)
{
    gqa_attn_desc desc = desc_of(c);
    int64_t bad = 0, hd = (int64_t)c->H * c->d;
    for (int64_t i = 0; i < c->n_q; i++) {
        int in = 0;
        for (int r = 0; r < n_rr; r++)
            in |= i >= rr[r].r0 && i < rr[r].r1;
        if (in)
            continue;
        int64_t lo, hi;
        tu_visible_keys(&desc, c->n_kv, c->q_pos + i, &lo, &hi);
        for (int64_t e = 0; e < hd; e++)
            bad += hi < lo ? out[i * hd + e] != 0.0f : !isfinite(out[i * hd + e]);
        for (int64_t h = 0; lse && h < c->H; h++)
            bad += hi < lo ? !(isinf(lse[i * c->H + h]) && lse[i * c->H + h] < 0)
                           : !isfinite(lse[i * c->H + h]);
    }
    return bad;
}

/* One fast run: kernel set `ki`, `threads` threads, with or without lse. */
static void run_fast(const attn_case *c, int case_no, const case_data *cd, int ki, int threads,
                     int with_lse, const float *ref_out, const float *ref_lse, const row_range *rr,
                     int n_rr, tu_guarded *out, tu_guarded *lse, run_stats *st)
{
    gqa_attn_desc desc = desc_of(c);
    int64_t hd = (int64_t)c->H * c->d;
    tu_guarded_fill(out, NAN);
    tu_guarded_fill(lse, NAN);
    gqa_set_num_threads(threads);
    gqa_status s = gqa_attention(&desc, c->n_q, c->n_kv, c->q_pos, cd->q, cd->k, cd->v, out->p,
                                 with_lse ? lse->p : NULL);
    if (s != GQA_OK) {
        printf("FAIL [%s, %d threads%s] gqa_attention returned %s: %s\n", tu_fast_kernels[ki],
               threads, with_lse ? "" : ", lse NULL", gqa_status_string(s), gqa_last_error());
        describe(c, case_no);
        st->failed++;
        return;
    }
    tu_check co, cl;
    tu_check_begin(&co, "out", ATOL_OUT * cd->vmax, RTOL_OUT, c->H, c->d);
    tu_check_begin(&cl, "lse", ATOL_LSE, RTOL_LSE, c->H, 1);
    for (int r = 0; r < n_rr; r++) {
        tu_check_range(&co, out->p, ref_out, rr[r].r0 * hd, rr[r].r1 * hd);
        if (with_lse)
            tu_check_range(&cl, lse->p, ref_lse, rr[r].r0 * c->H, rr[r].r1 * c->H);
    }
    int guards = tu_guarded_intact(out) && tu_guarded_intact(lse);
    int lse_untouched = 1;
    for (size_t i = 0; !with_lse && i < lse->n; i++)
        lse_untouched &= isnan(lse->p[i]);
    int64_t unchecked_bad =
        c->sample_rows ? unchecked_rows_bad(c, out->p, with_lse ? lse->p : NULL, rr, n_rr) : 0;

    double eo = co.max_excess, el = cl.max_excess;
    st->worst_out[ki] = eo > st->worst_out[ki] ? eo : st->worst_out[ki];
    st->worst_lse[ki] = el > st->worst_lse[ki] ? el : st->worst_lse[ki];
    if (tu_check_ok(&co) && tu_check_ok(&cl) && guards && lse_untouched && !unchecked_bad) {
        st->passed++;
        return;
    }
    st->failed++;
    printf("FAIL [%s, %d threads%s]\n", tu_fast_kernels[ki], threads, with_lse ? "" : ", lse NULL");
    describe(c, case_no);
    if (!tu_check_ok(&co))
        tu_check_report(&co);
    if (!tu_check_ok(&cl))
        tu_check_report(&cl);
    if (!guards)
        printf("    wrote outside out[n_q*H*d] or lse[n_q*H] (guard band changed)\n");
    if (!lse_untouched)
        printf("    wrote to an lse buffer it was not given\n");
    if (unchecked_bad)
        printf("    %lld non-finite (or, for rows seeing no key, non-zero) values in the "
               "rows outside the sampled blocks\n",
               (long long)unchecked_bad);
}

static int verbose; /* print the time of each step (set when one case is run) */

static void run_case(const attn_case *c, int case_no, const int *threads, int n_threads,
                     run_stats *st)
{
    gqa_attn_desc desc = desc_of(c);
    int64_t hd = (int64_t)c->H * c->d;
    size_t n_out = (size_t)(c->n_q * hd), n_lse = (size_t)(c->n_q * c->H);
    case_data cd;
    make_data(c, case_seed(case_no), &cd);
    row_range rr[4];
    int n_rr = row_ranges(c, rr);

    /* The reference, on the compared rows only: query rows are independent,
     * so a block of rows is a call with q_pos moved to its first row. */
    float *ref_out = tu_xmalloc((n_out ? n_out : 1) * sizeof(float));
    float *ref_lse = tu_xmalloc((n_lse ? n_lse : 1) * sizeof(float));
    if (tu_select_kernel("ref") != 1) {
        st->failed++;
        goto done;
    }
    gqa_set_num_threads(2);
    double t_step = tu_seconds();
    for (int r = 0; r < n_rr; r++) {
        int64_t r0 = rr[r].r0;
        gqa_status s = gqa_attention(&desc, rr[r].r1 - r0, c->n_kv, c->q_pos + r0, cd.q + r0 * hd,
                                     cd.k, cd.v, ref_out + r0 * hd, ref_lse + r0 * c->H);
        if (s != GQA_OK) {
            printf("FAIL [ref] gqa_attention returned %s: %s\n", gqa_status_string(s),
                   gqa_last_error());
            describe(c, case_no);
            st->failed++;
            goto done;
        }
    }

    if (verbose)
        printf("    ref: %.3f s\n", tu_seconds() - t_step);
    if (c->naive_check) {
        float *nv_out = tu_xmalloc((n_out ? n_out : 1) * sizeof(float));
        float *nv_lse = tu_xmalloc((n_lse ? n_lse : 1) * sizeof(float));
        double *scores = tu_xmalloc((size_t)c->n_kv * sizeof(double));
        tu_check co, cl;
        tu_check_begin(&co, "ref out vs naive", ATOL_REF * cd.vmax, RTOL_REF, c->H, c->d);
        tu_check_begin(&cl, "ref lse vs naive", ATOL_REF, RTOL_REF, c->H, 1);
        for (int r = 0; r < n_rr; r++) {
            naive_attention(c, &cd, rr[r].r0, rr[r].r1, nv_out, nv_lse, scores);
            tu_check_range(&co, ref_out, nv_out, rr[r].r0 * hd, rr[r].r1 * hd);
            tu_check_range(&cl, ref_lse, nv_lse, rr[r].r0 * c->H, rr[r].r1 * c->H);
        }
        double e = co.max_excess > cl.max_excess ? co.max_excess : cl.max_excess;
        st->worst_ref = e > st->worst_ref ? e : st->worst_ref;
        if (tu_check_ok(&co) && tu_check_ok(&cl)) {
            st->passed++;
        } else {
            st->failed++;
            printf("FAIL [ref vs this test's double loop]\n");
            describe(c, case_no);
            if (!tu_check_ok(&co))
                tu_check_report(&co);
            if (!tu_check_ok(&cl))
                tu_check_report(&cl);
        }
        free(nv_out);
        free(nv_lse);
        free(scores);
    }

    tu_guarded out, lse;
    tu_guarded_alloc(&out, n_out);
    tu_guarded_alloc(&lse, n_lse);
    for (int ki = 0; ki < tu_n_fast_kernels; ki++) {
        int sel = tu_select_kernel(tu_fast_kernels[ki]);
        if (sel < 0)
            st->failed++;
        if (sel != 1)
            continue;
        for (int t = 0; t < n_threads; t++) {
            t_step = tu_seconds();
            run_fast(c, case_no, &cd, ki, threads[t], 1, ref_out, ref_lse, rr, n_rr, &out, &lse,
                     st);
            if (verbose)
                printf("    %s, %d threads: %.3f s\n", tu_fast_kernels[ki], threads[t],
                       tu_seconds() - t_step);
        }
        if (!c->sample_rows) /* the sampled cases are the slow ones: skip the extra run */
            run_fast(c, case_no, &cd, ki, 2, 0, ref_out, ref_lse, rr, n_rr, &out, &lse, st);
    }
    tu_guarded_free(&out);
    tu_guarded_free(&lse);
done:
    free(ref_out);
    free(ref_lse);
    free_data(&cd);
}

int main(int argc, char **argv)
{
    int only = -1, list = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0)
            list = 1;
        else
            only = atoi(argv[i]);
    }
    verbose = only >= 0;
    double t0 = tu_seconds();
    printf("test_attention: default kernel set \"%s\", %d threads by default\n", gqa_kernel_name(),
           gqa_get_num_threads());

    int n_sweep;
    sweep_info info;
    attn_case *sweep = build_sweep(&n_sweep, &info);
    int n_explicit = N_ELEMS(explicit_cases), n_cases = n_sweep + n_explicit;
    printf("sweep: %d pairwise cases (of %d candidates within %lld multiply-adds) cover %d of "
           "%d value pairs (%d pairs need more work than the budget); %d explicit cases "
           "(built in %.2f s)\n",
           n_sweep, info.n_candidates, (long long)SWEEP_BUDGET, info.n_coverable, info.n_pairs,
           info.n_pairs - info.n_coverable, n_explicit, tu_seconds() - t0);

    static const int sweep_threads[] = {1, 2}, explicit_threads[] = {1, 2, 3};
#ifdef GQA_TEST_SANITIZED
    static const int sampled_threads[] = {2};
#else
    static const int sampled_threads[] = {1, 2};
#endif
    run_stats st;
    memset(&st, 0, sizeof st);
    for (int n = 0; n < n_cases; n++) {
        attn_case ec;
        const attn_case *c = &ec;
        if (n < n_sweep) {
            c = &sweep[n];
        } else {
            ec = explicit_cases[n - n_sweep];
            ec.naive_check = !ec.sample_rows && case_cost(&ec) <= NAIVE_BUDGET;
        }
        if (list) {
            describe(c, n);
            continue;
        }
        if (only >= 0 && n != only)
            continue;
        double tc = tu_seconds();
        if (c->sample_rows)
            run_case(c, n, sampled_threads, N_ELEMS(sampled_threads), &st);
        else if (n < n_sweep)
            run_case(c, n, sweep_threads, N_ELEMS(sweep_threads), &st);
        else
            run_case(c, n, explicit_threads, N_ELEMS(explicit_threads), &st);
        if (n >= n_sweep || only >= 0)
            printf("  %-62s %6.2f s\n", c->label ? c->label : "(sweep case)", tu_seconds() - tc);
    }
    free(sweep);
    if (list)
        return 0;

    printf("worst error/tolerance: ref vs naive %.3g", st.worst_ref);
    for (int ki = 0; ki < tu_n_fast_kernels; ki++)
        if (st.worst_out[ki] > 0.0 || st.worst_lse[ki] > 0.0)
            printf("; %s out %.3g lse %.3g", tu_fast_kernels[ki], st.worst_out[ki],
                   st.worst_lse[ki]);
    printf("\ntotal %.1f s\n", tu_seconds() - t0);
    printf("%d passed, %d failed\n", st.passed, st.failed);
    return st.failed ? 1 : 0;
}
