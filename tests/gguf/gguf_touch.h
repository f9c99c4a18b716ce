/* gguf_touch.h - drive every typed accessor of one GGUF key (tests and the
 * fuzz target share it), so ASan sees every byte an accessor hands out. */
#ifndef GQA_TESTS_GGUF_TOUCH_H
#define GQA_TESTS_GGUF_TOUCH_H

#include <stdint.h>
#include <string.h>

#include "gqa_model.h"

/* Every getter on `key`, and the first `cap` elements of an array value.
 * Returns a checksum so the reads are not optimised away. */
static inline unsigned gguf_touch_key(const gqa_gguf *g, const char *key, uint64_t cap)
{
    uint32_t u32;
    int32_t i32;
    uint64_t u64, n;
    float f;
    int b;
    const char *s;
    size_t len;
    gqa_gguf_type et;
    unsigned sum = (unsigned char)key[0] + (unsigned)strlen(key);
    if (gqa_gguf_get_u32(g, key, &u32) == GQA_OK)
        sum += u32;
    if (gqa_gguf_get_i32(g, key, &i32) == GQA_OK)
        sum += (unsigned)i32;
    if (gqa_gguf_get_u64(g, key, &u64) == GQA_OK)
        sum += (unsigned)u64;
    if (gqa_gguf_get_f32(g, key, &f) == GQA_OK)
        sum += f == f;
    if (gqa_gguf_get_bool(g, key, &b) == GQA_OK)
        sum += (unsigned)b;
    if (gqa_gguf_get_str(g, key, &s, &len) == GQA_OK && len)
        sum += (unsigned char)s[0] + (unsigned char)s[len - 1];
    if (gqa_gguf_get_arr(g, key, &et, &n) == GQA_OK) {
        for (uint64_t j = 0; j < n && j < cap; j++) {
            if (gqa_gguf_arr_str(g, key, j, &s, &len) == GQA_OK && len)
                sum += (unsigned char)s[0] + (unsigned char)s[len - 1];
            if (gqa_gguf_arr_i32(g, key, j, 1, &i32) == GQA_OK)
                sum += (unsigned)i32;
            if (gqa_gguf_arr_f32(g, key, j, 1, &f) == GQA_OK)
                sum += f == f;
        }
        if (n && gqa_gguf_arr_str(g, key, n - 1, &s, &len) == GQA_OK && len)
            sum += (unsigned char)s[len - 1];
    }
    return sum;
}

#endif
