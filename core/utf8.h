/*
 * core/utf8.h - whether bytes are well-formed UTF-8, for the parsers that
 * take 8-bit text from the network (SMTPUTF8 addresses, IMAP UTF8=ACCEPT
 * strings).
 */
#ifndef TOASTER_CORE_UTF8_H
#define TOASTER_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF. */
static inline bool
utf8_is_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t follow;
        unsigned char lo = 0x80;
        unsigned char hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            follow = 1;
        } else if (c == 0xe0) {
            follow = 2;
            lo = 0xa0;
        } else if (c == 0xed) {
            follow = 2;
            hi = 0x9f;
        } else if (c >= 0xe1 && c <= 0xef) {
            follow = 2;
        } else if (c == 0xf0) {
            follow = 3;
            lo = 0x90;
        } else if (c == 0xf4) {
            follow = 3;
            hi = 0x8f;
        } else if (c >= 0xf1 && c <= 0xf3) {
            follow = 3;
        } else {
            return false;
        }
        if (len - i - 1 < follow) {
            return false;
        }
        if (u[i + 1] < lo || u[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= follow; k++) {
            if (u[i + k] < 0x80 || u[i + k] > 0xbf) {
                return false;
            }
        }
        i += follow + 1;
    }
    return true;
}

#endif
