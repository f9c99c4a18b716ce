/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser
 * (gqa_st_open_memory, src/convert/safetensors.c).
 *
 * Each input is parsed from memory; if it opens, every accessor is driven
 * over every tensor and metadata entry and the first and last byte of each
 * tensor's data are read, so ASan sees any pointer the parser hands out that
 * leaves the input. Failures must leave no handle and say why.
 *
 * Built two ways, as fuzz_gguf.c:
 *  - with -DGQA_LIBFUZZER (CMake option GQA_BUILD_FUZZ, clang):
 *      build-fuzz/fuzz_safetensors -max_total_time=60 CORPUS_DIR
 *  - without it: a main() that replays the files and directories named on
 *    the command line (CTest fuzz_safetensors_corpus, on the files
 *    tests/safetensors/make_hf.py writes).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/hf_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gqa_st_file *f = NULL;
    if (gqa_st_open_memory(data, size, &f) != GQA_OK) {
        if (f != NULL || gqa_last_error()[0] == '\0')
            __builtin_trap();
        return 0;
    }
    unsigned sum = 0;
    uint64_t covered = 0;
    for (int64_t i = 0; i < gqa_st_n_tensors(f); i++) {
        const gqa_st_tensor *t = gqa_st_tensor_at(f, i);
        if (!t || gqa_st_find(f, t->name) != i || t->n_dims < 0 || t->n_dims > GQA_ST_MAX_DIMS ||
            !gqa_st_dtype_bits(t->dtype))
            __builtin_trap();
        const uint8_t *d = t->data;
        if (d < data || t->n_bytes > size || (size_t)(d - data) > size - t->n_bytes)
            __builtin_trap();
        if (t->n_bytes)
            sum += d[0] + d[t->n_bytes - 1];
        covered += t->n_bytes;
    }
    /* the tensors tile the data section exactly */
    if (covered != gqa_st_file_size(f) - gqa_st_data_offset(f) || gqa_st_file_size(f) != size)
        __builtin_trap();
    for (int64_t i = 0; i < gqa_st_n_meta(f); i++)
        if (gqa_st_meta_get(f, gqa_st_meta_key(f, i)) != gqa_st_meta_value(f, i))
            __builtin_trap(); /* keys are unique, so the lookup finds entry i */
    fuzz_sink += sum;
    gqa_st_close(f);
    return 0;
}

#ifndef GQA_LIBFUZZER
/* Replay one file from an exactly-sized heap copy (a sanitizer build then
 * catches reads past it); 0 on success, whatever the parser said. */
static int replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    struct stat st;
    if (!fp || fstat(fileno(fp), &st) != 0) {
        fprintf(stderr, "fuzz_safetensors: cannot open %s\n", path);
        if (fp)
            fclose(fp);
        return 1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    int bad = !buf || fread(buf, 1, n, fp) != n;
    fclose(fp);
    if (!bad)
        LLVMFuzzerTestOneInput(buf, n);
    else
        fprintf(stderr, "fuzz_safetensors: cannot read %s\n", path);
    free(buf);
    return bad;
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        DIR *d = stat(argv[a], &st) == 0 && S_ISDIR(st.st_mode) ? opendir(argv[a]) : NULL;
        if (!d) {
            errors += replay_file(argv[a]);
            files++;
            continue;
        }
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
            if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            errors += replay_file(path);
            files++;
        }
        closedir(d);
    }
    printf("fuzz_safetensors: replayed %d files, %d unreadable\n", files, errors);
    return errors || files == 0 ? 1 : 0;
}
#endif
