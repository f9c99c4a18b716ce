/* hf_util.c - file and JSON helpers for the safetensors and Hugging Face
 * directory code (see hf_util.h). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "convert/hf_util.h"
#include "core/internal.h"

uint64_t gqa_utf8_check(const char *text, uint64_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    uint64_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i; /* a continuation byte, C0/C1 or F5..FF */
        }
        if ((uint64_t)len > n - i)
            return i;
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += (uint64_t)len;
    }
    return n;
}

int gqa_json_uint(const cJSON *it, uint64_t *v)
{
    if (!cJSON_IsNumber(it))
        return 0;
    double d = it->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0) /* also rejects NaN */
        return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) /* a fraction */
        return 0;
    *v = u;
    return 1;
}

static gqa_status open_regular(const char *path, int *fd, size_t *size)
{
    *fd = open(path, O_RDONLY);
    if (*fd < 0)
        return gqa_fail(GQA_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0) {
        int e = errno;
        close(*fd);
        return gqa_fail(GQA_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(*fd);
        return gqa_fail(GQA_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(*fd);
        return gqa_fail(GQA_ERR_IO, "'%s' is too large (%lld bytes)", path, (long long)st.st_size);
    }
    *size = (size_t)st.st_size;
    return GQA_OK;
}

gqa_status gqa_map_file(const char *path, void **map, size_t *size)
{
    int fd = -1;
    *map = NULL;
    gqa_status s = open_regular(path, &fd, size);
    if (s != GQA_OK)
        return s;
    if (*size == 0) { /* mmap cannot map 0 bytes; the parser reports it */
        close(fd);
        return GQA_OK;
    }
    void *m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping stays valid */
    if (m == MAP_FAILED)
        return gqa_fail(GQA_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    *map = m;
    return GQA_OK;
}

gqa_status gqa_read_file(const char *path, size_t max_bytes, char **buf, size_t *len)
{
    int fd = -1;
    size_t size = 0;
    *buf = NULL;
    gqa_status s = open_regular(path, &fd, &size);
    if (s != GQA_OK)
        return s;
    if (size > max_bytes) {
        close(fd);
        return gqa_fail(GQA_ERR_IO, "'%s' is %zu bytes, more than the %zu allowed", path, size,
                        max_bytes);
    }
    char *b = malloc(size + 1);
    if (!b) {
        close(fd);
        return gqa_fail(GQA_ERR_NO_MEMORY, "out of memory reading '%s'", path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, b + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) { /* an error, or the file shrank under us */
            int e = r < 0 ? errno : EIO;
            close(fd);
            free(b);
            return gqa_fail(GQA_ERR_IO, "cannot read '%s': %s", path, strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    b[size] = '\0';
    *buf = b;
    *len = size;
    return GQA_OK;
}

gqa_status gqa_write_all(int fd, const void *p, uint64_t n, const char *path)
{
    const char *b = p;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t w = write(fd, b, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return gqa_fail(GQA_ERR_IO, "cannot write '%s': %s", path,
                            strerror(w < 0 ? errno : EIO));
        b += w;
        n -= (uint64_t)w;
    }
    return GQA_OK;
}

gqa_status gqa_path_join(char *dst, size_t cap, const char *dir, const char *name)
{
    int n = dir ? snprintf(dst, cap, "%s/%s", dir, name) : snprintf(dst, cap, "%s", name);
    if (n < 0 || (size_t)n >= cap)
        return gqa_fail(GQA_ERR_INVALID_ARG, "path too long: '%.200s/%.100s'", dir ? dir : "",
                        name);
    return GQA_OK;
}

gqa_status gqa_fsync_parent(const char *path)
{
    char copy[4096];
    if (snprintf(copy, sizeof copy, "%s", path) >= (int)sizeof copy)
        return gqa_fail(GQA_ERR_INVALID_ARG, "path too long: '%.300s'", path);
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return gqa_fail(GQA_ERR_IO, "cannot open directory '%s': %s", dir, strerror(errno));
    int r = fsync(fd);
    int e = errno;
    close(fd);
    /* Some file systems cannot fsync a directory (EINVAL); the data itself
     * was already synced, so that is not worth failing the write for. */
    if (r != 0 && e != EINVAL)
        return gqa_fail(GQA_ERR_IO, "cannot sync directory '%s': %s", dir, strerror(e));
    return GQA_OK;
}

gqa_status gqa_copy_file(const char *src, const char *dst)
{
    void *map = NULL;
    size_t size = 0;
    gqa_status s = gqa_map_file(src, &map, &size);
    if (s != GQA_OK)
        return s;
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0) {
        s = gqa_fail(GQA_ERR_IO, "cannot create '%s': %s", dst, strerror(errno));
    } else {
        s = gqa_write_all(fd, map, size, dst);
        if (s == GQA_OK && fsync(fd) != 0)
            s = gqa_fail(GQA_ERR_IO, "cannot sync '%s': %s", dst, strerror(errno));
        if (close(fd) != 0 && s == GQA_OK)
            s = gqa_fail(GQA_ERR_IO, "cannot close '%s': %s", dst, strerror(errno));
        if (s != GQA_OK)
            unlink(dst);
    }
    if (map)
        munmap(map, size);
    return s;
}
