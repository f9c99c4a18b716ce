/* sampler.c - the token sampler (include/gqa_sampler.h, docs/sampling.md).
 *
 * One call: copy the logits into scratch (NaN -> -inf, +inf -> FLT_MAX),
 * apply the penalties to the tokens of the repetition window only (not a
 * pass over the vocabulary), then:
 *  - greedy: one argmax pass;
 *  - top-k: the k best tokens - a k-entry heap for small k (a logit enters
 *    only when it beats the heap's worst, so the scan is O(V) in practice),
 *    quickselect for large k - and their weights;
 *  - no top-k: weights for the whole vocabulary, then only the tokens above
 *    a threshold are gathered: the min-p bound, or for top-p a falling ladder
 *    stopped as soon as the gathered mass reaches top_p.
 * The nucleus is then found by a weighted quickselect (expected O(n), no
 * sort), and one uniform number is drawn against the kept weights.
 *
 * Bitwise reproducibility across platforms rests on three things: our own
 * generator, our own exp (IEEE +, -, * and bit operations only, exactly
 * rounded everywhere in the default rounding mode, unlike libm's exp), and
 * every sum and selection done in a fixed order. Contracting a*b+c into an
 * FMA would change roundings from one target to the next; GCC does not
 * contract in ISO C mode (the project builds with -std=c11), and clang is
 * told not to here.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "gqa_sampler.h"

/* A candidate token, its (penalised) logit and id packed into one integer
 * whose numeric order is the candidate order: larger logit first, lower id
 * on ties. High half: the logit's bits mapped so that unsigned order is
 * float order; low half: ~id. Comparisons are then one integer compare
 * and moves one 64-bit move (see partition). */
typedef uint64_t cand;

static cand cand_make(float logit, int32_t id)
{
    uint32_t u;
    const float f = logit + 0.0f; /* -0 -> +0: the two compare equal */
    memcpy(&u, &f, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)u << 32) | (uint32_t)~(uint32_t)id;
}

static int32_t cand_id(cand c)
{
    return (int32_t)~(uint32_t)c;
}

