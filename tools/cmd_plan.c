/* cmd_plan.c - `gqa plan`: how many full-context sequences fit in a memory
 * budget, for a model's own KV head count, for MHA (G = H) and MQA (G = 1),
 * in each storage type.
 *
 * The numbers are the paged KV cache's own: bytes per token from
 * gqa_kv_bytes_per_token(), and the block arithmetic gqa_kv_cache_create()
 * documents (blocks of block_tokens tokens, floor(budget / block_bytes) of
 * them, a sequence holds whole blocks). tests/test_plan.c checks every number
 * against caches it creates. Nothing is allocated here, so any budget can be
 * planned.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "cmd.h"
#include "gqa.h"
#include "gqa_model.h"

/* The cache names blocks with int32 ids; gqa_kv_cache_create refuses a
 * budget that makes more blocks than this. */
#define CACHE_MAX_BLOCKS     ((int64_t)INT32_MAX - 1)
#define DEFAULT_BLOCK_TOKENS 16

typedef struct preset {
    const char *name;
    int32_t layers, heads, kv_heads, head_dim;
} preset;

/* Head counts from each model's published config.json. */
static const preset presets[] = {
    {"llama3-8b", 32, 32, 8, 128},   {"llama3-70b", 80, 64, 8, 128}, {"mistral-7b", 32, 32, 8, 128},
    {"qwen2.5-0.5b", 24, 14, 2, 64}, {"smollm2-135m", 30, 9, 3, 64},
};
#define N_PRESETS (sizeof(presets) / sizeof(presets[0]))

static const gqa_dtype plan_dtypes[] = {GQA_F32, GQA_F16, GQA_BF16, GQA_Q8_0};
#define N_PLAN_DTYPES (sizeof(plan_dtypes) / sizeof(plan_dtypes[0]))

typedef struct plan_options {
    const char *model;                      /* preset name, or NULL */
    long layers, heads, kv_heads, head_dim; /* 0: not given */
    uint64_t budget;
    int have_budget;
    long ctx;
    long block_tokens;
    int json;
} plan_options;

/* One line of the plan. */
typedef struct plan_row {
    const char *variant; /* "model", "mha", "mqa" */
    int32_t kv_heads;
    gqa_dtype dtype;
    uint64_t bytes_per_token;
    uint64_t block_bytes;
    int64_t blocks_total;   /* floor(budget / block_bytes) */
    int64_t blocks_per_seq; /* ceil(ctx / block_tokens) */
    uint64_t bytes_per_seq; /* blocks_per_seq * block_bytes */
    int64_t seqs_fit;       /* floor(blocks_total / blocks_per_seq) */
    int64_t token_capacity; /* blocks_total * block_tokens */
    int over_block_limit;   /* the cache would refuse this budget */
} plan_row;

#define MAX_ROWS (3 * N_PLAN_DTYPES)

static void plan_usage(FILE *f)
{
    fprintf(f, "usage: gqa plan --model NAME --budget SIZE --ctx N [options]\n"
               "       gqa plan --layers L --heads H --kv-heads G --head-dim D --budget SIZE\n"
               "                --ctx N [options]\n"
               "\n"
               "How many full-context sequences fit in a KV cache memory budget: for the\n"
               "model's own KV head count G, for MHA (G = H) and for MQA (G = 1), in each\n"
               "storage type (q8_0 only when head_dim is a multiple of 32). The numbers are\n"
               "exactly what gqa_kv_cache allocates: bytes per token are\n"
               "2 * layers * G * row bytes, the budget is cut into blocks of\n"
               "--block-tokens tokens, and a sequence holds whole blocks.\n"
               "\n"
               "options:\n"
               "  --model NAME        a preset:");
    for (size_t i = 0; i < N_PRESETS; i++)
        fprintf(f, "%s %s", i ? "," : "", presets[i].name);
    fprintf(f,
            "\n"
            "                      or a GGUF model file (NAME ending in .gguf or holding a\n"
            "                      '/'): its {arch}.block_count, attention.head_count,\n"
            "                      head_count_kv and key_length (else embedding_length / H)\n"
            "  --layers L          transformer layers\n"
            "  --heads H           query heads\n"
            "  --kv-heads G        KV heads (must divide H)\n"
            "  --head-dim D        head dimension, 1..256\n"
            "  --budget SIZE       KV cache memory: bytes, or with a unit: KiB MiB GiB TiB\n"
            "                      (powers of 1024) or KB MB GB TB (powers of 1000);\n"
            "                      e.g. 8GiB, 512MiB, 1e9\n"
            "  --ctx N             context length of one sequence, in tokens\n"
            "  --block-tokens N    tokens per cache block (default %d)\n"
            "  --json              write the plan as JSON to stdout\n"
            "  -h, --help          this help\n",
            DEFAULT_BLOCK_TOKENS);
}

