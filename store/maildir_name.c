/*
 * store/maildir_name.c - Maildir file names: base, sizes, flags, keywords
 * (see maildir_name.h for the format). Pure code, any thread, no
 * allocation; every loop is bounded by MAILDIR_NAME_BYTES_MAX.
 */
#include "store/maildir_name.h"

#include <errno.h>
#include <string.h>

#include "core/assertions.h"

/* Reads the decimal value of field "<key>=" in base (the fields after the
 * first ','). Returns true and sets *value_out only if the value is all
 * digits and fits 64 bits, as Dovecot's maildir_filename_get_size(). */
static bool
name_field_u64(struct span base, char key, uint64_t *value_out)
{
    const char *comma = memchr(base.ptr, ',', base.len);
    const char *end = base.ptr + base.len;
    while (comma != NULL) {
        const char *field = comma + 1;
        const char *next = memchr(field, ',', (size_t)(end - field));
        const char *field_end = next != NULL ? next : end;
        if (field_end - field >= 3 && field[0] == key && field[1] == '=') {
            uint64_t value = 0;
            const char *p = field + 2;
            for (; p < field_end; p++) {
                if (*p < '0' || *p > '9') {
                    return false;
                }
                uint64_t digit = (uint64_t)(*p - '0');
                if (value > (UINT64_MAX - digit) / 10) {
                    return false; /* would not fit 64 bits */
                }
                value = value * 10 + digit;
            }
            *value_out = value;
            return true;
        }
        comma = next;
    }
    return false;
}

int
maildir_name_parse(const char *name, size_t len, struct maildir_name *out)
{
    ASSERT(name != NULL || len == 0);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (len == 0 || name[0] == '.') {
        return -ENOENT;
    }
    if (len > MAILDIR_NAME_BYTES_MAX || memchr(name, '/', len) != NULL ||
        memchr(name, '\0', len) != NULL) {
        return -EINVAL;
    }
    const char *colon = memchr(name, ':', len);
    size_t base_len = colon != NULL ? (size_t)(colon - name) : len;
    if (base_len == 0) {
        return -EINVAL;
    }
    out->base = span_make(name, base_len);
    if (colon != NULL) {
        out->info = span_make(colon + 1, len - base_len - 1);
    } else {
        out->info = span_make(name + len, 0);
    }
    out->has_size = name_field_u64(out->base, 'S', &out->size);
    out->has_vsize = name_field_u64(out->base, 'W', &out->vsize);

    struct span info = out->info;
    if (info.len >= 2 && info.ptr[0] == '2' && info.ptr[1] == ',') {
        out->has_flags = true;
        for (size_t i = 2; i < info.len; i++) {
            char c = info.ptr[i];
            if (c >= 'A' && c <= 'Z') {
                out->flags |= MAILDIR_FLAG_BIT(c);
            } else if (c >= 'a' && c <= 'z') {
                out->keywords |= UINT32_C(1) << (c - 'a');
            } else {
                out->is_info_odd = true;
            }
        }
    } else if (info.len > 0) {
        out->is_info_odd = true;
    }
    return 0;
}

int
maildir_name_build(struct span base, uint32_t flags, uint32_t keywords, char *out,
                   size_t out_bytes, size_t *len_out)
{
    ASSERT(out != NULL);
    ASSERT(len_out != NULL);
    if (base.len == 0 || base.ptr[0] == '.' || memchr(base.ptr, ':', base.len) != NULL ||
        memchr(base.ptr, '/', base.len) != NULL || memchr(base.ptr, '\0', base.len) != NULL ||
        (flags & ~MAILDIR_FLAGS_ALL) != 0 || (keywords & ~MAILDIR_KEYWORDS_ALL) != 0) {
        return -EINVAL;
    }
    size_t letters = (size_t)__builtin_popcount(flags) + (size_t)__builtin_popcount(keywords);
    size_t total = base.len + 3 + letters;
    if (total > MAILDIR_NAME_BYTES_MAX || total + 1 > out_bytes) {
        return -ENAMETOOLONG;
    }
    memcpy(out, base.ptr, base.len);
    size_t n = base.len;
    memcpy(out + n, ":2,", 3);
    n += 3;
    for (int i = 0; i < 26; i++) {
        if ((flags & (UINT32_C(1) << i)) != 0) {
            out[n++] = (char)('A' + i);
        }
    }
    for (int i = 0; i < 26; i++) {
        if ((keywords & (UINT32_C(1) << i)) != 0) {
            out[n++] = (char)('a' + i);
        }
    }
    ASSERT(n == total);
    out[n] = '\0';
    *len_out = n;
    return 0;
}