static float cand_logit(cand c)
{
    uint32_t u = (uint32_t)(c >> 32);
    u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

struct gqa_sampler {
    gqa_sampler_config cfg;
    int32_t n_vocab;
    int32_t top_k;     /* effective: 0 when off or >= n_vocab */
    int penalties;     /* nonzero when any penalty would change a logit */
    double min_p;      /* cfg.min_p, widened once */
    uint64_t rng[4];   /* xoshiro256** state */

    /* Repetition window. count[t] is t's occurrences in the window. With
     * repeat_last_n > 0, ring holds the window's tokens oldest first from
     * ring_head (ring_cap = repeat_last_n). With repeat_last_n == -1, ring
     * lists each token seen once, in order of first sight (ring_cap =
     * n_vocab), and count saturates at INT32_MAX. */
    int32_t *count;    /* n_vocab */
    int32_t *ring;     /* ring_cap, NULL when repeat_last_n == 0 */
    int32_t ring_cap, ring_len, ring_head;

    /* Scratch for one sample call. */
    float *work;       /* n_vocab: sanitised, penalised logits */
    double *weight;    /* n_vocab, by token id: exp((l - l_max) / T) */
    cand *cand;        /* n_vocab: candidates */
};

/* ------------------------------------------------------------ generator -- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). splitmix64 fills the state from the
 * seed, as its authors recommend; its outputs are four values of a
 * bijection, so the state is never all zero. */
static void rng_seed(uint64_t rng[4], uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng[i] = splitmix64(&seed);
}

static uint64_t rng_next(uint64_t rng[4])
{
    const uint64_t result = rotl64(rng[1] * 5, 7) * 9;
    const uint64_t t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl64(rng[3], 45);
    return result;
}

/* Uniform in [0, 1): the top 53 bits, exactly representable. */
static double rng_uniform(uint64_t rng[4])
{
    return (double)(rng_next(rng) >> 11) * 0x1p-53;
}

/* --------------------------------------------------------- exponential -- */

/* Weights below e^-64 are taken as 0: even 2^31 of them add less than 2^-60
 * of the top token's weight, far below a double's rounding. */
#define EXP_CUTOFF (-64.0)

/* exp(x) for EXP_CUTOFF <= x <= 0, to about 1 ulp, from basic operations
 * only (see the top of the file). x = k ln2 + r with k = round(x / ln2) and
 * |r| <= ln2/2 (ln2 split so that k * LN2_HI is exact), then a degree-13
 * Taylor polynomial of e^r (truncation error below 2e-17), then an exact
 * scaling by 2^k built from bits: no floor, ldexp or other libm call, and no
 * branch, so that loops over it vectorise. Gives exactly 1 for x == 0. */
static inline double exp_core(double x)
{
    static const double LN2_HI = 6.93147180369123816490e-01; /* 32 significant bits */
    static const double LN2_LO = 1.90821492927058770002e-10;
    static const double INV_LN2 = 1.44269504088896338700e+00;
    static const double SHIFT = 0x1.8p52; /* adding it rounds to an integer */
    const double ks = x * INV_LN2 + SHIFT; /* SHIFT + k, k in -93..0 */
    const double k = ks - SHIFT;
    const double r = (x - k * LN2_HI) - k * LN2_LO;
    double p = 1.0 / 6227020800.0; /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* The mantissa of ks holds 2^51 + k; shifted into the exponent field,
     * only the low 12 bits of (that + 1023) remain: the biased exponent of
     * 2^k. */
    uint64_t bits;
    memcpy(&bits, &ks, sizeof bits);
    bits = (bits + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* The weight of a logit: exp((x - l_max) * inv_t), 0 below EXP_CUTOFF
 * (and for x = -inf). */
static inline double weight_of(float x, double l_max, double inv_t)
{
    const double d = ((double)x - l_max) * inv_t;
    const int in = d >= EXP_CUTOFF;
    const double e = exp_core(in ? d : EXP_CUTOFF);
    return in ? e : 0.0;
}

/* ------------------------------------------------------------ selection -- */

static void cand_swap(cand *c, int32_t i, int32_t j)
{
    const cand t = c[i];
    c[i] = c[j];
    c[j] = t;
}

/* Sift h[i] down a heap of n whose root is the LAST in candidate order. */
static void sift_worst_root(cand *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && h[c + 1] < h[c])
            c++; /* the later child */
        if (h[c] >= h[i])
            return;
        cand_swap(h, i, c);
        i = c;
    }
}

/* Sort c[0..n) into candidate order: insertion sort when short, heapsort
 * (the worst-rooted heap sends the worst to the back each round) otherwise. */
static void sort_cands(cand *c, int32_t n)
{
    if (n <= 16) {
        for (int32_t i = 1; i < n; i++) {
            const cand t = c[i];
            int32_t j = i;
            for (; j > 0 && t > c[j - 1]; j--)
                c[j] = c[j - 1];
            c[j] = t;
        }
        return;
    }
    for (int32_t i = n / 2 - 1; i >= 0; i--)
        sift_worst_root(c, n, i);
    for (int32_t end = n - 1; end > 0; end--) {
        cand_swap(c, 0, end);
        sift_worst_root(c, end, 0);
    }
}

/* Partition c[lo..hi) (hi - lo >= 3) around the median of its first, middle
 * and last entries: on return the entries before the pivot in candidate
 * order are c[lo..p), the pivot is c[p], the rest follow. Returns p. */
static int32_t partition(cand *c, int32_t lo, int32_t hi)
{
    const int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (c[mid] > c[lo])
        cand_swap(c, mid, lo);
    if (c[last] > c[lo])
        cand_swap(c, last, lo);
    if (c[last] > c[mid])
        cand_swap(c, last, mid);
    cand_swap(c, mid, last); /* the median is the pivot, kept at the end */
    const cand pivot = c[last];
    /* Lomuto without a branch on the comparison (a coin toss on real
     * data): always swap, advance p only when c[j] goes first. */
    int32_t p = lo;
    for (int32_t j = lo; j < last; j++) {
        const cand t = c[j];
        c[j] = c[p];
        c[p] = t;
        p += t > pivot;
    }
    cand_swap(c, p, last);
    return p;
}

/* Partitioning rounds allowed before a selection sorts what is left
 * instead, so that bad pivots cost O(n log n) at worst (as introselect). */
static int select_budget(int32_t n)
{
    int b = 8;
    while (n > 1) {
        n >>= 1;
        b += 2;
    }
    return b;
}

/* The k first tokens of x[0..n) in candidate order, into h[0..k) (heap
 * order), 0 < k < n. A later token with an equal logit never displaces the
 * root (its id is higher), so the scan needs only the strict comparison. */
static void heap_top_k(const float *x, int32_t n, int32_t k, cand *h)
{
    for (int32_t i = 0; i < k; i++)
        h[i] = cand_make(x[i], i);
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        sift_worst_root(h, k, i);
    float worst = cand_logit(h[0]);
    for (int32_t i = k; i < n; i++) {
        if (x[i] > worst) {
            h[0] = cand_make(x[i], i);
            sift_worst_root(h, k, 0);
            worst = cand_logit(h[0]);
        }
    }
}

/* The largest of x[0..n), n >= 1, no NaN. Eight running maxima instead of
 * one break the dependency chain (max is exact, so the order is free). */
static float max_of(const float *x, int32_t n)
{
    float m[8];
    for (int j = 0; j < 8; j++)
        m[j] = x[0];
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float r = m[0];
    for (int j = 1; j < 8; j++)
        r = m[j] > r ? m[j] : r;
    return r;
}

/* Reorder c[0..n) so that c[0..k) hold its k first in candidate order (in
 * no particular order), 0 < k < n: quickselect. */
static void select_first_k(cand *c, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n; /* c[0..lo) are in, c[hi..n) are out */
    int budget = select_budget(n);
    while (lo < k && hi > k) {
        if (hi - lo < 3 || budget-- == 0) {
            sort_cands(c + lo, hi - lo);
            return;
        }
        const int32_t p = partition(c, lo, hi);
        if (p >= k)
            hi = p;
        else
            lo = p + 1;
    }
}

/* The nucleus: the shortest prefix of c[0..n) in candidate order whose
 * weight (w[id]) reaches `need` > 0, moved to c[0..m) in no particular
 * order; returns m (n if the whole list falls short by rounding). A weighted
 * quickselect: each round keeps the side of the pivot where the cumulative
 * weight crosses `need`, so the expected cost is O(n) with no sort. */
static int32_t select_nucleus(cand *c, int32_t n, const double *w, double need)
{
    int32_t lo = 0, hi = n;
    double acc = 0.0; /* weight of c[0..lo), always < need */
    int budget = select_budget(n);
    while (hi - lo > 16 && budget-- > 0) {
        const int32_t p = partition(c, lo, hi);
        double m = 0.0;
        for (int32_t j = lo; j < p; j++)
            m += w[cand_id(c[j])];
        if (acc + m >= need) {
            hi = p;
            continue;
        }
        acc += m + w[cand_id(c[p])];
        if (acc >= need)
            return p + 1;
        lo = p + 1;
    }
    sort_cands(c + lo, hi - lo);
    for (int32_t j = lo; j < hi; j++) {
        acc += w[cand_id(c[j])];
        if (acc >= need)
            return j + 1;
    }
    return hi;
}

/* ------------------------------------------------------------- creation -- */

void gqa_sampler_config_default(gqa_sampler_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->temperature = 0.8f;
    cfg->top_k = 40;
    cfg->top_p = 0.95f;
    cfg->min_p = 0.05f;
    cfg->repeat_penalty = 1.0f;
    cfg->frequency_penalty = 0.0f;
    cfg->presence_penalty = 0.0f;
    cfg->repeat_last_n = 64;
    cfg->seed = 0;
}

static gqa_status check_config(const gqa_sampler_config *c)
{
    static const char *fn = "gqa_sampler_create";
    if (isnan(c->temperature) || isinf(c->temperature))
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "%s: temperature = %g must be finite (<= 0 means greedy)", fn,
                        (double)c->temperature);
    if (c->top_k < 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: top_k = %d must be >= 0 (0 = off)", fn,
                        (int)c->top_k);
    if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: top_p = %g must be in (0, 1] (1 = off)", fn,
                        (double)c->top_p);
    if (!(c->min_p >= 0.0f && c->min_p <= 1.0f))
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: min_p = %g must be in [0, 1] (0 = off)", fn,
                        (double)c->min_p);
    if (!(c->repeat_penalty > 0.0f && c->repeat_penalty <= FLT_MAX))
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "%s: repeat_penalty = %g must be finite and > 0 (1 = off)", fn,
                        (double)c->repeat_penalty);
    if (!isfinite(c->frequency_penalty))
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: frequency_penalty = %g must be finite", fn,
                        (double)c->frequency_penalty);
    if (!isfinite(c->presence_penalty))
        return gqa_fail(GQA_ERR_INVALID_ARG, "%s: presence_penalty = %g must be finite", fn,
                        (double)c->presence_penalty);
    if (c->repeat_last_n < -1)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "%s: repeat_last_n = %d must be >= -1 (-1 = all, 0 = off)", fn,
                        (int)c->repeat_last_n);
    return GQA_OK;
}

