/* bench_util.c - the machine header, timing, inputs and JSON frame shared by
 * the `gqa bench` benchmarks (see bench_util.h). */
#define _DEFAULT_SOURCE /* madvise */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <time.h>

#include "cmd.h"

#define MIN_REPS 3
#define MAX_REPS 100000

/* ------------------------------------------------------------- machine -- */

/* The "model name" line of /proc/cpuinfo, or "unknown". */
static void read_cpu_model(char *out, size_t size)
{
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *p = strchr(line, ':');
        if (!p)
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, size, "%s", p);
        break;
    }
    fclose(f);
}

/* The 1-minute load average before the run (-1 if unknown): a busy machine
 * explains a noisy report. */
static double read_load_average(void)
{
    double load = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1.0;
        fclose(f);
    }
    return load;
}

int bench_setup_machine(long threads, const char *kernel, bench_machine *m)
{
    if (threads >= 0)
        gqa_set_num_threads((int)threads);
    if (kernel) {
        gqa_status st = gqa_set_kernel(kernel);
        if (st != GQA_OK)
            return cli_fail(st, "--kernel");
    }
    read_cpu_model(m->cpu_model, sizeof m->cpu_model);
    m->load = read_load_average();
    m->threads = gqa_get_num_threads();
    m->kernel = gqa_kernel_name();
    m->amx = gqa_kernel_amx();
    gqa_status st = gqa_probe_fma_peak(&m->fma_peak);
    if (st != GQA_OK)
        return cli_fail(st, "FMA-peak probe");
    st = gqa_probe_read_bandwidth(BENCH_HEADER_PROBE_BYTES, 10, &m->header_bw);
    if (st != GQA_OK)
        return cli_fail(st, "read-bandwidth probe");
    return CLI_EXIT_OK;
}

void bench_print_machine(const char *name, const bench_machine *m)
{
    printf("gqa bench %s | kernel %s%s | %d thread%s | %s | load %.2f\n", name, m->kernel,
           m->amx ? " + AMX tiles" : "", m->threads, m->threads == 1 ? "" : "s", m->cpu_model,
           m->load);
    printf("probes: FMA peak %.1f GFLOP/s (f32, all threads); read bandwidth %.1f GB/s over "
           "%zu MiB\n",
           m->fma_peak / 1e9, m->header_bw / 1e9, BENCH_HEADER_PROBE_BYTES >> 20);
}

int bench_probe_read(const bench_machine *m, double bytes, double *bytes_per_sec)
{
    double passes = 0.1 * m->header_bw / bytes;
    int reps = passes < 5.0 ? 5 : passes > 1000.0 ? 1000 : (int)passes;
    gqa_status st = gqa_probe_read_bandwidth((size_t)bytes, reps, bytes_per_sec);
    return st == GQA_OK ? CLI_EXIT_OK : cli_fail(st, "read-bandwidth probe");
}

/* -------------------------------------------------------------- timing -- */

double bench_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int bench_time_calls(bench_call_fn call, void *ctx, const char *what, double target,
                     bench_timing *t)
{
    gqa_status st;
    double warm = target / 5.0, t0 = bench_now_seconds(), elapsed;
    int calls = 0;
    do {
        if ((st = call(ctx)) != GQA_OK)
            return cli_fail(st, what);
        calls++;
        elapsed = bench_now_seconds() - t0;
    } while (elapsed < warm && calls < MAX_REPS);

    double est = elapsed / calls, want = target / (est > 1e-9 ? est : 1e-9);
    int reps = want < MIN_REPS ? MIN_REPS : want > MAX_REPS ? MAX_REPS : (int)want;
    double *times = malloc(sizeof(double) * (size_t)reps);
    if (!times) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (int i = 0; i < reps; i++) {
        double start = bench_now_seconds();
        st = call(ctx);
        times[i] = bench_now_seconds() - start;
        if (st != GQA_OK) {
            free(times);
            return cli_fail(st, what);
        }
    }
    t->reps = reps;
    t->t_median = bench_median(times, reps);
    t->t_min = times[0];
    free(times);
    return CLI_EXIT_OK;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_format_time(double s, char *out, size_t size)
{
    if (s < 1e-3)
        snprintf(out, size, "%.1f us", s * 1e6);
    else if (s < 1.0)
        snprintf(out, size, "%.3f ms", s * 1e3);
    else
        snprintf(out, size, "%.3f s", s);
}

/* -------------------------------------------------------------- inputs -- */

uint64_t bench_next_random(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

float bench_random_unit(uint64_t *state)
{
    return (float)(bench_next_random(state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* aligned_alloc wants a size that is a multiple of the alignment. Inputs of
 * 2 MiB or more go in transparent huge pages, as the library's
 * probe buffer and KV cache arena do (gqa_large_alloc): the kernels and the
 * read probe they are compared with then read the same kind of memory (on
 * the development VM a 134 MB probe read 27-30 GB/s in 4 KiB pages and
 * ~49 GB/s in 2 MiB pages). */
void *bench_alloc_aligned(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge)
        return aligned_alloc(64, (bytes + 63) / 64 * 64);
    bytes = (bytes + huge - 1) & ~(huge - 1);
    void *p = aligned_alloc(huge, bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p)
        (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

/* ---------------------------------------------------------------- JSON -- */

int bench_json_open(const char *path, FILE **f)
{
    *f = NULL;
    if (path && !(*f = fopen(path, "w"))) {
        cli_error("cannot open '%s' for writing: %s", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

void bench_json_discard(FILE *f, const char *path)
{
    if (f) {
        fclose(f);
        remove(path);
    }
}

cJSON *bench_json_root(const char *benchmark, const bench_machine *m)
{
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(date, sizeof date, "unknown");
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", GQA_VERSION_MAJOR, GQA_VERSION_MINOR,
             GQA_VERSION_PATCH);

    /* cJSON's Add* calls do nothing on a NULL parent, so checking the probes
     * object also catches a failed root. */
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "benchmark", benchmark);
    cJSON_AddStringToObject(root, "version", version);
    cJSON_AddStringToObject(root, "date", date);
    cJSON_AddStringToObject(root, "kernel", m->kernel);
    cJSON_AddBoolToObject(root, "amx", m->amx);
    cJSON_AddNumberToObject(root, "threads", m->threads);
    cJSON_AddStringToObject(root, "cpu_model", m->cpu_model);
    if (m->load >= 0.0)
        cJSON_AddNumberToObject(root, "load_average_1min", m->load);
    cJSON *probes = cJSON_AddObjectToObject(root, "probes");
    if (!probes) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddNumberToObject(probes, "fma_peak_gflop_per_s", m->fma_peak / 1e9);
    cJSON_AddNumberToObject(probes, "read_gb_per_s", m->header_bw / 1e9);
    cJSON_AddNumberToObject(probes, "read_buffer_bytes", (double)BENCH_HEADER_PROBE_BYTES);
    return root;
}

int bench_json_write(FILE *f, const char *path, cJSON *root)
{
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        fclose(f);
        cli_error("out of memory building the JSON report");
        return CLI_EXIT_FAIL;
    }
    int bad = fputs(text, f) < 0 || fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    cJSON_free(text);
    if (bad) {
        cli_error("cannot write '%s': %s", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
