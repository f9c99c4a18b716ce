/* test_oracle.c - hand gqa_attention's results to an independent oracle.
 *
 * Writes a few cases (GQA decode, causal prefill with q_pos, windowed rows
 * past the keys, f16 K/V with an explicit scale, MQA, large scores, split-KV
 * decode) into OUTDIR: manifest.json describes them, and per case the inputs
 * q, k, v and, for the reference and every fast kernel set this CPU runs, the
 * library's out and lse, all as raw little-endian arrays (f32, or f16/bf16
 * bit patterns as uint16). tests/oracle/attn_oracle.py recomputes attention
 * in NumPy float64 from q, k, v alone and compares.
 *
 * Usage: test_oracle OUTDIR [PYTHON SCRIPT]
 * With PYTHON and SCRIPT it then runs `PYTHON SCRIPT OUTDIR` and returns its
 * verdict, so that CTest sees one test; a missing interpreter is a failure
 * with instructions, never a skip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gqa.h"
#include "test_util.h"

typedef struct oracle_case {
    const char *name;
    int32_t H, G, d;
    int64_t n_q, n_kv, q_pos;
    int32_t causal, window;
    float scale;
    gqa_dtype dtype;
    int large; /* q, k integers in [-8, 8], v in [-8, 8) */
} oracle_case;

static const oracle_case cases[] = {
    {"gqa_decode", 8, 2, 64, 1, 1000, 999, 1, 0, 0.0f, GQA_F32, 0},
    {"causal_prefill_qpos", 9, 3, 37, 48, 200, 100, 1, 0, 0.0f, GQA_BF16, 0},
    {"window_rows_past_keys", 8, 4, 80, 64, 300, 280, 0, 32, 0.0f, GQA_F32, 0},
    {"f16_causal_window_scale", 16, 4, 128, 33, 513, 480, 1, 100, 0.05f, GQA_F16, 0},
    {"mqa", 12, 1, 96, 5, 700, 0, 0, 0, 0.0f, GQA_F16, 0},
    {"large_scores", 4, 2, 64, 16, 257, 241, 1, 0, 1.0f, GQA_F32, 1},
    {"split_kv_decode", 32, 1, 128, 1, 4096, 4095, 1, 0, 0.0f, GQA_BF16, 0},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static const char *outdir;

static FILE *open_in_dir(const char *file, const char *mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, file);
    FILE *f = fopen(path, mode);
    if (!f) {
        fprintf(stderr, "test_oracle: cannot open %s for writing (does the directory exist?)\n",
                path);
        exit(1);
    }
    return f;
}

/* Raw little-endian, whatever the host's byte order. */
static void write_le(const char *file, const void *data, size_t n, size_t elem_size)
{
    FILE *f = open_in_dir(file, "wb");
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4];
        if (elem_size == 4) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            for (int k = 0; k < 4; k++)
                b[k] = (unsigned char)(u >> (8 * k));
        } else {
            uint16_t u;
            memcpy(&u, p + 2 * i, 2);
            b[0] = (unsigned char)u;
            b[1] = (unsigned char)(u >> 8);
        }
        if (fwrite(b, 1, elem_size, f) != elem_size) {
            fprintf(stderr, "test_oracle: write error on %s/%s\n", outdir, file);
            exit(1);
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "test_oracle: write error on %s/%s\n", outdir, file);
        exit(1);
    }
}

