/*
 * core/utf8.h - reading UTF-8 a character at a time (broken sequences
 * become U+FFFD, as the IMAP text code searches them) and whether bytes
 * are well-formed UTF-8, for the parsers that take 8-bit text from the
 * network (SMTPUTF8 addresses, IMAP UTF8=ACCEPT strings).
 */
#ifndef TOASTER_CORE_UTF8_H
#define TOASTER_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT 0xFFFDu

/* One character of u[0..len) (len >= 1), read the way RFC 3629 and the
 * WHATWG decoder read it. Returns the bytes it covers: a whole
 * well-formed sequence, or the longest start of one that was valid so far
 * (at least 1 byte), which stands for one U+FFFD. *cp_out gets the code
 * point (UTF8_REPLACEMENT for a broken sequence); *is_incomplete_out is
 * set when u ended inside a sequence that was valid so far (more bytes
 * may complete it). */
static inline size_t
utf8_decode(const unsigned char *u, size_t len, uint32_t *cp_out, bool *is_incomplete_out)
{
    *is_incomplete_out = false;
    unsigned char c = u[0];
    if (c < 0x80) {
        *cp_out = c;
        return 1;
    }
    size_t follow;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        follow = 1;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        follow = 2;
        cp = c & 0x0fu;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        follow = 3;
        cp = c & 0x07u;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
    } else {
        *cp_out = UTF8_REPLACEMENT;
        return 1;
    }
    for (size_t k = 1; k <= follow; k++) {
        if (k >= len) {
            *is_incomplete_out = true;
            *cp_out = UTF8_REPLACEMENT;
            return k;
        }
        unsigned char b = u[k];
        unsigned char l = k == 1 ? lo : 0x80;
        unsigned char h = k == 1 ? hi : 0xbf;
        if (b < l || b > h) {
            *cp_out = UTF8_REPLACEMENT;
            return k;
        }
        cp = (cp << 6) | (b & 0x3fu);
    }
    *cp_out = cp;
    return follow + 1;
}

/* One well-formed character of u[0..len) (len >= 1): its length, or 0
 * when the bytes there are not well-formed UTF-8. */
static inline size_t
utf8_decode_strict(const unsigned char *u, size_t len, uint32_t *cp_out)
{
    bool is_incomplete;
    size_t n = utf8_decode(u, len, cp_out, &is_incomplete);
    /* U+FFFD itself (EF BF BD) is a character like any other; a broken
     * four-byte sequence may also cover three bytes. */
    if (is_incomplete || (*cp_out == UTF8_REPLACEMENT && !(n == 3 && u[0] == 0xef))) {
        return 0;
    }
    return n;
}

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF. */
static inline bool
utf8_is_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode_strict(u + i, len - i, &cp);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

/* cp (at most U+10FFFF) as UTF-8 into out (room for 4 bytes); returns the
 * bytes written. */
static inline size_t
utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

#endif
