/* workspace.c - aligned allocation and the per-thread reusable scratch. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "core/internal.h"

void *gqa_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    return p;
}

void gqa_aligned_free(void *p)
{
    free(p);
}

/* One grow-only buffer per calling thread: the decode path allocates only
 * when a call needs more than any earlier call on this thread did. */
static _Thread_local void *ws_ptr;
static _Thread_local size_t ws_size;

void *gqa_workspace_get(size_t bytes)
{
    if (bytes <= ws_size)
        return ws_ptr;
    size_t grow = bytes + bytes / 4;
    void *p = gqa_aligned_alloc(grow);
    if (!p) {
        gqa_fail(GQA_ERR_NO_MEMORY, "cannot allocate %zu bytes of attention workspace", grow);
        return NULL;
    }
    gqa_aligned_free(ws_ptr);
    ws_ptr = p;
    ws_size = grow;
    return p;
}

void gqa_workspace_release(void)
{
    gqa_aligned_free(ws_ptr);
    ws_ptr = NULL;
    ws_size = 0;
}
