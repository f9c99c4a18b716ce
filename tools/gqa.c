/* gqa.c - the gqa command-line tool: subcommand dispatch and shared helpers.
 *
 *   gqa <command> [options]      see `gqa --help`
 *
 * Errors are one line on stderr ("gqa: error: ...") and a nonzero exit:
 * CLI_EXIT_USAGE for a bad command line, CLI_EXIT_FAIL for a failure at run time.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "gqa.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

/* One row per subcommand. */
static const command commands[] = {
    {"bench", cmd_bench, "time attention against machine limits measured in the same run"},
    {"plan", cmd_plan, "KV cache memory per token and sequences that fit in a budget"},
    {"run", cmd_run, "generate text from a prompt with a GGUF model (SmolLM2 by default)"},
    {"chat", cmd_chat, "interactive multi-turn chat (ChatML), KV cache kept across turns"},
    {"perplexity", cmd_perplexity, "perplexity of a text file (sliding windows)"},
    {"convert", cmd_convert, "change the number of KV heads of a model (MHA <-> GQA <-> MQA)"},
    {"train", cmd_train, "pre-train a small Llama-style model on a text file (byte-level)"},
    {"uptrain", cmd_uptrain, "convert a model to fewer KV heads and continue training it"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server, continuous batching on one KV budget"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *f)
{
    fprintf(f, "usage: gqa <command> [options]\n"
               "       gqa <command> --help\n"
               "       gqa --help | --version\n"
               "\n"
               "Grouped-query attention on the CPU.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n"
               "environment:\n"
               "  GQA_THREADS=N     worker threads (default: one per core)\n"
               "  GQA_KERNEL=NAME   use a lower kernel set (avx2, scalar, ref, ...)\n");
}

static void print_version(void)
{
    printf("gqa %d.%d.%d (kernel set %s)\n", GQA_VERSION_MAJOR, GQA_VERSION_MINOR,
           GQA_VERSION_PATCH, gqa_kernel_name());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_error("missing command (try 'gqa --help')");
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        print_version();
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    if (name[0] == '-')
        cli_error("unknown option '%s' (try 'gqa --help')", name);
    else
        cli_error("unknown command '%s' (try 'gqa --help')", name);
    return CLI_EXIT_USAGE;
}

/* -------------------------------------------------------------- helpers -- */

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gqa: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_fail(gqa_status s, const char *what)
{
    const char *detail = gqa_last_error();
    if (detail[0])
        cli_error("%s: %s (%s)", what, detail, gqa_status_string(s));
    else
        cli_error("%s: %s", what, gqa_status_string(s));
    return CLI_EXIT_FAIL;
}

int cli_option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_error("option %s needs a value", name);
        return -1;
    }
    *i += 1;
    *value = argv[*i];
    return 1;
}

int cli_parse_long(const char *opt, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
        cli_error("%s wants an integer in %ld..%ld, got '%s'", opt, lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *opt, const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (text[0] == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v) || v < lo || v > hi) {
        cli_error("%s wants a number in %g..%g, got '%s'", opt, lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

/* "8GiB", "512MiB", "1e9", "1.5 GB" -> bytes (rounded down). */
int cli_parse_size(const char *opt, const char *text, uint64_t *out)
{
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"", 1.0},       {"B", 1.0},  {"KiB", 0x1p10}, {"MiB", 0x1p20}, {"GiB", 0x1p30},
                 {"TiB", 0x1p40}, {"KB", 1e3}, {"MB", 1e6},     {"GB", 1e9},     {"TB", 1e12}};
    char *end;
    errno = 0;
    const double v = strtod(text, &end);
    if (end == text || errno == ERANGE || !isfinite(v) || v < 0.0)
        goto bad;
    while (isspace((unsigned char)*end))
        end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(end, units[i].suffix)) {
            const double bytes = floor(v * units[i].scale);
            if (bytes < 1.0 || bytes >= 0x1p64)
                goto bad;
            *out = (uint64_t)bytes;
            return 0;
        }
bad:
    cli_error("%s wants a size of at least 1 byte such as 8GiB, 512MiB or 1e9 (units B, "
              "KiB, MiB, GiB, TiB, KB, MB, GB, TB), got '%s'",
              opt, text);
    return -1;
}