/* malloc of n elements of `size` bytes, NULL on overflow or failure. */
static void *alloc_array(size_t n, size_t size)
{
    if (n != 0 && size > SIZE_MAX / n)
        return NULL;
    return malloc(n * size);
}

gqa_status gqa_sampler_create(const gqa_sampler_config *cfg, int32_t n_vocab,
                              gqa_sampler **out)
{
    if (!out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_sampler_create: out is NULL");
    *out = NULL;
    gqa_sampler_config defaults;
    if (!cfg) {
        gqa_sampler_config_default(&defaults);
        cfg = &defaults;
    }
    if (n_vocab < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_sampler_create: n_vocab = %d must be >= 1",
                        (int)n_vocab);
    gqa_status st = check_config(cfg);
    if (st != GQA_OK)
        return st;

    gqa_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return gqa_fail(GQA_ERR_NO_MEMORY, "gqa_sampler_create: out of memory");
    s->cfg = *cfg;
    s->n_vocab = n_vocab;
    s->top_k = cfg->top_k < n_vocab ? cfg->top_k : 0;
    s->min_p = (double)cfg->min_p;
    s->penalties = cfg->repeat_last_n != 0 &&
                   (cfg->repeat_penalty != 1.0f || cfg->frequency_penalty != 0.0f ||
                    cfg->presence_penalty != 0.0f);
    s->ring_cap = cfg->repeat_last_n == -1 ? n_vocab : cfg->repeat_last_n;

    const size_t v = (size_t)n_vocab;
    s->count = calloc(v, sizeof *s->count);
    s->work = alloc_array(v, sizeof *s->work);
    s->weight = alloc_array(v, sizeof *s->weight);
    s->cand = alloc_array(v, sizeof *s->cand);
    if (s->ring_cap > 0)
        s->ring = alloc_array((size_t)s->ring_cap, sizeof *s->ring);
    if (!s->count || !s->work || !s->weight || !s->cand || (s->ring_cap > 0 && !s->ring)) {
        gqa_sampler_free(s);
        return gqa_fail(GQA_ERR_NO_MEMORY,
                        "gqa_sampler_create: out of memory (n_vocab %d, repeat_last_n %d)",
                        (int)n_vocab, (int)cfg->repeat_last_n);
    }
    rng_seed(s->rng, cfg->seed);
    *out = s;
    return GQA_OK;
}

void gqa_sampler_free(gqa_sampler *s)
{
    if (!s)
        return;
    free(s->count);
    free(s->ring);
    free(s->work);
    free(s->weight);
    free(s->cand);
    free(s);
}

void gqa_sampler_reset(gqa_sampler *s)
{
    if (!s)
        return;
    memset(s->count, 0, (size_t)s->n_vocab * sizeof *s->count);
    s->ring_len = 0;
    s->ring_head = 0;
    rng_seed(s->rng, s->cfg.seed);
}

/* ---------------------------------------------------- repetition window -- */

gqa_status gqa_sampler_accept(gqa_sampler *s, int32_t token)
{
    if (!s)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_sampler_accept: sampler is NULL");
    if (token < 0 || token >= s->n_vocab)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_sampler_accept: token %d outside 0..%d", (int)token,
                        (int)s->n_vocab - 1);
    if (s->cfg.repeat_last_n == 0)
        return GQA_OK;
    if (s->cfg.repeat_last_n == -1) {
        if (s->count[token] == 0)
            s->ring[s->ring_len++] = token;
        if (s->count[token] < INT32_MAX)
            s->count[token]++;
        return GQA_OK;
    }
    if (s->ring_len == s->ring_cap) { /* full: the oldest leaves */
        s->count[s->ring[s->ring_head]]--;
        s->ring[s->ring_head] = token;
        s->ring_head = s->ring_head + 1 == s->ring_cap ? 0 : s->ring_head + 1;
    } else {
        int32_t at = s->ring_head + s->ring_len;
        s->ring[at >= s->ring_cap ? at - s->ring_cap : at] = token;
        s->ring_len++;
    }
    s->count[token]++;
    return GQA_OK;
}

