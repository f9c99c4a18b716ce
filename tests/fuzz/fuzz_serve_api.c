/* fuzz_serve_api.c - libFuzzer target for the request parser of `gqa serve`
 * (api_parse, src/serve/api.c): the bytes every client can send.
 *
 * The first input byte picks the endpoint (completions or chat) and whether a
 * default system prompt is given; the rest is the request body. A body the
 * parser accepts must come back complete and self-consistent (a prompt as text
 * or as ids, never both or neither; stop strings non-NULL and counted; sampler
 * values finite), and every response writer is then driven with the parsed
 * text and a reply carrying it, so ASan sees any overrun in the JSON they
 * build; a rejected body must say why with a 4xx status.
 *
 * Built as fuzz_gguf.c: with -DGQA_LIBFUZZER (CMake option GQA_BUILD_FUZZ,
 * clang) a libFuzzer binary; without it, a main() that replays the files named
 * on the command line (the CTest fuzz_serve_api_corpus, on tests/serve/corpus). */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drive_writers(const api_request *req)
{
    const api_reply a = {.id = "cmpl-fuzz", .created = 1, .model = "fuzz", .chat = req->chat};
    const char *text = req->prompt_text ? req->prompt_text : "";
    srv_progress pr = {.finish = SRV_FINISH_LENGTH, .prompt_tokens = req->n_prompt_ids,
                       .completion_tokens = req->max_tokens};
    char *s[4] = {api_response_json(&a, text, &pr), api_stream_chunk(&a, text, 1, SRV_FINISH_NONE),
                  api_stream_chunk(&a, NULL, 0, SRV_FINISH_STOP), api_stream_usage(&a, &pr)};
    for (int i = 0; i < 4; i++) {
        if (!s[i] || !strlen(s[i]))
            __builtin_trap();
        free(s[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const int chat = data[0] & 1;
    const char *system = data[0] & 2 ? "You are a fuzzer." : NULL;
    api_request req;
    api_error err;
    memset(&err, 0, sizeof err);
    if (api_parse((const char *)data + 1, size - 1, chat, system, &req, &err) != 0) {
        if (err.status < 400 || err.status > 499 || !err.type || !err.message[0])
            __builtin_trap();
        char *json = api_error_json(&err);
        if (!json)
            __builtin_trap();
        free(json);
        return 0;
    }
    if (req.chat != chat || (!req.prompt_text) == (!req.prompt_ids) || req.n_stop < 0 ||
        req.n_stop > 4 || req.max_tokens < 0 || (req.prompt_ids && req.n_prompt_ids <= 0) ||
        !isfinite(req.sampler.temperature) || !isfinite(req.sampler.top_p))
        __builtin_trap();
    for (int i = 0; i < req.n_stop; i++)
        if (!req.stop[i])
            __builtin_trap();
    drive_writers(&req);
    api_request_free(&req);
    return 0;
}

#ifndef GQA_LIBFUZZER
int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st) != 0) {
            fprintf(stderr, "fuzz_serve_api: cannot open %s\n", argv[i]);
            errors++;
            if (f)
                fclose(f);
            continue;
        }
        size_t n = (size_t)st.st_size;
        uint8_t *buf = malloc(n ? n : 1);
        if (buf && fread(buf, 1, n, f) == n)
            LLVMFuzzerTestOneInput(buf, n);
        else
            errors++;
        free(buf);
        fclose(f);
        files++;
    }
    printf("fuzz_serve_api: replayed %d files, %d unreadable\n", files, errors);
    return errors || files == 0 ? 1 : 0;
}
#endif
