/* cmd.h - the gqa tool's subcommands and the small helpers they share.
 *
 * A subcommand is `int cmd_<name>(int argc, char **argv)` with argv[0] its own
 * name; it returns the process exit status (CLI_EXIT_*). Add one by declaring
 * it here and adding its row to the table in gqa.c.
 *
 * The tool uses only the public header gqa.h.
 */
#ifndef GQA_TOOLS_CMD_H
#define GQA_TOOLS_CMD_H

#include <stdint.h>

#include "gqa.h"

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
/* Parse a size in bytes for option `opt`: "8GiB", "512MiB", "1e9", "1.5 GB"
 * (rounded down; units B, KiB, MiB, GiB, TiB, KB, MB, GB, TB); -1 with an
 * error if not one of at least 1 byte. */
int cli_parse_size(const char *opt, const char *text, uint64_t *out);

#endif

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* ---------------------------------------------------------- subcommands -- */
int cmd_bench(int argc, char **argv);
int cmd_bench_kv(int argc, char **argv); /* `gqa bench kv`, reached through cmd_bench */
int cmd_bench_model(int argc, char **argv); /* `gqa bench model` */
int cmd_bench_gemm(int argc, char **argv);  /* `gqa bench gemm` */
int cmd_plan(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_uptrain(int argc, char **argv);
int cmd_bench_train(int argc, char **argv); /* `gqa bench train` */
int cmd_serve(int argc, char **argv); /* `gqa serve` (src/serve/) */

/* -------------------------------------------------------------- helpers -- */

/* Print "gqa: error: <message>" as one line on stderr. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);

/* Report a failed library call: "gqa: error: <what>: <gqa_last_error()>
 * (<status string>)". Returns CLI_EXIT_FAIL. */
int cli_fail(gqa_status s, const char *what);

/* Option matching for `--name VALUE` and `--name=VALUE`. If argv[*i] is the
 * option `name`, set *value (taking argv[*i + 1] for the first form and
 * advancing *i past it) and return 1. Return 0 if argv[*i] is something else,
 * -1 (after printing an error) when the value is missing. */
int cli_option_value(int argc, char **argv, int *i, const char *name, const char **value);

/* Parse a whole decimal integer in lo..hi for option `opt`; print an error and
 * return -1 if `text` is not one. */
int cli_parse_long(const char *opt, const char *text, long lo, long hi, long *out);

/* Parse a finite number in lo..hi for option `opt`; -1 with an error if not. */
int cli_parse_double(const char *opt, const char *text, double lo, double hi, double *out);

/* Parse a size in bytes for option `opt`: "8GiB", "512MiB", "1e9", "1.5 GB"
 * (rounded down; units B, KiB, MiB, GiB, TiB, KB, MB, GB, TB); -1 with an
 * error if not one of at least 1 byte. */
int cli_parse_size(const char *opt, const char *text, uint64_t *out);

#endif
