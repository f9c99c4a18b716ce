/* gqa_sampler.h - choosing the next token from a row of logits.
 *
 * A sampler holds a configuration, the recent tokens of one sequence (for
 * the repetition penalties) and a random-number generator. Each call to
 * gqa_sampler_sample reads n_vocab logits and returns one token id, through
 * this fixed chain (the order of llama.cpp's default chain, except that the
 * temperature comes before top-p and min-p, as in Hugging Face transformers,
 * so those two act on the distribution that is actually drawn from):
 *
 *  0. Non-finite logits: NaN becomes -inf (never chosen), +inf becomes
 *     FLT_MAX (so +inf tokens, if any, share all of the probability).
 *  1. Penalties, for each distinct token t in the repetition window (the
 *     last repeat_last_n accepted tokens), c = its count in the window:
 *        logit = logit > 0 ? logit / repeat_penalty : logit * repeat_penalty
 *        logit -= c * frequency_penalty + presence_penalty
 *     (results are clamped to +-FLT_MAX, so a finite logit stays finite).
 *  2. temperature <= 0: greedy. The token with the largest logit, the lowest
 *     id on ties; steps 3-7 are skipped and no random number is used.
 *  3. Top-k: keep the top_k largest logits (ties: lower ids first).
 *  4. Temperature and softmax over the kept tokens:
 *        p_i = exp((l_i - l_max) / T) / Z.
 *  5. Top-p (nucleus): sort by probability (ties: lower ids first) and keep
 *     the shortest prefix whose cumulative probability reaches top_p.
 *  6. Min-p: of those, keep the tokens with p_i >= min_p * p_max (p_max is
 *     the top token's probability; the ratio does not depend on how the
 *     kept set is normalised).
 *  7. Draw one token with probability proportional to p_i among the kept.
 * The token with the largest logit survives every filter, so a draw always
 * has at least one candidate.
 *
 * Determinism: the generator is xoshiro256** seeded through splitmix64, the
 * exponential is computed by the library from IEEE basic operations only,
 * and every sum is taken in a fixed order, so for the same seed, config,
 * accepted tokens and logits the sampled sequence is bitwise identical on
 * every IEEE-754 platform and compiler (built without -ffast-math). Each
 * non-greedy gqa_sampler_sample call uses exactly one 64-bit random number.
 *
 * Memory: gqa_sampler_create allocates everything: 24 bytes per vocabulary
 * entry, plus 4 bytes per window slot (n_vocab slots for repeat_last_n = -1).
 * The other calls never allocate. No call sorts the vocabulary: top-k and
 * the nucleus are found by selection (a heap, quickselect), so a sample
 * costs O(n_vocab) expected time; see docs/sampling.md for measured times.
 *
 * Thread safety: a sampler belongs to one sequence; calls on the same
 * sampler must not run concurrently. Different samplers are independent.
 */
#ifndef GQA_SAMPLER_H
#define GQA_SAMPLER_H

#include <stdint.h>

#include "gqa.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gqa_sampler_config {
    float   temperature;       /* <= 0: greedy (argmax, lowest id on ties); else > 0,
                                * finite. NaN and +inf are invalid. */
    int32_t top_k;             /* >= 0; 0 (or >= n_vocab): off */
    float   top_p;             /* (0, 1]; 1: off */
    float   min_p;             /* [0, 1]; 0: off */
    float   repeat_penalty;    /* > 0, finite; 1: off. Above 1 discourages repeats */
    float   frequency_penalty; /* finite; 0: off. Subtracted once per occurrence */
    float   presence_penalty;  /* finite; 0: off. Subtracted once per distinct token */
    int32_t repeat_last_n;     /* window of accepted tokens the penalties look at:
                                * > 0: the last n; 0: none (penalties off);
                                * -1: every token accepted since create/reset */
    uint64_t seed;             /* any value, 0 included; the library never
                                * seeds from the clock */
} gqa_sampler_config;

typedef struct gqa_sampler gqa_sampler;

/* Fill *cfg with the defaults: temperature 0.8, top_k 40, top_p 0.95,
 * min_p 0.05, repeat_penalty 1 (off), frequency and presence penalties 0,
 * repeat_last_n 64, seed 0. NULL is ignored. */
void gqa_sampler_config_default(gqa_sampler_config *cfg);

/* Create a sampler for a vocabulary of n_vocab tokens; *out receives it
 * (free with gqa_sampler_free). cfg is copied (borrowed for the call only);
 * NULL means the defaults. On failure *out is set to NULL.
 * Errors: GQA_ERR_INVALID_ARG (out NULL, n_vocab < 1, or a config field out
 * of the ranges above: the message names the field and its value),
 * GQA_ERR_NO_MEMORY. */
gqa_status gqa_sampler_create(const gqa_sampler_config *cfg, int32_t n_vocab,
                              gqa_sampler **out);

/* Release a sampler. NULL is fine. */
void gqa_sampler_free(gqa_sampler *s);

/* Record one token of the sequence - prompt or generated - in the
 * repetition window (pushing the oldest one out when the window is full).
 * gqa_sampler_sample does NOT record the token it returns: call this with
 * it before the next sample if penalties should see it.
 * Errors: GQA_ERR_INVALID_ARG (s NULL, token outside 0..n_vocab-1); the
 * window is then unchanged. */
gqa_status gqa_sampler_accept(gqa_sampler *s, int32_t token);

/* Choose the next token from `logits`, n_vocab floats (borrowed, read only,
 * not modified), by the chain above; *token receives an id in
 * 0..n_vocab-1 whose logit is not NaN or -inf and which survived every
 * filter. Does not allocate.
 * Errors: GQA_ERR_INVALID_ARG (a NULL pointer; no logit other than NaN or
 * -inf, so nothing can be chosen). On failure *token is unchanged and no
 * random number is used. */
gqa_status gqa_sampler_sample(gqa_sampler *s, const float *logits, int32_t *token);

/* Forget every accepted token and restart the generator from the
 * configured seed: the sampler then behaves as if just created. NULL is
 * fine. */
void gqa_sampler_reset(gqa_sampler *s);

#ifdef __cplusplus
}
#endif

#endif /* GQA_SAMPLER_H */
