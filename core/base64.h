/*
 * core/base64.h - the value of one base64 digit (RFC 4648), for the
 * decoders that need it: SASL responses, modified UTF-7 mailbox names
 * (which spell digit 63 ',' instead of '/'), MIME checks in tests.
 */
#ifndef TOASTER_CORE_BASE64_H
#define TOASTER_CORE_BASE64_H

/* 0..63 for a digit of the alphabet whose last digit is digit63 ('/' in
 * RFC 4648, ',' in IMAP's modified UTF-7); -1 for anything else ('='
 * included: padding is the caller's to handle). */
static inline int
base64_digit_value(unsigned char c, char digit63)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == (unsigned char)digit63) {
        return 63;
    }
    return -1;
}

#endif
