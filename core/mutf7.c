/*
 * core/mutf7.c - modified UTF-7 mailbox names (see mutf7.h for what is
 * accepted).
 *
 * Owns nothing; pure, any thread. One pass each way, linear in the input;
 * every write is checked against out_bytes first.
 */
#include "core/mutf7.h"

#include <errno.h>
#include <stdint.h>

#include "core/assertions.h"
#include "core/base64.h"
#include "core/utf8.h"

static const char mutf7_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

struct out_buf {
    char  *ptr;
    size_t len;
    size_t cap;
    bool   is_full;
};

static void put(struct out_buf *out, char c);
static void put_utf8(struct out_buf *out, uint32_t cp);
static bool is_control(uint32_t cp);
static void flush_units(struct out_buf *out, const uint16_t *units, size_t count);

int
mutf7_decode(struct span in, char *out, size_t out_bytes, size_t *len_out)
{
    if (in.len > 0) {
        ASSERT(in.ptr != NULL);
    }
    if (out_bytes > 0) {
        ASSERT(out != NULL);
    }
    ASSERT(len_out != NULL);
    struct out_buf o = { .ptr = out, .cap = out_bytes };
    const unsigned char *s = (const unsigned char *)in.ptr;
    size_t i = 0;
    bool last_was_shift = false;
    while (i < in.len) {
        unsigned char c = s[i];
        if (c < 0x20 || c > 0x7e) {
            return -EINVAL;
        }
        if (c != '&') {
            put(&o, (char)c);
            i++;
            last_was_shift = false;
            continue;
        }
        i++;
        if (i < in.len && s[i] == '-') {
            put(&o, '&');
            i++;
            last_was_shift = false;
            continue;
        }
        if (last_was_shift) {
            return -EINVAL; /* "&...-&...-" must be one shift */
        }
        uint32_t bits = 0;
        unsigned nbits = 0;
        uint32_t high = 0; /* pending high surrogate */
        size_t units = 0;
        /* Each round consumes one base64 byte or ends the shift. */
        for (;;) {
            if (i == in.len) {
                return -EINVAL; /* unterminated */
            }
            if (s[i] == '-') {
                i++;
                break;
            }
            int v = base64_digit_value((unsigned char)s[i], ',');
            if (v < 0) {
                return -EINVAL;
            }
            i++;
            bits = (bits << 6) | (uint32_t)v;
            nbits += 6;
            if (nbits < 16) {
                continue;
            }
            nbits -= 16;
            uint32_t unit = (bits >> nbits) & 0xffffu;
            bits &= (1u << nbits) - 1;
            units++;
            if (high != 0) {
                if (unit < 0xdc00 || unit > 0xdfff) {
                    return -EINVAL;
                }
                put_utf8(&o, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
                high = 0;
            } else if (unit >= 0xd800 && unit <= 0xdbff) {
                high = unit;
            } else if (unit >= 0xdc00 && unit <= 0xdfff) {
                return -EINVAL;
            } else if ((unit >= 0x20 && unit <= 0x7e) || is_control(unit)) {
                return -EINVAL; /* printable ASCII must be direct */
            } else {
                put_utf8(&o, unit);
            }
        }
        if (units == 0 || high != 0 || nbits >= 6 || bits != 0) {
            return -EINVAL;
        }
        last_was_shift = true;
    }
    if (o.is_full) {
        return -ENOSPC;
    }
    *len_out = o.len;
    return 0;
}

int
mutf7_encode(struct span utf8, char *out, size_t out_bytes, size_t *len_out)
{
    if (utf8.len > 0) {
        ASSERT(utf8.ptr != NULL);
    }
    if (out_bytes > 0) {
        ASSERT(out != NULL);
    }
    ASSERT(len_out != NULL);
    struct out_buf o = { .ptr = out, .cap = out_bytes };
    const unsigned char *s = (const unsigned char *)utf8.ptr;
    /* UTF-16 units of the current shift, flushed in groups of three
     * (48 bits = 8 base64 characters). */
    uint16_t units[3];
    size_t unit_count = 0;
    bool in_shift = false;
    size_t i = 0;
    while (i < utf8.len) {
        uint32_t cp;
        size_t n = utf8_decode_strict(s + i, utf8.len - i, &cp);
        if (n == 0 || is_control(cp)) {
            return -EINVAL;
        }
        i += n;
        if (cp >= 0x20 && cp <= 0x7e) {
            if (in_shift) {
                flush_units(&o, units, unit_count);
                unit_count = 0;
                put(&o, '-');
                in_shift = false;
            }
            put(&o, (char)cp);
            if (cp == '&') {
                put(&o, '-');
            }
            continue;
        }
        if (!in_shift) {
            put(&o, '&');
            in_shift = true;
        }
        uint16_t pair[2];
        size_t pair_len = 1;
        if (cp >= 0x10000) {
            pair[0] = (uint16_t)(0xd800 + ((cp - 0x10000) >> 10));
            pair[1] = (uint16_t)(0xdc00 + ((cp - 0x10000) & 0x3ff));
            pair_len = 2;
        } else {
            pair[0] = (uint16_t)cp;
        }
        for (size_t k = 0; k < pair_len; k++) {
            units[unit_count++] = pair[k];
            if (unit_count == 3) {
                flush_units(&o, units, 3);
                unit_count = 0;
            }
        }
    }
    if (in_shift) {
        flush_units(&o, units, unit_count);
        put(&o, '-');
    }
    if (o.is_full) {
        return -ENOSPC;
    }
    *len_out = o.len;
    return 0;
}

bool
mutf7_is_valid(struct span in)
{
    /* Decoding with no room only fails on room once the input is valid. */
    size_t len;
    int rc = mutf7_decode(in, NULL, 0, &len);
    return rc == 0 || rc == -ENOSPC;
}

/* Helpers. */

static void
put(struct out_buf *out, char c)
{
    if (out->len == out->cap) {
        out->is_full = true;
        return;
    }
    out->ptr[out->len++] = c;
}

static void
put_utf8(struct out_buf *out, uint32_t cp)
{
    ASSERT(cp <= 0x10ffff);
    char bytes[4];
    size_t n = utf8_encode(cp, bytes);
    for (size_t i = 0; i < n; i++) {
        put(out, bytes[i]);
    }
}

static bool
is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Base64 (modified alphabet) of count UTF-16BE units, zero-padded to a
 * whole character; no '=' padding. */
static void
flush_units(struct out_buf *out, const uint16_t *units, size_t count)
{
    ASSERT(count <= 3);
    uint64_t bits = 0;
    unsigned nbits = 0;
    for (size_t k = 0; k < count; k++) {
        bits = (bits << 16) | units[k];
        nbits += 16;
        while (nbits >= 6) {
            nbits -= 6;
            put(out, mutf7_alphabet[(bits >> nbits) & 0x3f]);
        }
    }
    if (nbits > 0) {
        put(out, mutf7_alphabet[(bits << (6 - nbits)) & 0x3f]);
    }
}
