/* workspace.c - aligned allocation and the per-thread reusable scratch. */
#define _DEFAULT_SOURCE
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

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

void *gqa_large_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge)
        return gqa_aligned_alloc(bytes);
    void *p = NULL;
    bytes = (bytes + huge - 1) & ~(huge - 1);
    if (posix_memalign(&p, huge, bytes) != 0)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* a hint only: fewer TLB misses and page walks while streaming weights */
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void gqa_aligned_free(void *p)
{
    free(p);
}

/* Grow-only buffers per calling thread, one per slot: the decode path
 * allocates only when a call needs more than any earlier call on this thread
 * did. */
static _Thread_local void *ws_ptr[GQA_WS_SLOTS];
static _Thread_local size_t ws_size[GQA_WS_SLOTS];

void *gqa_workspace_slot(int slot, size_t bytes)
{
    if (bytes <= ws_size[slot])
        return ws_ptr[slot];
    size_t grow = bytes + bytes / 4;
    void *p = gqa_aligned_alloc(grow);
    if (!p) {
        gqa_fail(GQA_ERR_NO_MEMORY, "cannot allocate %zu bytes of attention workspace", grow);
        return NULL;
    }
    gqa_aligned_free(ws_ptr[slot]);
    ws_ptr[slot] = p;
    ws_size[slot] = grow;
    return p;
}

void *gqa_workspace_get(size_t bytes)
{
    return gqa_workspace_slot(GQA_WS_MAIN, bytes);
}

void gqa_workspace_release(void)
{
    for (int i = 0; i < GQA_WS_SLOTS; i++) {
        gqa_aligned_free(ws_ptr[i]);
        ws_ptr[i] = NULL;
        ws_size[i] = 0;
    }
}