static float clamp_finite(float x)
{
    return x > FLT_MAX ? FLT_MAX : x < -FLT_MAX ? -FLT_MAX : x;
}

/* Penalise one token that occurs c >= 1 times in the window. */
static void penalise(const gqa_sampler_config *c, float *logit, int32_t count)
{
    float l = *logit;
    if (l == -INFINITY)
        return;
    if (c->repeat_penalty != 1.0f)
        l = l > 0.0f ? l / c->repeat_penalty : l * c->repeat_penalty;
    const float sub = (float)count * c->frequency_penalty + c->presence_penalty;
    l = clamp_finite(l - sub);
    *logit = l;
}

/* Each distinct token of the window is penalised once. In the ring a token
 * may appear several times: its count is negated when it is done, and the
 * signs are restored afterwards. */
static void apply_penalties(gqa_sampler *s)
{
    if (!s->penalties)
        return;
    if (s->cfg.repeat_last_n == -1) {
        for (int32_t i = 0; i < s->ring_len; i++)
            penalise(&s->cfg, &s->work[s->ring[i]], s->count[s->ring[i]]);
        return;
    }
    for (int32_t i = 0; i < s->ring_len; i++) {
        const int32_t t = s->ring[i]; /* slots 0..ring_len-1 are the window */
        if (s->count[t] > 0) {
            penalise(&s->cfg, &s->work[t], s->count[t]);
            s->count[t] = -s->count[t];
        }
    }
    for (int32_t i = 0; i < s->ring_len; i++) {
        const int32_t t = s->ring[i];
        if (s->count[t] < 0)
            s->count[t] = -s->count[t];
    }
}

