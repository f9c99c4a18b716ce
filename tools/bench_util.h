/* bench_util.h - what the `gqa bench` benchmarks share: the machine header
 * (kernel, threads, CPU model, probes), timing by median of repeated calls,
 * fixed-seed random inputs and the frame of the --json report.
 *
 * Every function that can fail prints one "gqa: error: ..." line and returns
 * a CLI_EXIT_* status (or NULL); none of them exits.
 */
#ifndef GQA_TOOLS_BENCH_UTIL_H
#define GQA_TOOLS_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "gqa.h"

/* The buffer of the header's read-bandwidth probe. */
#define BENCH_HEADER_PROBE_BYTES ((size_t)256 << 20)

typedef struct bench_machine {
    char cpu_model[256];
    int threads;
    const char *kernel;
    int amx;          /* gqa_kernel_amx() */
    double load;      /* 1-minute load average at the start, -1 if unknown */
    double fma_peak;  /* FLOP/s */
    double header_bw; /* bytes/s over BENCH_HEADER_PROBE_BYTES */
} bench_machine;

/* Apply the library settings first (threads < 0 and kernel == NULL keep the
 * defaults), then read the CPU model and load and run both probes under them. */
int bench_setup_machine(long threads, const char *kernel, bench_machine *m);

/* "gqa bench <name> | kernel .. | N threads | CPU | load" and the probes line. */
void bench_print_machine(const char *name, const bench_machine *m);

/* Read bandwidth over a buffer of `bytes` bytes, with enough passes for about
 * 0.1 s at the header bandwidth (5..1000). */
int bench_probe_read(const bench_machine *m, double bytes, double *bytes_per_sec);

/* ------------------------------------------------------------- timing -- */

typedef gqa_status (*bench_call_fn)(void *ctx);

typedef struct bench_timing {
    int reps;
    double t_median, t_min; /* seconds per call */
} bench_timing;

/* Warm up for a fifth of `target` seconds, estimate the time per call from
 * it, then time about `target` seconds of single calls (3..100000) and keep
 * the median. A failing call is reported as "<what>: <last error>". */
int bench_time_calls(bench_call_fn call, void *ctx, const char *what, double target,
                     bench_timing *t);

double bench_now_seconds(void);
/* The median of v[0..n-1] (n >= 1); sorts v in place. */
double bench_median(double *v, int n);
void bench_format_time(double seconds, char *out, size_t size); /* "12.3 us", "4.567 ms" */

/* ------------------------------------------------------------- inputs -- */

/* splitmix64: fixed seeds make every run read the same inputs. */
uint64_t bench_next_random(uint64_t *state);
float bench_random_unit(uint64_t *state); /* uniform in [-1, 1) */

/* 64-byte aligned, any size (from 2 MiB: 2 MiB aligned, in huge pages where
 * the OS grants them); free with free(). */
void *bench_alloc_aligned(size_t bytes);

/* --------------------------------------------------------------- JSON -- */

/* Open the report file before the run, so that a bad path fails before the
 * minutes of measuring. NULL path: *f = NULL and success. */
int bench_json_open(const char *path, FILE **f);

/* Close and delete a report that will not be written (no half-run report). */
void bench_json_discard(FILE *f, const char *path);

/* A report object with "benchmark", version, date, kernel, threads, CPU,
 * load and "probes"; NULL if out of memory. */
cJSON *bench_json_root(const char *benchmark, const bench_machine *m);

/* Print `root` to `f` and close it; takes ownership of both. A NULL root
 * reports running out of memory. */
int bench_json_write(FILE *f, const char *path, cJSON *root);

#endif