static const preset *find_preset(const char *name)
{
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(name, presets[i].name))
            return &presets[i];
    return NULL;
}

/* Shape from a GGUF file's metadata: {arch}.block_count, .attention.head_count,
 * .attention.head_count_kv (absent: MHA) and .attention.key_length (absent:
 * embedding_length / head_count). Returns 0, or -1 after printing the error. */
static int shape_from_gguf(const char *path, plan_options *o)
{
    gqa_gguf *g = NULL;
    gqa_status st = gqa_gguf_open(path, &g);
    if (st != GQA_OK) {
        cli_fail(st, path);
        return -1;
    }
    const char *arch;
    size_t arch_len;
    char key[160];
    uint32_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0, embd = 0;
    st = gqa_gguf_get_str(g, "general.architecture", &arch, &arch_len);
    if (st == GQA_OK && arch_len > 64)
        st = GQA_ERR_FORMAT;
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%.*s." suffix, (int)arch_len, arch), key)
    if (st == GQA_OK)
        st = gqa_gguf_get_u32(g, ARCH_KEY("block_count"), &layers);
    if (st == GQA_OK)
        st = gqa_gguf_get_u32(g, ARCH_KEY("attention.head_count"), &heads);
    if (st == GQA_OK) {
        if (gqa_gguf_find_key(g, ARCH_KEY("attention.head_count_kv")) >= 0)
            st = gqa_gguf_get_u32(g, key, &kv_heads);
        else
            kv_heads = heads;
    }
    if (st == GQA_OK) {
        if (gqa_gguf_find_key(g, ARCH_KEY("attention.key_length")) >= 0) {
            st = gqa_gguf_get_u32(g, key, &head_dim);
        } else {
            st = gqa_gguf_get_u32(g, ARCH_KEY("embedding_length"), &embd);
            head_dim = heads ? embd / heads : 0;
        }
    }
#undef ARCH_KEY
    if (st != GQA_OK) {
        cli_fail(st, path);
        gqa_gguf_close(g);
        return -1;
    }
    gqa_gguf_close(g);
    if (!layers || !heads || !kv_heads || !head_dim) {
        cli_error("plan: '%s': its metadata gives %u layers, %u heads, %u KV heads, head_dim %u",
                  path, layers, heads, kv_heads, head_dim);
        return -1;
    }
    o->layers = layers;
    o->heads = heads;
    o->kv_heads = kv_heads;
    o->head_dim = head_dim;
    return 0;
}

static int is_gguf_path(const char *name)
{
    const size_t n = strlen(name);
    return strchr(name, '/') != NULL || (n >= 5 && !strcasecmp(name + n - 5, ".gguf"));
}

/* The integer options: 1 if argv[*i] was one (parsed into o), 0 if it is
 * something else, -1 after printing an error. */
