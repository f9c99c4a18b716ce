/* train_config.c - presets, the JSON config file and the options of the
 * training commands (train_config.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cmd.h"
#include "train_config.h"

typedef struct preset {
    const char *name, *what;
    gqa_train_config m;
    long batch, seq_len;
    float lr;
} preset;

/* Byte-level vocabulary (256 bytes + <|endoftext|>), tied classifier. */
static const preset presets[] = {
    {"tiny",
     "2 layers, width 64, 4 heads of 16 (MHA), ctx 64 - tests and smoke runs",
     {257, 2, 64, 4, 4, 16, 176, 64, 10000.0f, 1e-5f, 1},
     8,
     64,
     2e-3f},
    {"small",
     "4 layers, width 128, 4 heads of 32 (MHA), ctx 128",
     {257, 4, 128, 4, 4, 32, 352, 128, 10000.0f, 1e-5f, 1},
     16,
     128,
     1e-3f},
    {"exp",
     "6 layers, width 256, 8 heads of 32 (MHA), ctx 256 - the uptraining experiment",
     {257, 6, 256, 8, 8, 32, 704, 256, 10000.0f, 1e-5f, 1},
     16,
     256,
     1e-3f},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

void train_list_presets(FILE *f)
{
    for (size_t i = 0; i < N_PRESETS; i++)
        fprintf(f, "    %-6s %s\n", presets[i].name, presets[i].what);
}

static void apply_preset(const preset *p, train_opts *o)
{
    o->model = p->m;
    gqa_train_optim_config_default(&o->opt);
    o->opt.lr = p->lr;
    o->opt.min_lr = -1.0f; /* lr / 10 unless set */
    o->batch = p->batch;
    o->seq_len = p->seq_len;
}

static const preset *find_preset(const char *name)
{
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(presets[i].name, name))
            return &presets[i];
    return NULL;
}

static void opts_clear(train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->accum = 1;
    o->warmup = -1;
    o->steps = -1;
    o->threads = 0;
    o->eval_every = -1;
    o->eval_windows = 64;
    o->save_every = 0;
    o->schedule_steps = 0;
    o->seed = -1;
}

/* One JSON number field into an int32, a long or a float target. */
typedef struct json_field {
    const char *key;
    int32_t *i32;
    long *l;
    float *f;
    long long *ll;
} json_field;

static int read_json_fields(cJSON *root, const char *path, train_opts *o)
{
    const json_field fields[] = {{"n_vocab", &o->model.n_vocab, 0, 0, 0},
                                 {"n_layers", &o->model.n_layers, 0, 0, 0},
                                 {"n_embd", &o->model.n_embd, 0, 0, 0},
                                 {"n_heads", &o->model.n_heads, 0, 0, 0},
                                 {"n_kv_heads", &o->model.n_kv_heads, 0, 0, 0},
                                 {"head_dim", &o->model.head_dim, 0, 0, 0},
                                 {"n_ff", &o->model.n_ff, 0, 0, 0},
                                 {"n_ctx", &o->model.n_ctx, 0, 0, 0},
                                 {"tied_output", &o->model.tied_output, 0, 0, 0},
                                 {"rope_base", 0, 0, &o->model.rope_base, 0},
                                 {"rms_eps", 0, 0, &o->model.rms_eps, 0},
                                 {"batch", 0, &o->batch, 0, 0},
                                 {"seq_len", 0, &o->seq_len, 0, 0},
                                 {"accum", 0, &o->accum, 0, 0},
                                 {"warmup", 0, &o->warmup, 0, 0},
                                 {"eval_every", 0, &o->eval_every, 0, 0},
                                 {"eval_windows", 0, &o->eval_windows, 0, 0},
                                 {"lr", 0, 0, &o->opt.lr, 0},
                                 {"min_lr", 0, 0, &o->opt.min_lr, 0},
                                 {"weight_decay", 0, 0, &o->opt.weight_decay, 0},
                                 {"clip", 0, 0, &o->opt.clip, 0},
                                 {"beta1", 0, 0, &o->opt.beta1, 0},
                                 {"beta2", 0, 0, &o->opt.beta2, 0},
                                 {"seed", 0, 0, 0, &o->seed}};
    for (cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "base"))
            continue;
        size_t k = 0;
        while (k < sizeof fields / sizeof fields[0] && strcmp(fields[k].key, it->string))
            k++;
        if (k == sizeof fields / sizeof fields[0]) {
            cli_error("config %s: unknown key \"%s\"", path, it->string);
            return -1;
        }
        const int boolean = cJSON_IsBool(it);
        if (!cJSON_IsNumber(it) && !boolean) {
            cli_error("config %s: \"%s\" must be a number", path, it->string);
            return -1;
        }
        const double v = boolean ? (cJSON_IsTrue(it) ? 1.0 : 0.0) : it->valuedouble;
        const json_field *f = &fields[k];
        if ((f->i32 || f->l || f->ll) && (v != (double)(long long)v || v < 0 || v > 1e15)) {
            cli_error("config %s: \"%s\" must be a whole number >= 0, not %g", path, it->string, v);
            return -1;
        }
        if (f->i32)
            *f->i32 = (int32_t)v;
        else if (f->l)
            *f->l = (long)v;
        else if (f->ll)
            *f->ll = (long long)v;
        else
            *f->f = (float)v;
    }
    return 0;
}

