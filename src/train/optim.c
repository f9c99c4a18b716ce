/* optim.c - AdamW with decoupled weight decay, warmup + cosine schedule and
 * global-norm clipping over the model's flat parameter array.
 *
 * Determinism: the update is element-wise; the gradient norm is summed in
 * double over fixed chunks of CHUNK floats (one thread per chunk) and the
 * chunk sums are added in order, so the result does not depend on the
 * thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "train/train_internal.h"

#define CHUNK 4096
#define PI    3.14159265358979323846

struct gqa_train_optim {
    gqa_train_optim_config c;
    int64_t n; /* floats in m and v (the model's n_params) */
    float *m, *v;
    double *partial; /* one per chunk */
    int64_t step;
};

void gqa_train_optim_config_default(gqa_train_optim_config *c)
{
    if (!c)
        return;
    c->lr = 3e-4f;
    c->min_lr = 3e-5f;
    c->beta1 = 0.9f;
    c->beta2 = 0.95f;
    c->eps = 1e-8f;
    c->weight_decay = 0.1f;
    c->clip = 1.0f;
    c->warmup_steps = 0;
    c->total_steps = 1;
}

static gqa_status check_config(const gqa_train_optim_config *c)
{
    if (!(c->lr >= 0.0f && isfinite(c->lr)) || !(c->min_lr >= 0.0f && c->min_lr <= c->lr))
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "optimizer: lr %g / min_lr %g (need 0 <= min_lr <= "
                        "lr, finite)",
                        (double)c->lr, (double)c->min_lr);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return gqa_fail(GQA_ERR_INVALID_ARG, "optimizer: betas %g, %g must be in [0, 1)",
                        (double)c->beta1, (double)c->beta2);
    if (!(c->eps > 0.0f) || !(c->weight_decay >= 0.0f && c->weight_decay < 1e3f) ||
        !(c->clip >= 0.0f && isfinite(c->clip)))
        return gqa_fail(GQA_ERR_INVALID_ARG, "optimizer: eps %g, weight decay %g, clip %g",
                        (double)c->eps, (double)c->weight_decay, (double)c->clip);
    if (c->warmup_steps < 0 || c->total_steps < 1)
        return gqa_fail(GQA_ERR_INVALID_ARG, "optimizer: warmup %lld, total steps %lld",
                        (long long)c->warmup_steps, (long long)c->total_steps);
    return GQA_OK;
}

float gqa_train_lr(const gqa_train_optim_config *c, int64_t step)
{
    if (step < c->warmup_steps)
        return (float)((double)c->lr * (double)(step + 1) / (double)c->warmup_steps);
    if (c->total_steps <= c->warmup_steps)
        return c->lr;
    double p = (double)(step - c->warmup_steps) / (double)(c->total_steps - c->warmup_steps);
    p = p > 1.0 ? 1.0 : p;
    return (float)((double)c->min_lr +
                   0.5 * ((double)c->lr - (double)c->min_lr) * (1.0 + cos(PI * p)));
}

gqa_status gqa_train_optim_create(const gqa_train_model *m, const gqa_train_optim_config *c,
                                  gqa_train_optim **out)
{
    if (out)
        *out = NULL;
    if (!m || !c || !out)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_optim_create: NULL argument");
    gqa_status s = check_config(c);
    if (s != GQA_OK)
        return s;
    gqa_train_optim *o = calloc(1, sizeof *o);
    if (!o)
        return gqa_fail(GQA_ERR_NO_MEMORY, "optimizer: out of memory");
    o->c = *c;
    o->n = m->n_params;
    o->m = gqa_aligned_alloc((size_t)o->n * sizeof(float));
    o->v = gqa_aligned_alloc((size_t)o->n * sizeof(float));
    o->partial = malloc((size_t)((o->n + CHUNK - 1) / CHUNK + 1) * sizeof(double));
    if (!o->m || !o->v || !o->partial) {
        gqa_train_optim_free(o);
        return gqa_fail(GQA_ERR_NO_MEMORY, "optimizer: out of memory for %lld moments",
                        (long long)m->n_params);
    }
    memset(o->m, 0, (size_t)o->n * sizeof(float));
    memset(o->v, 0, (size_t)o->n * sizeof(float));
    *out = o;
    return GQA_OK;
}