static int numeric_option(int argc, char **argv, int *i, plan_options *o)
{
    const struct {
        const char *name;
        long lo, hi;
        long *dst;
    } opts[] = {
        {"--layers", 1, 65536, &o->layers},     {"--heads", 1, 65536, &o->heads},
        {"--kv-heads", 1, 65536, &o->kv_heads}, {"--head-dim", 1, 256, &o->head_dim},
        {"--ctx", 1, INT32_MAX, &o->ctx},       {"--block-tokens", 1, 65536, &o->block_tokens},
    };
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        const char *v = NULL;
        const int got = cli_option_value(argc, argv, i, opts[k].name, &v);
        if (got < 0)
            return -1;
        if (got > 0)
            return cli_parse_long(opts[k].name, v, opts[k].lo, opts[k].hi, opts[k].dst) ? -1 : 1;
    }
    return 0;
}

/* Returns -1 to continue, otherwise the exit status to return now. */
static int parse_plan_options(int argc, char **argv, plan_options *o)
{
    *o = (plan_options){.block_tokens = DEFAULT_BLOCK_TOKENS};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int got = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            plan_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if ((got = cli_option_value(argc, argv, &i, "--model", &v)) != 0) {
            if (got < 0)
                return CLI_EXIT_USAGE;
            o->model = v;
        } else if ((got = cli_option_value(argc, argv, &i, "--budget", &v)) != 0) {
            if (got < 0 || cli_parse_size("--budget", v, &o->budget) != 0)
                return CLI_EXIT_USAGE;
            o->have_budget = 1;
        } else if ((got = numeric_option(argc, argv, &i, o)) != 0) {
            if (got < 0)
                return CLI_EXIT_USAGE; /* the parser printed why */
        } else {
            cli_error("plan: unknown %s '%s' (try 'gqa plan --help')",
                      a[0] == '-' ? "option" : "argument", a);
            return CLI_EXIT_USAGE;
        }
    }
    const int explicit_shape = o->layers || o->heads || o->kv_heads || o->head_dim;
    if (o->model) {
        if (explicit_shape) {
            cli_error("plan: give either --model or --layers/--heads/--kv-heads/--head-dim, "
                      "not both");
            return CLI_EXIT_USAGE;
        }
        const preset *p = find_preset(o->model);
        if (!p && is_gguf_path(o->model)) {
            if (shape_from_gguf(o->model, o) != 0)
                return CLI_EXIT_FAIL;
        } else if (!p) {
            cli_error("plan: unknown model '%s' (presets: llama3-8b, llama3-70b, "
                      "mistral-7b, qwen2.5-0.5b, smollm2-135m; or a .gguf file)",
                      o->model);
            return CLI_EXIT_USAGE;
        } else {
            o->layers = p->layers;
            o->heads = p->heads;
            o->kv_heads = p->kv_heads;
            o->head_dim = p->head_dim;
        }
    } else if (!o->layers || !o->heads || !o->kv_heads || !o->head_dim) {
        cli_error("plan: say which model: --model NAME, or all of --layers, --heads, --kv-heads "
                  "and --head-dim (try 'gqa plan --help')");
        return CLI_EXIT_USAGE;
    }
    if (o->heads % o->kv_heads != 0) {
        cli_error("plan: --kv-heads %ld must divide --heads %ld", o->kv_heads, o->heads);
        return CLI_EXIT_USAGE;
    }
    if (!o->have_budget || !o->ctx) {
        cli_error("plan: --budget and --ctx are required (try 'gqa plan --help')");
        return CLI_EXIT_USAGE;
    }
    return -1;
}

