/*
 * core/ascii.h - the ASCII character helpers that parsers of mail text
 * need everywhere (hex digits of xtext and quoted-printable, case folding
 * of addresses and keywords), independent of the C locale.
 */
#ifndef TOASTER_CORE_ASCII_H
#define TOASTER_CORE_ASCII_H

#include <stdbool.h>

/* 0..15 for a hex digit of either case, -1 for anything else. */
static inline int
ascii_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

static inline unsigned char
ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Space or tab (RFC 5234 WSP). */
static inline bool
ascii_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

#endif
