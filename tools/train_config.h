/* train_config.h - what `gqa train`, `gqa uptrain` and `gqa bench train`
 * share: named model presets, the JSON config file, and the training options
 * with their defaults. Uses only the public headers. */
#ifndef GQA_TOOLS_TRAIN_CONFIG_H
#define GQA_TOOLS_TRAIN_CONFIG_H

#include "gqa_train.h"

/* Everything a training run is told. Integer options < 0 mean "not given"
 * (a default or the checkpoint's value is used). */
typedef struct train_opts {
    gqa_train_config model;
    gqa_train_optim_config opt; /* min_lr < 0: lr / 10 */
    long batch, seq_len, accum, warmup, steps, threads;
    long eval_every, eval_windows, save_every, schedule_steps;
    long long seed;
} train_opts;

/* The built-in presets ("tiny", "small", "exp") and their one-line
 * descriptions, for --help. */
void train_list_presets(FILE *f);

/* Fill o from the preset or JSON file `cfg` (a name from the list, or a path
 * to a JSON file; NULL: "tiny"). JSON keys: the gqa_train_config fields
 * (n_vocab, n_layers, n_embd, n_heads, n_kv_heads, head_dim, n_ff, n_ctx,
 * rope_base, rms_eps, tied_output) and the training options (batch, seq_len,
 * accum, lr, min_lr, warmup, weight_decay, clip, beta1, beta2, eval_every,
 * eval_windows, seed), optionally "base": a preset the file starts from.
 * Prints one error line and returns -1 on failure. */
int train_opts_load(const char *cfg, train_opts *o);

/* Parse one training option at argv[*i] into o (--batch, --seq-len, --lr,
 * --min-lr, --warmup, --weight-decay, --clip, --accum, --seed, --threads,
 * --eval-every, --eval-windows, --save-every, --schedule-steps). 1: parsed, 0: not a training
 * option, -1: bad value (printed). */
int train_opts_parse(int argc, char **argv, int *i, const char *cmd, train_opts *o);

/* The help lines of those options. */
void train_opts_usage(FILE *f);

#endif