static int write_case(FILE *manifest, const oracle_case *c, int n)
{
    size_t nq = (size_t)(c->n_q * c->H * c->d), nkv = (size_t)(c->n_kv * c->G * c->d);
    size_t nlse = (size_t)(c->n_q * c->H), es = tu_dtype_size(c->dtype);
    tu_rng rng;
    tu_rng_seed(&rng, 0x0ac1eull + (uint64_t)n);
    float *q = tu_xmalloc(nq * sizeof(float)), *kf = tu_xmalloc(nkv * sizeof(float));
    float *vf = tu_xmalloc(nkv * sizeof(float));
    if (c->large) {
        for (size_t i = 0; i < nq; i++)
            q[i] = (float)tu_rng_int(&rng, -8, 8);
        for (size_t i = 0; i < nkv; i++)
            kf[i] = (float)tu_rng_int(&rng, -8, 8);
        tu_fill_uniform(&rng, vf, nkv, -8.0f, 8.0f);
    } else {
        tu_fill_uniform(&rng, q, nq, -1.0f, 1.0f);
        tu_fill_uniform(&rng, kf, nkv, -1.0f, 1.0f);
        tu_fill_uniform(&rng, vf, nkv, -1.0f, 1.0f);
    }
    void *k = tu_xmalloc(nkv * es), *v = tu_xmalloc(nkv * es);
    tu_encode(c->dtype, kf, k, nkv);
    tu_encode(c->dtype, vf, v, nkv);

    char file[256];
    snprintf(file, sizeof file, "%s.q.bin", c->name);
    write_le(file, q, nq, 4);
    snprintf(file, sizeof file, "%s.k.bin", c->name);
    write_le(file, k, nkv, es);
    snprintf(file, sizeof file, "%s.v.bin", c->name);
    write_le(file, v, nkv, es);

    fprintf(manifest,
            "%s    {\"name\": \"%s\", \"H\": %d, \"G\": %d, \"d\": %d, \"n_q\": %lld, "
            "\"n_kv\": %lld, \"q_pos\": %lld, \"causal\": %d, \"window\": %d, \"scale\": %.9g, "
            "\"kv_dtype\": \"%s\",\n     \"q\": \"%s.q.bin\", \"k\": \"%s.k.bin\", "
            "\"v\": \"%s.v.bin\",\n     \"results\": [",
            n ? ",\n" : "", c->name, (int)c->H, (int)c->G, (int)c->d, (long long)c->n_q,
            (long long)c->n_kv, (long long)c->q_pos, (int)c->causal, (int)c->window,
            (double)c->scale, gqa_dtype_name(c->dtype), c->name, c->name, c->name);

    gqa_attn_desc desc = {c->H, c->G, c->d, c->scale, c->causal, c->window, c->dtype};
    float *out = tu_xmalloc(nq * sizeof(float)), *lse = tu_xmalloc(nlse * sizeof(float));
    int errors = 0, n_results = 0;
    for (int ki = -1; ki < tu_n_fast_kernels; ki++) {
        const char *kernel = ki < 0 ? "ref" : tu_fast_kernels[ki];
        int sel = tu_select_kernel(kernel);
        errors += sel < 0;
        if (sel != 1)
            continue;
        gqa_set_num_threads(2);
        gqa_status s = gqa_attention(&desc, c->n_q, c->n_kv, c->q_pos, q, k, v, out, lse);
        if (s != GQA_OK) {
            printf("FAIL %s [%s]: gqa_attention returned %s: %s\n", c->name, kernel,
                   gqa_status_string(s), gqa_last_error());
            errors++;
            continue;
        }
        snprintf(file, sizeof file, "%s.out.%s.bin", c->name, kernel);
        write_le(file, out, nq, 4);
        snprintf(file, sizeof file, "%s.lse.%s.bin", c->name, kernel);
        write_le(file, lse, nlse, 4);
        fprintf(manifest,
                "%s\n       {\"kernel\": \"%s\", \"threads\": 2, \"out\": \"%s.out.%s.bin\", "
                "\"lse\": \"%s.lse.%s.bin\"}",
                n_results ? "," : "", kernel, c->name, kernel, c->name, kernel);
        n_results++;
    }
    fprintf(manifest, "]}");
    free(q);
    free(kf);
    free(vf);
    free(k);
    free(v);
    free(out);
    free(lse);
    return errors;
}

/* Single-quote an argument for the POSIX shell that system() runs. */
static int shell_quote(char *dst, size_t cap, const char *arg)
{
    if (strchr(arg, '\'') || strlen(arg) + 3 > cap)
        return 0;
    snprintf(dst, cap, "'%s'", arg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: %s OUTDIR [PYTHON SCRIPT]\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    FILE *manifest = open_in_dir("manifest.json", "w");
    fprintf(manifest,
            "{\"format\": \"gqa-oracle-1\", \"endianness\": \"little\",\n"
            " \"default_kernel\": \"%s\",\n \"cases\": [\n",
            gqa_kernel_name());
    int errors = 0;
    for (int n = 0; n < N_CASES; n++)
        errors += write_case(manifest, &cases[n], n);
    fprintf(manifest, "\n]}\n");
    if (fclose(manifest) != 0) {
        fprintf(stderr, "test_oracle: write error on %s/manifest.json\n", outdir);
        return 1;
    }
    printf("test_oracle: wrote %d cases to %s\n", N_CASES, outdir);
    if (errors) {
        printf("test_oracle: %d library calls failed\n", errors);
        return 1;
    }
    if (argc == 2)
        return 0;

    const char *python = argv[2], *script = argv[3];
    FILE *probe = fopen(python, "rb");
    if (!probe) {
        printf("FAIL: the oracle needs a Python with NumPy, and \"%s\" does not exist.\n"
               "      Create it with:  python3 -m venv .venv && "
               ".venv/bin/pip install -r tests/oracle/requirements.txt\n"
               "      or point CMake at another one:  -DGQA_PYTHON=/path/to/python3\n",
               python);
        return 1;
    }
    fclose(probe);
    char qp[4096], qs[4096], qd[4096], cmd[12300];
    if (!shell_quote(qp, sizeof qp, python) || !shell_quote(qs, sizeof qs, script) ||
        !shell_quote(qd, sizeof qd, outdir)) {
        printf("FAIL: paths with a single quote are not supported here\n");
        return 1;
    }
    snprintf(cmd, sizeof cmd, "%s %s %s", qp, qs, qd);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) {
        printf("FAIL: the oracle (%s) reported a mismatch or could not run (status %d)\n", cmd, rc);
        return 1;
    }
    return 0;
}
