/* status.c - status names and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "core/internal.h"

static _Thread_local char last_error[512];

const char *gqa_status_string(gqa_status s)
{
    switch (s) {
    case GQA_OK: return "ok";
    case GQA_ERR_INVALID_ARG: return "invalid argument";
    case GQA_ERR_NO_MEMORY: return "out of memory";
    case GQA_ERR_UNSUPPORTED: return "unsupported";
    case GQA_ERR_IO: return "I/O error";
    case GQA_ERR_FORMAT: return "malformed input";
    case GQA_ERR_CAPACITY: return "capacity exhausted";
    }
    return "unknown status";
}

const char *gqa_last_error(void)
{
    return last_error;
}

gqa_status gqa_fail(gqa_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *gqa_dtype_name(gqa_dtype t)
{
    switch (t) {
    case GQA_F32: return "f32";
    case GQA_F16: return "f16";
    case GQA_BF16: return "bf16";
    case GQA_Q8_0: return "q8_0";
    }
    return "unknown";
}