/* The cache's arithmetic for one (G, dtype). Returns 0, or -1 after an error. */
static int compute_row(const plan_options *o, const char *variant, int32_t G, gqa_dtype t,
                       plan_row *r)
{
    memset(r, 0, sizeof *r);
    r->variant = variant;
    r->kv_heads = G;
    r->dtype = t;
    r->bytes_per_token = gqa_kv_bytes_per_token((int32_t)o->layers, G, (int32_t)o->head_dim, t);
    if (r->bytes_per_token == 0) {
        cli_error("plan: %s", gqa_last_error());
        return -1;
    }
    const int64_t bt = o->block_tokens;
    r->blocks_per_seq = (o->ctx + bt - 1) / bt;
    if (__builtin_mul_overflow(r->bytes_per_token, (uint64_t)bt, &r->block_bytes) ||
        __builtin_mul_overflow(r->block_bytes, (uint64_t)r->blocks_per_seq, &r->bytes_per_seq)) {
        cli_error("plan: %s G=%d %s: sizes overflow 64 bits", variant, (int)G, gqa_dtype_name(t));
        return -1;
    }
    r->blocks_total = (int64_t)(o->budget / r->block_bytes);
    r->over_block_limit = r->blocks_total > CACHE_MAX_BLOCKS;
    r->token_capacity = r->blocks_total * bt;
    r->seqs_fit = r->blocks_total / r->blocks_per_seq;
    return 0;
}

static int compute_plan(const plan_options *o, plan_row *rows, int *n_rows)
{
    const struct {
        const char *name;
        int32_t G;
    } variants[] = {{"model", (int32_t)o->kv_heads}, {"mha", (int32_t)o->heads}, {"mqa", 1}};
    int n = 0;
    for (size_t j = 0; j < N_PLAN_DTYPES; j++) {
        if (plan_dtypes[j] == GQA_Q8_0 && o->head_dim % 32 != 0)
            continue;
        for (size_t v = 0; v < 3; v++)
            if (compute_row(o, variants[v].name, variants[v].G, plan_dtypes[j], &rows[n++]) != 0)
                return -1;
    }
    *n_rows = n;
    return 0;
}

/* 1536 -> "1.5 KiB"; three significant digits from KiB up. */
static const char *human(uint64_t bytes, char *buf, size_t size)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, size, "%.*f %s", v < 10.0 ? 2 : v < 100.0 ? 1 : 0, v, unit[u]);
    return buf;
}

static const char *variant_label(const char *variant)
{
    return !strcmp(variant, "model") ? "model" : !strcmp(variant, "mha") ? "MHA" : "MQA";
}

static void print_table(const plan_options *o, const plan_row *rows, int n)
{
    char b1[32], b2[32];
    printf("model:   %s: %ld layers, %ld query heads, %ld KV heads, head_dim %ld\n",
           o->model ? o->model : "(explicit)", o->layers, o->heads, o->kv_heads, o->head_dim);
    printf("budget:  %s (%llu bytes), context %ld tokens, blocks of %ld tokens\n",
           human(o->budget, b1, sizeof b1), (unsigned long long)o->budget, o->ctx, o->block_tokens);
    printf("\n%-6s %5s %-5s %21s %12s %12s %10s %8s\n", "kind", "G", "dtype", "KV bytes/token",
           "KV/sequence", "budget tok", "sequences", "vs MHA");
    int over = 0;
    for (int i = 0; i < n; i++) {
        const plan_row *r = &rows[i];
        /* The MHA row of the same dtype, for the concurrency ratio. */
        const plan_row *mha = NULL;
        for (int j = 0; j < n; j++)
            if (rows[j].dtype == r->dtype && !strcmp(rows[j].variant, "mha"))
                mha = &rows[j];
        char ratio[16] = "-";
        if (mha && mha->seqs_fit > 0)
            snprintf(ratio, sizeof ratio, "%.2fx", (double)r->seqs_fit / (double)mha->seqs_fit);
        char tok[40];
        snprintf(tok, sizeof tok, "%llu (%s)", (unsigned long long)r->bytes_per_token,
                 human(r->bytes_per_token, b1, sizeof b1));
        printf("%-6s %5d %-5s %21s %12s %12lld %10lld %8s%s\n", variant_label(r->variant),
               (int)r->kv_heads, gqa_dtype_name(r->dtype), tok,
               human(r->bytes_per_seq, b2, sizeof b2), (long long)r->token_capacity,
               (long long)r->seqs_fit, ratio, r->over_block_limit ? " *" : "");
        over |= r->over_block_limit;
        if (i + 1 < n && rows[i + 1].dtype != r->dtype)
            printf("\n");
    }
    printf("\nKV/sequence: the context rounded up to whole blocks (%lld tokens), which is what\n"
           "the cache allocates. budget tok: token slots in the budget. sequences: full-context\n"
           "sequences that fit.\n",
           (long long)rows[0].blocks_per_seq * o->block_tokens);
    if (o->head_dim % 32 != 0)
        printf("q8_0 is not listed: it needs head_dim %% 32 == 0.\n");
    if (over)
        printf("*: the budget makes more than %lld blocks, more than gqa_kv_cache accepts; use "
               "a larger --block-tokens.\n",
               (long long)CACHE_MAX_BLOCKS);
}

