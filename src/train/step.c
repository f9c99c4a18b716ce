/* step.c - one training step: gradient accumulation over micro-batches,
 * then the optimiser. The data windows come from (seed, step, micro-batch),
 * with the step taken from the optimiser's own counter, so a run resumed
 * from a checkpoint continues exactly where it stopped. */
#include <stdlib.h>

#include "core/internal.h"
#include "train/train_internal.h"

gqa_status gqa_train_step(gqa_train_model *m, gqa_train_optim *o, const gqa_train_data *d,
                          uint64_t seed, int32_t B, int32_t T, int32_t accum, float *loss,
                          float *grad_norm, float *lr)
{
    if (!m || !o || !d || B < 1 || T < 1 || accum < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_step: bad argument (B %d, T %d, accum %d)",
                        (int)B, (int)T, (int)accum);
    const size_t n = (size_t)B * (size_t)T;
    int32_t *tok = malloc(n * sizeof(int32_t)), *tgt = malloc(n * sizeof(int32_t));
    gqa_status s =
        tok && tgt ? GQA_OK : gqa_fail(GQA_ERR_NO_MEMORY, "gqa_train_step: out of memory");
    const int64_t step = gqa_train_optim_steps(o);
    double sum = 0.0;
    gqa_train_model_zero_grad(m);
    for (int32_t a = 0; a < accum && s == GQA_OK; a++) {
        float l = 0.0f;
        s = gqa_train_data_batch(d, seed, step, a, B, T, tok, tgt);
        if (s == GQA_OK)
            s = gqa_train_model_forward(m, tok, tgt, B, T, &l, NULL);
        if (s == GQA_OK)
            s = gqa_train_model_backward(m, 1.0f / (float)accum);
        sum += (double)l;
    }
    free(tok);
    free(tgt);
    if (s == GQA_OK)
        s = gqa_train_optim_step(o, m, grad_norm, lr);
    if (s == GQA_OK && loss)
        *loss = (float)(sum / accum);
    return s;
}