static int load_json(const char *path, train_opts *o)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        cli_error("config '%s' is neither a preset (tiny, small, exp) nor a readable file", path);
        return -1;
    }
    char buf[1 << 16];
    const size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    if (!root || !cJSON_IsObject(root)) {
        cli_error("config %s: not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(root, "base");
    const preset *p = find_preset(base && cJSON_IsString(base) ? base->valuestring : "tiny");
    if (!p) {
        cli_error("config %s: unknown base preset \"%s\"", path, base->valuestring);
        cJSON_Delete(root);
        return -1;
    }
    apply_preset(p, o);
    const int r = read_json_fields(root, path, o);
    cJSON_Delete(root);
    return r;
}

int train_opts_load(const char *cfg, train_opts *o)
{
    opts_clear(o);
    const preset *p = find_preset(cfg ? cfg : "tiny");
    if (p) {
        apply_preset(p, o);
        return 0;
    }
    return load_json(cfg, o);
}

void train_opts_usage(FILE *f)
{
    fprintf(f,
            "  --batch B            sequences per micro-batch (preset)\n"
            "  --seq-len T          tokens per sequence, <= the model's context (preset)\n"
            "  --accum K            micro-batches per optimizer step (1)\n"
            "  --lr X, --min-lr Y   peak and final learning rate (preset; min 1/10 of lr)\n"
            "  --warmup W           linear warmup steps (default: 5%% of the steps)\n"
            "  --weight-decay X     AdamW decay of the projection matrices (0.1)\n"
            "  --clip X             max global gradient norm, 0 = off (1.0)\n"
            "  --seed S             data order (and initial weights) seed (1)\n"
            "  --threads N          worker threads (default: $GQA_THREADS or one per core)\n"
            "  --eval-every N       validation loss every N steps (steps/10; 0 = only at the end)\n"
            "  --eval-windows N     validation windows of T tokens used (64; 0 = all)\n"
            "  --save-every N       write the checkpoint every N steps too (0 = only at the end)\n"
            "  --schedule-steps N   length of the cosine schedule (default: --steps)\n");
}

int train_opts_parse(int argc, char **argv, int *i, const char *cmd, train_opts *o)
{
    const struct {
        const char *name;
        long *l;
        long lo, hi;
    } longs[] = {{"--batch", &o->batch, 1, 1 << 16},
                 {"--seq-len", &o->seq_len, 1, 1 << 20},
                 {"--accum", &o->accum, 1, 1 << 16},
                 {"--warmup", &o->warmup, 0, 1L << 40},
                 {"--threads", &o->threads, 1, 1024},
                 {"--eval-every", &o->eval_every, 0, 1L << 40},
                 {"--eval-windows", &o->eval_windows, 0, 1L << 30},
                 {"--save-every", &o->save_every, 0, 1L << 40},
                 {"--schedule-steps", &o->schedule_steps, 1, 1L << 40}};
    const struct {
        const char *name;
        float *f;
        double lo, hi;
    } floats[] = {{"--lr", &o->opt.lr, 0.0, 10.0},
                  {"--min-lr", &o->opt.min_lr, 0.0, 10.0},
                  {"--weight-decay", &o->opt.weight_decay, 0.0, 100.0},
                  {"--clip", &o->opt.clip, 0.0, 1e9}};
    const char *v;
    int r;
    char opt[64];
    for (size_t k = 0; k < sizeof longs / sizeof longs[0]; k++)
        if ((r = cli_option_value(argc, argv, i, longs[k].name, &v))) {
            snprintf(opt, sizeof opt, "%s %s", cmd, longs[k].name);
            return r < 0 || cli_parse_long(opt, v, longs[k].lo, longs[k].hi, longs[k].l) < 0 ? -1
                                                                                             : 1;
        }
    for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++)
        if ((r = cli_option_value(argc, argv, i, floats[k].name, &v))) {
            double d;
            snprintf(opt, sizeof opt, "%s %s", cmd, floats[k].name);
            if (r < 0 || cli_parse_double(opt, v, floats[k].lo, floats[k].hi, &d) < 0)
                return -1;
            *floats[k].f = (float)d;
            return 1;
        }
    if ((r = cli_option_value(argc, argv, i, "--seed", &v))) {
        long s;
        snprintf(opt, sizeof opt, "%s --seed", cmd);
        if (r < 0 || cli_parse_long(opt, v, 0, 0x7fffffffL, &s) < 0)
            return -1;
        o->seed = s;
        return 1;
    }
    return 0;
}