/* Integers go out as raw text so that 64-bit values stay exact. */
static void add_u64(cJSON *o, const char *name, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    cJSON_AddRawToObject(o, name, buf);
}

static int print_json(const plan_options *o, const plan_row *rows, int n)
{
    cJSON *root = cJSON_CreateObject();
    if (o->model)
        cJSON_AddStringToObject(root, "model", o->model);
    else
        cJSON_AddNullToObject(root, "model");
    add_u64(root, "n_layers", (uint64_t)o->layers);
    add_u64(root, "n_q_heads", (uint64_t)o->heads);
    add_u64(root, "n_kv_heads", (uint64_t)o->kv_heads);
    add_u64(root, "head_dim", (uint64_t)o->head_dim);
    add_u64(root, "budget_bytes", o->budget);
    add_u64(root, "ctx", (uint64_t)o->ctx);
    add_u64(root, "block_tokens", (uint64_t)o->block_tokens);
    cJSON *arr = cJSON_AddArrayToObject(root, "rows");
    if (!arr) {
        cJSON_Delete(root);
        cli_error("out of memory building the JSON plan");
        return CLI_EXIT_FAIL;
    }
    for (int i = 0; i < n; i++) {
        const plan_row *r = &rows[i];
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(arr, e)) {
            cJSON_Delete(e);
            cJSON_Delete(root);
            cli_error("out of memory building the JSON plan");
            return CLI_EXIT_FAIL;
        }
        cJSON_AddStringToObject(e, "variant", r->variant);
        add_u64(e, "n_kv_heads", (uint64_t)r->kv_heads);
        cJSON_AddStringToObject(e, "dtype", gqa_dtype_name(r->dtype));
        add_u64(e, "bytes_per_token", r->bytes_per_token);
        add_u64(e, "block_bytes", r->block_bytes);
        add_u64(e, "blocks_total", (uint64_t)r->blocks_total);
        add_u64(e, "blocks_per_seq", (uint64_t)r->blocks_per_seq);
        add_u64(e, "bytes_per_seq", r->bytes_per_seq);
        add_u64(e, "token_capacity", (uint64_t)r->token_capacity);
        add_u64(e, "seqs_fit", (uint64_t)r->seqs_fit);
        cJSON_AddBoolToObject(e, "over_block_limit", r->over_block_limit);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        cli_error("out of memory building the JSON plan");
        return CLI_EXIT_FAIL;
    }
    const int bad = puts(text) == EOF || fflush(stdout) != 0;
    cJSON_free(text);
    if (bad) {
        cli_error("cannot write the plan: %s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cmd_plan(int argc, char **argv)
{
    plan_options o;
    const int rc = parse_plan_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    plan_row rows[MAX_ROWS];
    int n = 0;
    if (compute_plan(&o, rows, &n) != 0)
        return CLI_EXIT_FAIL;
    if (o.json)
        return print_json(&o, rows, n);
    print_table(&o, rows, n);
    return CLI_EXIT_OK;
}