/* ------------------------------------------------------------- sampling -- */

/* Top-k by a heap up to this k, quickselect over a copy of the vocabulary
 * beyond: the heap's cost grows as k log(V/k) log k (with a mispredicted
 * branch per level), quickselect's is about 3 V whatever k. Measured break
 * even near k = 256 for V = 49152. */
#define HEAP_MAX_K 256

/* Draw from kept[0..n) with weights s->weight[id], skipping those below
 * min_p (the top token's weight is 1, so its ratio is the weight itself;
 * it is always in the list). Sums run in list order, so the last
 * cumulative value equals the total exactly; a target rounded up to the
 * total falls on the last eligible token. */
static int32_t draw(gqa_sampler *s, const cand *kept, int32_t n)
{
    const double *w = s->weight;
    double total = 0.0;
    for (int32_t j = 0; j < n; j++) {
        const double wj = w[cand_id(kept[j])];
        if (wj > 0.0 && wj >= s->min_p)
            total += wj;
    }
    const double target = rng_uniform(s->rng) * total;
    double cum = 0.0;
    int32_t last = -1;
    for (int32_t j = 0; j < n; j++) {
        const double wj = w[cand_id(kept[j])];
        if (!(wj > 0.0 && wj >= s->min_p))
            continue;
        cum += wj;
        last = cand_id(kept[j]);
        if (target < cum)
            break;
    }
    return last;
}

/* Top-k candidates into s->cand[0..k), their weights, and their sum. */
static gqa_status top_k_candidates(gqa_sampler *s, double inv_t, double *z_out)
{
    const int32_t k = s->top_k, v = s->n_vocab;
    cand *c = s->cand;
    if (k <= HEAP_MAX_K) {
        heap_top_k(s->work, v, k, c);
    } else {
        for (int32_t i = 0; i < v; i++)
            c[i] = cand_make(s->work[i], i);
        select_first_k(c, v, k);
    }
    cand top = c[0];
    for (int32_t j = 1; j < k; j++)
        top = c[j] > top ? c[j] : top;
    const float x_max = cand_logit(top);
    if (x_max == -INFINITY)
        return GQA_ERR_INVALID_ARG;
    const double l_max = (double)x_max;
    double z = 0.0;
    for (int32_t j = 0; j < k; j++) {
        const double wj = weight_of(cand_logit(c[j]), l_max, inv_t);
        s->weight[cand_id(c[j])] = wj;
        z += wj;
    }
    *z_out = z;
    return GQA_OK;
}

