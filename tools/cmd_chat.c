/* cmd_chat.c - `gqa chat`: an interactive multi-turn conversation in the
 * model's ChatML template. The KV cache is kept across turns, so each turn
 * only processes its own new tokens. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "session.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gqa chat [-m MODEL] [--system TEXT] [options]\n"
            "\n"
            "Chat with the model: each line read from stdin is one user turn; the reply\n"
            "streams to stdout. The conversation stays in the KV cache across turns.\n"
            "Lines '/reset' (forget the conversation) and '/exit' are commands; end of\n"
            "input ends the chat. A one-line report after each reply goes to stderr.\n"
            "\n"
            "  --system TEXT          system prompt (default: the one in the model's\n"
            "                         chat template, if any)\n"
            "%s",
            gen_options_help);
}

/* One turn: feed the turn's tokens, generate the reply. */
static int turn(session *s, gqa_sampler *smp, const gen_options *o, const char *system,
                const char *line, int first)
{
    char *t = session_chatml_turn(first ? system : NULL, line);
    if (!t) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    /* a reply ends with <|im_end|>, sampled but not yet in the cache */
    const size_t n = strlen(t) + 16;
    char *text = malloc(n);
    if (!text) {
        free(t);
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    snprintf(text, n, "%s%s", first ? "" : "<|im_end|>\n", t);
    free(t);
    int32_t *ids;
    int64_t n_ids;
    int rc = session_tokenize(s, text, 1, &ids, &n_ids);
    free(text);
    if (rc != CLI_EXIT_OK)
        return rc;
    for (int64_t i = 0; i < n_ids; i++)
        gqa_sampler_accept(smp, ids[i]);
    rc = session_feed(s, ids, n_ids);
    free(ids);
    int32_t stop;
    if (rc == CLI_EXIT_OK)
        rc = session_generate(s, smp, o->n_predict, stdout, &stop);
    fputc('\n', stdout); /* one reply per line block */
    fflush(stdout);
    if (rc == CLI_EXIT_OK)
        session_report(s, stderr);
    return rc;
}

int cmd_chat(int argc, char **argv)
{
    gen_options o;
    gen_options_default(&o);
    o.n_predict = 512;
    const char *system_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = gen_options_parse(&o, argc, argv, &i);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        if ((r = cli_option_value(argc, argv, &i, "--system", &v))) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            system_arg = v;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else {
            cli_error("chat: unknown option '%s' (try 'gqa chat --help')", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (o.threads > 0)
        gqa_set_num_threads((int)o.threads);
    session s;
    int rc = session_open(&s, session_model_path(o.model), o.kv_type, o.n_ctx);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!session_has_chatml(&s)) {
        cli_error("chat: the model's vocabulary has no <|im_start|>/<|im_end|> (ChatML)");
        session_close(&s);
        return CLI_EXIT_FAIL;
    }
    char *sys_default = system_arg ? NULL : session_default_system(&s);
    const char *system = system_arg ? system_arg : sys_default;
    gqa_sampler *smp = NULL;
    gqa_status st = gqa_sampler_create(&o.smp, s.info.n_vocab, &smp);
    if (st != GQA_OK)
        rc = cli_fail(st, "sampler");
    const int tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    int first = 1;
    while (rc == CLI_EXIT_OK) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0)
            break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (!strcmp(line, "/exit"))
            break;
        if (!strcmp(line, "/reset")) {
            gqa_kv_seq_truncate(s.cache, s.seq, 0);
            gqa_sampler_reset(smp);
            first = 1;
            continue;
        }
        rc = turn(&s, smp, &o, system, line, first);
        first = 0;
    }
    free(line);
    free(sys_default);
    gqa_sampler_free(smp);
    session_close(&s);
    return rc;
}
