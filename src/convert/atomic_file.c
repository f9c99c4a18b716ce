/* atomic_file.c - write a file under a temporary name in the final
 * directory, then fsync and rename it into place (convert_internal.h).
 *
 * Why this shape: rename(2) within one directory is atomic, so readers see
 * either the old file or the complete new one; fsync before the rename makes
 * sure the new name never points at data still in flight after a crash; the
 * temporary file lives in the final directory because rename cannot cross
 * file systems. O_EXCL with a random suffix avoids clobbering a concurrent
 * writer's temporary file; mode 0666 lets the umask decide the permissions
 * like any other new file (mkstemp would force 0600).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "convert/convert_internal.h"
#include "convert/hf_util.h"

#define AFILE_BUF          (1u << 20)
#define AFILE_REPORT_EVERY (4u << 20) /* progress granularity in bytes */

struct gqa_afile {
    int fd;
    char *path; /* final name */
    char *tmp;  /* temporary name */
    unsigned char *buf;
    size_t n_buf;
    uint64_t pos, total, reported;
    gqa_progress_fn progress;
    void *user;
    gqa_status failed; /* sticky */
};

static gqa_status io_fail(gqa_afile *f, const char *what, int err)
{
    f->failed = gqa_fail(GQA_ERR_IO, "cannot %s '%s' (temporary file '%s'): %s", what, f->path,
                         f->tmp, strerror(err));
    return f->failed;
}

static void report(gqa_afile *f, int force)
{
    if (!f->progress)
        return;
    if (force || f->pos - f->reported >= AFILE_REPORT_EVERY) {
        f->reported = f->pos;
        f->progress(f->user, (int64_t)f->pos, (int64_t)f->total);
    }
}

/* "PATH.tmp-" and 6 characters drawn from the clock, the process id, a
 * counter and the attempt number: unpredictable enough that O_EXCL rarely
 * has to retry. */
static void temp_name(char *dst, size_t cap, const char *path, unsigned attempt)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    static _Thread_local unsigned counter;
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    uint64_t x = gqa_conv_stream((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30),
                                 (uint64_t)getpid(), (uint64_t)(++counter) << 16 | attempt);
    char suffix[7];
    for (int i = 0; i < 6; i++, x /= 36)
        suffix[i] = alphabet[x % 36];
    suffix[6] = '\0';
    snprintf(dst, cap, "%s.tmp-%s", path, suffix);
}

gqa_status gqa_afile_open(const char *path, uint64_t total, gqa_progress_fn progress,
                          void *progress_user, gqa_afile **out)
{
    if (!out || !path || !path[0])
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_afile_open: NULL or empty argument");
    *out = NULL;
    gqa_afile *f = calloc(1, sizeof *f);
    const size_t cap = strlen(path) + 16;
    if (f) {
        f->path = malloc(cap);
        f->tmp = malloc(cap);
        f->buf = malloc(AFILE_BUF);
    }
    if (!f || !f->path || !f->tmp || !f->buf) {
        if (f)
            free(f->path), free(f->tmp), free(f->buf), free(f);
        return gqa_fail(GQA_ERR_NO_MEMORY, "writing '%s': out of memory", path);
    }
    memcpy(f->path, path, strlen(path) + 1);
    f->fd = -1;
    for (unsigned attempt = 0; f->fd < 0 && attempt < 64; attempt++) {
        temp_name(f->tmp, cap, path, attempt);
        f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f->fd < 0 && errno != EEXIST) {
            gqa_status s = io_fail(f, "create a file next to", errno);
            free(f->path), free(f->tmp), free(f->buf), free(f);
            return s;
        }
    }
    if (f->fd < 0) {
        gqa_status s = io_fail(f, "find a free temporary name next to", EEXIST);
        free(f->path), free(f->tmp), free(f->buf), free(f);
        return s;
    }
    f->total = total;
    f->progress = progress;
    f->user = progress_user;
    report(f, 1);
    *out = f;
    return GQA_OK;
}

