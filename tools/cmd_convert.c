/* cmd_convert.c - `gqa convert`: change the number of KV heads of a model
 * checkpoint (MHA -> GQA -> MQA by pooling, or back by repeating), with a
 * progress bar. Uses only the public headers (gqa_convert.h, gqa_model.h).
 *
 * Formats: GGUF files and Hugging Face model directories (config.json +
 * safetensors). The format of each side is decided here (input: a directory
 * is a Hugging Face model, a file is GGUF; output: the input's format unless
 * --to says otherwise) and the pair picks the library call in
 * convert_dispatch().
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "cmd.h"
#include "gqa_convert.h"
#include "gqa_model.h"

typedef enum model_format { FORMAT_GGUF, FORMAT_HF } model_format;

static const char *format_name(model_format f)
{
    return f == FORMAT_HF ? "Hugging Face" : "GGUF";
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gqa convert IN OUT --kv-heads G [options]\n"
            "\n"
            "Write a copy of the Llama-family model IN with G KV heads to OUT. Each new KV head\n"
            "is made from a group of consecutive old heads (query head h reads KV head\n"
            "h / (H / G)); only the K and V projections (and their biases) change.\n"
            "IN is a GGUF file, or a Hugging Face model directory (config.json and\n"
            "model.safetensors or sharded safetensors; Llama, Mistral, Qwen2).\n"
            "\n"
            "  --kv-heads G       KV heads wanted: a divisor of the model's KV heads, or with\n"
            "                     --method repeat a multiple of them dividing the query heads\n"
            "  --method M         mean (default): average of the group's heads;\n"
            "                     first: the group's first head; random: fresh values with\n"
            "                     the original weights' scale; repeat: copy each head to more\n"
            "                     slots (GQA -> MHA)\n"
            "  --seed S           seed of --method random (default 0)\n"
            "  --out-type T       type of the converted K/V tensors: keep (default: the\n"
            "                     input's type, f16 if it cannot be written), f32, f16, bf16,\n"
            "                     q8_0, q4_0, q4_1 (Hugging Face output: f32, f16, bf16).\n"
            "                     With --to another format: the type of every tensor (keep:\n"
            "                     float types kept, quantised ones f16)\n"
            "  --to F             output format: gguf or hf (default: the input's). Between\n"
            "                     formats (Llama only) tensors are renamed and Q/K rows moved\n"
            "                     between HF and GGUF RoPE order; --kv-heads G0 (the current\n"
            "                     count) changes only the format. The byte-level BPE tokenizer\n"
            "                     goes along (tokenizer.json <-> tokenizer.ggml.*)\n"
            "  --quiet            no progress bar and no summary\n"
            "\n"
            "OUT is written under a temporary name next to it and renamed when complete; it\n"
            "must not be IN. A Hugging Face OUT must not exist (or be an empty directory).\n"
            "See docs/conversion.md.\n");
}

/* ------------------------------------------------------------ progress -- */

typedef struct bar {
    int shown; /* permille last drawn, -1 before the first */
} bar;

static void draw_bar(void *user, int64_t done, int64_t total)
{
    bar *b = user;
    const int permille = total > 0 ? (int)(done * 1000 / total) : 1000;
    if (permille == b->shown)
        return;
    b->shown = permille;
    char cells[31];
    const int full = permille * 30 / 1000;
    for (int i = 0; i < 30; i++)
        cells[i] = i < full ? '#' : '.';
    cells[30] = '\0';
    fprintf(stderr, "\rconverting [%s] %5.1f%%  %.1f / %.1f MB", cells, permille / 10.0,
            (double)done / 1e6, (double)total / 1e6);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* ------------------------------------------------------------- options -- */

typedef struct convert_args {
    const char *in, *out;
    gqa_convert_options o;
    int have_kv, quiet, to_set;
    model_format to;
} convert_args;

static int parse_enum(const char *opt, const char *v, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    cli_error("convert: %s: unknown value '%s' (try 'gqa convert --help')", opt, v);
    return -1;
}

/* One option at argv[*i]: 1 handled, 0 not an option of ours, -1 error. */
static int parse_option(convert_args *a, int argc, char **argv, int *i)
{
    static const char *const methods[] = {"mean", "first", "random", "repeat"};
    static const char *const types[] = {"keep", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"};
    static const char *const formats[] = {"gguf", "hf"};
    const char *v;
    int r, e;
    long l;
    if ((r = cli_option_value(argc, argv, i, "--kv-heads", &v)) != 0) {
        if (r < 0 || cli_parse_long("--kv-heads", v, 1, 1 << 24, &l) < 0)
            return -1;
        a->o.kv_heads = (int32_t)l, a->have_kv = 1;
    } else if ((r = cli_option_value(argc, argv, i, "--method", &v)) != 0) {
        if (r < 0 || parse_enum("--method", v, methods, 4, &e) < 0)
            return -1;
        a->o.method = (gqa_convert_method)e;
    } else if ((r = cli_option_value(argc, argv, i, "--out-type", &v)) != 0) {
        if (r < 0 || parse_enum("--out-type", v, types, 7, &e) < 0)
            return -1;
        a->o.out_type = (gqa_convert_out_type)e;
    } else if ((r = cli_option_value(argc, argv, i, "--seed", &v)) != 0) {
        char *end;
        if (r < 0)
            return -1;
        a->o.seed = strtoull(v, &end, 10);
        if (!v[0] || *end || v[0] == '-') {
            cli_error("--seed wants a non-negative integer, got '%s'", v);
            return -1;
        }
    } else if ((r = cli_option_value(argc, argv, i, "--to", &v)) != 0) {
        if (r < 0 || parse_enum("--to", v, formats, 2, &e) < 0)
            return -1;
        a->to = (model_format)e, a->to_set = 1;
    } else if (!strcmp(argv[*i], "--quiet") || !strcmp(argv[*i], "-q")) {
        a->quiet = 1;
    } else {
        return 0;
    }
    return 1;
}

static int parse_args(convert_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    gqa_convert_options_default(&a->o);
    for (int i = 1; i < argc; i++) {
        const int r = parse_option(a, argc, argv, &i);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("convert: unknown option '%s' (try 'gqa convert --help')", argv[i]);
            return CLI_EXIT_USAGE;
        }
        if (a->in && a->out) {
            cli_error("convert: unexpected argument '%s' (IN and OUT are already given)", argv[i]);
            return CLI_EXIT_USAGE;
        }
        *(a->in ? &a->out : &a->in) = argv[i];
    }
    if (!a->in || !a->out || !a->have_kv) {
        cli_error("convert: %s (try 'gqa convert --help')", !a->in    ? "missing IN and OUT"
                                                            : !a->out ? "missing OUT"
                                                                      : "missing --kv-heads G");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------- convert -- */

/* An integer of a Hugging Face config.json; dflt when absent. */
static uint32_t json_u32(const cJSON *j, const char *key, uint32_t dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 4294967296.0
               ? (uint32_t)v->valuedouble
               : dflt;
}

/* kv_facts for a Hugging Face directory, from DIR/config.json. */
static void kv_facts_hf(const char *dir, uint32_t *heads, uint64_t *bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (16l << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)n + 1)) != NULL &&
        fread(text, 1, (size_t)n, f) == (size_t)n)
        text[n] = '\0';
    else
        free(text), text = NULL;
    if (f)
        fclose(f);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    const uint32_t layers = json_u32(j, "num_hidden_layers", 0),
                   h = json_u32(j, "num_attention_heads", 0);
    const uint32_t e = json_u32(j, "hidden_size", 0);
    *heads = json_u32(j, "num_key_value_heads", h);
    const uint32_t d = json_u32(j, "head_dim", h ? e / h : 0);
    *bytes = 2ull * layers * *heads * d * 2;
    cJSON_Delete(j);
}