void gqa_train_optim_free(gqa_train_optim *o)
{
    if (!o)
        return;
    gqa_aligned_free(o->m);
    gqa_aligned_free(o->v);
    free(o->partial);
    free(o);
}

static double grad_norm(gqa_train_optim *o, const float *g)
{
    const int64_t nc = (o->n + CHUNK - 1) / CHUNK;
    const int nt = gqa_threads_resolved();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && nc > 1)
    for (int64_t c = 0; c < nc; c++) {
        const int64_t e = (c + 1) * CHUNK < o->n ? (c + 1) * CHUNK : o->n;
        double s = 0.0;
        for (int64_t i = c * CHUNK; i < e; i++)
            s += (double)g[i] * (double)g[i];
        o->partial[c] = s;
    }
    double s = 0.0;
    for (int64_t c = 0; c < nc; c++)
        s += o->partial[c];
    return sqrt(s);
}

gqa_status gqa_train_optim_step(gqa_train_optim *o, gqa_train_model *m, float *gnorm, float *lr)
{
    if (!o || !m)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_optim_step: NULL argument");
    if (m->n_params != o->n)
        return gqa_fail(GQA_ERR_INVALID_ARG,
                        "gqa_train_optim_step: the model has %lld parameters, the optimizer "
                        "was made for %lld",
                        (long long)m->n_params, (long long)o->n);
    const double norm = grad_norm(o, m->grads);
    const float gs =
        o->c.clip > 0.0f && norm > (double)o->c.clip ? (float)((double)o->c.clip / norm) : 1.0f;
    const float rate = gqa_train_lr(&o->c, o->step);
    o->step++;
    const float b1 = o->c.beta1, b2 = o->c.beta2, eps = o->c.eps;
    const float c1 = (float)(1.0 / (1.0 - pow((double)b1, (double)o->step)));
    const float c2 = (float)(1.0 / (1.0 - pow((double)b2, (double)o->step)));
    const int nt = gqa_threads_resolved();
    for (int32_t t = 0; t < m->n_tensors; t++) {
        const train_tensor *tt = &m->tensors[t];
        const float wd = tt->decay ? o->c.weight_decay : 0.0f;
        float *p = m->params + tt->off, *g = m->grads + tt->off, *mm = o->m + tt->off,
              *vv = o->v + tt->off;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && tt->n > 32768)
        for (int64_t i = 0; i < tt->n; i++) {
            const float gi = g[i] * gs;
            mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
            vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
            const float upd = mm[i] * c1 / (sqrtf(vv[i] * c2) + eps);
            p[i] -= rate * (upd + wd * p[i]);
        }
    }
    if (gnorm)
        *gnorm = (float)norm;
    if (lr)
        *lr = rate;
    return GQA_OK;
}

int64_t gqa_train_optim_steps(const gqa_train_optim *o)
{
    return o ? o->step : 0;
}

const gqa_train_optim_config *gqa_train_optim_get_config(const gqa_train_optim *o)
{
    return o ? &o->c : NULL;
}

gqa_status gqa_train_optim_set_config(gqa_train_optim *o, const gqa_train_optim_config *c)
{
    if (!o || !c)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_train_optim_set_config: NULL argument");
    gqa_status s = check_config(c);
    if (s == GQA_OK)
        o->c = *c;
    return s;
}

float *gqa_train_optim_moment(gqa_train_optim *o, int which)
{
    return which == 0 ? o->m : o->v;
}

void gqa_train_optim_set_step(gqa_train_optim *o, int64_t step)
{
    o->step = step;
}
