/*
 * core/span.h - a borrowed view of bytes: pointer plus length.
 *
 * Parsers hand out spans into the buffer they were fed; a span is valid only
 * as long as that buffer is. Copy it before it crosses a thread or a callback.
 */
#ifndef TOASTER_CORE_SPAN_H
#define TOASTER_CORE_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct span {
    const char *ptr;
    size_t      len;
};

#define SPAN_LITERAL(s) ((struct span){ .ptr = (s), .len = sizeof(s) - 1 })

static inline struct span
span_make(const char *ptr, size_t len)
{
    return (struct span){ .ptr = ptr, .len = len };
}

static inline bool
span_is_empty(struct span s)
{
    return s.len == 0;
}

/* ASCII case-insensitive comparison with a C string. */
static inline bool
span_equals_nocase(struct span s, const char *cstr)
{
    size_t n = strlen(cstr);
    if (n != s.len) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.ptr[i];
        unsigned char b = (unsigned char)cstr[i];
        if (a >= 'A' && a <= 'Z') {
            a = (unsigned char)(a + 32);
        }
        if (b >= 'A' && b <= 'Z') {
            b = (unsigned char)(b + 32);
        }
        if (a != b) {
            return false;
        }
    }
    return true;
}

#endif
