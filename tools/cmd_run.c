/* cmd_run.c - `gqa run`: generate text from a prompt and report speed and
 * the KV memory GQA saves against MHA. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "session.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gqa run [-m MODEL] -p PROMPT [options]\n"
            "\n"
            "Generate text from PROMPT, streamed to stdout; then report prompt and\n"
            "generation speed, the KV cache bytes in use and what MHA would need.\n"
            "\n"
            "  -p, --prompt TEXT      the prompt (special tokens like <|im_start|> allowed)\n"
            "  --chatml               wrap the prompt as one user turn of the model's chat\n"
            "                         template (with its default system prompt)\n"
            "%s",
            gen_options_help);
}

int cmd_run(int argc, char **argv)
{
    gen_options o;
    gen_options_default(&o);
    const char *prompt = NULL;
    int chatml = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = gen_options_parse(&o, argc, argv, &i);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        if ((r = cli_option_value(argc, argv, &i, "-p", &v)) ||
            (r = cli_option_value(argc, argv, &i, "--prompt", &v))) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            prompt = v;
        } else if (!strcmp(argv[i], "--chatml")) {
            chatml = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else {
            cli_error("run: unknown option '%s' (try 'gqa run --help')", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (!prompt) {
        cli_error("run: missing -p PROMPT (try 'gqa run --help')");
        return CLI_EXIT_USAGE;
    }
    if (o.threads > 0)
        gqa_set_num_threads((int)o.threads);

    session s;
    /* the cache is sized once the prompt's length is known: open with a
     * small context, tokenize, then size it for prompt + n */
    int rc = session_open(&s, session_model_path(o.model), o.kv_type, 1);
    if (rc != CLI_EXIT_OK)
        return rc;
    char *text = NULL;
    if (chatml) {
        if (!session_has_chatml(&s)) {
            cli_error("run: --chatml: the model's vocabulary has no <|im_start|>/<|im_end|>");
            session_close(&s);
            return CLI_EXIT_FAIL;
        }
        char *sys = session_default_system(&s);
        text = session_chatml_turn(sys, prompt);
        free(sys);
    }
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    rc = session_tokenize(&s, text ? text : prompt, 1, &ids, &n_ids);
    free(text);
    const int64_t need = n_ids + o.n_predict;
    gqa_sampler *smp = NULL;
    if (rc == CLI_EXIT_OK && n_ids == 0) {
        cli_error("run: the prompt is empty");
        rc = CLI_EXIT_USAGE;
    }
    if (rc == CLI_EXIT_OK)
        rc = session_set_ctx(&s, o.n_ctx > 0 ? o.n_ctx : need);
    if (rc == CLI_EXIT_OK && s.info.n_ctx_train > 0 && need > s.info.n_ctx_train)
        fprintf(stderr, "gqa: warning: %lld tokens exceed the model's training context (%d)\n",
                (long long)need, (int)s.info.n_ctx_train);
    if (rc == CLI_EXIT_OK) {
        gqa_status st = gqa_sampler_create(&o.smp, s.info.n_vocab, &smp);
        if (st != GQA_OK)
            rc = cli_fail(st, "sampler");
    }
    for (int64_t i = 0; rc == CLI_EXIT_OK && i < n_ids; i++)
        gqa_sampler_accept(smp, ids[i]);
    if (rc == CLI_EXIT_OK)
        rc = session_feed(&s, ids, n_ids);
    int32_t stop = -1;
    if (rc == CLI_EXIT_OK) {
        if (!chatml)
            fputs(prompt, stdout);
        rc = session_generate(&s, smp, o.n_predict, stdout, &stop);
        fflush(stdout);
    }
    if (rc == CLI_EXIT_OK)
        session_report(&s, stderr);
    gqa_sampler_free(smp);
    free(ids);
    session_close(&s);
    return rc;
}
