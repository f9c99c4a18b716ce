/* fuzz_gguf.c - libFuzzer target for the GGUF reader (gqa_gguf_open_memory).
 *
 * Each input is parsed from memory; if it opens, every accessor is driven
 * over every key, array element (capped) and tensor, and the first and last
 * byte of each tensor's data are read, so ASan sees any pointer the reader
 * hands out that leaves the input.
 *
 * Built two ways:
 *  - with -DGQA_LIBFUZZER (CMake option GQA_BUILD_FUZZ, clang): the libFuzzer
 *    entry point only;  build-fuzz/fuzz_gguf -max_total_time=60 CORPUS_DIR
 *  - without it (any compiler): a main() that replays the files and
 *    directories named on the command line through the same entry point, so
 *    a corpus runs as an ordinary CTest (fuzz_gguf_corpus).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gqa_model.h"
#include "../gguf/gguf_touch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned fuzz_sink;

static void drive_key(const gqa_gguf *g, const char *key)
{
    unsigned sum = gguf_touch_key(g, key, 256);
    gqa_gguf_type et;
    uint64_t n;
    int32_t i32;
    /* past the end must be refused */
    if (gqa_gguf_get_arr(g, key, &et, &n) == GQA_OK && gqa_gguf_arr_i32(g, key, n, 1, &i32) == GQA_OK)
        __builtin_trap();
    fuzz_sink += sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gqa_gguf *g = NULL;
    if (gqa_gguf_open_memory(data, size, &g) != GQA_OK) {
        if (g != NULL || gqa_last_error()[0] == '\0')
            __builtin_trap(); /* failures leave no handle and always say why */
        return 0;
    }
    for (int64_t i = 0; i < gqa_gguf_n_keys(g); i++) {
        const char *key = gqa_gguf_key_name(g, i);
        if (gqa_gguf_find_key(g, key) != i)
            __builtin_trap();
        drive_key(g, key);
    }
    unsigned sum = 0;
    for (int64_t i = 0; i < gqa_gguf_n_tensors(g); i++) {
        gqa_gguf_tensor_info t;
        gqa_status s = gqa_gguf_tensor_at(g, i, &t);
        if (gqa_gguf_find_tensor(g, t.name) != i)
            __builtin_trap();
        if (s == GQA_OK && t.n_bytes) {
            const uint8_t *d = t.data;
            if (d < data || t.n_bytes > size || (size_t)(d - data) > size - t.n_bytes)
                __builtin_trap();
            sum += d[0] + d[t.n_bytes - 1];
        }
    }
    fuzz_sink += sum;
    gqa_gguf_close(g);
    return 0;
}

#ifndef GQA_LIBFUZZER
/* Replay one file; returns 0 on success (whatever the reader said). */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_gguf: cannot open %s\n", path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fprintf(stderr, "fuzz_gguf: out of memory\n");
            return 1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    /* An exactly-sized copy, so a sanitizer build catches reads past it. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return 1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[a]);
            if (!d) {
                fprintf(stderr, "fuzz_gguf: cannot read directory %s\n", argv[a]);
                errors++;
                continue;
            }
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                char path[4096];
                if (e->d_name[0] == '.')
                    continue;
                snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
                if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                    continue;
                errors += replay_file(path);
                files++;
            }
            closedir(d);
        } else {
            errors += replay_file(argv[a]);
            files++;
        }
    }
    printf("fuzz_gguf: replayed %d files, %d unreadable\n", files, errors);
    return errors || files == 0 ? 1 : 0;
}
#endif