/* KV heads and K/V bytes per token at f16 (K and V, all layers) of a model,
 * for the summary; 0 when the file does not say. */
static void kv_facts(const char *path, model_format fmt, uint32_t *heads, uint64_t *bytes)
{
    if (fmt == FORMAT_HF) {
        kv_facts_hf(path, heads, bytes);
        return;
    }
    gqa_gguf *g = NULL;
    uint32_t layers = 0, h = 0, e = 0, kvh = 0, d = 0;
    *heads = 0, *bytes = 0;
    if (gqa_gguf_open(path, &g) != GQA_OK)
        return;
    if (gqa_gguf_get_u32(g, "llama.block_count", &layers) == GQA_OK &&
        gqa_gguf_get_u32(g, "llama.attention.head_count", &h) == GQA_OK &&
        gqa_gguf_get_u32(g, "llama.embedding_length", &e) == GQA_OK && h > 0) {
        if (gqa_gguf_get_u32(g, "llama.attention.head_count_kv", &kvh) != GQA_OK)
            kvh = h;
        if (gqa_gguf_get_u32(g, "llama.attention.key_length", &d) != GQA_OK)
            d = e / h;
        *heads = kvh;
        *bytes = 2ull * layers * kvh * d * 2;
    }
    gqa_gguf_close(g);
}

/* The library call for a pair of formats. */
static gqa_status convert_dispatch(model_format from, model_format to, const convert_args *a)
{
    if (from == FORMAT_GGUF)
        return to == FORMAT_GGUF ? gqa_convert_gguf(a->in, a->out, &a->o)
                                 : gqa_convert_gguf_to_hf(a->in, a->out, &a->o);
    return to == FORMAT_HF ? gqa_convert_hf(a->in, a->out, &a->o)
                           : gqa_convert_hf_to_gguf(a->in, a->out, &a->o);
}

int cmd_convert(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
    convert_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc != CLI_EXIT_OK)
        return rc;
    struct stat st;
    const model_format from = stat(a.in, &st) == 0 && S_ISDIR(st.st_mode) ? FORMAT_HF : FORMAT_GGUF;
    const model_format to = a.to_set ? a.to : from;
    bar b = {-1};
    if (!a.quiet && isatty(fileno(stderr))) {
        a.o.progress = draw_bar;
        a.o.progress_user = &b;
    }
    uint32_t g0 = 0, g1 = 0;
    uint64_t bytes0 = 0, bytes1 = 0;
    if (!a.quiet)
        kv_facts(a.in, from, &g0, &bytes0);
    gqa_status s = convert_dispatch(from, to, &a);
    if (b.shown >= 0 && b.shown < 1000)
        fputc('\n', stderr); /* end a bar cut short by an error */
    if (s != GQA_OK)
        return cli_fail(s, "convert");
    if (!a.quiet) {
        kv_facts(a.out, to, &g1, &bytes1);
        printf("wrote %s (%s): %u -> %u KV heads by %s; KV cache per token at f16: %llu -> "
               "%llu bytes\n",
               a.out, format_name(to), (unsigned)g0, (unsigned)g1,
               gqa_convert_method_name(a.o.method), (unsigned long long)bytes0,
               (unsigned long long)bytes1);
        char tj[4200];
        snprintf(tj, sizeof tj, "%s/tokenizer.json", a.in);
        if (from == FORMAT_HF && to == FORMAT_GGUF && access(tj, F_OK) != 0)
            printf("note: %s has no tokenizer.json, so %s has no tokenizer keys (gqa run "
                   "needs them)\n",
                   a.in, a.out);
    }
    return CLI_EXIT_OK;
}