/* write(2) until everything is out: short writes and EINTR are retried, any
 * other failure (ENOSPC, EFBIG, EIO, ...) is the file's failure. */
static gqa_status write_all(gqa_afile *f, const unsigned char *p, size_t n)
{
    while (n > 0) {
        const size_t chunk = n < AFILE_REPORT_EVERY ? n : AFILE_REPORT_EVERY;
        ssize_t k = write(f->fd, p, chunk);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return io_fail(f, "write", k < 0 ? errno : EIO);
        p += k, n -= (size_t)k;
    }
    return GQA_OK;
}

static gqa_status flush(gqa_afile *f)
{
    gqa_status s = write_all(f, f->buf, f->n_buf);
    f->n_buf = 0;
    return s;
}

gqa_status gqa_afile_write(gqa_afile *f, const void *p, uint64_t n)
{
    if (!f || (!p && n))
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_afile_write: NULL argument");
    if (f->failed != GQA_OK)
        return f->failed;
    const unsigned char *b = p;
    while (n > 0) {
        if (f->n_buf == 0 && n >= AFILE_BUF) { /* big runs bypass the buffer */
            const size_t k = n < AFILE_REPORT_EVERY ? (size_t)n : AFILE_REPORT_EVERY;
            if (write_all(f, b, k) != GQA_OK)
                return f->failed;
            b += k, n -= k, f->pos += k;
        } else {
            size_t k = AFILE_BUF - f->n_buf;
            k = n < k ? (size_t)n : k;
            memcpy(f->buf + f->n_buf, b, k);
            f->n_buf += k;
            b += k, n -= k, f->pos += k;
            if (f->n_buf == AFILE_BUF && flush(f) != GQA_OK)
                return f->failed;
        }
        report(f, 0);
    }
    return GQA_OK;
}

gqa_status gqa_afile_pad(gqa_afile *f, uint64_t align)
{
    static const unsigned char zeros[256];
    if (!f || align == 0 || (align & (align - 1)) != 0)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_afile_pad: bad argument");
    uint64_t pad = (align - f->pos % align) % align;
    while (pad > 0) {
        const uint64_t k = pad < sizeof zeros ? pad : sizeof zeros;
        gqa_status s = gqa_afile_write(f, zeros, k);
        if (s != GQA_OK)
            return s;
        pad -= k;
    }
    return GQA_OK;
}

uint64_t gqa_afile_pos(const gqa_afile *f)
{
    return f ? f->pos : 0;
}

static void afile_free(gqa_afile *f)
{
    free(f->path), free(f->tmp), free(f->buf), free(f);
}

void gqa_afile_abort(gqa_afile *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    unlink(f->tmp);
    afile_free(f);
}

gqa_status gqa_afile_commit(gqa_afile *f)
{
    if (!f)
        return gqa_fail(GQA_ERR_INVALID_ARG, "gqa_afile_commit: NULL");
    gqa_status s = f->failed;
    if (s == GQA_OK)
        s = flush(f);
    /* fsync and close report delayed write errors (ENOSPC on NFS, EIO) */
    if (s == GQA_OK && fsync(f->fd) != 0)
        s = io_fail(f, "sync", errno);
    if (s == GQA_OK) {
        const int fd = f->fd;
        f->fd = -1;
        if (close(fd) != 0)
            s = io_fail(f, "close", errno);
    }
    if (s == GQA_OK && rename(f->tmp, f->path) != 0)
        s = io_fail(f, "rename the finished file to", errno);
    if (s != GQA_OK) {
        gqa_afile_abort(f);
        return s;
    }
    report(f, 1);
    /* The rename is durable only once the directory itself is synced. The
     * file is in place by now, complete and synced: a directory that cannot
     * be synced (some network file systems) does not make the write fail. */
    (void)gqa_fsync_parent(f->path);
    afile_free(f);
    return GQA_OK;
}
