/* hf_util.h - file and JSON helpers shared by safetensors.c,
 * safetensors_write.c, hf_dir.c, hf_dir_write.c and atomic_file.c (the one
 * implementation of "fsync the parent directory" for every writer of the
 * convert layer). Internal; not installed.
 *
 * Every function records a message naming the path and the system's reason
 * (strerror) in gqa_last_error() when it fails.
 */
#ifndef GQA_CONVERT_HF_UTIL_H
#define GQA_CONVERT_HF_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "gqa.h"

struct cJSON;

/* Index of the first byte of p[0..n) that is not part of valid UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF are invalid),
 * or n when all of it is valid. */
uint64_t gqa_utf8_check(const char *p, uint64_t n);

/* A JSON number that is a non-negative integer no larger than 2^53 (beyond
 * that, the double cJSON stores is no longer exact): 1 and *v, else 0. */
int gqa_json_uint(const struct cJSON *it, uint64_t *v);

/* Map the regular file at `path` read-only. *map is NULL when the file is
 * empty (*size 0). GQA_ERR_IO naming the path. Unmap with munmap. */
gqa_status gqa_map_file(const char *path, void **map, size_t *size);

/* Read the whole regular file at `path` (at most max_bytes) into a
 * NUL-terminated malloc'ed buffer. GQA_ERR_IO (missing, unreadable, larger
 * than max_bytes), GQA_ERR_NO_MEMORY. */
gqa_status gqa_read_file(const char *path, size_t max_bytes, char **buf, size_t *len);

/* write(2) all n bytes, retrying short writes and EINTR. GQA_ERR_IO naming
 * `path` (e.g. "No space left on device"). */
gqa_status gqa_write_all(int fd, const void *p, uint64_t n, const char *path);

/* fsync the directory that holds `path`, so a rename into it is durable.
 * GQA_ERR_IO naming the directory. */
gqa_status gqa_fsync_parent(const char *path);

/* Copy the regular file src to the new file dst (O_EXCL) byte for byte and
 * fsync it. On failure dst is removed. GQA_ERR_IO naming the path. */
gqa_status gqa_copy_file(const char *src, const char *dst);

/* snprintf into dst that fails with GQA_ERR_INVALID_ARG ("path too long")
 * instead of truncating. */
gqa_status gqa_path_join(char *dst, size_t cap, const char *dir, const char *name);

#endif