/* Gather the tokens with weight >= t (and > 0) into s->cand in id order;
 * returns their number and sets *mass to their weight. */
static int32_t gather(gqa_sampler *s, double t, double *mass)
{
    int32_t g = 0;
    double m = 0.0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        const double wi = s->weight[i];
        if (wi >= t && wi > 0.0) {
            s->cand[g++] = cand_make(s->work[i], i);
            m += wi;
        }
    }
    *mass = m;
    return g;
}

/* No top-k: weigh the whole vocabulary, then gather only what the nucleus
 * and min-p can keep. The nucleus is a prefix of the candidate order; so is
 * the set of tokens with weight >= t, for any t. Once such a set holds
 * top_p of the mass, the nucleus lies inside it and nothing below t needs
 * looking at. The ladder of t starts high (LLM distributions are mostly
 * peaked) and ends at the min-p bound, below which nothing is kept anyway
 * (0 when off: everything). Returns the number of candidates in s->cand. */
static gqa_status full_candidates(gqa_sampler *s, double inv_t, int32_t *n_out)
{
    const int32_t v = s->n_vocab;
    const float *x = s->work;
    double *w = s->weight;
    const float x_max = max_of(x, v);
    if (x_max == -INFINITY)
        return GQA_ERR_INVALID_ARG;
    const double l_max = (double)x_max;
    for (int32_t i = 0; i < v; i++)
        w[i] = weight_of(x[i], l_max, inv_t);

    double mass;
    if (s->cfg.top_p >= 1.0f) {
        *n_out = gather(s, s->min_p, &mass);
        return GQA_OK;
    }
    /* Z in four interleaved partial sums (a fixed order, and four times the
     * adds in flight). */
    double z4[4] = {0.0, 0.0, 0.0, 0.0};
    int32_t i = 0;
    for (; i + 4 <= v; i += 4)
        for (int j = 0; j < 4; j++)
            z4[j] += w[i + j];
    for (; i < v; i++)
        z4[0] += w[i];
    const double need = (double)s->cfg.top_p * ((z4[0] + z4[1]) + (z4[2] + z4[3]));
    double t = 0x1p-4;
    int32_t g;
    for (int step = 0;; step++) {
        const int last = t <= s->min_p || step == 4;
        g = gather(s, last ? s->min_p : t, &mass);
        if (last || mass >= need)
            break;
        t *= 0x1p-6;
    }
    *n_out = select_nucleus(s->cand, g, w, need);
    return GQA_OK;
}

gqa_status gqa_sampler_sample(gqa_sampler *s, const float *logits, int32_t *token)
{
    if (!s || !logits || !token)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_sampler_sample: %s is NULL",
                        !s ? "sampler" : !logits ? "logits" : "token");
    const int32_t v = s->n_vocab;
    float *x = s->work;
    for (int32_t i = 0; i < v; i++) {
        const float l = logits[i];
        x[i] = l >= -FLT_MAX ? (l <= FLT_MAX ? l : FLT_MAX) : -INFINITY; /* NaN: -inf */
    }
    apply_penalties(s);

    gqa_status st;
    int32_t n = 0;
    if (s->cfg.temperature <= 0.0f) {
        const float best_x = max_of(x, v);
        int32_t best = 0;
        while (x[best] != best_x) /* the lowest id holding the maximum */
            best++;
        if (best_x == -INFINITY)
            return gqa_fail(GQA_ERR_INVALID_ARG,
                            "gqa_sampler_sample: every one of the %d logits is NaN or -inf",
                            (int)v);
        *token = best;
        return GQA_OK;
    }
    const double inv_t = 1.0 / (double)s->cfg.temperature;
    if (s->top_k > 0) {
        double z = 0.0;
        st = top_k_candidates(s, inv_t, &z);
        n = s->top_k;
        if (st == GQA_OK && s->cfg.top_p < 1.0f)
            n = select_nucleus(s->cand, n, s->weight, (double)s->cfg.top_p * z);
    } else {
        st = full_candidates(s, inv_t, &n);
    }
    if (st != GQA_OK)
        return gqa_fail(st, "gqa_sampler_sample: every one of the %d logits is NaN or -inf",
                        (int)v);
    *token = draw(s, s->cand, n);
    return GQA_OK;
}
