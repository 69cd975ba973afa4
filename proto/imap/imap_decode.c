/*
 * proto/imap/imap_decode.c - base64 and quoted-printable decoding of MIME
 * part bodies (RFC 2045), used by IMAP BINARY / BINARY.SIZE (RFC 3516).
 *
 * Pure: no allocation, no I/O, runs on worker threads. Each input byte is
 * looked at a bounded number of times (white space runs in quoted-printable
 * are scanned once to learn whether a line end follows, then copied or
 * dropped), so work is linear in the input. Output goes either into the
 * caller's buffer (bounded by out_bytes, which callers size from the input
 * length) or, for the streaming forms, through a stack chunk handed to the
 * caller's emit function whenever it fills.
 */
#include "proto/imap/imap_decode.h"

#include <stdbool.h>
#include <limits.h>
#include <stdint.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/base64.h"

/* Where decoded bytes go: buf[0..cap); when it is full, emit (if any)
 * takes its content and it starts over, else the decode fails. */
struct decode_out {
    char                *buf;
    size_t               cap;
    size_t               len;
    size_t               total; /* bytes handed to emit so far */
    imap_decode_emit_fn *emit;
    void                *ctx;
};

static bool out_put(struct decode_out *out, char c);
static long out_finish(struct decode_out *out);
static long decode_base64(const char *in, size_t len, struct decode_out *out);
static long decode_qp(const char *in, size_t len, struct decode_out *out);
static bool is_wsp(unsigned char c);
static size_t line_end_at(const char *in, size_t len, size_t i, bool *is_end_out);

long
imap_decode_base64(const char *in, size_t len, char *out, size_t out_bytes)
{
    if (out_bytes > 0) {
        ASSERT(out != NULL);
    }
    struct decode_out o = { .buf = out, .cap = out_bytes };
    return decode_base64(in, len, &o);
}

long
imap_decode_qp(const char *in, size_t len, char *out, size_t out_bytes)
{
    if (out_bytes > 0) {
        ASSERT(out != NULL);
    }
    struct decode_out o = { .buf = out, .cap = out_bytes };
    return decode_qp(in, len, &o);
}

long
imap_decode_base64_stream(const char *in, size_t len, imap_decode_emit_fn *emit, void *ctx)
{
    ASSERT(emit != NULL);
    char chunk[IMAP_DECODE_CHUNK_BYTES];
    struct decode_out o = { .buf = chunk, .cap = sizeof(chunk), .emit = emit, .ctx = ctx };
    return decode_base64(in, len, &o);
}

long
imap_decode_qp_stream(const char *in, size_t len, imap_decode_emit_fn *emit, void *ctx)
{
    ASSERT(emit != NULL);
    char chunk[IMAP_DECODE_CHUNK_BYTES];
    struct decode_out o = { .buf = chunk, .cap = sizeof(chunk), .emit = emit, .ctx = ctx };
    return decode_qp(in, len, &o);
}

static long
decode_base64(const char *in, size_t len, struct decode_out *out)
{
    if (len > 0) {
        ASSERT(in != NULL);
    }
    uint32_t bits = 0;
    unsigned digits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
            continue;
        }
        if (c == '=') {
            break;
        }
        int v = base64_digit_value(c, '/');
        if (v < 0) {
            return -1;
        }
        bits = (bits << 6) | (uint32_t)v;
        digits++;
        if (digits == 4) {
            if (!out_put(out, (char)((bits >> 16) & 0xff)) ||
                !out_put(out, (char)((bits >> 8) & 0xff)) || !out_put(out, (char)(bits & 0xff))) {
                return -1;
            }
            bits = 0;
            digits = 0;
        }
    }
    /* An incomplete quantum: 2 digits carry 12 bits (1 byte), 3 carry 18
     * bits (2 bytes); the low bits beyond whole bytes are padding. */
    if (digits == 2) {
        if (!out_put(out, (char)((bits >> 4) & 0xff))) {
            return -1;
        }
    } else if (digits == 3) {
        if (!out_put(out, (char)((bits >> 10) & 0xff)) ||
            !out_put(out, (char)((bits >> 2) & 0xff))) {
            return -1;
        }
    }
    return out_finish(out);
}

static long
decode_qp(const char *in, size_t len, struct decode_out *out)
{
    if (len > 0) {
        ASSERT(in != NULL);
    }
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (is_wsp(c)) {
            /* A run of white space: dropped when a line end follows. */
            size_t run_end = i;
            while (run_end < len && is_wsp((unsigned char)in[run_end])) {
                run_end++;
            }
            bool is_end;
            (void)line_end_at(in, len, run_end, &is_end); /* only is_end matters */
            if (!is_end) {
                for (size_t k = i; k < run_end; k++) {
                    if (!out_put(out, in[k])) {
                        return -1;
                    }
                }
            }
            i = run_end;
            continue;
        }
        if (c == '=') {
            if (i + 2 < len && ascii_hex_value((unsigned char)in[i + 1]) >= 0 &&
                ascii_hex_value((unsigned char)in[i + 2]) >= 0) {
                int value = ascii_hex_value((unsigned char)in[i + 1]) * 16 +
                            ascii_hex_value((unsigned char)in[i + 2]);
                if (!out_put(out, (char)value)) {
                    return -1;
                }
                i += 3;
                continue;
            }
            /* Soft line break: '=', transport padding, then a line end. */
            size_t pad_end = i + 1;
            while (pad_end < len && is_wsp((unsigned char)in[pad_end])) {
                pad_end++;
            }
            bool   is_end;
            size_t eol_len = line_end_at(in, len, pad_end, &is_end);
            if (is_end) {
                i = pad_end + eol_len;
                continue;
            }
            /* Not a valid escape: keep the '=' and go on with the next byte. */
        }
        if (!out_put(out, (char)c)) {
            return -1;
        }
        i++;
    }
    return out_finish(out);
}

static bool
out_put(struct decode_out *out, char c)
{
    if (out->len == out->cap) {
        if (out->emit == NULL || out->cap == 0) {
            return false;
        }
        out->emit(out->ctx, out->buf, out->len);
        out->total += out->len;
        out->len = 0;
    }
    out->buf[out->len++] = c;
    return true;
}

static long
out_finish(struct decode_out *out)
{
    if (out->emit != NULL && out->len > 0) {
        out->emit(out->ctx, out->buf, out->len);
        out->total += out->len;
        out->len = 0;
    }
    size_t total = out->total + out->len;
    ASSERT(total <= (size_t)LONG_MAX);
    return (long)total;
}

static bool
is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Whether a line end starts at in[i] (CRLF, bare LF, or the end of the
 * input) and how many bytes it has (0 at the end of the input). */
static size_t
line_end_at(const char *in, size_t len, size_t i, bool *is_end_out)
{
    if (i >= len) {
        *is_end_out = true;
        return 0;
    }
    if (in[i] == '\n') {
        *is_end_out = true;
        return 1;
    }
    if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n') {
        *is_end_out = true;
        return 2;
    }
    *is_end_out = false;
    return 0;
}
